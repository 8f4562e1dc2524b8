//! The welcome message: after a real redemption it is delivered through the
//! real Postfix into the new mailbox on the real Dovecot, in the row's
//! language; `client.welcome = false` sends none; a welcome the relay
//! refuses leaves the mailbox as it is.

use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::mailstack::{self, Imap, Stack, login_eventually};
use crate::support::smtp_peer::{Peer, Step};
use crate::support::*;
use muster::domain::roster::InviteRow;
use muster::service::BatchRequest;
use muster::store::Actor;

const ADMIN: &str = "boss@team.example";

/// Invites one recipient; returns the invite's id and its setup link.
fn invite(app: &TestApp, row: InviteRow) -> (String, String) {
    let created = app
        .muster()
        .create_batch(BatchRequest::new(vec![row], Actor::admin(ADMIN)))
        .unwrap();
    let id = created.invites[0].id.clone();
    let invite = app
        .muster()
        .store
        .read()
        .unwrap()
        .invite(&id)
        .unwrap()
        .unwrap();
    (id, app.link(&invite))
}

/// A message as its reader sees it: subject, text part, HTML part.
struct Read {
    subject: String,
    text: String,
    html: String,
}

/// The messages in INBOX, decoded, once there are `n`.
fn inbox(imap: &mut Imap, n: usize) -> Vec<Read> {
    wait_for(
        &format!("{n} messages in INBOX"),
        Duration::from_secs(30),
        || {
            let (lines, _) = imap.cmd("STATUS INBOX (MESSAGES)");
            lines
                .iter()
                .any(|l| l.contains(&format!("MESSAGES {n})")))
                .then_some(())
        },
    );
    imap.cmd("SELECT INBOX");
    (1..=n)
        .map(|i| {
            let lines = imap.cmd(&format!("FETCH {i} BODY.PEEK[]")).0;
            // Between "* i FETCH (BODY[] {size}" and the closing ")".
            let raw = lines[1..lines.len() - 1].concat();
            let m = mail_parser::MessageParser::default()
                .parse(raw.as_bytes())
                .expect("a message");
            Read {
                subject: m.subject().unwrap_or_default().to_string(),
                text: m.body_text(0).unwrap_or_default().to_string(),
                html: m.body_html(0).unwrap_or_default().to_string(),
            }
        })
        .collect()
}

