//! Direct delivery throughput: 5,000 invites to three destination domains
//! (a.test, b.test, c.test), each with its own smtp-sink on 127.0.0.2,
//! .3 and .4 named by MX records a real DNS server (unbound, local zones
//! on loopback) serves. Muster in direct mode, unthrottled, with N
//! connections per domain, next to three smtp-source processes (one per
//! sink, N sessions each) sending as many 5 KB messages, interleaved in
//! each round. Both are timed at the sinks: from the start until all three
//! have received their share. Goal: Muster >= 0.8 x smtp-source. Each
//! round also times the restart promise's floor (see `common::floor`)
//! with the same sessions per sink, each syncing on its own.
//!
//! Run: `cargo bench --bench direct [-- N] [--rounds=N]` (default: 1 and
//! 4 connections per domain, 5 rounds). Needs postfix (smtp-sink,
//! smtp-source) and unbound. Port 25 when it is free on the three
//! addresses, another free port otherwise.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::floor::Floor;
use common::sink::{self, Reaped, SinkCount, free_port, smtp_source};
use muster::config::SmtpMode;
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, Muster, SystemClock};
use muster::store::Actor;

const MESSAGES: usize = 5_000;
const DOMAINS: [(&str, &str); 3] = [
    ("a.test", "127.0.0.2"),
    ("b.test", "127.0.0.3"),
    ("c.test", "127.0.0.4"),
];

