//! Preview of 500 rows against a store holding 100,000 existing mailboxes
//! and 100,000 pending invites, next to the same preview against an empty
//! store. Goal: at most 2x (work per row must not grow with the store).
//!
//! Each round times the two side by side (a burst of previews each); the
//! bench prints each round's ratio and min / median / max over the rounds.
//!
//! Run: `cargo bench --bench preview [-- --rounds=N]` (default 9).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use muster::config::Config;
use muster::domain::address::{MailboxAddress, RecipientEmail};
use muster::domain::invite::{Delivery, Invite, LinkState};
use muster::domain::roster::InviteRow;
use muster::domain::token::TokenHash;
use muster::provision::PasswdFileHost;
use muster::service::{Muster, SystemClock};
use muster::store::Store;

const DOMAIN: &str = "team.example";
const BIG: usize = 100_000;

fn muster(dir: &std::path::Path, populated: bool) -> Muster {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        storage_pool_mb: u64::MAX / 4,
        ..Config::default()
    };
    config.domains[0].name = muster::domain::address::DomainName::parse(DOMAIN).unwrap();
    config.domains[0].mailbox_cap = 1_000_000;
    let store = Store::in_memory().unwrap();
    let passwd = config.passwd_file();
    std::fs::create_dir_all(passwd.parent().unwrap()).unwrap();
    let mut text = String::new();
    if populated {
        for i in 0..BIG {
            text.push_str(&format!(
                "existing{i}@{DOMAIN}:{{PLAIN}}x:5000:5000::/h::userdb_quota_rule=*:storage=10M\n"
            ));
        }
        let now = time::OffsetDateTime::now_utc();
        store
            .write(|w| -> Result<(), muster::store::StoreError> {
                for i in 0..BIG {
                    let invite = Invite {
                        id: format!("inv{i:08}"),
                        batch_id: "b".into(),
                        recipient_email: RecipientEmail::parse(&format!("p{i}@else.org")).unwrap(),
                        mailbox: MailboxAddress::parse(&format!("pending{i}@{DOMAIN}")).unwrap(),
                        storage_allocation_mb: None,
                        display_name: None,
                        locale: None,
                        generation: 0,
                        token_hash: {
                            let mut h = [0u8; 32];
                            h[..8].copy_from_slice(&(i as u64).to_be_bytes());
                            TokenHash(h)
                        },
                        created_at: now,
                        expires_at: now + time::Duration::days(30),
                        link: LinkState::Live,
                        delivery: Delivery::Sent {
                            at: now,
                            reply: "250".into(),
                        },
                        attempts: 1,
                        redeemed_at: None,
                        last_error: None,
                        new_link_requested_at: None,
                        purpose: Default::default(),
                    };
                    w.put_invite(None, &invite)?;
                }
                Ok(())
            })
            .unwrap();
    }
    std::fs::write(&passwd, text).unwrap();
    let config = Arc::new(config);
    let host = Arc::new(PasswdFileHost::from_config(&config));
    let key = muster::domain::token::LinkKey::from_bytes([1; 32]);
    Muster::new(config, store, host, Arc::new(SystemClock), key)
}

fn rows() -> Vec<InviteRow> {
    (0..500)
        .map(|i| InviteRow {
            line: Some(i + 2),
            // Half collide with pending invites or existing mailboxes, so
            // every lookup path runs.
            recipient_email: match i % 4 {
                0 => format!("pending{i}@else.org"),
                1 => format!("existing{i}@else.org"),
                _ => format!("new.person{i}@else.org"),
            },
            storage_allocation_mb: (i % 3 == 0).then(|| "100".to_string()),
            ..InviteRow::default()
        })
        .collect()
}

/// The mean time of one preview over a burst of them.
fn time_previews(m: &Muster, rows: &[InviteRow]) -> Duration {
    const BURST: u32 = 200;
    let start = Instant::now();
    for _ in 0..BURST {
        std::hint::black_box(
            m.preview(Some(DOMAIN), rows, muster::service::RowLimit::Batch)
                .unwrap(),
        );
    }
    start.elapsed() / BURST
}

fn main() {
    let rounds = common::rounds(9);
    let rows = rows();
    let empty_dir = tempfile::tempdir().unwrap();
    let big_dir = tempfile::tempdir().unwrap();
    let empty = muster(empty_dir.path(), false);
    let big = muster(big_dir.path(), true);
    // Sanity: the big store is what it claims to be.
    let (_, p) = big
        .preview(Some(DOMAIN), &rows, muster::service::RowLimit::Batch)
        .unwrap();
    assert_eq!(p.capacity.existing, BIG as u64);
    assert_eq!(p.capacity.pending, BIG as u64);
    assert!(p.rows.iter().any(|r| !r.flags.is_empty()));
    // Warm both (caches, the host index).
    time_previews(&empty, &rows);
    time_previews(&big, &rows);

    let (mut ratios, mut empties, mut bigs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let e = time_previews(&empty, &rows);
        let b = time_previews(&big, &rows);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "round {round}: empty store {:.3} ms, 100k+100k store {:.3} ms, ratio {:.2}",
            ms(e),
            ms(b),
            b.as_secs_f64() / e.as_secs_f64()
        );
        ratios.push(b.as_secs_f64() / e.as_secs_f64());
        empties.push(ms(e));
        bigs.push(ms(b));
    }
    println!(
        "preview 500 rows, min / median / max of {rounds} rounds: empty store {} ms, 100k+100k store {} ms, ratio {} (goal <= 2.0)",
        common::spread(&empties, 3),
        common::spread(&bigs, 3),
        common::spread(&ratios, 2)
    );
}