fn actions(app: &TestApp) -> Vec<(String, String)> {
    app.muster()
        .store
        .read()
        .unwrap()
        .audit(None, 1000)
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.subject))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_mailbox_finds_its_welcome_in_its_own_language() {
    if !require("the mail stack", mailstack::available()) {
        return;
    }
    let dir = TestDir::new();
    let stack = Stack::start(dir.path(), "team.example");
    let app = TestApp::spawn_in(
        dir,
        |c| {
            stack.configure(c);
            c.client.webmail_url =
                Some(muster::config::HttpUrl::parse("https://webmail.team.example/").unwrap());
            c.client.imap_host = Some("imap.team.example".into());
        },
        std::sync::Arc::new(muster::service::SystemClock),
    )
    .await;
    let (id, link) = invite(
        &app,
        InviteRow {
            display_name: Some("Jana Schmidt".into()),
            locale: Some("de".into()),
            ..InviteRow::to("jana@elsewhere.org")
        },
    );
    let (status, page) = submit_password(&app.client, &link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");

    let mut imap = login_eventually(stack.dovecot.imap_port, "jana@team.example", PASSWORD)
        .expect("login with the chosen password");
    let messages = inbox(&mut imap, 1);
    let welcome = &messages[0];
    assert_eq!(
        welcome.subject,
        "Willkommen in Ihrem neuen Postfach bei Example Team"
    );
    let profile = format!(
        "{}/mail/apple.mobileconfig?emailaddress=jana@team.example",
        app.url()
    );
    for part in [&welcome.text, &welcome.html] {
        assert!(part.contains("Hallo Jana Schmidt"), "{part}");
        assert!(
            part.contains("Eingeladen hat Sie boss@team.example"),
            "{part}"
        );
        assert!(part.contains("https://webmail.team.example/"), "{part}");
        assert!(part.contains(&profile), "{part}");
        assert!(
            part.contains("imap.team.example, Port 993, SSL/TLS"),
            "{part}"
        );
    }
    wait_for(
        "the welcome in the audit trail",
        Duration::from_secs(10),
        || {
            actions(&app)
                .contains(&("mailbox.welcome.send".into(), "jana@team.example".into()))
                .then_some(())
        },
    );
    // The invite's own delivery state is the invite email's, untouched.
    let v = app.muster().get_invite(&id).unwrap();
    assert_eq!(v.link_state, "redeemed");
    assert_eq!(v.delivery_state, "sent");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_welcome_when_it_is_turned_off() {
    if !require("the mail stack", mailstack::available()) {
        return;
    }
    let dir = TestDir::new();
    let stack = Stack::start(dir.path(), "team.example");
    let app = TestApp::spawn_in(
        dir,
        |c| {
            stack.configure(c);
            c.client.welcome = false;
        },
        std::sync::Arc::new(muster::service::SystemClock),
    )
    .await;
    let (_, link) = invite(&app, InviteRow::to("jane@elsewhere.org"));
    let (status, _) = submit_password(&app.client, &link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200);
    assert!(
        app.muster()
            .store
            .write(|w| w.task("welcome:jane@team.example"))
            .unwrap()
            .is_none(),
        "no welcome is queued"
    );
    // Mail that is sent arrives; the one message in INBOX is that one.
    wait_for(
        "Postfix to take the address",
        Duration::from_secs(20),
        || {
            stack
                .send_mail("jane@team.example", "first mail")
                .starts_with("250")
                .then_some(())
        },
    );
    let mut imap =
        login_eventually(stack.dovecot.imap_port, "jane@team.example", PASSWORD).expect("login");
    let messages = inbox(&mut imap, 1);
    assert_eq!(messages[0].subject, "first mail");
    assert!(
        !actions(&app)
            .iter()
            .any(|(a, _)| a.starts_with("mailbox.welcome"))
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_welcome_leaves_the_mailbox_as_it_is() {
    if !require("the mail stack", mailstack::available()) {
        return;
    }
    // The relay takes the invite and refuses the welcome for good.
    let peer = Peer::start(vec![Step::Accept, Step::Reply("554 5.7.1 not today")]).await;
    let dir = TestDir::new();
    let stack = Stack::start(dir.path(), "team.example");
    let app = TestApp::spawn_in(
        dir,
        |c| {
            stack.configure(c);
            c.smtp.port = peer.port;
            // Only the invite and the welcome go to the scripted relay.
            c.notifications.mode = muster::config::NotificationMode::Off;
        },
        std::sync::Arc::new(muster::service::SystemClock),
    )
    .await;
    let (_, link) = invite(&app, InviteRow::to("jane@elsewhere.org"));
    wait_for("the invite sent", Duration::from_secs(20), || {
        (peer.received().len() == 1).then_some(())
    });
    let (status, page) = submit_password(&app.client, &link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200);
    assert!(page.contains("Your mailbox is ready"));
    wait_for("the welcome refused", Duration::from_secs(20), || {
        actions(&app)
            .contains(&(
                "mailbox.welcome.send_failed".into(),
                "jane@team.example".into(),
            ))
            .then_some(())
    });
    assert_eq!(peer.log()[1], "554 5.7.1 not today");
    // The mailbox stands: its line, its record, and its login.
    assert!(login_eventually(stack.dovecot.imap_port, "jane@team.example", PASSWORD).is_some());
    assert!(
        app.muster()
            .store
            .read()
            .unwrap()
            .created_mailbox("jane@team.example")
            .unwrap()
            .is_some()
    );
    app.shutdown().await;
}
