//! Sending throughput: 5,000 invites, unthrottled, to Postfix's smtp-sink
//! on loopback, next to smtp-source sending as many 5 KB messages over the
//! same number of sessions (reusing each connection, as Muster does), in
//! the same run. Goal: Muster >= 0.8 x smtp-source.
//!
//! Run: `cargo bench --bench send [-- SESSIONS]` (default: 16, 32 and 64
//! sessions in turn). Needs the postfix package (smtp-sink, smtp-source).
//! Muster's store is a real file, so every outcome is a durable commit.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use muster::config::{Config, SmtpTls};
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, Muster, SystemClock};
use muster::store::Actor;

const MESSAGES: usize = 5_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn smtp_source(port: u16, sessions: usize) -> Duration {
    let start = Instant::now();
    let status = Command::new("smtp-source")
        .args([
            "-d",
            "-s",
            &sessions.to_string(),
            "-m",
            &MESSAGES.to_string(),
            "-l",
            "5120",
        ])
        .args(["-f", "it@team.example", "-t", "someone@elsewhere.org"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("smtp-source runs");
    assert!(status.success());
    start.elapsed()
}

async fn muster_run(port: u16, sessions: usize) -> (Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.domains[0].name = muster::domain::address::DomainName::parse("team.example").unwrap();
    config.domains[0].mailbox_cap = 100_000;
    config.smtp.host = Some("127.0.0.1".into());
    config.smtp.port = port;
    config.smtp.tls = SmtpTls::None;
    config.smtp.rate_per_minute = 0;
    config.smtp.connections = sessions;
    let muster = Arc::new(Muster::open(Arc::new(config), Arc::new(SystemClock)).unwrap());
    for b in 0..MESSAGES / 500 {
        let rows = (0..500)
            .map(|i| InviteRow::to(format!("person{b}x{i}@elsewhere.org")))
            .collect();
        muster
            .create_batch(BatchRequest::new(rows, Actor::cli()))
            .unwrap();
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let worker = muster::mail::worker::spawn(muster.clone(), stop_rx).unwrap();
    loop {
        if muster.store.read().unwrap().task_count().unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let _ = stop_tx.send(true);
    worker.await.unwrap();
    let sent = muster.store.read().unwrap().counter("sends").unwrap() as usize;
    assert_eq!(sent, MESSAGES, "every invite sent");
    (elapsed, sent)
}

fn main() {
    // One session count from the command line, or a sweep: with few
    // sessions Muster waits on its durable commits (one unrecorded message
    // per connection at most), with more it is bound by CPU.
    let counts: Vec<usize> = match std::env::args().skip(1).find_map(|a| a.parse().ok()) {
        Some(n) => vec![n],
        None => vec![16, 32, 64],
    };
    if Command::new("smtp-sink")
        .arg("-h")
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("smtp-sink is not installed (apt package postfix); skipping");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = free_port();
    let mut sink = Command::new("smtp-sink")
        .args(["-u", "postfix", &format!("127.0.0.1:{port}"), "1024"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("smtp-sink starts");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut summary = Vec::new();
    for sessions in counts {
        let mut source_best = Duration::MAX;
        let mut muster_best = Duration::MAX;
        for round in 1..=3 {
            let s = smtp_source(port, sessions);
            let (m, _) = rt.block_on(muster_run(port, sessions));
            println!(
                "{sessions} sessions, round {round}: smtp-source {:.0} msg/s, Muster {:.0} msg/s",
                MESSAGES as f64 / s.as_secs_f64(),
                MESSAGES as f64 / m.as_secs_f64()
            );
            source_best = source_best.min(s);
            muster_best = muster_best.min(m);
        }
        let source_rate = MESSAGES as f64 / source_best.as_secs_f64();
        let muster_rate = MESSAGES as f64 / muster_best.as_secs_f64();
        summary.push(format!(
            "send {MESSAGES} messages over {sessions} sessions: smtp-source {source_rate:.0} msg/s, Muster {muster_rate:.0} msg/s, ratio {:.2} (goal >= 0.8)",
            muster_rate / source_rate
        ));
    }
    for line in summary {
        println!("{line}");
    }
    let _ = sink.kill();
    let _ = sink.wait();
}
