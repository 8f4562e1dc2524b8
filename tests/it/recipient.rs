//! The recipient's side in real browsers (Chromium and Firefox ESR), from
//! the invite as the real Postfix delivered it to the mailbox on the real
//! Dovecot: the setup form, a weak password, the success page, a used, a
//! replaced, a revoked and an unknown link, an expired link and its "ask
//! for a new link", a blocked link (pool full), German, and a phone.
//! Every step is checked at 1280x900 and 390x844 with a clean console.

use std::sync::Arc;
use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::mailstack::{self, Stack, login_eventually};
use crate::support::webdriver::{Browser, Engine};
use crate::support::*;
use muster::domain::duration::HumanDuration;
use muster::domain::roster::{CreationRow, InviteRow};
use muster::service::{BatchRequest, CreationRequest, ManualClock, RowLimit};
use muster::store::Actor;

const ADMIN: &str = "admin@team.example";
const WEBMAIL: &str = "https://webmail.team.example/";

struct Recipient {
    t: TestDir,
    stack: Stack,
    app: TestApp,
    clock: Arc<ManualClock>,
    /// Setup links already taken from delivered emails.
    seen: std::sync::Mutex<Vec<String>>,
}

async fn start(engine: Engine, name: &str) -> Option<(Recipient, Browser)> {
    start_as(engine, name, None).await
}

/// As [`start`], with a browser that names itself `user_agent`.
async fn start_as(
    engine: Engine,
    name: &str,
    user_agent: Option<&str>,
) -> Option<(Recipient, Browser)> {
    if !engine.available() || !mailstack::available() {
        return None;
    }
    let t = TestDir::new();
    let stack = Stack::start(t.path(), "team.example");
    let mut config = t.config();
    stack.configure(&mut config);
    let port = free_port();
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.public_url =
        muster::config::HttpUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    config.client.webmail_url = Some(muster::config::HttpUrl::parse(WEBMAIL).unwrap());
    config.client.imap_host = Some("imap.team.example".into());
    config.http.link_rate_per_minute = 1000;
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = TestApp::on_with_clock(config, clock.clone()).await;
    let b = Browser::start_as(engine, name, user_agent).await;
    Some((
        Recipient {
            t,
            stack,
            app,
            clock,
            seen: Default::default(),
        },
        b,
    ))
}

impl Recipient {
    /// Invites one recipient and returns (invite id, the setup link from
    /// the email Postfix delivered).
    fn invite(&self, row: InviteRow, expires: Option<&str>) -> (String, String) {
        let created = self
            .app
            .muster
            .create_batch(BatchRequest {
                expires_in: expires.map(|e| HumanDuration::parse(e).unwrap()),
                ..BatchRequest::new(vec![row], Actor::cli())
            })
            .unwrap();
        (created.invites[0].id.clone(), self.next_link())
    }

    /// Waits for a delivered email with a setup link not seen before.
    fn next_link(&self) -> String {
        let mut seen = self.seen.lock().unwrap();
        let link = wait_for("a delivered setup link", Duration::from_secs(30), || {
            self.stack
                .postfix
                .captured()
                .iter()
                .filter_map(|m| {
                    let msg = mail_parser::MessageParser::default().parse(m)?;
                    let text = msg.body_text(0)?.to_string();
                    text.split_whitespace()
                        .find(|w| w.contains("/invite/"))
                        .map(str::to_string)
                })
                .find(|l| !seen.contains(l))
        });
        seen.push(link.clone());
        link
    }

    fn passwd_has(&self, mailbox: &str) -> bool {
        std::fs::read_to_string(&self.stack.passwd)
            .unwrap()
            .lines()
            .any(|l| l.starts_with(&format!("{mailbox}:")))
    }

    async fn finish(self, b: Browser) {
        b.quit().await;
        self.app.shutdown().await;
    }
}

