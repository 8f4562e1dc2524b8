//! Sending throughput: 20,000 invites, unthrottled, to Postfix's smtp-sink
//! on loopback, next to smtp-source sending as many 5 KB messages over the
//! same number of sessions (reusing each connection, as Muster does),
//! interleaved in each round. Both are timed at the sink: from the start
//! of the sender until smtp-sink has received the last message (its `-c`
//! counter, read as it prints). A round lasts about a second for each
//! sender (at 5,000 it lasted a quarter of one, closer to start-up than
//! to a steady rate). Goal: Muster >= 0.8 x smtp-source. Prints each
//! round's ratio, the CPU per message of each sender and of the sink
//! serving it, and min / median / max over the rounds.
//!
//! Run: `cargo bench --bench send [-- SESSIONS] [--rounds=N]` (default:
//! 1, 4, 16 and 64 sessions in turn, 5 rounds). Needs the postfix package
//! (smtp-sink, smtp-source). Muster's journal is a real file: at one
//! connection each message's final dot waits for the previous message's
//! verdict to be synced, so the disk's fsync rate bounds it; the bench
//! measures that rate in the same run and prints it. Each round also
//! times the restart promise's floor (see `common::floor`): a bare client
//! that keeps the same promise, each session syncing on its own (over one
//! session, the best any sender keeping the promise can do).

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::floor::Floor;
use common::sink::{self, SinkCount, cpu, free_port, process_cpu, smtp_source};
use muster::config::SmtpTls;
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, Muster, SystemClock};
use muster::store::Actor;

const MESSAGES: usize = 20_000;

async fn muster_run(port: u16, sessions: usize, sink: &SinkCount) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sink::sender_config(dir.path());
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
    let target = sink.now() + MESSAGES as u64;
    let start = Instant::now();
    let cpu_before = cpu(libc::RUSAGE_SELF);
    let worker = muster::mail::worker::spawn(muster.clone(), stop_rx).unwrap();
    let arrived = {
        let sink = sink.clone();
        tokio::task::spawn_blocking(move || sink.reached(target))
    };
    let elapsed = arrived.await.unwrap() - start;
    // The store records the last outcomes up to 0.1 s behind the sink.
    loop {
        if muster
            .store
            .read()
            .unwrap()
            .due_task_count(time::OffsetDateTime::now_utc())
            .unwrap()
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu_used = cpu(libc::RUSAGE_SELF) - cpu_before;
    let _ = stop_tx.send(true);
    worker.await.unwrap();
    let sent = muster.store.read().unwrap().counter("sends").unwrap() as usize;
    assert_eq!(sent, MESSAGES, "every invite sent");
    (elapsed, cpu_used)
}

/// Syncs per second on the disk the stores use, of the kind the delivery
/// journal makes: a line written in place in a zero-filled file.
fn fsync_rate() -> f64 {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("probe")).unwrap();
    f.write_all(&vec![0u8; 8 << 20]).unwrap();
    f.sync_all().unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(500) && n < 30_000 {
        f.write_all_at(&[b'x'; 256], n * 256).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // One session count from the command line, or a sweep: with few
    // sessions Muster waits on its durable commits (one unrecorded message
    // per connection at most), with more it is bound by CPU.
    let counts: Vec<usize> = match std::env::args().skip(1).find_map(|a| a.parse().ok()) {
        Some(n) => vec![n],
        None => vec![1, 4, 16, 64],
    };
    let rounds = common::rounds(5);
    if !sink::installed() {
        eprintln!("smtp-sink is not installed (apt package postfix); skipping");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let (sink, received) = sink::start_sink(&address);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut summary = Vec::new();
    for sessions in counts {
        let (mut ratios, mut floors, mut of_floor, mut fsyncs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 1..=rounds {
            let children = cpu(libc::RUSAGE_CHILDREN);
            let sink_before = process_cpu(sink.id());
            let s = smtp_source(&address, sessions, MESSAGES, &received);
            let source_cpu = cpu(libc::RUSAGE_CHILDREN) - children;
            let sink_for_source = process_cpu(sink.id()) - sink_before;
            let floor_dir = tempfile::tempdir().unwrap();
            let floor = Floor::ready(&address, sessions, MESSAGES, floor_dir.path());
            let floor_before = cpu(libc::RUSAGE_SELF);
            let b = floor.run(&received);
            let floor_cpu = cpu(libc::RUSAGE_SELF) - floor_before;
            drop(floor_dir);
            let sink_before = process_cpu(sink.id());
            let (m, muster_cpu) = rt.block_on(muster_run(port, sessions, &received));
            let sink_for_muster = process_cpu(sink.id()) - sink_before;
            let per_message = |d: Duration| d.as_secs_f64() * 1e6 / MESSAGES as f64;
            let f = fsync_rate();
            let (source_rate, floor_rate, muster_rate) = (
                MESSAGES as f64 / s.as_secs_f64(),
                MESSAGES as f64 / b.as_secs_f64(),
                MESSAGES as f64 / m.as_secs_f64(),
            );
            println!(
                "{sessions} sessions, round {round}: smtp-source {source_rate:.0} msg/s, the promise's floor {floor_rate:.0} msg/s (ratio {:.2}), Muster {muster_rate:.0} msg/s, ratio {:.2} ({:.2} of the floor); CPU per message: smtp-source {:.0} us, the floor {:.0} us, Muster {:.0} us, smtp-sink {:.0} us receiving from smtp-source and {:.0} us from Muster; disk {f:.0} fsyncs/s",
                floor_rate / source_rate,
                muster_rate / source_rate,
                muster_rate / floor_rate,
                per_message(source_cpu),
                per_message(floor_cpu),
                per_message(muster_cpu),
                per_message(sink_for_source),
                per_message(sink_for_muster)
            );
            ratios.push(muster_rate / source_rate);
            floors.push(floor_rate / source_rate);
            of_floor.push(muster_rate / floor_rate);
            fsyncs.push(f);
        }
        summary.push(format!(
            "send {MESSAGES} messages over {sessions} sessions, per round (min / median / max of {rounds}): Muster / smtp-source {} (goal >= 0.8); the promise's floor / smtp-source {}; Muster / the floor {}; disk fsyncs/s {}",
            common::spread(&ratios, 2),
            common::spread(&floors, 2),
            common::spread(&of_floor, 2),
            common::spread(&fsyncs, 0)
        ));
    }
    for line in summary {
        println!("{line}");
    }
    drop(sink);
}
