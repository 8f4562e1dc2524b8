//! Redemption throughput, next to bare argon2id hashing with the same
//! parameters and as many at once (goal: ratio >= 0.9), and redemption
//! with 10,000 and 100,000 existing mailboxes (passwd-file and Postfix map
//! of that size) next to none (goal: <= 1.2x the time). Each round runs all four side
//! by side; the bench prints each round's ratios and min / median / max.
//!
//! Run: `cargo bench --bench redeem [-- --rounds=N]` (default 5). Uses
//! the passwd-file backend on a real folder, so every redemption writes
//! and syncs the passwd-file and the map.

mod common;

use common::parallel;

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::PasswordHasher;
use muster::config::Config;
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, Muster, SystemClock};
use muster::store::Actor;

const REDEMPTIONS: usize = 120;
const THREADS: usize = 2;
const PASSWORD: &str = "plinth-ferry-quartz-77";

/// A Muster with `existing` mailboxes on the host and REDEMPTIONS invites;
/// returns it with the links' tokens.
fn setup(dir: &std::path::Path, existing: usize) -> (Arc<Muster>, Vec<String>) {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.domains[0].name = muster::domain::address::DomainName::parse("team.example").unwrap();
    config.domains[0].mailbox_cap = 200_000;
    // As many hashes at once as the bare baseline runs: the ratio is what
    // redemption adds to the hash, not the pool's default size.
    config.hashing.workers = THREADS;
    let passwd = config.passwd_file();
    std::fs::create_dir_all(passwd.parent().unwrap()).unwrap();
    let lines: String = (0..existing)
        .map(|i| format!("existing{i}@team.example:{{ARGON2ID}}$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA:5000:5000::/var/vmail/team.example/existing{i}::\n"))
        .collect();
    std::fs::write(&passwd, lines).unwrap();
    let map: String = (0..existing)
        .map(|i| format!("existing{i}@team.example OK\n"))
        .collect();
    let map_path = config.postfix_map();
    std::fs::create_dir_all(map_path.parent().unwrap()).unwrap();
    std::fs::write(map_path, map).unwrap();
    let muster = Arc::new(Muster::open(Arc::new(config), Arc::new(SystemClock)).unwrap());
    let rows = (0..REDEMPTIONS)
        .map(|i| InviteRow::to(format!("person{i}@elsewhere.org")))
        .collect();
    let created = muster
        .create_batch(BatchRequest::new(rows, Actor::cli()))
        .unwrap();
    let tokens = created
        .invites
        .iter()
        .map(|i| muster.invite_token(i).unwrap().as_str().to_string())
        .collect();
    (muster, tokens)
}

fn redeem_all(existing: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let (muster, tokens) = setup(dir.path(), existing);
    let tokens = Arc::new(tokens);
    let m = muster.clone();
    let elapsed = parallel(
        THREADS,
        REDEMPTIONS,
        Arc::new(move |i| {
            m.redeem(&tokens[i], PASSWORD, PASSWORD).unwrap();
        }),
    );
    assert_eq!(
        muster.store.read().unwrap().counter("redemptions").unwrap(),
        REDEMPTIONS as u64
    );
    elapsed
}

fn hash_all() -> Duration {
    parallel(
        THREADS,
        REDEMPTIONS,
        Arc::new(|_| {
            // Same parameters as Muster's {ARGON2ID} hashes.
            let h = argon2::Argon2::default()
                .hash_password(PASSWORD.as_bytes())
                .unwrap();
            std::hint::black_box(h);
        }),
    )
}

fn main() {
    let rounds = common::rounds(5);
    let rate = |d: Duration| REDEMPTIONS as f64 / d.as_secs_f64();
    let (mut vs_hash, mut at_10k, mut at_100k) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let h = hash_all();
        let r0 = redeem_all(0);
        let r10k = redeem_all(10_000);
        let r100k = redeem_all(100_000);
        println!(
            "round {round}: argon2id {:.1}/s, redeem at 0 lines {:.1}/s, 10,000 {:.1}/s, 100,000 {:.1}/s",
            rate(h),
            rate(r0),
            rate(r10k),
            rate(r100k)
        );
        vs_hash.push(rate(r0) / rate(h));
        at_10k.push(r10k.as_secs_f64() / r0.as_secs_f64());
        at_100k.push(r100k.as_secs_f64() / r0.as_secs_f64());
    }
    println!("over {rounds} rounds, min / median / max of each round's ratio:");
    println!(
        "redemption vs bare argon2id on {THREADS} threads: {} (goal >= 0.9)",
        common::spread(&vs_hash, 2)
    );
    println!(
        "time at 10,000 existing mailboxes vs none: {} (goal <= 1.2)",
        common::spread(&at_10k, 2)
    );
    println!(
        "time at 100,000 existing mailboxes vs none: {} (goal <= 1.2)",
        common::spread(&at_100k, 2)
    );
}
