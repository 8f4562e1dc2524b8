use time::{Duration, macros::datetime};

use super::*;
use crate::domain::address::{MailboxAddress, RecipientEmail};
use crate::domain::invite::{Delivery, Invite, InvitePurpose, LinkState};

const T0: time::OffsetDateTime = datetime!(2026-11-30 12:00 UTC);

fn invite(id: &str, mailbox: &str, expires_in_days: i64) -> Invite {
    Invite {
        id: id.into(),
        batch_id: "b1".into(),
        recipient_email: RecipientEmail::parse(&format!("{id}@elsewhere.org")).unwrap(),
        mailbox: MailboxAddress::parse(mailbox).unwrap(),
        storage_allocation_mb: None,
        display_name: None,
        locale: None,
        generation: 0,
        token_hash: crate::domain::token::TokenHash([id.len() as u8; 32]),
        created_at: T0,
        expires_at: T0 + Duration::days(expires_in_days),
        link: LinkState::Live,
        delivery: Delivery::Queued,
        attempts: 0,
        redeemed_at: None,
        last_error: None,
        new_link_requested_at: None,
        purpose: InvitePurpose::Setup,
    }
}

#[test]
fn pending_count_follows_state_and_expiry() {
    let store = Store::in_memory().unwrap();
    let a = invite("a", "a@team.example", 30);
    let b = invite("bb", "b@team.example", 1);
    store
        .write(|w| -> Result<()> {
            w.put_invite(None, &a)?;
            w.put_invite(None, &b)
        })
        .unwrap();
    let r = store.read().unwrap();
    assert_eq!(r.pending_count("team.example", T0).unwrap(), 2);
    // b expires after a day and stops counting without any sweep.
    assert_eq!(
        r.pending_count("team.example", T0 + Duration::days(2))
            .unwrap(),
        1
    );
    assert_eq!(r.open_invite_for("a@team.example").unwrap().unwrap().0, "a");
    assert_eq!(r.invite_by_token(&a.token_hash.0).unwrap().unwrap().id, "a");
    drop(r);

    let mut revoked = a.clone();
    revoked.link = LinkState::Revoked;
    store.write(|w| w.put_invite(Some(&a), &revoked)).unwrap();
    let r = store.read().unwrap();
    assert_eq!(r.pending_count("team.example", T0).unwrap(), 1);
    assert!(r.open_invite_for("a@team.example").unwrap().is_none());
    assert!(r.invite_by_token(&a.token_hash.0).unwrap().is_none());
}

#[test]
fn a_failed_write_leaves_nothing() {
    let store = Store::in_memory().unwrap();
    let res: Result<(), StoreError> = store.write(|w| {
        w.put_invite(None, &invite("a", "a@team.example", 30))?;
        Err(StoreError::ReadOnly("test".into()))
    });
    assert!(res.is_err());
    assert_eq!(store.read().unwrap().invite_count().unwrap(), 0);
}

#[test]
fn tasks_come_out_in_due_order_and_are_replaced_by_id() {
    let store = Store::in_memory().unwrap();
    store
        .write(|w| -> Result<()> {
            w.put_task(&Task::invite("late", T0), T0 + Duration::minutes(5))?;
            w.put_task(&Task::invite("early", T0), T0)?;
            // Re-queueing replaces the earlier entry.
            w.put_task(&Task::invite("late", T0), T0 + Duration::minutes(1))
        })
        .unwrap();
    let r = store.read().unwrap();
    assert_eq!(r.task_count().unwrap(), 2);
    let due = r
        .due_tasks(T0 + Duration::minutes(2), 10, &|_| false)
        .unwrap();
    let ids: Vec<&str> = due.iter().map(|(_, t)| t.id.as_str()).collect();
    assert_eq!(ids, ["invite:early", "invite:late"]);
    assert_eq!(r.due_tasks(T0, 10, &|_| false).unwrap().len(), 1);
    let skipped = r
        .due_tasks(T0 + Duration::minutes(2), 10, &|id| id == "invite:early")
        .unwrap();
    assert_eq!(skipped[0].1.id, "invite:late");
}

#[test]
fn a_second_open_fails_at_once_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("muster.redb");
    let _first = Store::open(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
    assert!(err.to_string().contains("in use by another Muster process"));
    // Reading alongside the writer works.
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.read().unwrap().invite_count().unwrap(), 0);
}

#[test]
fn a_store_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("muster.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(tables::META)
            .unwrap()
            .insert(
                "schema_version",
                (SCHEMA_VERSION + 1).to_be_bytes().as_slice(),
            )
            .unwrap();
        w.commit().unwrap();
    }
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    assert!(err.to_string().contains("newer Muster"));
}