/// unbound answering the MX and A records of the three domains.
fn start_dns(dir: &std::path::Path) -> (Reaped, u16) {
    let port = loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            break port;
        }
    };
    let mut conf = format!(
        "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n  do-ip6: no\n  access-control: 127.0.0.0/8 allow\n  module-config: \"iterator\"\n  local-zone: \"test.\" static\n",
        d = dir.display()
    );
    for (domain, ip) in DOMAINS {
        conf.push_str(&format!(
            "  local-data: '{domain}. 300 IN MX 10 mx.{domain}.'\n  local-data: 'mx.{domain}. 300 IN A {ip}'\n"
        ));
    }
    conf.push_str("remote-control:\n  control-enable: no\n");
    let path = dir.join("unbound.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Reaped(
        Command::new("unbound")
            .args(["-d", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unbound starts"),
    );
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

/// Port 25 when free on every sink address, else a port free on all.
fn sink_port() -> u16 {
    let free = |port: u16| {
        DOMAINS
            .iter()
            .all(|(_, ip)| std::net::TcpListener::bind((*ip, port)).is_ok())
    };
    if free(25) {
        return 25;
    }
    loop {
        let port = free_port();
        if free(port) {
            return port;
        }
    }
}

async fn muster_run(dns_port: u16, port: u16, per_domain: usize, sinks: &[SinkCount]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sink::sender_config(dir.path());
    config.smtp.mode = Some(SmtpMode::Direct);
    config.smtp.direct.port = port;
    config.smtp.direct.connections_per_domain = per_domain;
    config.smtp.direct.rate_per_domain_per_minute = 0;
    config.smtp.rate_per_minute = 0;
    config.smtp.connections = per_domain * DOMAINS.len();
    config.smtp.helo_name = Some("muster.team.example".into());
    config.dns.resolvers = vec![format!("127.0.0.1:{dns_port}")];
    let muster = Arc::new(Muster::open(Arc::new(config), Arc::new(SystemClock)).unwrap());
    let mut first = None;
    for b in 0..MESSAGES / 500 {
        let rows = (0..500)
            .map(|i| {
                // Spread over the domains as `share` counts them.
                let n = b * 500 + i;
                InviteRow::to(format!("p{n}@{}", DOMAINS[n % DOMAINS.len()].0))
            })
            .collect();
        let made = muster
            .create_batch(BatchRequest::new(rows, Actor::cli()))
            .unwrap();
        first.get_or_insert(made.invites[0].id.clone());
    }
    let targets: Vec<u64> = sinks
        .iter()
        .enumerate()
        .map(|(k, s)| s.now() + share(k) as u64)
        .collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let worker = muster::mail::worker::spawn(muster.clone(), stop_rx).unwrap();
    let sinks = sinks.to_vec();
    let arrived = tokio::task::spawn_blocking(move || {
        sinks
            .iter()
            .zip(targets)
            .map(|(s, t)| s.reached(t))
            .max()
            .unwrap()
    });
    // A run that stalls says why instead of waiting for ever.
    let last = match tokio::time::timeout(Duration::from_secs(300), arrived).await {
        Ok(last) => last.unwrap(),
        Err(_) => {
            let first = muster.get_invite(first.as_deref().unwrap()).unwrap();
            panic!(
                "not every message arrived within 300 s; the first invite is {} ({:?})",
                first.delivery_state, first.delivery_detail
            );
        }
    };
    let elapsed = last - start;
    let _ = stop_tx.send(true);
    worker.await.unwrap();
    elapsed
}

/// How many of the messages go to domain `k`.
fn share(k: usize) -> usize {
    MESSAGES / DOMAINS.len() + usize::from(k < MESSAGES % DOMAINS.len())
}

/// Three senders at once, one per sink: smtp-source, or the promise's
/// floor when `floor_dir` is given (its sessions' files made first). The
/// time until the last sink has its share.
fn sources(
    port: u16,
    per_domain: usize,
    sinks: &[SinkCount],
    floor_dir: Option<&std::path::Path>,
) -> Duration {
    let addresses: Vec<String> = DOMAINS
        .iter()
        .map(|(_, ip)| format!("{ip}:{port}"))
        .collect();
    let floors: Vec<Option<Floor>> = addresses
        .iter()
        .enumerate()
        .map(|(k, address)| {
            floor_dir.map(|dir| {
                let dir = dir.join(k.to_string());
                std::fs::create_dir_all(&dir).unwrap();
                Floor::ready(address, per_domain, share(k), &dir)
            })
        })
        .collect();
    std::thread::scope(|s| {
        let runs: Vec<_> = floors
            .into_iter()
            .zip(sinks)
            .zip(&addresses)
            .enumerate()
            .map(|(k, ((floor, sink), address))| {
                s.spawn(move || match floor {
                    Some(floor) => floor.run(sink),
                    None => smtp_source(address, per_domain, share(k), sink),
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap())
            .max()
            .unwrap_or_default()
    })
}

fn main() {
    let counts: Vec<usize> = match std::env::args().skip(1).find_map(|a| a.parse().ok()) {
        Some(n) => vec![n],
        None => vec![1, 4],
    };
    let rounds = common::rounds(5);
    if !sink::installed() || Command::new("unbound").arg("-h").output().is_err() {
        eprintln!(
            "smtp-sink or unbound is not installed (apt packages postfix, unbound); skipping"
        );
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dns_dir = tempfile::tempdir().unwrap();
    let (dns, dns_port) = start_dns(dns_dir.path());
    let port = sink_port();
    let (children, sinks): (Vec<Reaped>, Vec<SinkCount>) = DOMAINS
        .iter()
        .map(|(_, ip)| sink::start_sink(&format!("{ip}:{port}")))
        .unzip();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut summary = Vec::new();
    for per_domain in counts {
        let (mut ratios, mut floors, mut of_floor) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=rounds {
            let s = sources(port, per_domain, &sinks, None);
            let floor_dir = tempfile::tempdir().unwrap();
            let b = sources(port, per_domain, &sinks, Some(floor_dir.path()));
            drop(floor_dir);
            let m = rt.block_on(muster_run(dns_port, port, per_domain, &sinks));
            let (source_rate, floor_rate, muster_rate) = (
                MESSAGES as f64 / s.as_secs_f64(),
                MESSAGES as f64 / b.as_secs_f64(),
                MESSAGES as f64 / m.as_secs_f64(),
            );
            println!(
                "{per_domain} per domain ({} sessions), round {round}: smtp-source {source_rate:.0} msg/s, the promise's floor {floor_rate:.0} msg/s (ratio {:.2}), Muster direct {muster_rate:.0} msg/s, ratio {:.2} ({:.2} of the floor)",
                per_domain * DOMAINS.len(),
                floor_rate / source_rate,
                muster_rate / source_rate,
                muster_rate / floor_rate
            );
            ratios.push(muster_rate / source_rate);
            floors.push(floor_rate / source_rate);
            of_floor.push(muster_rate / floor_rate);
        }
        summary.push(format!(
            "direct: {MESSAGES} messages to 3 domains, {per_domain} connection(s) per domain, per round (min / median / max of {rounds}): Muster / smtp-source {} (goal >= 0.8); the promise's floor / smtp-source {}; Muster / the floor {}",
            common::spread(&ratios, 2),
            common::spread(&floors, 2),
            common::spread(&of_floor, 2)
        ));
    }
    for line in summary {
        println!("{line}");
    }
    drop((children, dns));
}