async fn a_recipient_sets_up_their_mailbox(engine: Engine) {
    let Some((r, mut b)) = start(engine, "a_recipient_sets_up_their_mailbox").await else {
        return;
    };
    let (id, link) = r.invite(
        InviteRow {
            display_name: Some("Jane Doe".into()),
            storage_allocation_mb: Some("77".into()),
            ..InviteRow::to("Jane.Doe@elsewhere.org")
        },
        None,
    );
    b.goto(&link).await;
    b.wait_text("main h1", "Set up your mailbox").await;
    // A username field password managers read, shown, not off-screen.
    assert_eq!(
        b.attribute("#username", "value").await.as_deref(),
        Some("jane.doe@team.example")
    );
    assert_eq!(
        b.property("#username", "autocomplete").await,
        "username",
        "the username field"
    );
    for field in ["#password", "#confirmation"] {
        assert_eq!(b.property(field, "autocomplete").await, "new-password");
    }
    b.step("setup-form").await;

    // A weak password: the reason next to the field, nothing typed lost.
    b.type_in("#password", "password1234").await;
    b.type_in("#confirmation", "password1234").await;
    b.click("#setup button[type=submit]").await;
    let reason = b.wait_text("#password-error", "too easy to guess").await;
    assert!(!reason.contains(".."), "{reason}");
    assert_eq!(
        b.property("#password", "ariaInvalid").await.as_str(),
        Some("true")
    );
    assert_eq!(
        b.attribute("#confirmation", "value").await.as_deref(),
        Some("password1234"),
        "the other field keeps what was typed"
    );
    assert!(
        b.url()
            .await
            .ends_with(link.split('/').next_back().unwrap())
    );
    b.step("weak-password").await;
    assert!(!r.passwd_has("jane.doe@team.example"));

    // The show-password toggle.
    b.click("#reveal").await;
    assert_eq!(b.property("#password", "type").await, "text");
    b.click("#reveal").await;
    assert_eq!(b.property("#password", "type").await, "password");

    // Mismatched: the reason sits by the confirmation.
    b.type_in("#password", PASSWORD).await;
    b.type_in("#confirmation", "plinth-ferry-quartz-78").await;
    b.click("#setup button[type=submit]").await;
    b.wait_text("#confirmation-error", "do not match").await;
    b.step("mismatch").await;

    // A strong password and its confirmation: the mailbox is ready.
    b.type_in("#confirmation", PASSWORD).await;
    b.click("#setup button[type=submit]").await;
    b.wait_text("main h1", "Your mailbox is ready").await;
    assert_eq!(
        b.attribute("#webmail", "href").await.as_deref(),
        Some(WEBMAIL),
        "a button to webmail, as the email promised"
    );
    let settings = b.text(".settings").await;
    assert!(settings.contains("jane.doe@team.example"), "{settings}");
    assert!(
        settings.contains("imap.team.example, port 993"),
        "{settings}"
    );
    assert!(settings.contains("77 MB"), "{settings}");
    b.step("ready").await;
    a_desktop_sees_its_ways_to_mail(&r, &b).await;

    // The password the recipient typed logs in on the real Dovecot.
    assert!(
        login_eventually(r.stack.dovecot.imap_port, "jane.doe@team.example", PASSWORD).is_some()
    );
    assert_eq!(r.app.muster.get_invite(&id).unwrap().link_state, "redeemed");

    // The same link again: already set up.
    b.goto(&link).await;
    b.wait_text("main h1", "already set up").await;
    // Reloaded, the settings shown once are no longer here: the page says
    // where they are.
    assert!(
        b.text("main")
            .await
            .contains("The settings for mail apps on your phone or computer are in the welcome message in your mailbox."),
    );
    b.step("used").await;
    r.finish(b).await;
}

/// The success page on a Linux desktop: Thunderbird first, the QR code
/// of the profile link readable from the screen, and the profile itself
/// one click away.
async fn a_desktop_sees_its_ways_to_mail(r: &Recipient, b: &Browser) {
    let profile_url = format!(
        "{}/mail/apple.mobileconfig?emailaddress=jane.doe@team.example",
        r.app.url()
    );
    assert_eq!(b.count("#device-desktop.this-device").await, 1);
    assert!(b.text("#device-desktop h3").await.contains("this device"));
    assert_eq!(b.count(".this-device").await, 1);
    let first = b
        .run(
            "const top = id => document.getElementById(id).getBoundingClientRect().top; \
             return top('device-desktop') < top('device-apple') && top('device-apple') < top('device-other');",
        )
        .await;
    assert_eq!(first, true, "this device's way comes first");
    assert_eq!(
        b.attribute("#apple-profile", "href").await.as_deref(),
        Some(profile_url.as_str())
    );

    // The QR code, as a phone's camera would read it off the screen.
    if require("zbarimg (apt package zbar-tools)", have_command("zbarimg")) {
        b.run("document.querySelector('.qr svg').scrollIntoView({block: 'center'}); return 1")
            .await;
        let shot = r.t.write("success-page.png", b.screenshot().await);
        let out = run(
            std::process::Command::new("zbarimg")
                .args(["-q", "--raw"])
                .arg(&shot),
            None,
        );
        assert!(
            out.status.success(),
            "no QR code found: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout).trim(), profile_url);
    }

    // The profile downloads with a click, for this address.
    b.click("#apple-profile").await;
    // Firefox names the file before it has written it: read it whole.
    let (file, profile) = wait_for("the profile downloaded", Duration::from_secs(20), || {
        b.downloads()
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "mobileconfig"))
            .and_then(|p| {
                let t = std::fs::read_to_string(&p).ok()?;
                t.contains("</plist>").then_some((p, t))
            })
    });
    assert_eq!(file.file_name().unwrap(), "team.example.mobileconfig");
    assert!(profile.contains("<string>jane.doe@team.example</string>"));
    assert!(profile.contains("<string>com.apple.mail.managed</string>"));
}

