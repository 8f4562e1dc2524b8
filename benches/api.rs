//! `POST /api/v1/mailboxes/invites:bulk` with 100 items per call (each call
//! one durable transaction): invites persisted per second with 1 and with 8
//! concurrent clients, next to a `GET /healthz` baseline in the same run.
//!
//! Each round runs both side by side; the bench prints each round and
//! min / median / max over the rounds.
//!
//! Run: `cargo bench --bench api [-- --rounds=N]` (default 5).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use muster::App;
use muster::config::Config;
use muster::store::Actor;
use serde_json::json;

const CALLS: usize = 60;
const ITEMS: usize = 100;

async fn bulk(url: String, token: String, clients: usize, round: usize) -> f64 {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, token, next) = (client.clone(), url.clone(), token.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= CALLS {
                    return;
                }
                let items: Vec<_> = (0..ITEMS)
                    .map(|i| {
                        json!({"local_part": format!("r{round}c{clients}n{n}i{i}"),
                               "recipient_email": format!("r{round}c{clients}n{n}i{i}@elsewhere.org")})
                    })
                    .collect();
                let r = client
                    .post(format!("{url}/api/v1/mailboxes/invites:bulk"))
                    .bearer_auth(&token)
                    .json(&json!({"items": items}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (CALLS * ITEMS) as f64 / start.elapsed().as_secs_f64()
}

async fn healthz(url: String, clients: usize, requests: usize) -> f64 {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::SeqCst) < requests {
                let r = client.get(format!("{url}/healthz")).send().await.unwrap();
                assert!(r.status().is_success());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    requests as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        config.domains[0].name = muster::domain::address::DomainName::parse("team.example").unwrap();
        config.domains[0].mailbox_cap = 1_000_000;
        config.http.api_rate_per_minute = 1_000_000;
        // Invites queue for a relay that is not there, so the worker stays out of the way.
        config.smtp.host = Some("127.0.0.1".into());
        config.smtp.port = 9;
        config.smtp.tls = muster::config::SmtpTls::None;
        config.smtp.retry_initial_secs = 3600;
        config.smtp.retry_max_secs = 3600;
        let app = App::build(config).await.unwrap();
        let (_, token) = app.muster.create_api_token("bench", &Actor::cli()).unwrap();
        let url = app.url();
        let rounds = common::rounds(5);
        for clients in [1, 8] {
            let (mut bulks, mut checks, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for round in 1..=rounds {
                let h = healthz(url.clone(), clients, 3000).await;
                let b = bulk(url.clone(), token.clone(), clients, round).await;
                println!(
                    "{clients} client(s), round {round}: invites:bulk {b:.0} invites/s ({:.1} calls/s); GET /healthz {h:.0} requests/s",
                    b / ITEMS as f64
                );
                bulks.push(b);
                checks.push(h);
                ratios.push(b / ITEMS as f64 / h);
            }
            println!(
                "{clients} client(s), min / median / max of {rounds}: invites:bulk {} invites/s; GET /healthz {} requests/s; calls per /healthz request {}",
                common::spread(&bulks, 0),
                common::spread(&checks, 0),
                common::spread(&ratios, 4)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.shutdown().await;
    });
}
