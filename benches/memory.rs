//! Memory under a crowd of sign-ins: `muster serve` (this build's binary)
//! takes 100 concurrent sign-in attempts from 100 client addresses, each
//! for an unknown account (argon2id runs for every one). Prints the RSS
//! before, the peak during the burst, and how long after it RSS took to
//! fall under 40 MiB (goals: peak < 150 MB, back under 40 MiB within 30 s),
//! with min / median / max over the rounds.
//!
//! Run: `cargo bench --bench memory [-- ROUNDS]` (default 5).

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BURST: u8 = 100;
const SETTLED_MIB: u64 = 40;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Round {
    before_mib: f64,
    peak_mib: f64,
    settled_secs: Option<f64>,
    busy: usize,
}

fn round(rt: &tokio::runtime::Runtime) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("muster.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\ndata_dir = \"{}\"\n[http]\nsignin_rate_per_minute = 1000\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_muster"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let url = format!("http://127.0.0.1:{port}");
    let result = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{url}/healthz")).await.is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let before = rss_kib(pid);
        let sampler = tokio::spawn(async move {
            let mut peak = 0;
            while !PEAK_STOP.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        });
        let mut tasks = Vec::new();
        for i in 0..BURST {
            let client = reqwest::Client::builder()
                .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 9, i + 2)))
                .build()
                .unwrap();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                client
                    .post(format!("{url}/api/v1/session"))
                    .json(&serde_json::json!({"email": format!("nobody{i}@example.org"), "password": "wrong-wrong-wrong"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }));
        }
        let mut busy = 0;
        for t in tasks {
            if t.await.unwrap() == 503 {
                busy += 1;
            }
        }
        let ended = Instant::now();
        PEAK_STOP.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak = sampler.await.unwrap();
        PEAK_STOP.store(false, std::sync::atomic::Ordering::Relaxed);
        let mut settled = None;
        while ended.elapsed() < Duration::from_secs(30) {
            if rss_kib(pid) < SETTLED_MIB * 1024 {
                settled = Some(ended.elapsed().as_secs_f64());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Round {
            before_mib: before as f64 / 1024.0,
            peak_mib: peak as f64 / 1024.0,
            settled_secs: settled,
            busy,
        }
    });
    let _ = server.kill();
    let _ = server.wait();
    result
}

static PEAK_STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn spread(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    format!(
        "{:.1} / {:.1} / {:.1}",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1]
    )
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "{BURST} concurrent sign-ins from {BURST} addresses against `muster serve`, {rounds} rounds"
    );
    let mut all = Vec::new();
    for n in 1..=rounds {
        let r = round(&rt);
        println!(
            "round {n}: RSS before {:.1} MiB, peak {:.1} MiB, under {SETTLED_MIB} MiB after {}, {} answered 503 busy",
            r.before_mib,
            r.peak_mib,
            r.settled_secs
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_else(|| "more than 30 s".into()),
            r.busy
        );
        all.push(r);
    }
    println!(
        "min / median / max: before {} MiB, peak {} MiB, settled {} s (goals: peak < 150 MB, settled < 30 s)",
        spread(all.iter().map(|r| r.before_mib).collect()),
        spread(all.iter().map(|r| r.peak_mib).collect()),
        spread(
            all.iter()
                .map(|r| r.settled_secs.unwrap_or(f64::INFINITY))
                .collect()
        ),
    );
}
