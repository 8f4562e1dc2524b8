//! Sending invites: through a real Postfix, against a scripted SMTP peer
//! for temporary and permanent failures, and across a kill -9.

use std::time::Duration;

use crate::support::app::{TestApp, final_views};
use crate::support::mailstack::{self, Postfix};
use crate::support::smtp_peer::{Peer, Step};
use crate::support::*;
use mail_parser::MessageParser;
use muster::App;
use muster::domain::duration::HumanDuration;
use muster::domain::roster::InviteRow;
use muster::domain::token::LinkToken;
use muster::service::{BatchRequest, InviteView};
use muster::store::{Actor, Store};

fn row(email: &str, name: Option<&str>, locale: Option<&str>) -> InviteRow {
    InviteRow {
        recipient_email: email.into(),
        display_name: name.map(str::to_string),
        locale: locale.map(str::to_string),
        ..InviteRow::default()
    }
}

fn relay_config(t: &TestDir, port: u16) -> muster::config::Config {
    let mut c = t.config();
    c.smtp.host = Some("127.0.0.1".into());
    c.smtp.port = port;
    c.smtp.tls = muster::config::SmtpTls::None;
    c.smtp.rate_per_minute = 0;
    c.smtp.from_address =
        Some(muster::domain::address::RecipientEmail::parse("it@team.example").unwrap());
    c.smtp.reply_to =
        Some(muster::domain::address::RecipientEmail::parse("help@team.example").unwrap());
    c.smtp.retry_initial_secs = 1;
    c.smtp.retry_max_secs = 2;
    c
}

fn batch(rows: Vec<InviteRow>, expires: Option<&str>) -> BatchRequest {
    BatchRequest {
        expires_in: expires.map(|e| HumanDuration::parse(e).unwrap()),
        ..BatchRequest::new(rows, Actor::cli())
    }
}

