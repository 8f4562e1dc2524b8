//! Races: resend against redeem of one invite, two batches competing for
//! the last places under a cap, and revoke during sending. (50 concurrent
//! redemptions of one link are in tests/redeem.rs.)

use std::sync::Arc;
use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::smtp_peer::Peer;
use crate::support::*;
use muster::service::ServiceError;
use muster::store::Actor;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resend_and_redeem_of_one_invite_at_the_same_time() {
    let t = TestDir::new();
    let mut config = t.config();
    config.domains[0].mailbox_cap = 100;
    config.http.link_rate_per_minute = 10_000;
    let app = TestApp::on(config).await;
    let client = http();
    let (mut redeemed_first, mut resent_first) = (0, 0);
    for round in 0..12 {
        let created = app
            .muster
            .create_batch(invite_batch(1, &format!("r{round}x")))
            .unwrap();
        let invite = created.invites[0].clone();
        let link = format!(
            "{}/invite/{}",
            app.url(),
            app.muster.invite_token(&invite).unwrap().as_str()
        );
        // The recipient has the page open; the admin resends as they submit.
        let proof = fetch_form_token(&client, &link).await;
        let m = app.muster.clone();
        let id = invite.id.clone();
        let resend = tokio::task::spawn_blocking(move || m.resend(&id, &Actor::cli()));
        let c = client.clone();
        let redeem =
            tokio::spawn(async move { post_password(&c, &link, &proof, PASSWORD, PASSWORD).await });
        let (resend, (status, page)) = (resend.await.unwrap(), redeem.await.unwrap());
        let state = app.muster.get_invite(&invite.id).unwrap();
        let passwd = std::fs::read_to_string(app.muster.config.passwd_file()).unwrap_or_default();
        let lines = passwd
            .lines()
            .filter(|l| l.starts_with(&format!("{}:", invite.mailbox)))
            .count();
        if page.contains("Your mailbox is ready") {
            // The redemption won: the resend was refused, one mailbox exists.
            redeemed_first += 1;
            assert!(
                matches!(resend, Err(ServiceError::Transition(_))),
                "{resend:?}"
            );
            assert_eq!(state.link_state, "redeemed");
            assert_eq!(lines, 1);
        } else {
            // The resend won: the old link died before it could be used.
            resent_first += 1;
            assert!(resend.is_ok(), "{resend:?}");
            assert_eq!(status, 404, "{page}");
            assert_eq!(state.link_state, "live");
            assert_eq!(lines, 0);
        }
    }
    assert_eq!(redeemed_first + resent_first, 12);
    app.shutdown().await;
}

