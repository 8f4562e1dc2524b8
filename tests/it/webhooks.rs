//! Webhooks, received by a local HTTP receiver that verifies every
//! signature with the Standard Webhooks library (`standardwebhooks`, PyPI,
//! pinned): each event of an invite's life in order, through the real
//! Postfix; a receiver answering 500 three times gets each event once more
//! after it recovers, in order per invite; one that never answers does not
//! slow invite sending; bad endpoints are refused by name and nothing is
//! saved.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::mailstack::{self, Postfix};
use crate::support::mcp_client::python;
use crate::support::*;
use muster::domain::duration::HumanDuration;
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, ManualClock};
use muster::store::Actor;
use reqwest::Method;
use serde_json::{Value, json};

/// The receiver script, run with the project's Python environment.
struct Receiver {
    port: u16,
    log: PathBuf,
    child: Child,
}

impl Receiver {
    fn start(dir: &TestDir, port: u16, secret: &str, mode: &str) -> Self {
        let log = dir.path().join(format!("received-{port}.jsonl"));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhooks/receiver.py");
        let child = Command::new(python())
            .arg(script)
            .args([&port.to_string(), secret, log.to_str().unwrap(), mode])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the receiver starts");
        wait_for("the receiver to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Self { port, log, child }
    }

    /// Every request it logged, in the order they came.
    fn seen(&self) -> Vec<Value> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        // Only whole lines: the receiver may be midway through one.
        let whole = log.rfind('\n').map_or(0, |i| i + 1);
        log[..whole]
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Requests it took (answered 200), once there are `n`.
    fn taken(&self, n: usize) -> Vec<Value> {
        wait_for(
            &format!("{n} deliveries taken"),
            Duration::from_secs(60),
            || {
                let got: Vec<Value> = self
                    .seen()
                    .into_iter()
                    .filter(|e| e["answered"] == 200)
                    .collect();
                (got.len() >= n).then_some(got)
            },
        )
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have_receiver() -> bool {
    require(
        "the standardwebhooks library (scripts/install-test-deps)",
        Command::new(python())
            .args(["-c", "import standardwebhooks"])
            .status()
            .is_ok_and(|s| s.success()),
    )
}

/// Adds an endpoint for every event through the API; its secret.
async fn endpoint(app: &TestApp, url: &str) -> (String, String) {
    let (status, body) = app
        .call(
            Method::POST,
            "/webhooks",
            Some(json!({"url": url, "events": [
                "invite.created", "invite.sent", "invite.deferred", "invite.failed",
                "invite.redeemed", "invite.blocked", "invite.expired", "invite.revoked",
                "invite.new_link_requested", "mailbox.created"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    (body["webhook"]["id"].as_str().unwrap().to_string(), secret)
}

/// The event types each subject got, in the order the receiver took them.
fn by_subject(taken: &[Value]) -> std::collections::HashMap<String, Vec<String>> {
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    for e in taken {
        out.entry(e["subject"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(e["type"].as_str().unwrap().to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invites_life_reaches_a_receiver_that_verifies_every_signature() {
    if !have_receiver() || !require("the mail stack", mailstack::available()) {
        return;
    }
    let dir = TestDir::new();
    mailstack::open_dir(dir.path());
    let postfix = Postfix::start(dir.path(), None);
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = TestApp::spawn_in(
        dir,
        |c| {
            c.smtp.host = Some("127.0.0.1".into());
            c.smtp.port = postfix.port;
            c.smtp.tls = muster::config::SmtpTls::None;
            c.smtp.rate_per_minute = 0;
            c.client.welcome = false;
            c.notifications.mode = muster::config::NotificationMode::Off;
        },
        clock.clone(),
    )
    .await;
    let port = free_port();
    let (id, secret) = endpoint(&app, &format!("http://127.0.0.1:{port}/hooks")).await;
    let scratch = TestDir::new();
    let receiver = Receiver::start(&scratch, port, &secret, "ok");

    let created = app
        .muster
        .create_batch(BatchRequest {
            expires_in: Some(HumanDuration::from_secs(3_600)),
            ..BatchRequest::new(
                vec![
                    InviteRow::to("ann@elsewhere.org"),
                    InviteRow::to("bo@elsewhere.org"),
                    InviteRow::to("cy@elsewhere.org"),
                ],
                Actor::cli(),
            )
        })
        .unwrap();
    let ids: Vec<String> = created.invites.iter().map(|i| i.id.clone()).collect();
    // created and sent, three times.
    receiver.taken(6);
    let ann = app.link(
        &app.muster
            .store
            .read()
            .unwrap()
            .invite(&ids[0])
            .unwrap()
            .unwrap(),
    );
    let (status, page) = submit_password(&app.client, &ann, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    app.muster.revoke(&ids[1], &Actor::cli()).unwrap();
    // cy's link expires: the sweep (every minute) marks it and tells.
    clock.advance(time::Duration::hours(2));
    app.muster.sweep_expired().unwrap();
    let cy = app
        .muster
        .store
        .read()
        .unwrap()
        .invite(&ids[2])
        .unwrap()
        .unwrap();
    let token = app.muster.invite_token(&cy).unwrap();
    assert!(app.muster.request_new_link(token.as_str()).unwrap());

    let taken = receiver.taken(11);
    assert!(
        receiver.seen().iter().all(|e| e["verified"] == true),
        "every delivery verifies: {:?}",
        receiver.seen()
    );
    let order = by_subject(&taken);
    assert_eq!(
        order[&ids[0]],
        [
            "invite.created",
            "invite.sent",
            "invite.redeemed",
            "mailbox.created"
        ]
    );
    assert_eq!(
        order[&ids[1]],
        ["invite.created", "invite.sent", "invite.revoked"]
    );
    assert_eq!(
        order[&ids[2]],
        [
            "invite.created",
            "invite.sent",
            "invite.expired",
            "invite.new_link_requested"
        ]
    );
    // Each event once; the log says delivered.
    let mut msg_ids: Vec<&str> = taken.iter().map(|e| e["id"].as_str().unwrap()).collect();
    msg_ids.sort();
    msg_ids.dedup();
    assert_eq!(msg_ids.len(), 11);
    let (_, log) = app
        .call(
            Method::GET,
            &format!("/webhooks/{id}/deliveries?limit=50"),
            None,
        )
        .await;
    let states: Vec<&str> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 11);
    wait_for_async(
        "the log to say delivered",
        Duration::from_secs(10),
        || async {
            let (_, log) = app
                .call(
                    Method::GET,
                    &format!("/webhooks/{id}/deliveries?limit=50"),
                    None,
                )
                .await;
            log["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["state"] == "delivered" && d["last_status"] == 200)
                .then_some(())
        },
    )
    .await;
    let _ = receiver.port;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_three_times_gets_each_event_once_more_in_order() {
    if !have_receiver() {
        return;
    }
    let app = TestApp::spawn(|c| {
        c.webhooks.retry_initial_secs = 1;
        c.webhooks.retry_max_secs = 2;
    })
    .await;
    let port = free_port();
    let (id, secret) = endpoint(&app, &format!("http://127.0.0.1:{port}/hooks")).await;
    let scratch = TestDir::new();
    let receiver = Receiver::start(&scratch, port, &secret, "fail:3");
    let created = app
        .muster
        .create_batch(BatchRequest::new(
            vec![
                InviteRow::to("ann@elsewhere.org"),
                InviteRow::to("bo@elsewhere.org"),
            ],
            Actor::cli(),
        ))
        .unwrap();
    let ids: Vec<String> = created.invites.iter().map(|i| i.id.clone()).collect();
    app.muster.revoke(&ids[0], &Actor::cli()).unwrap();
    app.muster.revoke(&ids[1], &Actor::cli()).unwrap();
    let taken = receiver.taken(4);
    let seen = receiver.seen();
    assert_eq!(
        seen.iter().filter(|e| e["answered"] == 500).count(),
        3,
        "{seen:?}"
    );
    assert!(seen.iter().all(|e| e["verified"] == true));
    // Each event taken exactly once, in order per invite.
    let order = by_subject(&taken);
    for id in &ids {
        assert_eq!(order[id], ["invite.created", "invite.revoked"], "{taken:?}");
    }
    let mut once: Vec<&str> = taken.iter().map(|e| e["id"].as_str().unwrap()).collect();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), 4, "{taken:?}");
    // The log shows the retries and the 500s.
    wait_for_async("the log to settle", Duration::from_secs(10), || async {
        let (_, log) = app
            .call(Method::GET, &format!("/webhooks/{id}/deliveries"), None)
            .await;
        let ds = log["deliveries"].as_array().unwrap().clone();
        (ds.iter().all(|d| d["state"] == "delivered")
            && ds.iter().any(|d| d["attempts"].as_u64() > Some(1)))
        .then_some(())
    })
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_does_not_slow_invite_sending() {
    if !have_receiver() {
        return;
    }
    let peer = crate::support::smtp_peer::Peer::start(vec![]).await;
    let app = TestApp::spawn(|c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = peer.port;
        c.smtp.tls = muster::config::SmtpTls::None;
        c.smtp.rate_per_minute = 0;
        c.webhooks.timeout_secs = 60;
        c.domains[0].mailbox_cap = 100;
    })
    .await;
    let port = free_port();
    let (id, secret) = endpoint(&app, &format!("http://127.0.0.1:{port}/hooks")).await;
    let scratch = TestDir::new();
    let _receiver = Receiver::start(&scratch, port, &secret, "silent");
    let created = app.muster.create_batch(invite_batch(20, "quiet")).unwrap();
    let ids: Vec<String> = created.invites.iter().map(|i| i.id.clone()).collect();
    // Every invite is sent while the webhook deliveries still wait for
    // their first answer.
    wait_for_async("all 20 sent", Duration::from_secs(30), || async {
        ids.iter()
            .all(|i| app.muster.get_invite(i).unwrap().delivery_state == "sent")
            .then_some(())
    })
    .await;
    assert_eq!(peer.received().len(), 20);
    let (_, log) = app
        .call(
            Method::GET,
            &format!("/webhooks/{id}/deliveries?limit=200"),
            None,
        )
        .await;
    let ds = log["deliveries"].as_array().unwrap();
    assert!(!ds.is_empty());
    assert!(
        ds.iter().all(|d| d["state"] == "pending"),
        "nothing was taken by a receiver that never answers: {ds:?}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_endpoints_are_refused_by_name_and_nothing_is_saved() {
    let app = TestApp::spawn(|_| {}).await;
    for (body, words) in [
        (
            json!({"url": "ftp://hooks.example.org/", "events": ["invite.sent"]}),
            "url \"ftp://hooks.example.org/\": only http:// and https://",
        ),
        (
            json!({"url": "http://169.254.169.254/latest", "events": ["invite.sent"]}),
            "a cloud metadata address; webhooks do not go there unless webhooks.allow_addresses names it",
        ),
        (
            json!({"url": "http://[fe80::1]/hook", "events": ["invite.sent"]}),
            "a link-local address",
        ),
        (
            json!({"url": "https://hooks.example.org/", "events": ["invite.sent", "invite.opened"]}),
            "events[1] \"invite.opened\" is not an event",
        ),
        (
            json!({"url": "https://hooks.example.org/", "events": []}),
            "events: name at least one",
        ),
    ] {
        let (status, answer) = app
            .call(Method::POST, "/webhooks", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["code"], "invalid_webhook", "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(words),
            "{body}: {answer}"
        );
    }
    let (_, list) = app.call(Method::GET, "/webhooks", None).await;
    assert_eq!(list, json!([]));
    let (status, _) = app.call(Method::DELETE, "/webhooks/no-such", None).await;
    assert_eq!(status, 404);
    app.shutdown().await;

    // Allowed on purpose.
    let app = TestApp::spawn(|c| c.webhooks.allow_addresses = vec!["169.254.169.254".into()]).await;
    let (status, answer) = app
        .call(
            Method::POST,
            "/webhooks",
            Some(json!({"url": "http://169.254.169.254/hook", "events": ["invite.sent"]})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    // The secret never reaches the store.
    let secret = answer["secret"].as_str().unwrap().to_string();
    let store = std::fs::read(app.dir.data().join("muster.redb")).unwrap();
    assert!(
        !store
            .windows(secret.len() - 6)
            .any(|w| w == &secret.as_bytes()[6..]),
        "the secret is in the store file"
    );
    app.shutdown().await;
}
