//! "Resend every invite still pending after 7 days", through the API and
//! the CLI with the test clock moved forward: it picks exactly the invites
//! still waiting (live or expired) whose link went out 7 days ago or more,
//! shows them before it runs, resends only those, and refuses bad input by
//! name.

use std::sync::Arc;

use crate::support::app::TestApp;
use crate::support::*;
use muster::domain::duration::HumanDuration;
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, ManualClock, Muster};
use muster::store::Actor;
use reqwest::Method;
use serde_json::{Value, json};
use time::Duration as Span;

fn batch(people: &[&str], life: Option<u64>) -> BatchRequest {
    BatchRequest {
        expires_in: life.map(HumanDuration::days),
        ..BatchRequest::new(
            people
                .iter()
                .map(|p| InviteRow::to(format!("{p}@elsewhere.org")))
                .collect(),
            Actor::cli(),
        )
    }
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["invites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["invite"]["recipient_email"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// Who is who: the batches and invites of the scenario.
struct Scene {
    first: String,
    by_person: std::collections::HashMap<String, String>,
}

/// Day 0: ann, bea (will set up), cal (will be revoked), dan (resent on
/// day 3) in a 30-day batch; eve in a 1-day batch (expired by day 8).
/// Day 5: fay in a new batch. The clock then stands at day 8.
fn scene(muster: &Muster, clock: &ManualClock) -> Scene {
    let first = muster
        .create_batch(batch(&["ann", "bea", "cal", "dan"], None))
        .unwrap();
    let short = muster.create_batch(batch(&["eve"], Some(1))).unwrap();
    let mut by_person = std::collections::HashMap::new();
    for i in first.invites.iter().chain(&short.invites) {
        by_person.insert(
            i.recipient_email.to_string().replace("@elsewhere.org", ""),
            i.id.clone(),
        );
    }
    let bea = muster
        .store
        .read()
        .unwrap()
        .invite(&by_person["bea"])
        .unwrap()
        .unwrap();
    let token = muster.invite_token(&bea).unwrap();
    muster
        .redeem(token.as_str(), PASSWORD, PASSWORD)
        .expect("bea sets up her mailbox");
    muster.revoke(&by_person["cal"], &Actor::cli()).unwrap();
    clock.advance(Span::days(3));
    muster.resend(&by_person["dan"], &Actor::cli()).unwrap();
    clock.advance(Span::days(2));
    let later = muster.create_batch(batch(&["fay"], None)).unwrap();
    by_person.insert("fay".into(), later.invites[0].id.clone());
    clock.advance(Span::days(3));
    Scene {
        first: first.batch.id,
        by_person,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_after_7_days_picks_exactly_the_invites_still_waiting() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let s = scene(&app.muster, &clock);

    // The preview: ann (live, 8 days) and eve (expired); not bea (set up),
    // cal (revoked), dan (his link went out 5 days ago) or fay (3 days).
    let (status, preview) = app
        .call(Method::GET, "/invites/resend-pending?older_than=7d", None)
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(ids(&preview), ["ann@elsewhere.org", "eve@elsewhere.org"]);
    assert_eq!(preview["count"], 2);
    let eve = preview["invites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["invite"]["recipient_email"] == "eve@elsewhere.org")
        .unwrap();
    assert_eq!(eve["invite"]["link_state"], "expired");
    // One batch only; a shorter wait takes dan too.
    let (_, one) = app
        .call(
            Method::GET,
            &format!("/invites/resend-pending?older_than=7d&batch_id={}", s.first),
            None,
        )
        .await;
    assert_eq!(ids(&one), ["ann@elsewhere.org"]);
    let (_, five) = app
        .call(Method::GET, "/invites/resend-pending?older_than=5d", None)
        .await;
    assert_eq!(
        ids(&five),
        [
            "ann@elsewhere.org",
            "dan@elsewhere.org",
            "eve@elsewhere.org"
        ]
    );

    // Resend what the preview showed, plus bea's (not waiting): skipped.
    let old_ann = app
        .muster
        .store
        .read()
        .unwrap()
        .invite(&s.by_person["ann"])
        .unwrap()
        .unwrap();
    let mut asked: Vec<String> = preview["invites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["invite"]["id"].as_str().unwrap().to_string())
        .collect();
    asked.push(s.by_person["bea"].clone());
    let (status, done) = app
        .call(
            Method::POST,
            "/invites/resend-pending",
            Some(json!({"older_than": "7d", "invite_ids": asked})),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let mut resent: Vec<&str> = done["resent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["recipient_email"].as_str().unwrap())
        .collect();
    resent.sort();
    assert_eq!(resent, ["ann@elsewhere.org", "eve@elsewhere.org"]);
    assert_eq!(done["skipped"].as_array().unwrap().len(), 1);
    assert_eq!(done["skipped"][0]["invite_id"], s.by_person["bea"].as_str());
    for v in done["resent"].as_array().unwrap() {
        assert_eq!(v["link_state"], "live");
    }
    // Each got a fresh link; the old one no longer works.
    let old_link = app.link(&old_ann);
    let (_, page) = submit_password(&app.client, &old_link, PASSWORD, PASSWORD).await;
    assert!(page.contains("not valid"), "{page}");
    // Nothing is waiting 7 days any more.
    let (_, again) = app
        .call(Method::GET, "/invites/resend-pending?older_than=7d", None)
        .await;
    assert_eq!(again["count"], 0);
    let audit = app.muster.view().unwrap().audit(None, 200).unwrap();
    assert!(audit.iter().any(|e| e.action == "invite.bulk_resend"
        && e.detail.contains("2 invites still pending after 7d")));

    // Bad input: named, nothing changed.
    for (query, code, words) in [
        ("older_than=soon", "invalid_older_than", "older_than"),
        (
            "older_than=10m",
            "invalid_older_than",
            "a wait of 10m is too short",
        ),
        ("older_than=7d&batch_id=no-such", "no_such_batch", "no-such"),
    ] {
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/invites/resend-pending?{query}"),
                None,
            )
            .await;
        assert!(status.is_client_error(), "{query}: {status} {body}");
        assert_eq!(body["code"], code, "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(words),
            "{query}: {body}"
        );
    }
    let (status, body) = app
        .call(
            Method::POST,
            "/invites/resend-pending",
            Some(json!({"older_than": "7d", "everything": true})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_before_it_resends_the_invites_pending_for_a_week() {
    let t = TestDir::new();
    let config = t.config();
    let path = t.write_config(&config);
    // The invites were made 8 days ago by this clock; the CLI runs now.
    let clock = Arc::new(ManualClock::new(
        time::OffsetDateTime::now_utc() - Span::days(8),
    ));
    let scene_ids = {
        let muster = Muster::open(Arc::new(config.clone()), clock.clone()).unwrap();
        scene(&muster, &clock).by_person
    };
    let dry = tokio::task::spawn_blocking({
        let path = path.clone();
        move || {
            run(
                muster(&[
                    "--config",
                    path.to_str().unwrap(),
                    "invites",
                    "resend",
                    "--pending-for",
                    "7d",
                    "--dry-run",
                ]),
                None,
            )
        }
    })
    .await
    .unwrap();
    assert_exit(&dry, 0);
    let out = text(&dry.stdout);
    assert!(
        out.starts_with("2 invites still waiting 7d or more"),
        "{out}"
    );
    assert!(
        out.contains("ann@elsewhere.org") && out.contains("eve@elsewhere.org"),
        "{out}"
    );
    assert!(!out.contains("dan@") && !out.contains("fay@"), "{out}");
    assert!(
        !t.data().join("outbox").exists()
            || std::fs::read_dir(t.data().join("outbox")).unwrap().count() == 0
    );

    let real = tokio::task::spawn_blocking(move || {
        run(
            muster(&[
                "--config",
                path.to_str().unwrap(),
                "invites",
                "resend",
                "--pending-for",
                "7d",
            ]),
            None,
        )
    })
    .await
    .unwrap();
    assert_exit(&real, 0);
    let out = text(&real.stdout);
    assert!(out.contains("Fresh links for 2 invites"), "{out}");
    // ann and eve got fresh links (their second generation); dan kept the
    // one he was resent on day 3, fay her first.
    let store = muster::store::Store::open(&config.store_path()).unwrap();
    let view = store.read().unwrap();
    let generation = |who: &str| {
        let id = &scene_ids[who];
        view.invite(id).unwrap().unwrap().generation
    };
    assert_eq!(
        [
            generation("ann"),
            generation("eve"),
            generation("dan"),
            generation("fay")
        ],
        [1, 1, 1, 0]
    );
}
