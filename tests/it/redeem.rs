//! Redeeming setup links against a real Dovecot and Postfix: the link page,
//! the password, the mailbox on the host, IMAP logins, quota, delivery,
//! resend, expiry, races, a read-only passwd-file and the pool re-check.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::mailstack::{self, Stack, login_eventually};
use crate::support::*;
use muster::domain::duration::HumanDuration;
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, Clock, ManualClock, SystemClock};
use muster::store::Actor;

fn row(email: &str, mb: Option<u64>) -> InviteRow {
    InviteRow {
        storage_allocation_mb: mb.map(|m| m.to_string()),
        ..InviteRow::to(email)
    }
}

struct Fixture {
    stack: Stack,
    app: TestApp,
    client: reqwest::Client,
}

async fn fixture(tweak: impl FnOnce(&mut muster::config::Config)) -> Option<Fixture> {
    fixture_with_clock(tweak, None).await
}

async fn fixture_with_clock(
    tweak: impl FnOnce(&mut muster::config::Config),
    clock: Option<Arc<ManualClock>>,
) -> Option<Fixture> {
    if !mailstack::available() {
        return None;
    }
    let t = TestDir::new();
    let stack = Stack::start(t.path(), "team.example");
    let clock: Arc<dyn Clock> = match clock {
        Some(c) => c,
        None => Arc::new(SystemClock),
    };
    let app = TestApp::spawn_in(
        t,
        |config| {
            stack.configure(config);
            config.client.webmail_url =
                Some(muster::config::HttpUrl::parse("https://webmail.team.example/").unwrap());
            config.client.imap_host = Some("imap.team.example".into());
            tweak(config);
        },
        clock,
    )
    .await;
    Some(Fixture {
        stack,
        app,
        client: http(),
    })
}

impl Fixture {
    /// Creates one invite and returns (invite id, link path).
    fn invite(&self, email: &str, mb: Option<u64>, expires: Option<&str>) -> (String, String) {
        let created = self
            .app
            .muster
            .create_batch(BatchRequest {
                expires_in: expires.map(|e| HumanDuration::parse(e).unwrap()),
                ..BatchRequest::new(vec![row(email, mb)], Actor::cli())
            })
            .unwrap();
        let invite = &created.invites[0];
        let token = self.app.muster.invite_token(invite).unwrap();
        (invite.id.clone(), format!("/invite/{}", token.as_str()))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.app.get(path).await
    }

    async fn post(&self, path: &str, password: &str, confirmation: &str) -> (u16, String) {
        let url = format!("{}{path}", self.app.url());
        submit_password(&self.client, &url, password, confirmation).await
    }

    fn passwd_lines(&self, address: &str) -> usize {
        std::fs::read_to_string(&self.stack.passwd)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with(&format!("{address}:")))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeem_log_in_read_quota_and_receive_mail() {
    let Some(f) = fixture(|_| {}).await else {
        return;
    };
    let (id, link) = f.invite("Jane.Doe@elsewhere.org", Some(77), None);

    // Opening the link twice changes nothing.
    for _ in 0..2 {
        let (status, page) = f.get(&link).await;
        assert_eq!(status, 200);
        assert!(page.contains("jane.doe@team.example"));
        assert!(page.contains("<form method=\"post\""));
    }
    assert_eq!(f.app.muster.get_invite(&id).unwrap().link_state, "live");

    // Weak, mismatched and name-containing passwords are refused with the reason.
    let (status, page) = f.post(&link, "password1234", "password1234").await;
    assert_eq!(status, 422);
    assert!(page.contains("too easy to guess"), "{page}");
    let (status, page) = f.post(&link, PASSWORD, "something-else-entirely").await;
    assert_eq!(status, 422);
    assert!(page.contains("do not match"));
    let (status, page) = f
        .post(&link, "jane.doe-quartz-ferry", "jane.doe-quartz-ferry")
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("must not contain the mailbox name"));
    assert_eq!(f.passwd_lines("jane.doe@team.example"), 0);