/// One form sent six times at once (a double click where the page's script
/// did not run): one post sets the mailbox up, and every other one shows
/// that outcome, not a page saying to start over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_form_sent_many_times_at_once_shows_its_outcome_every_time() {
    let t = TestDir::new();
    let mut config = t.config();
    config.http.link_rate_per_minute = 10_000;
    let app = TestApp::on(config).await;
    let created = app.muster.create_batch(invite_batch(1, "twice")).unwrap();
    let link = format!(
        "{}/invite/{}",
        app.url(),
        app.muster
            .invite_token(&created.invites[0])
            .unwrap()
            .as_str()
    );
    let client = http();
    let proof = fetch_form_token(&client, &link).await;
    let posts: Vec<_> = (0..6)
        .map(|_| {
            let (c, link, proof) = (client.clone(), link.clone(), proof.clone());
            tokio::spawn(async move { post_password(&c, &link, &proof, PASSWORD, PASSWORD).await })
        })
        .collect();
    let mut ready = 0;
    for post in posts {
        let (status, page) = post.await.unwrap();
        if page.contains("Your mailbox is ready") {
            ready += 1;
        } else {
            assert_eq!(status, 200, "{page}");
            assert!(page.contains("already set up"), "{page}");
        }
    }
    assert_eq!(ready, 1);
    let passwd = std::fs::read_to_string(app.muster.config.passwd_file()).unwrap();
    assert_eq!(passwd.lines().count(), 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_batches_competing_for_the_last_places_never_exceed_the_cap() {
    let t = TestDir::new();
    let mut config = t.config();
    config.domains[0].mailbox_cap = 10;
    config.http.api_rate_per_minute = 10_000;
    let app = TestApp::on(config).await;
    let (_, token) = app.muster.create_api_token("race", &Actor::cli()).unwrap();
    app.muster.create_batch(invite_batch(4, "seed")).unwrap();
    // Six places left; two calls of four race for them.
    let client = http();
    let call = |prefix: &'static str| {
        let (client, url, token) = (client.clone(), app.url(), token.clone());
        tokio::spawn(async move {
            let items: Vec<_> = (0..4)
                .map(|i| json!({"local_part": format!("{prefix}{i}"), "recipient_email": format!("{prefix}{i}@elsewhere.org")}))
                .collect();
            let r = client
                .post(format!("{url}/api/v1/mailboxes/invites:bulk"))
                .bearer_auth(&token)
                .json(&json!({"items": items}))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        })
    };
    let (a, b) = (call("a"), call("b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [201, 422], "{a:?} {b:?}");
    let loser = if a.0 == 422 { &a.1 } else { &b.1 };
    assert!(
        loser["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["code"] == "over_cap"),
        "{loser}"
    );
    let pending = app
        .muster
        .view()
        .unwrap()
        .pending_count("team.example", time::OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(pending, 8);

    // Many at once, through the service: the cap holds every time.
    let muster = app.muster.clone();
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let m = muster.clone();
            std::thread::spawn(move || m.create_batch(invite_batch(1, &format!("t{n}x"))).is_ok())
        })
        .collect();
    let won = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(won, 2, "exactly the two places left were taken");
    let pending = app
        .muster
        .view()
        .unwrap()
        .pending_count("team.example", time::OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(pending, 10);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoke_during_sending() {
    let peer = Peer::start(vec![]).await;
    peer.set_delay(Duration::from_millis(40));
    let t = TestDir::new();
    let mut config = t.config();
    config.domains[0].mailbox_cap = 100;
    config.smtp.host = Some("127.0.0.1".into());
    config.smtp.port = peer.port;
    config.smtp.tls = muster::config::SmtpTls::None;
    config.smtp.rate_per_minute = 0;
    let app = TestApp::on(config).await;
    let created = app.muster.create_batch(invite_batch(20, "rv")).unwrap();
    let p = peer.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("a few sent", Duration::from_secs(30), || {
            (p.received().len() >= 3).then_some(())
        })
    })
    .await
    .unwrap();
    // Revoke every second invite while the rest are going out.
    let revoked: Vec<String> = created
        .invites
        .iter()
        .step_by(2)
        .map(|i| i.id.clone())
        .collect();
    let muster = Arc::clone(&app.muster);
    let answers: Vec<_> = revoked
        .iter()
        .map(|id| muster.revoke(id, &Actor::cli()).unwrap())
        .collect();
    let sent_at_revoke = peer.received().len();
    wait_for_async("the queue to empty", Duration::from_secs(30), || async {
        (app.muster
            .store
            .read()
            .unwrap()
            .due_task_count(app.muster.now())
            .unwrap()
            == 0
            && app.muster.queue.is_idle()
            // A dropped email's "not sent" is recorded behind.
            && created.invites.iter().all(|i| {
                app.muster.get_invite(&i.id).unwrap().delivery_state != "queued"
            }))
        .then_some(())
    })
    .await;
    let views: Vec<_> = created
        .invites
        .iter()
        .map(|i| app.muster.get_invite(&i.id).unwrap())
        .collect();
    for v in &views {
        if revoked.contains(&v.id) {
            assert_eq!(v.link_state, "revoked", "{v:?}");
            // Either it went out before the revoke, or it never will.
            assert!(
                v.delivery_state == "sent"
                    || (v.delivery_state == "withdrawn"
                        && v.delivery_detail.as_deref()
                            == Some("not sent: the invite was revoked")),
                "{v:?}"
            );
        } else {
            assert_eq!((v.link_state, v.delivery_state), ("live", "sent"), "{v:?}");
        }
    }
    // A revoke never says "not sent" of an email that went out: one on the
    // wire is left for its connection's outcome to tell.
    for answer in &answers {
        let end = views.iter().find(|v| v.id == answer.id).unwrap();
        if end.delivery_state == "sent" {
            assert_ne!(answer.delivery_state, "failed", "{answer:?} then {end:?}");
        }
    }
    // Nothing revoked was sent after the revoke, beyond what was already on the wire.
    let sent_revoked = views
        .iter()
        .filter(|v| revoked.contains(&v.id) && v.delivery_state == "sent")
        .count();
    assert!(
        sent_revoked <= sent_at_revoke + app.muster.config.smtp.connections,
        "{sent_revoked} revoked invites were sent"
    );
    assert_eq!(
        peer.received().len(),
        views.iter().filter(|v| v.delivery_state == "sent").count()
    );
    app.shutdown().await;
}