/// A version 1 store: the emails a revoke stopped were recorded failed.
/// Opened now, they read withdrawn; a real failure stays a failure.
#[test]
fn a_version_1_store_reads_revoked_unsent_emails_as_withdrawn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("muster.redb");
    let failed = |id: &str, link, reply: &str| Invite {
        link,
        delivery: Delivery::Failed {
            at: T0,
            reply: reply.into(),
        },
        ..invite(id, &format!("{id}@team.example"), 30)
    };
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(tables::META)
            .unwrap()
            .insert("schema_version", 1u32.to_be_bytes().as_slice())
            .unwrap();
        {
            let mut t = w.open_table(tables::INVITES).unwrap();
            for i in [
                failed("a", LinkState::Revoked, "not sent: the invite was revoked"),
                failed(
                    "b",
                    LinkState::Revoked,
                    "removed from the outbox: the invite was revoked",
                ),
                failed("c", LinkState::Revoked, "550 5.1.1 no such user"),
                failed("d", LinkState::Live, "not sent: the invite was revoked"),
            ] {
                t.insert(i.id.as_str(), encode(&i).as_slice()).unwrap();
            }
        }
        w.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let view = store.read().unwrap();
    let state = |id: &str| view.invite(id).unwrap().unwrap().delivery.name();
    assert_eq!(
        [state("a"), state("b"), state("c"), state("d")],
        ["withdrawn", "withdrawn", "failed", "failed"]
    );
    assert_eq!(view.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn backup_copies_a_consistent_snapshot() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Whatever the umask (022 in a shell), the store is its owner's alone.
    let path = dir.path().join("a.redb");
    let store = Store::open(&path).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    store
        .write(|w| w.put_invite(None, &invite("a", "a@team.example", 30)))
        .unwrap();
    let copy = dir.path().join("copy.redb");
    store.backup_to(&copy).unwrap();
    assert_eq!(mode(&copy), 0o600, "a backup holds the same secrets");
    let restored = Store::open(&copy).unwrap();
    assert_eq!(
        restored
            .read()
            .unwrap()
            .invite("a")
            .unwrap()
            .unwrap()
            .mailbox
            .to_string(),
        "a@team.example"
    );
    assert_eq!(
        restored
            .read()
            .unwrap()
            .pending_count("team.example", T0)
            .unwrap(),
        1
    );
}

/// A store an older Muster made lacks the tables added since: opened read-only
/// beside it (no writer to add them), a read finds nothing there and a backup
/// copies them as empty.
#[test]
fn tables_an_older_store_lacks_read_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(crate::store::tables::META).unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open_read_only(&path).unwrap();
    let view = store.read().unwrap();
    assert_eq!(view.mta_sts_policy("example.com").unwrap(), None);
    assert!(view.webhooks().unwrap().is_empty());
    assert_eq!(view.pending_webhook_count("hook").unwrap(), 0);
    assert_eq!(view.admin_count().unwrap(), 0);
    assert_eq!(view.invite("inv").unwrap(), None);
    assert_eq!(
        view.due_task_count(time::OffsetDateTime::now_utc())
            .unwrap(),
        0
    );
    assert!(view.audit(None, 10).unwrap().is_empty());
    drop(view);
    let copy = dir.path().join("backup.redb");
    store.backup_to(&copy).unwrap();
    let copied = Store::open(&copy).unwrap();
    assert_eq!(
        copied
            .read()
            .unwrap()
            .mta_sts_policy("example.com")
            .unwrap(),
        None
    );
}

#[test]
fn a_store_removed_under_muster_takes_no_more_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("muster.redb");
    let store = Store::open(&path).unwrap();
    assert!(!store.gone() && store.problem().is_none());
    std::fs::remove_file(&path).unwrap();
    assert!(store.gone());
    let err = store.write(|w| w.bump("redemptions", 1)).unwrap_err();
    assert!(matches!(err, StoreError::Gone(_)), "{err}");
    assert!(err.is_unavailable());
    let problem = store.problem().unwrap();
    assert!(
        problem.contains("was removed, or another file moved into its place, while Muster ran")
            && problem.contains("muster restore"),
        "{problem}"
    );
    // Another file in its place is not the one opened either.
    std::fs::write(&path, b"").unwrap();
    assert!(store.gone());
}

#[test]
fn a_damaged_store_is_named_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.redb");
    {
        let store = Store::open(&good).unwrap();
        for chunk in 0..20 {
            store
                .write(|w| {
                    for i in 0..200 {
                        w.bump(&format!("counter-{chunk}-{i}"), 1)?;
                    }
                    Ok::<_, StoreError>(())
                })
                .unwrap();
        }
    }
    let len = std::fs::metadata(&good).unwrap().len();
    let (mut damaged, mut named) = (0, 0);
    for offset in (4096..len).step_by(4096) {
        let path = dir.path().join("muster.redb");
        std::fs::copy(&good, &path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let end = (offset as usize + 16_384).min(bytes.len());
        for (i, b) in bytes[offset as usize..end].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(151).wrapping_add(7);
        }
        std::fs::write(&path, &bytes).unwrap();
        // Whatever the damage, an answer and no panic.
        if let Err(e) = Store::open(&path).and_then(|s| s.read().map(|_| ())) {
            damaged += 1;
            let words = e.to_string();
            assert!(words.contains(&path.display().to_string()), "{words}");
            if matches!(e, StoreError::Damaged(_)) {
                named += 1;
                assert!(words.contains("muster restore"), "{words}");
            }
        }
    }
    assert!(damaged > 0, "no damage was noticed in {len} bytes");
    assert!(named > 0, "no panic inside redb was named as damage");
}
