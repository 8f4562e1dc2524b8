//! Redemption throughput, next to bare argon2id hashing with the same
//! parameters in the same run (goal: ratio >= 0.9), and redemption with
//! 10,000 existing mailboxes next to none (goal: <= 1.2x the time).
//!
//! Run: `cargo bench --bench redeem`. Uses the passwd-file backend on a
//! real folder, so every redemption writes the passwd-file and the map.

use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher;
use muster::config::Config;
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, Muster, SystemClock};
use muster::store::Actor;

const REDEMPTIONS: usize = 120;
const THREADS: usize = 2;
const PASSWORD: &str = "plinth-ferry-quartz-77";

/// Runs `f(i)` for i in 0..n on THREADS threads; returns the wall time.
fn parallel(n: usize, f: Arc<dyn Fn(usize) + Send + Sync>) -> Duration {
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let f = f.clone();
            std::thread::spawn(move || {
                for i in (t..n).step_by(THREADS) {
                    f(i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    start.elapsed()
}

/// A Muster with `existing` mailboxes on the host and REDEMPTIONS invites;
/// returns it with the links' tokens.
fn setup(dir: &std::path::Path, existing: usize) -> (Arc<Muster>, Vec<String>) {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.domains[0].name = muster::domain::address::DomainName::parse("team.example").unwrap();
    config.domains[0].mailbox_cap = 100_000;
    let passwd = config.passwd_file();
    std::fs::create_dir_all(passwd.parent().unwrap()).unwrap();
    let lines: String = (0..existing)
        .map(|i| format!("existing{i}@team.example:{{ARGON2ID}}$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA:5000:5000::/var/vmail/team.example/existing{i}::\n"))
        .collect();
    std::fs::write(&passwd, lines).unwrap();
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
    let rate = |d: Duration| REDEMPTIONS as f64 / d.as_secs_f64();
    let (mut hash, mut none, mut big) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for round in 1..=3 {
        let h = hash_all();
        let r0 = redeem_all(0);
        let r10k = redeem_all(10_000);
        println!(
            "round {round}: argon2id {:.1}/s, redeem (no mailboxes) {:.1}/s, redeem (10,000 mailboxes) {:.1}/s",
            rate(h),
            rate(r0),
            rate(r10k)
        );
        hash = hash.min(h);
        none = none.min(r0);
        big = big.min(r10k);
    }
    println!(
        "redemption {:.1}/s vs bare argon2id {:.1}/s on {THREADS} threads: ratio {:.2} (goal >= 0.9)",
        rate(none),
        rate(hash),
        rate(none) / rate(hash)
    );
    println!(
        "redemption with 10,000 existing mailboxes takes {:.2}x the time of none (goal <= 1.2)",
        big.as_secs_f64() / none.as_secs_f64()
    );
}