/// On an iPhone the profile comes first, with no QR code to scan from
/// the phone itself.
async fn an_iphone_gets_the_profile_first(engine: Engine) {
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    let Some((r, mut b)) = start_as(engine, "an_iphone_gets_the_profile_first", Some(IPHONE)).await
    else {
        return;
    };
    let (_, link) = r.invite(InviteRow::to("max@elsewhere.org"), None);
    b.goto(&link).await;
    b.wait_text("main h1", "Set up your mailbox").await;
    b.type_in("#password", PASSWORD).await;
    b.type_in("#confirmation", PASSWORD).await;
    b.click("#setup button[type=submit]").await;
    b.wait_text("main h1", "Your mailbox is ready").await;
    assert_eq!(b.count("#device-apple.this-device").await, 1);
    assert!(b.text("#device-apple h3").await.contains("this device"));
    assert_eq!(
        b.count(".qr").await,
        0,
        "no QR code to scan on the phone itself"
    );
    let first = b
        .run(
            "const top = id => document.getElementById(id).getBoundingClientRect().top; \
             return top('device-apple') < top('device-desktop');",
        )
        .await;
    assert_eq!(first, true);
    // Every way is shown, the settings too.
    assert!(b.text(".settings").await.contains("max@team.example"));
    b.step("ready-iphone").await;
    r.finish(b).await;
}

async fn links_that_no_longer_work(engine: Engine) {
    let Some((r, mut b)) = start(engine, "links_that_no_longer_work").await else {
        return;
    };
    let (resent, first) = r.invite(InviteRow::to("sam@elsewhere.org"), None);
    let (revoked, revoked_link) = r.invite(InviteRow::to("kim@elsewhere.org"), None);

    // A page opened before the resend: its form no longer works either.
    b.goto(&first).await;
    b.wait("#setup").await;
    r.app.muster.resend(&resent, &Actor::cli()).unwrap();
    let replacement = r.next_link();
    assert_ne!(replacement, first);
    b.type_in("#password", PASSWORD).await;
    b.type_in("#confirmation", PASSWORD).await;
    b.click("#setup button[type=submit]").await;
    b.wait_text("main h1", "This link is not valid").await;
    b.step("replaced-on-submit").await;
    b.goto(&first).await;
    b.wait_text("main h1", "This link is not valid").await;
    b.step("replaced").await;
    assert!(!r.passwd_has("sam@team.example"));

    r.app.muster.revoke(&revoked, &Actor::cli()).unwrap();
    b.goto(&revoked_link).await;
    b.wait_text("main h1", "This link is not valid").await;
    b.step("revoked").await;

    let unknown = format!("{}/invite/{}", r.app.url(), "A".repeat(43));
    b.goto(&unknown).await;
    b.wait_text("main h1", "This link is not valid").await;
    b.goto(&format!("{}/invite/nonsense", r.app.url())).await;
    b.wait_text("main h1", "This link is not valid").await;
    b.step("invalid").await;

    // The new link works.
    b.goto(&replacement).await;
    b.type_in("#password", PASSWORD).await;
    b.type_in("#confirmation", PASSWORD).await;
    b.click("#setup button[type=submit]").await;
    b.wait_text("main h1", "Your mailbox is ready").await;
    assert!(login_eventually(r.stack.dovecot.imap_port, "sam@team.example", PASSWORD).is_some());
    r.finish(b).await;
}