    let (status, page) = f.post(&link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Your mailbox is ready"));
    assert!(page.contains("imap.team.example, port 993"));
    assert!(
        page.contains("id=\"webmail\" href=\"https://webmail.team.example/\""),
        "a button to webmail"
    );
    let v = f.app.muster.get_invite(&id).unwrap();
    assert_eq!(v.link_state, "redeemed");

    // The password-file line: scheme prefix, quota, and its owner and mode kept.
    let passwd = std::fs::read_to_string(&f.stack.passwd).unwrap();
    assert!(
        passwd.contains("jane.doe@team.example:{ARGON2ID}$argon2id$"),
        "{passwd}"
    );
    assert!(passwd.contains("userdb_quota_rule=*:storage=77M"));
    let meta = std::fs::metadata(&f.stack.passwd).unwrap();
    assert_eq!(meta.gid(), mailstack::Dovecot::group());
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);

    // IMAP with the chosen password; the quota shows the allocation.
    let mut imap = login_eventually(f.stack.dovecot.imap_port, "jane.doe@team.example", PASSWORD)
        .expect("login with the chosen password");
    let (lines, status) = imap.cmd("GETQUOTAROOT INBOX");
    assert!(status.contains("OK"), "{status}");
    assert!(
        lines.iter().any(|l| l.contains("STORAGE 0 78848")),
        "{lines:?}"
    );

    // Mail to the new address through Postfix lands in its INBOX.
    let reply = wait_for(
        "Postfix to accept the new address",
        Duration::from_secs(20),
        || {
            let r = f.stack.send_mail("jane.doe@team.example", "first mail");
            r.starts_with("250").then_some(r)
        },
    );
    assert!(reply.starts_with("250"));
    // With the welcome message Muster sent it first.
    wait_for("the mail in INBOX", Duration::from_secs(20), || {
        let (lines, _) = imap.cmd("STATUS INBOX (MESSAGES)");
        lines.iter().any(|l| l.contains("MESSAGES 2")).then_some(())
    });

