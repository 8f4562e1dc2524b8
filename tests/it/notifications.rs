//! The inviter told, through the real Postfix: a notice to the admin who
//! made a batch (or made the API token it came through) when a recipient
//! sets up their mailbox or asks for a new link, one when an invite fails
//! for good, and when a mailbox could not be made (once per reason), each
//! linking to the pending list filtered to it; in digest mode one message
//! a day per admin, about their own batches only.

use std::sync::Arc;
use std::time::Duration;

use crate::reminders::{Mail, read_mail};
use crate::support::app::TestApp;
use crate::support::mailstack::{self, Postfix};
use crate::support::smtp_peer::{Peer, Step};
use crate::support::*;
use muster::config::NotificationMode;
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, ManualClock};
use muster::store::Actor;
use reqwest::Method;
use serde_json::json;
use time::Duration as Span;

const ANNA: &str = "anna.admin@team.example";
const BEN: &str = "ben.admin@team.example";

fn relay(c: &mut muster::config::Config, port: u16) {
    c.smtp.host = Some("127.0.0.1".into());
    c.smtp.port = port;
    c.smtp.tls = muster::config::SmtpTls::None;
    c.smtp.rate_per_minute = 0;
    c.smtp.retry_initial_secs = 1;
    c.client.welcome = false;
}

/// Muster relaying through a real Postfix that keeps what it is sent, on
/// a clock the test moves from `start`; None without the mail stack.
async fn through_postfix(
    start: time::OffsetDateTime,
    tweak: impl FnOnce(&mut muster::config::Config),
) -> Option<(TestApp, Postfix, Arc<ManualClock>)> {
    if !require("the mail stack", mailstack::available()) {
        return None;
    }
    let dir = TestDir::new();
    mailstack::open_dir(dir.path());
    let postfix = Postfix::start(dir.path(), None);
    let clock = Arc::new(ManualClock::new(start));
    let port = postfix.port;
    let app = TestApp::spawn_in(
        dir,
        |c| {
            relay(c, port);
            tweak(c);
        },
        clock.clone(),
    )
    .await;
    Some((app, postfix, clock))
}

/// Every message captured once the queue has nothing due and nothing out.
fn settled(app: &TestApp, postfix: &Postfix) -> Vec<Mail> {
    tokio::task::block_in_place(|| {
        let sent = wait_for("the queue to settle", Duration::from_secs(30), || {
            let view = app.muster.store.read().unwrap();
            (view.due_task_count(app.muster.now()).unwrap() == 0 && app.muster.queue.is_idle())
                .then(|| view.counter("sends").unwrap() as usize)
        });
        postfix
            .wait_for_captured(sent, Duration::from_secs(30))
            .iter()
            .map(|raw| read_mail(raw))
            .collect()
    })
}

fn to(mails: &[Mail], who: &str) -> Vec<Mail> {
    mails.iter().filter(|m| m.to == who).cloned().collect()
}