async fn an_expired_link_asks_for_a_new_one(engine: Engine) {
    let Some((r, mut b)) = start(engine, "an_expired_link_asks_for_a_new_one").await else {
        return;
    };
    r.app
        .muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let (id, link) = r.invite(InviteRow::to("late@elsewhere.org"), Some("1h"));
    r.clock.advance(time::Duration::hours(2));
    b.goto(&link).await;
    b.wait_text("main h1", "This link has expired").await;
    b.step("expired").await;
    b.click("#new-link button[type=submit]").await;
    b.wait_text("main h1", "Your request was sent").await;
    b.step("new-link-requested").await;
    assert!(
        r.app
            .muster
            .get_invite(&id)
            .unwrap()
            .new_link_requested_at
            .is_some()
    );
    b.goto(&link).await;
    b.wait_text(".alert", "You asked for a new link").await;

    // The admin sees the request in the pending list.
    b.goto(&format!("{}/login", r.app.url())).await;
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", PASSWORD).await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_text("main h1", "Mailboxes").await;
    b.goto(&format!("{}/invites?state=new_link_requested", r.app.url()))
        .await;
    let row = format!("tr[data-id='{id}']");
    b.wait_text(&row, "asked for a new link").await;
    assert_eq!(b.count("tr[data-id]").await, 1);
    b.step("admin-sees-the-request").await;
    r.finish(b).await;
}

async fn a_blocked_link_then_german_on_a_phone(engine: Engine) {
    let Some((r, mut b)) = start(engine, "a_blocked_link_then_german_on_a_phone").await else {
        return;
    };
    // Pool 1000 MB: 600 fits when invited, then bulk creation takes 500.
    let (blocked, link) = r.invite(
        InviteRow {
            storage_allocation_mb: Some("600".into()),
            ..InviteRow::to("big@elsewhere.org")
        },
        None,
    );
    let made = r
        .app
        .muster
        .create_mailboxes(&CreationRequest {
            domain: None,
            rows: &[CreationRow {
                local_part: "archive".into(),
                password: None,
                storage_allocation_mb: Some("500".into()),
                ..Default::default()
            }],
            only_clean: false,
            actor: &Actor::cli(),
            limit: RowLimit::Batch,
        })
        .unwrap();
    assert_eq!(made.mailboxes.len(), 1);
    b.goto(&link).await;
    b.type_in("#password", PASSWORD).await;
    b.type_in("#confirmation", PASSWORD).await;
    b.click("#setup button[type=submit]").await;
    b.wait_text(".alert.warn", "not enough storage").await;
    b.step("blocked").await;
    assert_eq!(
        r.app.muster.get_invite(&blocked).unwrap().link_state,
        "blocked"
    );
    assert!(!r.passwd_has("big@team.example"));

    // The address was made on the mail server by hand meanwhile: the
    // page says so, and that trying again will not help.
    let (_, link) = r.invite(InviteRow::to("sam@elsewhere.org"), None);
    let before = std::fs::read_to_string(&r.stack.passwd).unwrap();
    std::fs::write(
        &r.stack.passwd,
        format!("{before}sam@team.example:{{PLAIN}}by-hand:5000:5000::/nonexistent::\n"),
    )
    .unwrap();
    b.goto(&link).await;
    b.type_in("#password", PASSWORD).await;
    b.type_in("#confirmation", PASSWORD).await;
    b.click("#setup button[type=submit]").await;
    b.wait_text("main h1", "This address is already taken")
        .await;
    assert!(b.text("main").await.contains("sam@team.example"));
    b.step("address-taken").await;

    // German, on a phone, from the first page to the last.
    b.set_size(390, 844).await;
    let (_, link) = r.invite(
        InviteRow {
            locale: Some("de".into()),
            ..InviteRow::to("lena@elsewhere.org")
        },
        None,
    );
    b.goto(&link).await;
    b.wait_text("main h1", "Postfach einrichten").await;
    assert_eq!(
        b.run("return document.documentElement.lang").await,
        "de",
        "the page says its language"
    );
    b.step("german-form").await;
    b.type_in("#password", "password1234").await;
    b.type_in("#confirmation", "password1234").await;
    b.click("#setup button[type=submit]").await;
    b.wait_text("#password-error", "zu leicht zu erraten").await;
    b.click("#reveal").await;
    assert_eq!(b.text("#reveal").await, "Passwort verbergen");
    b.step("german-weak").await;
    b.type_in("#password", PASSWORD).await;
    b.type_in("#confirmation", PASSWORD).await;
    b.click("#setup button[type=submit]").await;
    b.wait_text("main h1", "Ihr Postfach ist bereit").await;
    assert_eq!(b.text("#webmail").await, "Zum Webmail");
    b.step("german-ready").await;
    assert!(login_eventually(r.stack.dovecot.imap_port, "lena@team.example", PASSWORD).is_some());
    // The outbox is not used: every invite went through Postfix.
    assert!(!r.t.data().join("outbox").exists());
    r.finish(b).await;
}