    // A wrong password fails; the used link says so.
    let mut other = mailstack::Imap::connect(f.stack.dovecot.imap_port);
    assert!(!other.login("jane.doe@team.example", "not-the-password-at-all"));
    let (status, page) = f.get(&link).await;
    assert_eq!(status, 200);
    assert!(page.contains("already set up"));
    f.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_link_replaces_the_old_one_at_once() {
    let Some(f) = fixture(|_| {}).await else {
        return;
    };
    let (id, old_link) = f.invite("sam@elsewhere.org", None, None);
    let resent = f.app.muster.resend(&id, &Actor::cli()).unwrap();
    assert_eq!(resent.link_state, "live");
    let invite = f
        .app
        .muster
        .store
        .read()
        .unwrap()
        .invite(&id)
        .unwrap()
        .unwrap();
    let new_link = format!(
        "/invite/{}",
        f.app.muster.invite_token(&invite).unwrap().as_str()
    );
    assert_ne!(new_link, old_link);
    let (status, page) = f.get(&old_link).await;
    assert_eq!(status, 404);
    assert!(page.contains("This link is not valid"));
    // The old page's form, had it been open, no longer works either.
    let url = format!("{}{old_link}", f.app.url());
    let (status, _) = post_password(&f.client, &url, "", PASSWORD, PASSWORD).await;
    assert_eq!(status, 404);
    let (status, page) = f.post(&new_link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    assert!(login_eventually(f.stack.dovecot.imap_port, "sam@team.example", PASSWORD).is_some());
    f.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_shows_its_page_and_records_a_new_link_request() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let Some(f) = fixture_with_clock(|_| {}, Some(clock.clone())).await else {
        return;
    };
    let (id, link) = f.invite("late@elsewhere.org", None, Some("1h"));
    assert_eq!(
        f.app
            .muster
            .view()
            .unwrap()
            .pending_count("team.example", clock.now())
            .unwrap(),
        1
    );
    clock.advance(time::Duration::hours(2));

    let (status, page) = f.get(&link).await;
    assert_eq!(status, 410);
    assert!(page.contains("This link has expired"));
    assert!(page.contains("/new-link"));
    // Even a password posted with the page's own proof does not redeem it.
    let url = format!("{}{link}", f.app.url());
    let (status, _) = post_password(&f.client, &url, &form_token(&page), PASSWORD, PASSWORD).await;
    assert_eq!(status, 410, "an expired link cannot be redeemed");
    // Expired invites no longer hold a place under the cap.
    assert_eq!(
        f.app
            .muster
            .view()
            .unwrap()
            .pending_count("team.example", clock.now())
            .unwrap(),
        0
    );

    // Without the page's proof (a post from elsewhere), nothing is recorded.
    let r = f
        .client
        .post(format!("{}{link}/new-link", f.app.url()))
        .header("origin", "null")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Open the setup link again")
    );
    assert!(
        f.app
            .muster
            .get_invite(&id)
            .unwrap()
            .new_link_requested_at
            .is_none()
    );
    let (_, page) = f.get(&link).await;
    let r = f
        .client
        .post(format!("{}{link}/new-link", f.app.url()))
        .form(&[("form_token", form_token(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("Your request was sent"));
    let v = f.app.muster.get_invite(&id).unwrap();
    assert!(v.new_link_requested_at.is_some());
    let filter = muster::store::view::InviteFilter {
        state: Some("new_link_requested".into()),
        ..Default::default()
    };
    let (listed, _) = f.app.muster.list_invites(&filter, None, 10).unwrap();
    assert_eq!(listed.len(), 1);
    let (_, page) = f.get(&link).await;
    assert!(page.contains("You asked for a new link"));

    // The admin resends: a fresh link works again.
    f.app.muster.resend(&id, &Actor::cli()).unwrap();
    assert!(
        f.app
            .muster
            .get_invite(&id)
            .unwrap()
            .new_link_requested_at
            .is_none()
    );
    f.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_submissions_create_one_mailbox() {
    let Some(f) = fixture(|c| c.http.link_rate_per_minute = 1000).await else {
        return;
    };
    let (_, link) = f.invite("race@elsewhere.org", Some(5), None);
    let url = format!("{}{link}", f.app.url());
    // Fifty pages open at once, then all submitted together.
    let mut proofs = Vec::new();
    for _ in 0..50 {
        proofs.push(fetch_form_token(&f.client, &url).await);
    }
    let mut tasks = Vec::new();
    for proof in proofs {
        let client = f.client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            post_password(&client, &url, &proof, PASSWORD, PASSWORD).await
        }));
    }
    let mut ready = 0;
    for t in tasks {
        let (status, page) = t.await.unwrap();
        if page.contains("Your mailbox is ready") {
            ready += 1;
        } else {
            assert!(
                page.contains("already set up") || page.contains("being set up"),
                "{status}: {page}"
            );
        }
    }
    assert_eq!(ready, 1);
    assert_eq!(f.passwd_lines("race@team.example"), 1);
    let map = std::fs::read_to_string(&f.stack.map).unwrap();
    assert_eq!(
        map.lines()
            .filter(|l| l.starts_with("race@team.example "))
            .count(),
        1
    );
    assert!(login_eventually(f.stack.dovecot.imap_port, "race@team.example", PASSWORD).is_some());
    f.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_passwd_file_fails_cleanly_and_the_link_works_once_fixed() {
    let Some(f) = fixture(|_| {}).await else {
        return;
    };
    let (id, link) = f.invite("ro@elsewhere.org", None, None);
    std::fs::set_permissions(&f.stack.passwd, std::fs::Permissions::from_mode(0o440)).unwrap();
    let (status, page) = f.post(&link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 503);
    assert!(page.contains("your link still works"), "{page}");
    let v = f.app.muster.get_invite(&id).unwrap();
    assert_eq!(v.link_state, "live");
    assert!(
        v.last_error.as_deref().unwrap().contains("cannot write"),
        "{v:?}"
    );
    assert_eq!(f.passwd_lines("ro@team.example"), 0);
    assert!(
        !std::fs::read_to_string(&f.stack.map)
            .unwrap()
            .contains("ro@team.example")
    );

    std::fs::set_permissions(&f.stack.passwd, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (status, page) = f.post(&link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    assert!(login_eventually(f.stack.dovecot.imap_port, "ro@team.example", PASSWORD).is_some());
    f.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_is_checked_again_at_redemption() {
    let Some(f) = fixture(|_| {}).await else {
        return;
    };
    // Pool 1000 MB: 600 fits when invited...
    let (id, link) = f.invite("big@elsewhere.org", Some(600), None);
    // ...but before redemption another mailbox takes 500 MB on the host.
    let original = std::fs::read_to_string(&f.stack.passwd).unwrap();
    let with_other = format!(
        "{original}other@team.example:{{PLAIN}}x:5000:5000::/tmp::userdb_quota_rule=*:storage=500M\n"
    );
    std::fs::write(&f.stack.passwd, &with_other).unwrap();

    let (status, page) = f.post(&link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 503);
    assert!(page.contains("not enough storage"), "{page}");
    assert_eq!(f.passwd_lines("big@team.example"), 0);
    let v = f.app.muster.get_invite(&id).unwrap();
    assert_eq!(v.link_state, "blocked");
    assert!(v.last_error.as_deref().unwrap().contains("free space"));
    // The link stays valid and says why.
    let (status, page) = f.get(&link).await;
    assert_eq!(status, 200);
    assert!(page.contains("not enough storage") && page.contains("<form"));

    // The admin frees space: the same link now works.
    std::fs::write(&f.stack.passwd, &original).unwrap();
    let (status, page) = f.post(&link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(f.app.muster.get_invite(&id).unwrap().link_state, "redeemed");
    f.app.shutdown().await;
}

#[tokio::test]
async fn link_requests_are_rate_limited_per_client() {
    let t = TestDir::new();
    let mut config = t.config();
    config.http.link_guesses_per_minute = 5;
    let app = TestApp::on(config).await;
    let client = http();
    let url = format!("{}/invite/{}", app.url(), "A".repeat(43));
    for _ in 0..5 {
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
    }
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    app.shutdown().await;
}

#[tokio::test]
async fn link_pages_carry_strict_headers_and_escape_values() {
    let t = TestDir::new();
    let app = TestApp::on(t.config()).await;
    let created = app
        .muster
        .create_batch(BatchRequest::new(
            vec![InviteRow {
                display_name: Some("<script>alert(1)</script>".into()),
                ..InviteRow::to("x@elsewhere.org")
            }],
            Actor::cli(),
        ))
        .unwrap();
    let token = app.muster.invite_token(&created.invites[0]).unwrap();
    let r = http()
        .get(format!("{}/invite/{}", app.url(), token.as_str()))
        .send()
        .await
        .unwrap();
    let h = r.headers().clone();
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    assert!(!r.text().await.unwrap().contains("<script>"));
    // A cross-site form post is refused.
    let r = http()
        .post(format!("{}/invite/{}", app.url(), token.as_str()))
        .header("origin", "https://evil.example")
        .form(&[("password", PASSWORD), ("confirmation", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_resends_and_revokes() {
    let t = TestDir::new();
    let config = t.write_config(&t.config());
    let cfg = config.to_str().unwrap().to_string();
    let roster = t.write("team.txt", "ann@elsewhere.org\nbob@elsewhere.org\n");
    let c = cfg.clone();
    let out = tokio::task::spawn_blocking(move || {
        run(muster(&["--config", &c, "invite"]).arg(&roster), None)
    })
    .await
    .unwrap();
    assert_exit(&out, 0);
    let list = |args: &[&str]| {
        let mut all = vec!["--config", cfg.as_str(), "invites", "list", "--json"];
        all.extend_from_slice(args);
        let out = run(muster(&all), None);
        assert_exit(&out, 0);
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    };
    let invites = list(&[]);
    assert_eq!(invites.len(), 2);
    // A page at a time: the first says how to get the next.
    let out = run(
        muster(&["--config", &cfg, "invites", "list", "--limit", "1"]),
        None,
    );
    assert_exit(&out, 0);
    let hint = text(&out.stderr);
    let cursor = hint
        .split("--cursor ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the first page names the next: {hint}"))
        .to_string();
    let first = text(&out.stdout);
    let second = list(&["--limit", "1", "--cursor", &cursor]);
    assert_eq!(second.len(), 1);
    let second_id = second[0]["id"].as_str().unwrap();
    assert!(
        !first.contains(second_id),
        "the next page has the other invite"
    );
    let out = run(
        muster(&["--config", &cfg, "invites", "list", "--cursor", &cursor]),
        None,
    );
    assert!(
        !text(&out.stderr).contains("--cursor"),
        "the last page names none"
    );
    let ann = invites
        .iter()
        .find(|i| i["mailbox"] == "ann@team.example")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = invites
        .iter()
        .find(|i| i["mailbox"] == "bob@team.example")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let out = run(muster(&["--config", &cfg, "invites", "revoke", &ann]), None);
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains("revoked ann@team.example"));
    let c = cfg.clone();
    let b = bob.clone();
    let out = tokio::task::spawn_blocking(move || {
        run(muster(&["--config", &c, "invites", "resend", &b]), None)
    })
    .await
    .unwrap();
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains(
        "0 sent, 1 in the outbox (no SMTP relay configured: not on their way), 0 failed."
    ));
    assert!(t.data().join(format!("outbox/{bob}-r1.eml")).exists());

    let revoked = list(&["--state", "revoked"]);
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["id"], ann.as_str());
    // A revoked invite cannot be resent; the command says why.
    let out = run(muster(&["--config", &cfg, "invites", "resend", &ann]), None);
    assert_exit(&out, 1);
    assert!(text(&out.stdout).contains("revoked"));
}

/// A redemption is one line appended to a big passwd-file: Dovecot sees
/// it, and the lines before it, the file's owner and its mode stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redemption_appends_one_line_to_a_100000_line_passwd_file() {
    // The 100,000 mailboxes count against the cap, so the cap leaves room.
    let Some(f) = fixture(|c| c.domains[0].mailbox_cap = 100_010).await else {
        return;
    };
    let existing: String = (0..100_000)
        .map(|i| format!("existing{i}@team.example:{{PLAIN}}x:5000:5000::/var/vmail/team.example/existing{i}::\n"))
        .collect();
    // Written in place: the stack's owner (root:dovecot) and mode stay.
    std::fs::write(&f.stack.passwd, &existing).unwrap();
    let map: String = (0..100_000)
        .map(|i| format!("existing{i}@team.example OK\n"))
        .collect();
    std::fs::write(&f.stack.map, &map).unwrap();
    let before = std::fs::metadata(&f.stack.passwd).unwrap();

    let (id, link) = f.invite("big@elsewhere.org", None, None);
    let (status, page) = f.post(&link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(f.app.muster.get_invite(&id).unwrap().link_state, "redeemed");

    let after_text = std::fs::read_to_string(&f.stack.passwd).unwrap();
    let added = after_text
        .strip_prefix(existing.as_str())
        .expect("the earlier lines are unchanged");
    assert_eq!(added.lines().count(), 1, "{added}");
    assert!(added.starts_with("big@team.example:{ARGON2ID}"), "{added}");
    assert!(
        std::fs::read_to_string(&f.stack.map)
            .unwrap()
            .strip_prefix(map.as_str())
            .is_some_and(|rest| rest == "big@team.example OK\n")
    );
    let after = std::fs::metadata(&f.stack.passwd).unwrap();
    assert_eq!(after.ino(), before.ino(), "appended, not replaced");
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_eq!(after.permissions().mode(), before.permissions().mode());
    // The mtime is the clock's, not pushed into the future.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        after.mtime() <= now + 1,
        "mtime {} now {now}",
        after.mtime()
    );

    assert!(login_eventually(f.stack.dovecot.imap_port, "big@team.example", PASSWORD).is_some());
    f.app.shutdown().await;
}

/// A passwd-file whose last line has no newline (an edit cut short) is
/// reported by /readyz and nothing is appended to it; the link keeps
/// working once the file is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passwd_file_without_a_final_newline_is_reported_not_appended_to() {
    let Some(f) = fixture(|_| {}).await else {
        return;
    };
    let half = "someone@team.example:{PLAIN}x:5000:5000::/var/vmail/team.example/someone::";
    std::fs::write(&f.stack.passwd, half).unwrap();

    let (status, body) = f.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("does not end with a newline"), "{body}");

    let (id, link) = f.invite("late@elsewhere.org", None, None);
    let (status, page) = f.post(&link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("your link still works"), "{page}");
    assert_eq!(std::fs::read_to_string(&f.stack.passwd).unwrap(), half);
    assert!(
        !std::fs::read_to_string(&f.stack.map)
            .unwrap()
            .contains("late@team.example")
    );
    assert_eq!(f.app.muster.get_invite(&id).unwrap().link_state, "live");

    std::fs::write(&f.stack.passwd, format!("{half}\n")).unwrap();
    let (status, _) = f.get("/readyz").await;
    assert_eq!(status, 200);
    let (status, page) = f.post(&link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    assert!(login_eventually(f.stack.dovecot.imap_port, "late@team.example", PASSWORD).is_some());
    f.app.shutdown().await;
}

/// A passwd-file folder that became read-only (a remount, a full disk's
/// protection) is reported by /readyz with what to do, before anyone
/// tries to set up a mailbox; writable again, /readyz is green.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_passwd_folder_is_reported_before_a_setup_fails() {
    let Some(f) = fixture(|_| {}).await else {
        return;
    };
    let (status, _) = f.get("/readyz").await;
    assert_eq!(status, 200);
    let dir = f.stack.passwd.parent().unwrap().to_path_buf();
    let Some(read_only) = ReadOnly::mount(&dir) else {
        return;
    };
    let (status, body) = f.get("/readyz").await;
    drop(read_only);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains(&format!("cannot write {}", dir.display()))
            && body.contains("read-only: make it writable"),
        "{body}"
    );
    let (status, _) = f.get("/readyz").await;
    assert_eq!(status, 200);
    f.app.shutdown().await;
}

/// The same file is named at start-up in the log and by `muster check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_and_check_report_a_passwd_file_without_a_final_newline() {
    let t = TestDir::new();
    let mut config = t.config();
    config.listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let passwd = config.passwd_file();
    std::fs::create_dir_all(passwd.parent().unwrap()).unwrap();
    std::fs::write(&passwd, "someone@team.example:{PLAIN}x:5000:5000::/h::").unwrap();
    let config_path = t.write_config(&config);

    let check = {
        let config_path = config_path.clone();
        tokio::task::spawn_blocking(move || {
            run(
                muster(&["--config", config_path.to_str().unwrap(), "check"]),
                None,
            )
        })
        .await
        .unwrap()
    };
    let report = text(&check.stdout);
    assert!(
        report.contains("FAIL  Dovecot passwd-file: ")
            && report.contains("does not end with a newline"),
        "{report}"
    );

    let log = t.path().join("serve.log");
    let mut server = muster(&["--config", config_path.to_str().unwrap(), "serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let seen = tokio::task::spawn_blocking({
        let log = log.clone();
        let passwd = passwd.clone();
        move || {
            wait_for("the start-up report", Duration::from_secs(30), || {
                // Both in one read: the line may be midway through.
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                (text.contains("the mail host cannot take new mailboxes")
                    && text.contains(&passwd.display().to_string()))
                .then_some(text)
            })
        }
    })
    .await
    .unwrap();
    assert!(seen.contains(&passwd.display().to_string()), "{seen}");
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    tokio::task::spawn_blocking(move || server.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&passwd).unwrap(),
        "someone@team.example:{PLAIN}x:5000:5000::/h::"
    );
}
