//! Reminders (R16), through the real Postfix with the test clock moved
//! forward: a 30-day batch's two reminders go at the right moments with the
//! same link, in the row's language; none go after redemption or
//! revocation, the old link's never after a resend (the new link gets its
//! own); a restart between scheduling and sending loses and doubles none.

use std::sync::Arc;
use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::mailstack::{self, Postfix};
use crate::support::*;
use mail_parser::MessageParser;
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, ManualClock};
use muster::store::Actor;
use time::Duration as Span;

/// A captured message: to whom, its subject, its text and its setup link.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub link: String,
}

pub fn read_mail(raw: &[u8]) -> Mail {
    let m = MessageParser::default().parse(raw).expect("a message");
    let text = m.body_text(0).unwrap_or_default().to_string();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/invite/"))
        .unwrap_or_default()
        .to_string();
    Mail {
        to: m
            .header_raw("X-Original-To")
            .unwrap_or_default()
            .trim()
            .to_string(),
        subject: m.subject().unwrap_or_default().to_string(),
        text,
        link,
    }
}

/// Every message Postfix captured once Muster's audit trail says `sent`
/// messages left it: none still on the way.
fn captured(app: &TestApp, postfix: &Postfix) -> Vec<Mail> {
    tokio::task::block_in_place(|| captured_now(app, postfix))
}

fn captured_now(app: &TestApp, postfix: &Postfix) -> Vec<Mail> {
    let sent = wait_for(
        "the store to record every send",
        Duration::from_secs(30),
        || {
            let view = app.muster.store.read().unwrap();
            // Nothing due is left in the queue, and nothing is out.
            let due = view
                .due_tasks(app.muster.now(), 10, &|_| false)
                .unwrap()
                .len();
            (due == 0 && app.muster.queue.is_idle())
                .then(|| view.counter("sends").unwrap() as usize)
        },
    );
    postfix
        .wait_for_captured(sent, Duration::from_secs(30))
        .iter()
        .map(|raw| read_mail(raw))
        .collect()
}

fn reminders_to(mails: &[Mail], to: &str) -> Vec<Mail> {
    mails
        .iter()
        .filter(|m| {
            m.to == to && (m.subject.starts_with("Reminder") || m.subject.starts_with("Erinnerung"))
        })
        .cloned()
        .collect()
}