/// The admin sends a mailbox's owner a password-reset link from the
/// mailboxes page; the owner opens it (German here), chooses a new
/// password, and Dovecot takes the new one and refuses the old.
async fn a_mailbox_owner_chooses_a_new_password(engine: Engine) {
    let Some((r, mut b)) = start(engine, "a_mailbox_owner_chooses_a_new_password").await else {
        return;
    };
    const OLD: &str = "copper-lantern-orbit-42";
    const NEW: &str = "velvet-harbour-quiet-77";
    r.app
        .muster
        .create_mailboxes(&CreationRequest {
            domain: None,
            rows: &[CreationRow {
                local_part: "jane".into(),
                password: Some(OLD.into()),
                ..Default::default()
            }],
            only_clean: false,
            actor: &Actor::cli(),
            limit: RowLimit::Batch,
        })
        .unwrap();
    r.app
        .muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let imap = r.stack.dovecot.imap_port;
    login_eventually(imap, "jane@team.example", OLD).expect("the old password works first");

    // The admin, on the mailboxes page.
    b.goto(&format!("{}/", r.app.url())).await;
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", PASSWORD).await;
    b.click("#sign-in button[type=submit]").await;
    b.click("tr[data-address='jane@team.example'] button[data-action=reset]")
        .await;
    b.wait("#reset-dialog[open]").await;
    // Made by bulk creation: Muster has no address for the owner yet.
    b.click("#reset-send").await;
    b.wait_text("#reset-status", "name the address to send the link to")
        .await;
    b.type_in("#reset-to", "jane.private@elsewhere.org").await;
    b.click("#reset-locale option[value=de]").await;
    b.step("reset-dialog").await;
    b.click("#reset-send").await;
    b.wait_text("#status", "goes to jane.private@elsewhere.org")
        .await;

    // The owner's email, in German, and the link in it.
    let link = r.next_link();
    let mail = r
        .stack
        .postfix
        .captured()
        .into_iter()
        .find(|m| String::from_utf8_lossy(m).contains(&link))
        .unwrap();
    let msg = mail_parser::MessageParser::default().parse(&mail).unwrap();
    assert_eq!(
        msg.subject().unwrap(),
        "Wählen Sie ein neues Passwort für jane@team.example"
    );
    assert_eq!(
        msg.header_raw("X-Original-To").unwrap().trim(),
        "jane.private@elsewhere.org"
    );
    b.goto(&link).await;
    b.wait_text("h1", "Neues Passwort wählen").await;
    assert_eq!(b.property("#username", "value").await, "jane@team.example");
    b.step("reset-form").await;
    b.type_in("#password", NEW).await;
    b.type_in("#confirmation", NEW).await;
    b.click("#setup button[type=submit]").await;
    b.wait_text("h1", "Ihr neues Passwort ist gesetzt").await;
    b.step("reset-done").await;
    login_eventually(imap, "jane@team.example", NEW).expect("the new password works");
    assert!(
        !mailstack::Imap::connect(imap).login("jane@team.example", OLD),
        "the old password no longer works"
    );
    // The link works once.
    b.goto(&link).await;
    b.wait_text("h1", "Dieser Link wurde benutzt").await;
    b.step("reset-used").await;
    // It took no place under the cap, and the audit names it.
    let cap = r.app.muster.capacities().unwrap();
    assert_eq!(cap[0].pending, 0);
    let audit = r.app.muster.view().unwrap().audit(None, 50).unwrap();
    assert!(audit.iter().any(|e| e.action == "mailbox.reset_link"));
    assert!(audit.iter().any(|e| e.action == "mailbox.password_reset"));
    r.finish(b).await;
}

crate::in_both_browsers!(
    a_mailbox_owner_chooses_a_new_password,
    a_recipient_sets_up_their_mailbox,
    links_that_no_longer_work,
    an_expired_link_asks_for_a_new_one,
    a_blocked_link_then_german_on_a_phone,
    an_iphone_gets_the_profile_first,
);
