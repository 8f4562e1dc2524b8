//! Load: 10 batches of 500 through the API (the web wizard's endpoint,
//! two clients at once) against `muster serve` (this build's binary, a
//! child process) while, side by side, four clients redeem links of
//! invites already sent, taken from the outbox as a recipient would.
//! Reports throughput, p50/p99 latency and the server's memory (its RSS
//! sampled every 10 ms; the bench's own clients are not counted), then
//! checks that every invite is accounted for: sent once, and redeemed at
//! most once with exactly one passwd-file line.
//!
//! Each round starts afresh with a new server; the bench prints each round
//! and min / median / max of the figures.
//!
//! Run: `cargo bench --bench load [-- --rounds=N]` (default 5).

mod common;

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use muster::store::Store;
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

fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
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
        "server peak RSS: {} MiB (goal < 64)",
        common::spread(&pick(|f| f.peak_mib as f64), 0)
    );
}

/// A config for `muster serve` on a free loopback port.
fn write_config(dir: &Path) -> (PathBuf, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.join("muster.toml");
    std::fs::write(
        &path,
        format!(
            r#"listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
data_dir = "{}"
[[domains]]
name = "team.example"
mailbox_cap = 100000
[http]
api_rate_per_minute = 1000000
link_rate_per_minute = 1000000
signin_rate_per_minute = 1000
"#,
            dir.join("data").display()
        ),
    )
    .unwrap();
    (path, format!("http://127.0.0.1:{port}"))
}

fn muster(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_muster"));
    c.arg("--config").arg(config);
    c
}

/// Setup links not handed out yet, read from the outbox's emails.
struct Links {
    outbox: PathBuf,
    seen: HashSet<std::ffi::OsString>,
    ready: VecDeque<String>,
}

impl Links {
    fn next(&mut self) -> Option<String> {
        if self.ready.is_empty() {
            for entry in std::fs::read_dir(&self.outbox).into_iter().flatten() {
                let entry = entry.unwrap();
                let name = entry.file_name();
                if !name.to_string_lossy().ends_with(".eml") || !self.seen.insert(name) {
                    continue;
                }
                let text = std::fs::read_to_string(entry.path()).unwrap();
                let start = text.find("/invite/").expect("the email carries its link");
                let token = &text[start + "/invite/".len()..][..43];
                self.ready.push_back(token.to_string());
            }
        }
        self.ready.pop_front()
    }
}

async fn round() -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let (config, url) = write_config(dir.path());
    let data = dir.path().join("data");
    let mut add = muster(&config)
        .args(["admin", "add", "admin@team.example"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{PW}").unwrap();
    assert!(add.wait().unwrap().success(), "muster admin add");
    let mut server = muster(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{url}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_mib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

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
    let links = Arc::new(std::sync::Mutex::new(Links {
        outbox: data.join("outbox"),
        seen: HashSet::new(),
        ready: VecDeque::new(),
    }));
    let mut redeemers = Vec::new();
    for _ in 0..4 {
        let (client, url, lat, done, links) = (
            client.clone(),
            url.clone(),
            redeem_latency.clone(),
            done_creating.clone(),
            links.clone(),
        );
        redeemers.push(tokio::spawn(async move {
            loop {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                let next = links.lock().unwrap().next();
                let Some(token) = next else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let t = Instant::now();
                // As a person does: the page, then the form with its proof.
                let link = format!("{url}/invite/{token}");
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
    // Keep redeeming for as long again (at least 5 s), then stop.
    tokio::time::sleep(created_in.max(Duration::from_secs(5))).await;
    done_creating.store(true, Ordering::SeqCst);
    for r in redeemers {
        r.await.unwrap();
    }
    let total = start.elapsed();

    // Every invite accounted for once the worker has sent everything.
    let store_path = data.join("muster.redb");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let store = Store::open_read_only(&store_path).unwrap();
        if store
            .read()
            .unwrap()
            .due_task_count(time::OffsetDateTime::now_utc())
            .unwrap()
            == 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "the queue drains");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let rss = rss_mib(pid);
    // SAFETY: a plain signal to the child this bench started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert!(
        server.wait().unwrap().success(),
        "muster serve stops cleanly"
    );

    let store = Store::open_read_only(&store_path).unwrap();
    let view = store.read().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let (link_states, deliveries) = view.invite_state_counts(now).unwrap();
    let invites = view.invite_count().unwrap() as usize;
    assert_eq!(invites, BATCHES * ROWS, "no invite lost or doubled");
    assert_eq!(
        deliveries.get("in_outbox").copied().unwrap_or(0) as usize,
        BATCHES * ROWS
    );
    assert_eq!(
        view.counter("sends").unwrap() as usize,
        BATCHES * ROWS,
        "each sent once"
    );
    let emails = std::fs::read_dir(data.join("outbox")).unwrap().count();
    assert_eq!(emails, BATCHES * ROWS);
    let redeemed = link_states.get("redeemed").copied().unwrap_or(0) as usize;
    let passwd = std::fs::read_to_string(data.join("dovecot/passwd")).unwrap_or_default();
    let mut users: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').next().unwrap())
        .collect();
    let lines = users.len();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), lines, "no mailbox twice in the passwd-file");
    assert_eq!(lines, redeemed, "one line per redeemed invite");

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
    let peak = peak.load(Ordering::Relaxed);
    println!(
        "accounted for: {invites} invites, all sent once; {redeemed} redeemed, one passwd-file line each; server RSS {rss} MiB at the end (peak {peak} MiB)",
    );
    Figures {
        invites_per_s: (BATCHES * ROWS) as f64 / created_in.as_secs_f64(),
        redemptions_per_s: r.len() as f64 / total.as_secs_f64(),
        peak_mib: peak,
    }
}