fn relay(app_config: &mut muster::config::Config, postfix: &Postfix) {
    app_config.smtp.host = Some("127.0.0.1".into());
    app_config.smtp.port = postfix.port;
    app_config.smtp.tls = muster::config::SmtpTls::None;
    app_config.smtp.rate_per_minute = 0;
    app_config.smtp.retry_initial_secs = 1;
    // Only invites and reminders in the capture.
    app_config.client.welcome = false;
    app_config.notifications.mode = muster::config::NotificationMode::Off;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_day_batch_reminds_at_halfway_and_two_days_before_with_the_same_link() {
    if !require("the mail stack", mailstack::available()) {
        return;
    }
    let dir = TestDir::new();
    mailstack::open_dir(dir.path());
    let postfix = Postfix::start(dir.path(), None);
    let t0 = time::OffsetDateTime::now_utc();
    let clock = Arc::new(ManualClock::new(t0));
    let app = TestApp::spawn_in(dir, |c| relay(c, &postfix), clock.clone()).await;
    assert_eq!(app.muster.config.invites.reminders, ["50%", "48h"]);
    let rows = vec![
        InviteRow {
            locale: Some("de".into()),
            display_name: Some("Anna Weber".into()),
            ..InviteRow::to("anna@elsewhere.org")
        },
        InviteRow::to("bo@elsewhere.org"),
        InviteRow::to("cy@elsewhere.org"),
        InviteRow::to("di@elsewhere.org"),
    ];
    let created = app
        .muster
        .create_batch(BatchRequest::new(rows, Actor::admin("boss@team.example")))
        .unwrap();
    assert_eq!(created.batch.reminders, ["50%", "2d"]);
    let id = |n: usize| created.invites[n].id.clone();
    let first = captured(&app, &postfix);
    assert_eq!(first.len(), 4);
    let link_of = |mails: &[Mail], to: &str| {
        mails
            .iter()
            .find(|m| m.to == to)
            .unwrap_or_else(|| panic!("no mail to {to}"))
            .link
            .clone()
    };
    let anna_link = link_of(&first, "anna@elsewhere.org");

    // bo sets up his mailbox, cy's invite is revoked, di's is resent a day in.
    let (status, page) = submit_password(
        &app.client,
        &link_of(&first, "bo@elsewhere.org"),
        PASSWORD,
        PASSWORD,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    app.muster.revoke(&id(2), &Actor::cli()).unwrap();
    clock.advance(Span::days(1));
    app.muster.resend(&id(3), &Actor::cli()).unwrap();
    let after_resend = captured(&app, &postfix);
    assert_eq!(after_resend.len(), 5);
    let di_links: Vec<String> = after_resend
        .iter()
        .filter(|m| m.to == "di@elsewhere.org")
        .map(|m| m.link.clone())
        .collect();
    assert_eq!(di_links.len(), 2);
    assert_ne!(di_links[0], di_links[1]);
    let di_new_link = link_of(
        &after_resend
            .iter()
            .filter(|m| m.link != link_of(&first, "di@elsewhere.org"))
            .cloned()
            .collect::<Vec<_>>(),
        "di@elsewhere.org",
    );

    // A restart between scheduling and sending: nothing lost, nothing doubled.
    let config = (*app.muster.config).clone();
    let TestApp {
        app: running, dir, ..
    } = app;
    running.shutdown().await;
    let app = TestApp::start(dir, config, clock.clone()).await;

    // Halfway (day 15): anna's first reminder, in German, with her link.
    clock.advance(Span::days(14) + Span::minutes(1));
    app.muster.queue.wake();
    let mails = wait_for_mails(&app, &postfix, 6).await;
    let anna = reminders_to(&mails, "anna@elsewhere.org");
    assert_eq!(anna.len(), 1, "{mails:#?}");
    assert_eq!(
        anna[0].subject,
        "Erinnerung: Ihr neues Postfach anna@team.example wartet (noch 15 Tage)"
    );
    assert!(
        anna[0].text.contains("Hallo Anna Weber"),
        "{}",
        anna[0].text
    );
    assert_eq!(anna[0].link, anna_link, "the same link");
    for other in ["bo@elsewhere.org", "cy@elsewhere.org", "di@elsewhere.org"] {
        assert!(
            reminders_to(&mails, other).is_empty(),
            "{other}: {mails:#?}"
        );
    }

    // Day 16: halfway through di's new link, with the new link.
    clock.advance(Span::days(1));
    app.muster.queue.wake();
    let mails = wait_for_mails(&app, &postfix, 7).await;
    let di = reminders_to(&mails, "di@elsewhere.org");
    assert_eq!(di.len(), 1, "{mails:#?}");
    assert_eq!(di[0].link, di_new_link);
    assert!(
        di[0].subject.ends_with("(15 days left)"),
        "{}",
        di[0].subject
    );

    // Day 28, two days before anna's link expires: her second reminder.
    clock.advance(Span::days(12));
    app.muster.queue.wake();
    let mails = wait_for_mails(&app, &postfix, 8).await;
    let anna = reminders_to(&mails, "anna@elsewhere.org");
    assert_eq!(anna.len(), 2, "{mails:#?}");
    assert!(
        anna[1].subject.ends_with("(noch 2 Tage)") || anna[0].subject.ends_with("(noch 2 Tage)")
    );
    assert!(anna.iter().all(|m| m.link == anna_link));

    // anna sets up now: di's second reminder still comes (day 29), anna's
    // plan is done, and past every expiry nothing more is sent.
    let (status, page) = submit_password(&app.client, &anna_link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    clock.advance(Span::days(1));
    app.muster.queue.wake();
    let mails = wait_for_mails(&app, &postfix, 9).await;
    assert_eq!(reminders_to(&mails, "di@elsewhere.org").len(), 2);
    clock.advance(Span::days(5));
    app.muster.queue.wake();
    let mails = captured(&app, &postfix);
    assert_eq!(mails.len(), 9, "{mails:#?}");
    let view = app.muster.store.read().unwrap();
    assert_eq!(view.task_count().unwrap(), 0, "nothing left queued");
    let audit = view.audit(None, 1000).unwrap();
    let sent = |subject: &str| {
        audit
            .iter()
            .filter(|e| e.action == "invite.reminder.send" && e.subject == subject)
            .count()
    };
    assert_eq!(
        [sent(&id(0)), sent(&id(1)), sent(&id(2)), sent(&id(3))],
        [2, 0, 0, 2]
    );
    drop(view);
    app.shutdown().await;
}

/// Waits until `n` messages in all have left Muster and arrived.
async fn wait_for_mails(app: &TestApp, postfix: &Postfix, n: usize) -> Vec<Mail> {
    let sends = {
        let muster = app.muster.clone();
        tokio::task::spawn_blocking(move || {
            wait_for(&format!("{n} sends"), Duration::from_secs(30), || {
                let c = muster.store.read().unwrap().counter("sends").unwrap() as usize;
                (c >= n).then_some(c)
            })
        })
        .await
        .unwrap()
    };
    assert_eq!(sends, n, "exactly {n} messages sent");
    captured(app, postfix)
}

/// Offsets outside the link's life are refused by name through the API,
/// and nothing is created; `[]` turns reminders off for the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_outside_the_links_life_are_refused_by_name() {
    use reqwest::Method;
    use serde_json::json;
    let app = TestApp::spawn(|_| {}).await;
    let items = json!([{"local_part": "ann", "recipient_email": "ann@elsewhere.org"}]);
    for query in ["", "?validate_only=true"] {
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/mailboxes/invites:bulk{query}"),
                Some(json!({"expires_in": "7d", "reminders": ["50%", "10d"], "items": items})),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "invalid_reminders");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("reminders[1] \"10d\"") && message.contains("7d"),
            "{message}"
        );
    }
    assert!(app.muster.view().unwrap().batches().unwrap().is_empty());
    let (status, body) = app
        .call(
            Method::POST,
            "/mailboxes/invites:bulk",
            Some(json!({"reminders": [], "items": items})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, batch) = app
        .call(
            Method::GET,
            &format!("/batches/{}", body["batch_id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(batch["batch"]["reminders"], json!([]));
    // No reminder is queued for it.
    let invite = body["invites"][0]["invite_id"].as_str().unwrap();
    assert!(
        app.muster
            .view()
            .unwrap()
            .task(&muster::store::Task::reminder_task_id(invite))
            .unwrap()
            .is_none()
    );
    app.shutdown().await;
}