async fn invite_state(app: &App, id: &str) -> InviteView {
    app.muster.get_invite(id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_arrive_through_a_real_postfix() {
    if !mailstack::available() {
        return;
    }
    let t = TestDir::new();
    mailstack::open_dir(t.path());
    let postfix = Postfix::start(t.path(), None);
    let app = TestApp::on(relay_config(&t, postfix.port)).await;
    let created = app
        .muster
        .create_batch(batch(
            vec![
                row("Jane.Doe@elsewhere.org", Some("Jane <Doe>"), None),
                row("anna@beispiel.de", Some("Anna Müller"), Some("de")),
                row("bob@elsewhere.org", None, None),
            ],
            Some("7d"),
        ))
        .unwrap();
    let ids: Vec<String> = created.invites.iter().map(|i| i.id.clone()).collect();
    let mails = postfix.wait_for_captured(3, Duration::from_secs(60));
    let views = final_views(&app, &ids, Duration::from_secs(60)).await;
    for v in &views {
        assert_eq!(v.delivery_state, "sent", "{v:?}");
        assert!(
            v.delivery_detail.as_deref().unwrap().starts_with("250"),
            "{v:?}"
        );
    }
    let store_view = app.muster.store.read().unwrap();
    for raw in &mails {
        let msg = MessageParser::default().parse(raw).unwrap();
        let to = msg.header_raw("X-Original-To").unwrap().trim().to_string();
        let invite = created
            .invites
            .iter()
            .find(|i| i.recipient_email.to_string().eq_ignore_ascii_case(&to))
            .unwrap_or_else(|| panic!("no invite for {to}"));
        let from = msg.from().unwrap().first().unwrap();
        assert_eq!(from.address().unwrap(), "it@team.example");
        assert_eq!(from.name().unwrap(), "Example Team");
        assert_eq!(
            msg.reply_to().unwrap().first().unwrap().address().unwrap(),
            "help@team.example"
        );
        assert!(msg.message_id().unwrap().ends_with("@team.example"));
        let date = msg.date().unwrap();
        assert_eq!((date.tz_hour, date.tz_minute), (0, 0), "Date is in UTC");
        let sent_at = date.to_timestamp();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(
            (now - sent_at).abs() < 600,
            "Date is now: {sent_at} vs {now}"
        );
        assert_eq!(msg.text_body.len(), 1, "one text part");
        assert_eq!(msg.html_body.len(), 1, "one html part");
        let text = msg.body_text(0).unwrap().to_string();
        let html = msg.body_html(0).unwrap().to_string();
        // The link carries only the token and leads to this invite.
        let start = text
            .find("http://muster.test/invite/")
            .expect("link in the text part");
        let link: String = text[start..].split_whitespace().next().unwrap().to_string();
        let token = link.rsplit('/').next().unwrap();
        assert!(!link.contains('@') && !link.contains('?'), "{link}");
        assert!(
            html.contains(&format!("href=\"{link}\"")),
            "the HTML part links the same URL"
        );
        let hash = LinkToken::parse(token)
            .expect("a 43-character token")
            .hash();
        assert_eq!(
            store_view.invite_by_token(&hash.0).unwrap().unwrap().id,
            invite.id
        );
        // Seven days, in plain words, in the recipient's language.
        let expires = invite.expires_at;
        assert!(expires - time::OffsetDateTime::now_utc() > time::Duration::days(6));
        let subject = msg.subject().unwrap();
        if invite.locale.as_deref() == Some("de") {
            assert_eq!(
                subject,
                format!("Richten Sie Ihr neues Postfach {} ein", invite.mailbox)
            );
            let words = muster::mail::compose::plain_date(expires, "de");
            assert!(
                text.replace('\n', " ").contains(&words),
                "{words} in {text}"
            );
            assert!(text.contains("Hallo Anna Müller"));
        } else {
            assert_eq!(
                subject,
                format!("Set up your new mailbox {}", invite.mailbox)
            );
            let words = muster::mail::compose::plain_date(expires, "en");
            assert!(
                text.replace('\n', " ").contains(&words),
                "{words} in {text}"
            );
            assert!(html.contains(&words));
        }
        // Display names are escaped in HTML.
        if invite.display_name.as_deref() == Some("Jane <Doe>") {
            assert!(html.contains("Jane &lt;Doe&gt;") && !html.contains("<Doe>"));
            assert!(text.contains("Hello Jane <Doe>"));
        }
    }
    app.shutdown().await;
}

async fn one_invite_against(script: Vec<Step>) -> (TestApp, Peer, InviteView, TestDir) {
    let peer = Peer::start(script).await;
    let t = TestDir::new();
    let app = TestApp::on(relay_config(&t, peer.port)).await;
    let created = app
        .muster
        .create_batch(batch(vec![row("jane@elsewhere.org", None, None)], None))
        .unwrap();
    let id = created.invites[0].id.clone();
    let view = final_views(&app, std::slice::from_ref(&id), Duration::from_secs(60))
        .await
        .remove(0);
    (app, peer, view, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failures_are_retried_and_sent_once() {
    let (app, peer, view, _t) = one_invite_against(vec![
        Step::Reply("421 4.3.2 shutting down"),
        Step::Reply("451 4.3.0 try again later"),
        Step::Accept,
    ])
    .await;
    assert_eq!(view.delivery_state, "sent");
    assert_eq!(view.attempts, 3);
    assert_eq!(peer.received().len(), 1);
    // With a relay there is no outbox to warn about.
    let (_, settings) = app.call(reqwest::Method::GET, "/settings", None).await;
    assert_eq!(
        settings["outbox_dir"],
        serde_json::Value::Null,
        "{settings}"
    );
    assert_eq!(
        peer.log(),
        [
            "421 4.3.2 shutting down",
            "451 4.3.0 try again later",
            "accept"
        ]
    );
    assert_eq!(
        app.muster
            .store
            .read()
            .unwrap()
            .due_task_count(app.muster.now())
            .unwrap(),
        0
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_invites_show_the_last_error_and_next_try() {
    let peer = Peer::start(vec![Step::Reply("451 4.7.1 greylisted")]).await;
    // A long first delay keeps the invite deferred while we look.
    let t = TestDir::new();
    let mut config = relay_config(&t, peer.port);
    config.smtp.retry_initial_secs = 600;
    config.smtp.retry_max_secs = 600;
    let app = TestApp::on(config).await;
    let created = app
        .muster
        .create_batch(batch(vec![row("jane@elsewhere.org", None, None)], None))
        .unwrap();
    let id = created.invites[0].id.clone();
    let view = wait_for_async("deferred", Duration::from_secs(30), || async {
        let v = invite_state(&app, &id).await;
        (v.delivery_state == "deferred").then_some(v)
    })
    .await;
    assert_eq!(
        view.delivery_detail.as_deref(),
        Some(
            "greylisted: the destination asks for a later try, which happens by itself (451 4.7.1 greylisted)"
        )
    );
    let next = view.next_attempt_at.unwrap() - time::OffsetDateTime::now_utc();
    assert!(
        next > time::Duration::minutes(7) && next < time::Duration::minutes(13),
        "{next}"
    );
    assert_eq!(view.attempts, 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_are_not_retried_and_keep_the_reply() {
    let (app, peer, view, _t) =
        one_invite_against(vec![Step::Reply("550 5.1.1 no such user here")]).await;
    assert_eq!(view.delivery_state, "failed");
    // In words, with the relay's reply behind them.
    assert_eq!(
        view.delivery_detail.as_deref(),
        Some(
            "unknown recipient: the destination has no mailbox by this address (check it for a typo) (550 5.1.1 no such user here)"
        )
    );
    assert_eq!(view.attempts, 1);
    assert!(peer.received().is_empty());
    // Nothing is left in the queue to be tried again.
    assert_eq!(
        app.muster
            .store
            .read()
            .unwrap()
            .due_task_count(app.muster.now())
            .unwrap(),
        0
    );
    assert_eq!(peer.log().len(), 1, "no retry: {:?}", peer.log());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_data_is_retried() {
    let (app, peer, view, _t) = one_invite_against(vec![Step::DropInData, Step::Accept]).await;
    assert_eq!(view.delivery_state, "sent");
    assert_eq!(view.attempts, 2);
    assert_eq!(peer.received().len(), 1);
    assert_eq!(peer.log(), ["drop", "accept"]);
    app.shutdown().await;
}

/// Over one connection the next message's envelope rides behind each
/// message's end. The relay refuses one end and closes the connection at
/// another, with the next envelope already behind it: the refused invite
/// fails with the relay's words, every other one is sent exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_refused_or_closed_with_the_next_envelope_behind_it_loses_nothing() {
    let peer = Peer::start(vec![
        Step::Accept,
        Step::Reply("550 5.7.1 not this one"),
        Step::Reply("421 4.3.2 closing now"),
    ])
    .await;
    let t = TestDir::new();
    let mut config = relay_config(&t, peer.port);
    config.smtp.connections = 1;
    let app = TestApp::on(config).await;
    let rows = (1..=4)
        .map(|i| row(&format!("person{i}@elsewhere.org"), None, None))
        .collect();
    let created = app.muster.create_batch(batch(rows, None)).unwrap();
    let ids: Vec<String> = created.invites.iter().map(|i| i.id.clone()).collect();
    let views = final_views(&app, &ids, Duration::from_secs(60)).await;
    let failed: Vec<&InviteView> = views
        .iter()
        .filter(|v| v.delivery_state == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{views:#?}");
    assert!(
        failed[0].delivery_detail.as_deref().is_some_and(
            |d| d.starts_with("refused by policy") && d.ends_with("(550 5.7.1 not this one)")
        ),
        "{:?}",
        failed[0].delivery_detail
    );
    let mut received: Vec<String> = peer.received().into_iter().map(|r| r.rcpt).collect();
    received.sort();
    let mut sent: Vec<String> = views
        .iter()
        .filter(|v| v.delivery_state == "sent")
        .map(|v| v.recipient_email.clone())
        .collect();
    sent.sort();
    assert_eq!(received, sent, "each sent invite arrived exactly once");
    assert_eq!(sent.len(), 3);
    assert_eq!(
        peer.log(),
        [
            "accept",
            "550 5.7.1 not this one",
            "421 4.3.2 closing now",
            "accept",
            "accept"
        ]
    );
    // The first three ends had the next envelope behind them (a read may
    // split one of them off; two is the least that shows it).
    assert!(
        peer.pipelined_ends() >= 2,
        "ends with the next envelope behind them: {}",
        peer.pipelined_ends()
    );
    assert_eq!(
        app.muster
            .store
            .read()
            .unwrap()
            .due_task_count(app.muster.now())
            .unwrap(),
        0
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_writes_the_outbox_without_a_relay() {
    let t = TestDir::new();
    let config = t.write_config(&t.config());
    let roster = t.write(
        "team.csv",
        "email,locale\njane@elsewhere.org,de\nbob@elsewhere.org,\n",
    );
    let out = tokio::task::spawn_blocking(move || {
        run(
            muster(&[
                "--config",
                config.to_str().unwrap(),
                "invite",
                "--expires",
                "48h",
            ])
            .arg(&roster),
            None,
        )
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert_exit(&out, 0);
    assert!(
        stdout.contains("2 invites for team.example (links expire after 2d; reminders: 50%)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "0 sent, 2 in the outbox (no SMTP relay configured: not on their way), 0 failed."
        ),
        "{stdout}"
    );
    let files: Vec<_> = std::fs::read_dir(t.data().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|f| f.extension().unwrap() == "eml"));
    let german = files
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .find(|b| String::from_utf8_lossy(b).contains("Postfach"))
        .expect("the German invite");
    let msg = MessageParser::default().parse(&german).unwrap();
    assert!(msg.body_text(0).unwrap().contains("/invite/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reports_failed_invites_with_a_non_zero_exit() {
    let peer = Peer::start(vec![Step::Reply("554 5.7.1 relay refused")]).await;
    let t = TestDir::new();
    let config = t.write_config(&relay_config(&t, peer.port));
    let roster = t.write("team.txt", "jane@elsewhere.org\nbob@elsewhere.org\n");
    let out = tokio::task::spawn_blocking(move || {
        run(
            muster(&["--config", config.to_str().unwrap(), "invite"]).arg(&roster),
            None,
        )
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert_exit(&out, 1);
    assert!(stdout.contains("1 sent, 1 failed."), "{stdout}");
    assert!(stdout.contains("554 5.7.1 relay refused"), "{stdout}");
}

/// With no relay, 500 invites go to the outbox at once: the relay's rate
/// limit (here the default, 60 a minute, which would take over eight
/// minutes) does not hold files back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_takes_500_invites_without_waiting_for_the_rate_limit() {
    let t = TestDir::new();
    let mut config = t.config();
    config.domains[0].mailbox_cap = 500;
    assert!(config.smtp.rate_per_minute > 0 && config.smtp.rate_per_minute <= 120);
    let config_path = t.write_config(&config);
    let roster: String = (0..500)
        .map(|i| format!("person{i}@elsewhere.org\n"))
        .collect();
    let roster = t.write("team.txt", roster);
    let mut cli = muster(&["--config", config_path.to_str().unwrap(), "invite"]);
    cli.arg(&roster)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let child = cli.spawn().unwrap();
    let outbox = t.data().join("outbox");
    tokio::task::spawn_blocking(move || {
        wait_for("500 files in the outbox", Duration::from_secs(60), || {
            let n = std::fs::read_dir(&outbox)
                .map(|d| {
                    d.filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    })
                    .count()
                })
                .unwrap_or(0);
            (n == 500).then_some(())
        })
    })
    .await
    .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains("0 sent, 500 in the outbox"));
}

/// kill -9 at several points of a 500-invite send to a slow peer (while
/// `muster invite` sends, then twice while `muster serve` resumes): every
/// restart resumes every task, and nothing the peer accepted is sent twice
/// beyond one message per connection per kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kills_during_a_500_invite_send_lose_nothing_and_repeat_at_most_one_per_connection() {
    let peer = Peer::start(vec![]).await;
    // The last kill leaves 200 messages, some 1.5 s of sending: it lands
    // mid-batch on a busy machine too.
    peer.set_delay(Duration::from_millis(15));
    let t = TestDir::new();
    let mut config = relay_config(&t, peer.port);
    config.smtp.connections = 2;
    config.domains[0].mailbox_cap = 500;
    config.listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config_path = t.write_config(&config);
    let roster: String = (0..500)
        .map(|i| format!("person{i}@elsewhere.org\n"))
        .collect();
    let roster = t.write("team.txt", roster);
    let distinct = |p: &Peer| {
        p.received()
            .into_iter()
            .map(|r| r.message_id)
            .collect::<std::collections::HashSet<String>>()
            .len()
    };
    let kill_at = |p: Peer, mut child: std::process::Child, at: usize| async move {
        tokio::task::spawn_blocking(move || {
            wait_for(&format!("{at} accepted"), Duration::from_secs(60), || {
                (distinct(&p) >= at).then_some(())
            });
            child.kill().unwrap();
            child.wait().unwrap();
        })
        .await
        .unwrap();
    };

    let first = muster(&["--config", config_path.to_str().unwrap(), "invite"])
        .arg(&roster)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_at(peer.clone(), first, 60).await;
    let mut kills = 1;
    for at in [180, 300] {
        kill_at(peer.clone(), spawn_serve(&config_path), at).await;
        kills += 1;
    }
    assert!(distinct(&peer) < 500, "the last kill came mid-batch");

    let mut server = spawn_serve(&config_path);
    let p = peer.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("all 500 accepted", Duration::from_secs(120), || {
            (distinct(&p) >= 500).then_some(())
        })
    })
    .await
    .unwrap();
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    tokio::task::spawn_blocking(move || server.wait().unwrap())
        .await
        .unwrap();

    let received = peer.received();
    let ids: std::collections::HashSet<&str> =
        received.iter().map(|r| r.message_id.as_str()).collect();
    assert_eq!(ids.len(), 500);
    let repeats = received.len() - ids.len();
    assert!(
        repeats <= config.smtp.connections * kills,
        "{repeats} messages were sent twice over {kills} kills"
    );

    let store = Store::open(&config.store_path()).unwrap();
    let view = store.read().unwrap();
    let batches = view.batches().unwrap();
    let invites = view.invites_of_batch(&batches[0].id).unwrap();
    assert_eq!(invites.len(), 500);
    assert!(invites.iter().all(|i| i.delivery.name() == "sent"));
    assert_eq!(
        view.due_task_count(time::OffsetDateTime::now_utc())
            .unwrap(),
        0
    );
    // Every verdict the journal held is in the store; it is empty again
    // (zero-filled: the first NUL byte ends its entries).
    let journal = std::fs::read(config.data_dir.join("delivery.journal")).unwrap();
    assert!(
        journal.iter().all(|b| *b == 0),
        "the journal still holds entries"
    );
}

/// The wizard's confirm step over the API: one row's email as it will
/// read (in the row's language, with the expiry date), and a test of it
/// sent through the real Postfix, audited, with nothing else stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invite_email_preview_and_a_test_through_postfix() {
    if !mailstack::available() {
        return;
    }
    let t = TestDir::new();
    mailstack::open_dir(t.path());
    let postfix = Postfix::start(t.path(), None);
    let app = TestApp::on(relay_config(&t, postfix.port)).await;
    let row = serde_json::json!({"recipient_email": "anna@beispiel.de", "display_name": "Anna Müller", "locale": "de"});
    let (status, sample) = app
        .call(
            reqwest::Method::POST,
            "/previews/invite-email",
            Some(serde_json::json!({"row": row, "expires_in": "3d"})),
        )
        .await;
    assert_eq!(status, 200, "{sample}");
    assert_eq!(sample["locale"], "de");
    assert_eq!(sample["mailbox"], "anna@team.example");
    let text = sample["text"].as_str().unwrap();
    assert!(text.contains("Anna Müller"), "{text}");
    let expires = time::OffsetDateTime::parse(
        sample["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_words = muster::mail::compose::plain_date(expires, "de");
    assert!(text.contains(&in_words), "{in_words} in {text}");
    assert!(
        (expires - time::OffsetDateTime::now_utc() - time::Duration::days(3)).abs()
            < time::Duration::minutes(5)
    );

    // A token must say where the test goes; a bad address is named.
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/previews/invite-email/test",
            Some(serde_json::json!({"row": row})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (422, Some("to_required"))
    );
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/previews/invite-email/test",
            Some(serde_json::json!({"row": row, "to": "not an address"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (422, Some("invalid_to"))
    );
    // A flagged row is refused with its problem.
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/previews/invite-email",
            Some(serde_json::json!({"row": {"recipient_email": "nope"}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "recipient_email");

    let (status, sent) = app
        .call(
            reqwest::Method::POST,
            "/previews/invite-email/test",
            Some(serde_json::json!({"row": row, "to": "hr@elsewhere.org"})),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["delivery_state"], "sent");
    assert!(
        sent["detail"].as_str().unwrap().starts_with("250"),
        "{sent}"
    );
    let mails = postfix.wait_for_captured(1, Duration::from_secs(60));
    let msg = MessageParser::default().parse(&mails[0]).unwrap();
    assert_eq!(
        msg.header_raw("X-Original-To").unwrap().trim(),
        "hr@elsewhere.org"
    );
    assert!(
        msg.subject().unwrap().starts_with("[Test] "),
        "{:?}",
        msg.subject()
    );
    assert!(msg.body_text(0).unwrap().contains("Anna Müller"));
    // Audited; no invite, batch or queued task was made.
    let view = app.muster.view().unwrap();
    assert!(view.batches().unwrap().is_empty());
    let events = view.audit(None, 10).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "invite.test_sent" && e.subject == "hr@elsewhere.org"),
        "{events:?}"
    );
    app.shutdown().await;
}

/// An invite revoked or resent while its email waits with a connection
/// (here for the relay's rate limit) is not sent: the revoked one not at
/// all, the resent one only with its new link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_or_resend_reaches_an_email_already_waiting_to_be_sent() {
    if !mailstack::available() {
        return;
    }
    let t = TestDir::new();
    mailstack::open_dir(t.path());
    let postfix = Postfix::start(t.path(), None);
    let mut config = relay_config(&t, postfix.port);
    // One message every ten seconds, so the later two wait their turn
    // long enough for the resend and the revoke to reach them on a busy
    // machine.
    config.smtp.rate_per_minute = 6;
    config.smtp.burst = 1;
    // Two, so that the resent link's email may go out on the connection
    // that did not hold the old one: still once.
    config.smtp.connections = 2;
    let app = TestApp::on(config).await;
    let created = app
        .muster
        .create_batch(batch(
            vec![
                row("first@elsewhere.org", None, None),
                row("resent@elsewhere.org", None, None),
                row("revoked@elsewhere.org", None, None),
            ],
            None,
        ))
        .unwrap();
    let ids: Vec<String> = created.invites.iter().map(|i| i.id.clone()).collect();
    wait_for(
        "the last two invites handed to the connections",
        Duration::from_secs(10),
        || (app.muster.is_sending(&ids[1]) && app.muster.is_sending(&ids[2])).then_some(()),
    );
    let cli = Actor::cli();
    app.muster.resend(&ids[1], &cli).unwrap();
    app.muster.revoke(&ids[2], &cli).unwrap();
    postfix.wait_for_captured(2, Duration::from_secs(60));
    wait_for("the queue empty", Duration::from_secs(30), || {
        let tasks = app
            .muster
            .store
            .read()
            .unwrap()
            .due_task_count(app.muster.now())
            .unwrap();
        (tasks == 0 && app.muster.queue.is_idle()).then_some(())
    });
    let mails: Vec<String> = postfix
        .captured()
        .iter()
        .map(|m| String::from_utf8_lossy(m).to_string())
        .collect();
    assert_eq!(
        mails.len(),
        2,
        "the revoked invite was not sent: {mails:#?}"
    );
    let to = |who: &str| mails.iter().filter(|m| m.contains(who)).count();
    assert_eq!((to("first@"), to("resent@"), to("revoked@")), (1, 1, 0));
    let resent = app.muster.view().unwrap().invite(&ids[1]).unwrap().unwrap();
    assert_eq!(resent.generation, 1);
    let token = app.muster.invite_token(&resent).unwrap();
    let mail = mails.iter().find(|m| m.contains("resent@")).unwrap();
    assert!(
        mail.replace("=\r\n", "").contains(token.as_str()),
        "the resent invite went out with its new link"
    );
    // The revoked one's connection dropped its email and says so.
    wait_for_async(
        "the revoked invite's email not sent",
        Duration::from_secs(10),
        || async {
            let state = invite_state(&app, &ids[2]).await;
            (state.delivery_state == "withdrawn").then_some(state)
        },
    )
    .await;
    assert_eq!(invite_state(&app, &ids[1]).await.delivery_state, "sent");
    app.shutdown().await;
}

/// In the outbox, an email whose link a resend, a revoke or the link's use
/// killed is removed, lest someone deliver it later; the resent link's
/// email is written in its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_links_email_leaves_the_outbox() {
    let t = TestDir::new();
    let app = TestApp::on(t.config()).await;
    let created = app.muster.create_batch(invite_batch(3, "box")).unwrap();
    let outbox = t.data().join("outbox");
    let names = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&outbox)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    // The new mailbox's welcome is not an invite's.
                    .filter(|n| n.ends_with(".eml") && !n.starts_with("welcome-"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let [resent, revoked, used] = [0, 1, 2].map(|i| &created.invites[i].id);
    let mut all = vec![
        format!("{resent}.eml"),
        format!("{revoked}.eml"),
        format!("{used}.eml"),
    ];
    all.sort();
    wait_for("the emails in the outbox", Duration::from_secs(30), || {
        (names() == all).then_some(())
    });
    let cli = Actor::cli();
    app.muster.resend(resent, &cli).unwrap();
    app.muster.revoke(revoked, &cli).unwrap();
    let invite = app
        .muster
        .store
        .read()
        .unwrap()
        .invite(used)
        .unwrap()
        .unwrap();
    let token = app.muster.invite_token(&invite).unwrap();
    let password = "correct horse battery staple 9";
    app.muster
        .redeem(token.as_str(), password, password)
        .expect("the link is used");
    wait_for(
        "only the resent link's email",
        Duration::from_secs(30),
        || (names() == [format!("{resent}-r1.eml")]).then_some(()),
    );
    // The list no longer points at a file that is gone (its outcome may
    // still be on its way to the store).
    wait_for(
        "the revoked invite settled",
        Duration::from_secs(10),
        || {
            let gone = app.muster.get_invite(revoked).unwrap();
            (gone.delivery_state == "withdrawn"
                && gone.delivery_detail.as_deref()
                    == Some("removed from the outbox: the invite was revoked"))
            .then_some(())
        },
    );
    app.shutdown().await;
}

/// A revoke that cannot remove the email from a read-only outbox does not
/// claim it did: the invite still says in_outbox, and the next start,
/// with the folder writable again, removes the file and says withdrawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_says_when_the_outbox_kept_its_email() {
    let t = TestDir::new();
    let outbox = t.data().join("outbox");
    let id = {
        let app = TestApp::on(t.config()).await;
        let created = app.muster.create_batch(invite_batch(1, "kept")).unwrap();
        let id = created.invites[0].id.clone();
        let file = outbox.join(format!("{id}.eml"));
        wait_for("the email in the outbox", Duration::from_secs(30), || {
            file.exists().then_some(())
        });
        wait_for("the email recorded", Duration::from_secs(30), || {
            (app.muster.get_invite(&id).unwrap().delivery_state == "in_outbox").then_some(())
        });
        let Some(read_only) = ReadOnly::mount(&outbox) else {
            return;
        };
        let revoked = app.muster.revoke(&id, &Actor::cli());
        drop(read_only);
        let view = revoked.unwrap();
        assert_eq!(view.delivery_state, "in_outbox", "{view:?}");
        assert!(file.exists(), "the file could not go");
        app.shutdown().await;
        id
    };
    let app = TestApp::on(t.config()).await;
    wait_for("the file removed at start", Duration::from_secs(30), || {
        (!outbox.join(format!("{id}.eml")).exists()).then_some(())
    });
    let view = app.muster.get_invite(&id).unwrap();
    assert_eq!(view.delivery_state, "withdrawn");
    assert_eq!(
        view.delivery_detail.as_deref(),
        Some("removed from the outbox: the invite was revoked")
    );
    app.shutdown().await;
}