/// The first link to the pending list in a message's text.
fn pending_link(m: &Mail) -> String {
    m.text
        .split_whitespace()
        .find(|w| w.contains("/invites?"))
        .unwrap_or_else(|| panic!("no pending-list link in {}", m.text))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_admin_hears_about_their_own_batch() {
    let Some((app, postfix, clock)) =
        through_postfix(time::OffsetDateTime::now_utc(), |_| {}).await
    else {
        return;
    };
    // anna sends a batch in the web app; ben's comes through his API token.
    let annas = app
        .muster
        .create_batch(BatchRequest {
            expires_in: Some(muster::domain::duration::HumanDuration::days(2)),
            ..BatchRequest::new(vec![InviteRow::to("jo@elsewhere.org")], Actor::admin(ANNA))
        })
        .unwrap();
    let (_, bens_token) = app
        .muster
        .create_api_token("ben's HR sync", &Actor::admin(BEN))
        .unwrap();
    let r = app
        .client
        .post(app.api("/mailboxes/invites:bulk"))
        .bearer_auth(&bens_token)
        .json(&json!({"expires_in": "2d", "items": [
            {"local_part": "kim", "recipient_email": "kim@elsewhere.org"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let bens: serde_json::Value = r.json().await.unwrap();
    let bens_batch = bens["batch_id"].as_str().unwrap().to_string();
    let first = settled(&app, &postfix);
    assert_eq!(first.len(), 2, "the two invites and nothing else");

    // jo sets up her mailbox: anna hears, ben does not.
    let jo = first
        .iter()
        .find(|m| m.to == "jo@elsewhere.org")
        .unwrap()
        .link
        .clone();
    let (status, page) = submit_password(&app.client, &jo, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    let mails = settled(&app, &postfix);
    let anna = to(&mails, ANNA);
    assert_eq!(anna.len(), 1, "{mails:#?}");
    assert_eq!(anna[0].subject, "jo@elsewhere.org set up jo@team.example");
    assert!(
        anna[0]
            .text
            .contains("the mailbox jo@team.example was created"),
        "{}",
        anna[0].text
    );
    assert_eq!(
        pending_link(&anna[0]),
        format!(
            "{}/invites?batch={}&state=redeemed&q=jo@team.example",
            app.url(),
            annas.batch.id
        )
    );
    assert!(to(&mails, BEN).is_empty());

    // kim's link expires and she asks for a new one: ben hears.
    clock.advance(Span::days(3));
    let kim = first
        .iter()
        .find(|m| m.to == "kim@elsewhere.org")
        .unwrap()
        .link
        .clone();
    let token = kim.rsplit('/').next().unwrap();
    assert!(app.muster.request_new_link(token).unwrap());
    // Asking again adds nothing.
    assert!(app.muster.request_new_link(token).unwrap());
    app.muster.queue.wake();
    let mails = settled(&app, &postfix);
    let ben = to(&mails, BEN);
    assert_eq!(ben.len(), 1, "{mails:#?}");
    assert_eq!(
        ben[0].subject,
        "kim@elsewhere.org asked for a new setup link"
    );
    assert_eq!(
        pending_link(&ben[0]),
        format!(
            "{}/invites?batch={bens_batch}&state=new_link_requested&q=kim@elsewhere.org",
            app.url()
        )
    );
    assert_eq!(to(&mails, ANNA).len(), 1);
    // The link leads to the pending list showing kim's invite.
    let (status, page) = app
        .call(
            Method::GET,
            &format!("/invites?batch_id={bens_batch}&state=new_link_requested&q=kim@elsewhere.org"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["invites"].as_array().unwrap().len(), 1, "{page}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_that_could_not_be_made_is_told_once_per_reason() {
    let Some((app, postfix, _clock)) =
        through_postfix(time::OffsetDateTime::now_utc(), |_| {}).await
    else {
        return;
    };
    let annas = app
        .muster
        .create_batch(BatchRequest::new(
            vec![InviteRow::to("jo@elsewhere.org")],
            Actor::admin(ANNA),
        ))
        .unwrap();
    let first = settled(&app, &postfix);
    assert_eq!(first.len(), 1);
    let jo = first[0].link.clone();

    // Another writer holds the passwd-file while jo tries, twice.
    let lock = hold_passwd_lock(&app.muster.config);
    for _ in 0..2 {
        let (status, page) = submit_password(&app.client, &jo, PASSWORD, PASSWORD).await;
        assert_eq!(status, 503, "{page}");
    }
    let mails = settled(&app, &postfix);
    let anna = to(&mails, ANNA);
    assert_eq!(anna.len(), 1, "one notice for one reason: {mails:#?}");
    assert_eq!(
        anna[0].subject,
        "jo@elsewhere.org could not set up jo@team.example"
    );
    assert!(
        anna[0].text.contains("locked by another writer")
            && anna[0].text.contains("their link works until"),
        "{}",
        anna[0].text
    );
    assert_eq!(
        pending_link(&anna[0]),
        format!(
            "{}/invites?batch={}&state=setup_failed&q=jo@elsewhere.org",
            app.url(),
            annas.batch.id
        )
    );
    // The link's filter shows jo's invite, with the reason.
    let (status, page) = app
        .call(
            Method::GET,
            &format!(
                "/invites?batch_id={}&state=setup_failed&q=jo@elsewhere.org",
                annas.batch.id
            ),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let listed = page["invites"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{page}");
    assert!(
        listed[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("locked by another writer"),
        "{page}"
    );

    // A new reason is news: the mailbox was made by hand meanwhile.
    drop(lock);
    let passwd = app.muster.config.passwd_file();
    let before = std::fs::read_to_string(&passwd).unwrap_or_default();
    std::fs::write(
        &passwd,
        format!("{before}jo@team.example:{{PLAIN}}by-hand:5000:5000::/nonexistent::\n"),
    )
    .unwrap();
    let (status, page) = submit_password(&app.client, &jo, PASSWORD, PASSWORD).await;
    // Trying again cannot help the recipient: the page says what it is.
    assert_eq!(status, 409, "{page}");
    assert!(
        page.contains("This address is already taken")
            && page.contains("jo@team.example")
            && page.contains("trying again will not help"),
        "{page}"
    );
    let mails = settled(&app, &postfix);
    let anna = to(&mails, ANNA);
    assert_eq!(anna.len(), 2, "{mails:#?}");
    assert!(
        anna.iter()
            .any(|m| m.text.contains("already exists on the mail server")
                && m.text.contains("invite the person under another name")),
        "{anna:#?}"
    );

    // Put right, the same link sets the mailbox up; the filter is empty.
    std::fs::write(&passwd, &before).unwrap();
    let (status, page) = submit_password(&app.client, &jo, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    let mails = settled(&app, &postfix);
    let anna = to(&mails, ANNA);
    assert_eq!(anna.len(), 3, "{mails:#?}");
    assert!(
        anna.iter()
            .any(|m| m.subject == "jo@elsewhere.org set up jo@team.example"),
        "{anna:#?}"
    );
    let (_, page) = app
        .call(Method::GET, "/invites?state=setup_failed", None)
        .await;
    assert_eq!(page["invites"].as_array().unwrap().len(), 0, "{page}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_that_fails_for_good_is_told_to_the_configured_address() {
    let peer = Peer::start(vec![Step::Reply("550 5.1.1 no such user here")]).await;
    let app = TestApp::spawn(|c| {
        relay(c, peer.port);
        c.notifications.to =
            Some(muster::domain::address::RecipientEmail::parse("ops@team.example").unwrap());
    })
    .await;
    let created = app
        .muster
        .create_batch(BatchRequest::new(
            vec![InviteRow::to("gone@elsewhere.org")],
            Actor::admin(ANNA),
        ))
        .unwrap();
    let received = wait_for_async("the notice", Duration::from_secs(30), || async {
        let got = peer.received();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].rcpt, "ops@team.example",
        "notifications.to, not anna"
    );
    let view = app.muster.get_invite(&created.invites[0].id).unwrap();
    assert_eq!(view.delivery_state, "failed");
    // Recorded as sent to ops, once the store has caught up.
    wait_for_async("the notice recorded", Duration::from_secs(10), || async {
        let audit = app.muster.view().unwrap().audit(None, 100).unwrap();
        audit
            .iter()
            .any(|e| e.action == "notice.send" && e.subject == "ops@team.example")
            .then_some(())
    })
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_digest_goes_once_a_day_to_each_admin_about_their_batches() {
    // 06:00 UTC; the digest goes at 08:00.
    let start = time::OffsetDateTime::now_utc()
        .date()
        .with_hms(6, 0, 0)
        .unwrap()
        .assume_utc();
    let Some((app, postfix, clock)) = through_postfix(start, |c| {
        c.notifications.mode = NotificationMode::Digest;
        c.notifications.digest_hour = 8;
    })
    .await
    else {
        return;
    };
    let annas = app
        .muster
        .create_batch(BatchRequest {
            expires_in: Some(muster::domain::duration::HumanDuration::days(5)),
            ..BatchRequest::new(
                vec![
                    InviteRow::to("jo@elsewhere.org"),
                    InviteRow::to("lu@elsewhere.org"),
                ],
                Actor::admin(ANNA),
            )
        })
        .unwrap();
    app.muster
        .create_batch(BatchRequest::new(
            vec![InviteRow::to("kim@elsewhere.org")],
            Actor::admin(BEN),
        ))
        .unwrap();
    let first = settled(&app, &postfix);
    assert_eq!(first.len(), 3);
    let jo = first.iter().find(|m| m.to == "jo@elsewhere.org").unwrap();
    let (status, page) = submit_password(&app.client, &jo.link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    // lu tries while another writer holds the passwd-file.
    let lu = first.iter().find(|m| m.to == "lu@elsewhere.org").unwrap();
    let lock = hold_passwd_lock(&app.muster.config);
    let (status, page) = submit_password(&app.client, &lu.link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 503, "{page}");
    drop(lock);
    // In digest mode no notice goes for either.
    assert_eq!(settled(&app, &postfix).len(), 3);
    // Before the hour: nothing planned.
    assert_eq!(app.muster.plan_digests().unwrap(), 0);
    clock.advance(Span::hours(2) + Span::minutes(5));
    // The upkeep asks every minute; asking here does the same, sooner.
    app.muster.plan_digests().unwrap();
    // The same day again: nothing more.
    assert_eq!(app.muster.plan_digests().unwrap(), 0);
    app.muster.queue.wake();
    let mails = settled(&app, &postfix);
    assert_eq!(mails.len(), 5, "two digests: {mails:#?}");
    let anna = to(&mails, ANNA);
    assert_eq!(anna.len(), 1, "{mails:#?}");
    assert_eq!(
        anna[0].subject,
        "Invites today: 1 set up, 1 pending, 1 could not be set up"
    );
    assert!(
        anna[0].text.contains("Could not set up their mailbox: 1")
            && anna[0].text.contains("locked by another writer")
            && anna[0]
                .text
                .contains(&format!("{}/invites?state=setup_failed", app.url())),
        "{}",
        anna[0].text
    );
    assert!(
        anna[0].text.contains("jo@elsewhere.org → jo@team.example"),
        "{}",
        anna[0].text
    );
    assert!(
        anna[0].text.contains("lu@elsewhere.org → lu@team.example"),
        "{}",
        anna[0].text
    );
    assert!(
        anna[0].text.contains("Expiring this week: 1"),
        "{}",
        anna[0].text
    );
    assert!(
        !anna[0].text.contains("kim@"),
        "only anna's batch: {}",
        anna[0].text
    );
    assert!(
        anna[0]
            .text
            .contains(&format!("{}/invites?state=redeemed", app.url())),
        "{}",
        anna[0].text
    );
    let ben = to(&mails, BEN);
    assert_eq!(ben.len(), 1, "{mails:#?}");
    assert_eq!(ben[0].subject, "Invites today: 0 set up, 1 pending");
    assert!(ben[0].text.contains("kim@elsewhere.org"));
    assert!(!ben[0].text.contains("jo@"), "{}", ben[0].text);
    assert!(
        !ben[0].text.contains("Expiring this week"),
        "{}",
        ben[0].text
    );
    let _ = annas;
    // A restart the same day plans nothing again; the next day does.
    let config = (*app.muster.config).clone();
    let TestApp {
        app: running, dir, ..
    } = app;
    running.shutdown().await;
    let app = TestApp::start(dir, config, clock.clone()).await;
    assert_eq!(app.muster.plan_digests().unwrap(), 0);
    assert_eq!(settled(&app, &postfix).len(), 5);
    clock.advance(Span::days(1));
    app.muster.plan_digests().unwrap();
    app.muster.queue.wake();
    let mails = settled(&app, &postfix);
    assert_eq!(mails.len(), 7, "{mails:#?}");
    assert_eq!(to(&mails, ANNA).len(), 2);
    assert_eq!(to(&mails, BEN).len(), 2);
    app.shutdown().await;
}
