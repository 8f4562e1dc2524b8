//! Load: 10 batches of 500 through the API (the web wizard's endpoint,
//! two clients at once) while, side by side, four clients redeem links of
//! invites already sent. Reports throughput, p50/p99 latency and memory,
//! then checks that every invite is accounted for: sent once, and redeemed
//! at most once with exactly one passwd-file line.
//!
//! Each round starts afresh (the peak RSS is reset between rounds); the
//! bench prints each round and min / median / max of the figures.
//!
//! Run: `cargo bench --bench load [-- --rounds=N]` (default 5).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use muster::App;
use muster::config::Config;
use muster::store::Actor;
use muster::store::view::InviteFilter;
use serde_json::json;
use tokio::sync::Mutex;

const BATCHES: usize = 10;
const ROWS: usize = 500;
const PW: &str = "plinth-ferry-quartz-77";

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
                    / 1024
            })
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

struct Figures {
    invites_per_s: f64,
    redemptions_per_s: f64,
    peak_mib: u64,
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rounds = common::rounds(5);
    let mut all = Vec::new();
    for n in 1..=rounds {
        // Resets VmHWM, so each round's peak is its own.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        print!("round {n}: ");
        all.push(rt.block_on(round()));
    }
    let pick = |f: fn(&Figures) -> f64| all.iter().map(f).collect::<Vec<_>>();
    println!("over {rounds} rounds, min / median / max:");
    println!(
        "batches: {} invites/s persisted",
        common::spread(&pick(|f| f.invites_per_s), 0)
    );
    println!(
        "redemptions side by side: {} /s",
        common::spread(&pick(|f| f.redemptions_per_s), 1)
    );
    println!(
        "peak RSS: {} MiB (goal < 64)",
        common::spread(&pick(|f| f.peak_mib as f64), 0)
    );
}

async fn round() -> Figures {
    {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        config.domains[0].name =
            muster::domain::address::DomainName::parse("team.example").unwrap();
        config.domains[0].mailbox_cap = 100_000;
        config.http.api_rate_per_minute = 1_000_000;
        config.http.link_rate_per_minute = 1_000_000;
        config.http.signin_rate_per_minute = 1_000;
        config.smtp.rate_per_minute = 0;
        let app = App::build(config).await.unwrap();
        app.muster
            .add_admin("admin@team.example", PW, &Actor::cli())
            .unwrap();
        let url = app.url();
        let client = reqwest::Client::new();
        let resp = client
            .post(format!("{url}/api/v1/session"))
            .json(&json!({"email": "admin@team.example", "password": PW}))
            .send()
            .await
            .unwrap();
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let csrf = resp.json::<serde_json::Value>().await.unwrap()["csrf_token"]
            .as_str()
            .unwrap()
            .to_string();

        let batch_latency = Arc::new(Mutex::new(Vec::new()));
        let redeem_latency = Arc::new(Mutex::new(Vec::new()));
        let done_creating = Arc::new(AtomicBool::new(false));
        let start = Instant::now();

        // Two clients send the ten batches.
        let mut creators = Vec::new();
        for c in 0..2 {
            let (client, url, cookie, csrf, lat) = (
                client.clone(),
                url.clone(),
                cookie.clone(),
                csrf.clone(),
                batch_latency.clone(),
            );
            creators.push(tokio::spawn(async move {
                for b in (c..BATCHES).step_by(2) {
                    let rows: Vec<_> = (0..ROWS)
                        .map(|i| json!({"recipient_email": format!("b{b}p{i}@elsewhere.org")}))
                        .collect();
                    let t = Instant::now();
                    let r = client
                        .post(format!("{url}/api/v1/batches"))
                        .header("cookie", &cookie)
                        .header("x-csrf-token", &csrf)
                        .json(&json!({"rows": rows}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
                    lat.lock().await.push(t.elapsed());
                }
            }));
        }
        // Four clients redeem links of invites already sent, meanwhile.
        let mut redeemers = Vec::new();
        let claimed = Arc::new(Mutex::new(std::collections::HashSet::new()));
        for _ in 0..4 {
            let (client, url, muster, lat, done, claimed) = (
                client.clone(),
                url.clone(),
                app.muster.clone(),
                redeem_latency.clone(),
                done_creating.clone(),
                claimed.clone(),
            );
            redeemers.push(tokio::spawn(async move {
                let filter = InviteFilter {
                    state: Some("sent".into()),
                    ..Default::default()
                };
                loop {
                    let (page, _) = muster.list_invites(&filter, None, 50).unwrap();
                    let mut next = None;
                    {
                        let mut c = claimed.lock().await;
                        for v in page {
                            if v.link_state == "live" && c.insert(v.id.clone()) {
                                next = Some(v.id);
                                break;
                            }
                        }
                    }
                    let Some(id) = next else {
                        if done.load(Ordering::SeqCst) {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let invite = muster.store.read().unwrap().invite(&id).unwrap().unwrap();
                    let token = muster.invite_token(&invite).unwrap();
                    let t = Instant::now();
                    // As a person does: the page, then the form with its proof.
                    let link = format!("{url}/invite/{}", token.as_str());
                    let page = client
                        .get(&link)
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    let proof = page
                        .split("name=\"form_token\" value=\"")
                        .nth(1)
                        .and_then(|rest| rest.split('"').next())
                        .expect("the setup page carries a form proof")
                        .to_string();
                    let r = client
                        .post(&link)
                        .form(&[
                            ("password", PW),
                            ("confirmation", PW),
                            ("form_token", &proof),
                        ])
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    lat.lock().await.push(t.elapsed());
                }
            }));
        }
        for c in creators {
            c.await.unwrap();
        }
        let created_in = start.elapsed();
        // Keep redeeming for as long again, then stop.
        tokio::time::sleep(created_in.max(Duration::from_secs(5))).await;
        done_creating.store(true, Ordering::SeqCst);
        for r in redeemers {
            r.await.unwrap();
        }
        let total = start.elapsed();

        // Every invite accounted for once the worker has sent everything.
        let muster = app.muster.clone();
        let deadline = Instant::now() + Duration::from_secs(120);
        while muster.store.read().unwrap().task_count().unwrap() > 0 {
            assert!(Instant::now() < deadline, "the queue drains");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let view = muster.store.read().unwrap();
        let (links, deliveries) = view.invite_state_counts(muster.now()).unwrap();
        let invites = view.invite_count().unwrap() as usize;
        assert_eq!(invites, BATCHES * ROWS, "no invite lost or doubled");
        assert_eq!(
            deliveries.get("sent").copied().unwrap_or(0) as usize,
            BATCHES * ROWS
        );
        assert_eq!(
            view.counter("sends").unwrap() as usize,
            BATCHES * ROWS,
            "each sent once"
        );
        let outbox = std::fs::read_dir(muster.config.outbox_dir())
            .unwrap()
            .count();
        assert_eq!(outbox, BATCHES * ROWS);
        let redeemed = links.get("redeemed").copied().unwrap_or(0) as usize;
        let passwd = std::fs::read_to_string(muster.config.passwd_file()).unwrap_or_default();
        let mut users: Vec<&str> = passwd
            .lines()
            .map(|l| l.split(':').next().unwrap())
            .collect();
        let lines = users.len();
        users.sort();
        users.dedup();
        assert_eq!(users.len(), lines, "no mailbox twice in the passwd-file");
        assert_eq!(lines, redeemed, "one line per redeemed invite");
        drop(view);

        let mut b = batch_latency.lock().await.clone();
        let mut r = redeem_latency.lock().await.clone();
        println!(
            "{BATCHES} batches of {ROWS} in {:.2} s: {:.0} invites/s persisted; batch call p50 {:.0} ms, p99 {:.0} ms",
            created_in.as_secs_f64(),
            (BATCHES * ROWS) as f64 / created_in.as_secs_f64(),
            percentile(&mut b, 0.5).as_secs_f64() * 1000.0,
            percentile(&mut b, 0.99).as_secs_f64() * 1000.0
        );
        println!(
            "{} redemptions side by side in {:.2} s: {:.1}/s; p50 {:.0} ms, p99 {:.0} ms",
            r.len(),
            total.as_secs_f64(),
            r.len() as f64 / total.as_secs_f64(),
            percentile(&mut r, 0.5).as_secs_f64() * 1000.0,
            percentile(&mut r, 0.99).as_secs_f64() * 1000.0
        );
        let (rss, peak) = memory();
        println!(
            "accounted for: {invites} invites, all sent once; {redeemed} redeemed, one passwd-file line each; RSS {rss} MiB (peak {peak} MiB)",
        );
        app.shutdown().await;
        Figures {
            invites_per_s: (BATCHES * ROWS) as f64 / created_in.as_secs_f64(),
            redemptions_per_s: r.len() as f64 / total.as_secs_f64(),
            peak_mib: peak,
        }
    }
}
