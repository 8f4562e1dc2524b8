//! The operations over an in-memory store, a passwd-file host in a
//! temporary folder and a clock moved by hand: batches (R1, R4, R5,
//! idempotency), redemption (R7, R9) and the life cycle (R8, R10).

use std::sync::Arc;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::domain::roster::InviteRow;
use crate::domain::token::LinkKey;
use crate::store::KeyState;

const T0: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);
const PASSWORD: &str = "plinth-ferry-quartz-77";

struct Fixture {
    muster: Muster,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn fixture(tweak: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        storage_pool_mb: 1000,
        ..Config::default()
    };
    config.domains[0].mailbox_cap = 10;
    tweak(&mut config);
    let config = Arc::new(config);
    let clock = Arc::new(ManualClock::new(T0));
    let muster = Muster::new(
        config.clone(),
        Store::in_memory().unwrap(),
        crate::provision::from_config(&config).unwrap(),
        clock.clone(),
        LinkKey::from_bytes([3; 32]),
    );
    Fixture {
        muster,
        clock,
        _dir: dir,
    }
}

fn rows(n: usize, prefix: &str) -> Vec<InviteRow> {
    (0..n)
        .map(|i| InviteRow::to(format!("{prefix}{i}@elsewhere.org")))
        .collect()
}

fn batch(n: usize, prefix: &str) -> BatchRequest {
    BatchRequest::new(rows(n, prefix), Actor::cli())
}

#[test]
fn a_batch_is_made_whole_or_not_at_all() {
    let f = fixture(|_| {});
    let mut flagged = rows(3, "a");
    flagged[1].recipient_email = "not an address".into();
    let err = f
        .muster
        .create_batch(BatchRequest::new(flagged.clone(), Actor::cli()))
        .unwrap_err();
    assert_eq!(err.code(), "flagged_items");
    assert_eq!(err.item_problems().unwrap()[0].index, 1);
    assert!(f.muster.view().unwrap().batches().unwrap().is_empty());
    // Only the clean rows, when asked.
    let made = f
        .muster
        .create_batch(BatchRequest {
            only_clean: true,
            ..BatchRequest::new(flagged, Actor::cli())
        })
        .unwrap();
    assert_eq!(made.invites.len(), 2);
    let view = f.muster.view().unwrap();
    // Each invite's email is due now, its first reminder later.
    assert_eq!(view.due_task_count(f.muster.now()).unwrap(), 2);
    assert_eq!(view.task_count().unwrap(), 4);
}

#[test]
fn the_operation_enforces_the_row_limits() {
    let f = fixture(|c| c.domains[0].mailbox_cap = 1000);
    let err = f.muster.create_batch(batch(501, "b")).unwrap_err();
    assert!(matches!(
        err,
        ServiceError::TooManyItems {
            count: 501,
            limit: 500
        }
    ));
    let err = f
        .muster
        .create_batch(BatchRequest {
            limit: RowLimit::Call,
            ..batch(101, "c")
        })
        .unwrap_err();
    assert!(matches!(
        err,
        ServiceError::TooManyItems {
            count: 101,
            limit: 100
        }
    ));
    assert!(
        f.muster
            .preview(None, &rows(101, "d"), RowLimit::Call)
            .is_err()
    );
    assert!(f.muster.create_batch(batch(500, "e")).is_ok());
}

#[test]
fn the_cap_counts_pending_invites_until_they_expire() {
    let f = fixture(|c| c.domains[0].mailbox_cap = 3);
    f.muster
        .create_batch(BatchRequest {
            expires_in: Some(crate::domain::duration::HumanDuration::parse("1d").unwrap()),
            ..batch(3, "p")
        })
        .unwrap();
    let err = f.muster.create_batch(batch(1, "q")).unwrap_err();
    let problems = err.item_problems().unwrap();
    assert_eq!(problems[0].code, "over_cap");
    // A day later the three no longer hold places.
    f.clock.advance(Duration::days(1));
    assert_eq!(f.muster.capacities().unwrap()[0].left(), 3);
    assert!(f.muster.create_batch(batch(1, "q")).is_ok());
}

#[test]
fn a_repeated_key_replays_and_another_request_with_it_is_refused() {
    let f = fixture(|_| {});
    let key = IdempotencyKey::new("admin:a@x.org", "k1", "hash-1");
    let first = f
        .muster
        .create_batch_keyed(batch(2, "k"), Some(&key))
        .unwrap();
    let Idempotent::Made(made) = first else {
        panic!("the first call makes the batch")
    };
    // Not answered yet (as after a crash): the replay names the batch.
    match f
        .muster
        .create_batch_keyed(batch(2, "k"), Some(&key))
        .unwrap()
    {
        Idempotent::Replayed(KeyState::Claimed { subject }) => assert_eq!(subject, made.batch.id),
        other => panic!("{other:?}"),
    }
    f.muster
        .keep_answer(&key, "{\"the\":\"answer\"}".into())
        .unwrap();
    match f
        .muster
        .create_batch_keyed(batch(2, "k"), Some(&key))
        .unwrap()
    {
        Idempotent::Replayed(KeyState::Answered { body }) => assert!(body.contains("answer")),
        other => panic!("{other:?}"),
    }
    let other = IdempotencyKey::new("admin:a@x.org", "k1", "hash-2");
    let err = f
        .muster
        .create_batch_keyed(batch(1, "z"), Some(&other))
        .unwrap_err();
    assert_eq!(err.code(), "idempotency_key_reused");
    assert_eq!(f.muster.view().unwrap().batches().unwrap().len(), 1);
}

#[test]
fn repeats_during_the_first_call_get_the_first_calls_answer() {
    let f = fixture(|_| {});
    let muster = &f.muster;
    let key = IdempotencyKey::new("admin:a@x.org", "k2", "hash-1");
    let answer = |muster: &Muster, release: Option<std::sync::mpsc::Receiver<()>>| {
        muster.answer_idempotent::<_, String, ServiceError>(
            Some(&key),
            || muster.create_batch_keyed(batch(2, "r"), Some(&key)),
            |made| {
                // The first call holds here, its batch made and claimed.
                if let Some(r) = release {
                    r.recv().unwrap();
                }
                let body = format!("answer for {}", made.batch.id);
                (body.clone(), body)
            },
            |state| match state {
                KeyState::Answered { body } => Ok(body.clone()),
                KeyState::Claimed { subject } => Ok(format!("rebuilt from {subject}")),
            },
        )
    };
    let (release, hold) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let first = s.spawn(|| answer(muster, Some(hold)));
        // Once the batch is claimed, a repeat comes in and waits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while muster.view().unwrap().batches().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the first call claims"
            );
            std::thread::yield_now();
        }
        // Two repeats, so one of them is still waiting when the other
        // takes its turn.
        let repeats = [
            s.spawn(|| answer(muster, None)),
            s.spawn(|| answer(muster, None)),
        ];
        while muster.in_flight.waiting() < 2 {
            assert!(std::time::Instant::now() < deadline, "the repeats wait");
            std::thread::yield_now();
        }
        release.send(()).unwrap();
        let first = first.join().unwrap().unwrap();
        assert!(first.starts_with("answer for "), "{first}");
        for repeat in repeats {
            let repeat = repeat.join().unwrap().unwrap();
            assert_eq!(repeat, first, "a repeat gets the first call's answer");
        }
    });
    assert_eq!(muster.view().unwrap().batches().unwrap().len(), 1);
}

#[test]
fn redeeming_creates_the_mailbox_once() {
    let f = fixture(|_| {});
    let made = f.muster.create_batch(batch(1, "r")).unwrap();
    let token = f.muster.invite_token(&made.invites[0]).unwrap();
    // A weak password changes nothing.
    assert!(matches!(
        f.muster
            .redeem(token.as_str(), "password1234", "password1234"),
        Err(RedeemError::Policy(_))
    ));
    let redeemed = f.muster.redeem(token.as_str(), PASSWORD, PASSWORD).unwrap();
    assert_eq!(redeemed.link, crate::domain::invite::LinkState::Redeemed);
    assert_eq!(redeemed.redeemed_at, Some(T0));
    assert!(f.muster.host_index().unwrap().contains("r0@example.org"));
    assert!(matches!(
        f.muster.redeem(token.as_str(), PASSWORD, PASSWORD),
        Err(RedeemError::AlreadyRedeemed)
    ));
    let passwd = std::fs::read_to_string(f.muster.config.passwd_file()).unwrap();
    assert_eq!(passwd.lines().count(), 1);
    assert!(!passwd.contains(PASSWORD));
}

#[test]
fn an_allocation_over_the_pool_blocks_and_the_link_stays() {
    let f = fixture(|_| {});
    let mut row = InviteRow::to("big@elsewhere.org");
    row.storage_allocation_mb = Some("600".into());
    let made = f
        .muster
        .create_batch(BatchRequest::new(vec![row], Actor::cli()))
        .unwrap();
    // The pool shrinks before the recipient redeems.
    let mut smaller = (*f.muster.config).clone();
    smaller.storage_pool_mb = 500;
    let m = Muster::new(
        Arc::new(smaller),
        f.muster.store.clone(),
        f.muster.host.clone(),
        f.clock.clone(),
        LinkKey::from_bytes([3; 32]),
    );
    let token = m.invite_token(&made.invites[0]).unwrap();
    assert!(matches!(
        m.redeem(token.as_str(), PASSWORD, PASSWORD),
        Err(RedeemError::PoolFull)
    ));
    assert!(matches!(
        m.link_status(token.as_str()).unwrap(),
        LinkStatus::Blocked(_)
    ));
    // With the original pool the same link works.
    assert!(f.muster.redeem(token.as_str(), PASSWORD, PASSWORD).is_ok());
}

#[test]
fn resend_revoke_and_expiry() {
    let f = fixture(|c| c.domains[0].mailbox_cap = 2);
    let made = f.muster.create_batch(batch(2, "l")).unwrap();
    let (a, b) = (&made.invites[0], &made.invites[1]);
    let old = f.muster.invite_token(a).unwrap();
    // A resend: a new token, the old one dead at once.
    f.muster.resend(&a.id, &Actor::cli()).unwrap();
    assert!(matches!(
        f.muster.link_status(old.as_str()).unwrap(),
        LinkStatus::Invalid
    ));
    let invite = f.muster.view().unwrap().invite(&a.id).unwrap().unwrap();
    let new = f.muster.invite_token(&invite).unwrap();
    assert!(matches!(
        f.muster.link_status(new.as_str()).unwrap(),
        LinkStatus::Live(_)
    ));
    // A revoke frees the place under the cap.
    assert_eq!(f.muster.capacities().unwrap()[0].left(), 0);
    f.muster.revoke(&b.id, &Actor::cli()).unwrap();
    assert_eq!(f.muster.capacities().unwrap()[0].left(), 1);
    // Past its expiry the link says so, and the sweep records it.
    f.clock.advance(Duration::days(31));
    assert!(matches!(
        f.muster.link_status(new.as_str()).unwrap(),
        LinkStatus::Expired(_)
    ));
    assert!(f.muster.request_new_link(new.as_str()).unwrap());
    assert_eq!(f.muster.sweep_expired().unwrap(), 1);
    let v = f.muster.get_invite(&a.id).unwrap();
    assert_eq!(v.link_state, "expired");
    assert!(v.new_link_requested_at.is_some());
}

/// R5 holds when an expired link is resent: it takes a place again only
/// if one is free, its mailbox was not made since, and no other invite
/// holds that mailbox; a bulk resend skips such an invite and says why.
#[test]
fn an_expired_invite_takes_a_place_again_only_if_it_may() {
    let f = fixture(|c| c.domains[0].mailbox_cap = 2);
    let made = f.muster.create_batch(batch(2, "l")).unwrap();
    let (a, b) = (made.invites[0].id.clone(), made.invites[1].id.clone());
    f.clock.advance(Duration::days(31));
    assert_eq!(f.muster.capacities().unwrap()[0].left(), 2);
    // Meanwhile l0 is invited again, and another person takes the last place.
    let again = f
        .muster
        .create_batch(BatchRequest::new(
            vec![
                InviteRow::to("l0@elsewhere.org"),
                InviteRow::to("x0@elsewhere.org"),
            ],
            Actor::cli(),
        ))
        .unwrap();
    let said = |r: Result<InviteView, ServiceError>| {
        let e = r.unwrap_err();
        assert_eq!(e.code(), "cannot_reopen", "{e}");
        e.to_string()
    };
    assert!(
        said(f.muster.resend(&a, &Actor::cli()))
            .contains("another invite for l0@example.org is pending")
    );
    assert!(
        said(f.muster.resend(&b, &Actor::cli())).contains("no place is left for l1@example.org")
    );
    assert_eq!(f.muster.capacities().unwrap()[0].left(), 0, "nothing taken");
    f.muster
        .revoke(&again.invites[1].id, &Actor::cli())
        .unwrap();
    f.muster.resend(&b, &Actor::cli()).unwrap();
    assert_eq!(f.muster.capacities().unwrap()[0].left(), 0);
    // The new l0 invite is redeemed: the old one's mailbox exists now.
    let l0 = f
        .muster
        .view()
        .unwrap()
        .invite(&again.invites[0].id)
        .unwrap()
        .unwrap();
    let token = f.muster.invite_token(&l0).unwrap();
    f.muster.redeem(token.as_str(), PASSWORD, PASSWORD).unwrap();
    assert!(
        said(f.muster.resend(&a, &Actor::cli()))
            .contains("the mailbox l0@example.org exists on the mail server now")
    );
    let bulk = f
        .muster
        .resend_pending(
            crate::domain::duration::HumanDuration::parse("7d").unwrap(),
            None,
            None,
            &Actor::cli(),
        )
        .unwrap();
    assert!(bulk.resent.is_empty());
    assert_eq!(bulk.skipped.len(), 1, "{:?}", bulk.skipped);
    assert_eq!(bulk.skipped[0].0, a);
    assert!(bulk.skipped[0].1.contains("exists on the mail server now"));
}

#[test]
fn an_invite_the_sweep_marked_expired_can_be_resent() {
    let f = fixture(|_| {});
    let made = f.muster.create_batch(batch(1, "late")).unwrap();
    let id = &made.invites[0].id;
    f.clock.advance(Duration::days(31));
    assert_eq!(f.muster.sweep_expired().unwrap(), 1);
    assert_eq!(f.muster.get_invite(id).unwrap().link_state, "expired");
    let resent = f.muster.resend(id, &Actor::cli()).unwrap();
    assert_eq!(resent.link_state, "live");
    assert_eq!(f.muster.capacities().unwrap()[0].left(), 9);
}

#[test]
fn an_invite_out_with_a_connection_shows_as_sending() {
    let f = fixture(|_| {});
    let made = f.muster.create_batch(batch(1, "s")).unwrap();
    let id = &made.invites[0].id;
    assert_eq!(f.muster.get_invite(id).unwrap().delivery_state, "queued");
    f.muster
        .queue
        .hand_out(|_, _| ((), vec![(0, crate::store::Task::invite_task_id(id))]));
    assert_eq!(f.muster.get_invite(id).unwrap().delivery_state, "sending");
    f.muster
        .queue
        .recorded([crate::store::Task::invite_task_id(id).as_str()]);
    assert_eq!(f.muster.get_invite(id).unwrap().delivery_state, "queued");
}

/// A revoke marks "not sent" only an email no connection holds; one held
/// is left to its connection, and whoever lets it go settles it (here the
/// recorder, after a retry's commit), or the next start does.
#[test]
fn a_revoked_invites_email_is_settled_by_whoever_holds_it_last() {
    use crate::store::Task;
    let f = fixture(|_| {});
    let made = f.muster.create_batch(batch(2, "rv")).unwrap();
    let (free, held) = (&made.invites[0].id, &made.invites[1].id);
    let free_view = f.muster.revoke(free, &Actor::cli()).unwrap();
    assert_eq!(
        (
            free_view.delivery_state,
            free_view.delivery_detail.as_deref()
        ),
        ("withdrawn", Some("not sent: the invite was revoked"))
    );

    let task = Task::invite_task_id(held);
    f.muster
        .queue
        .hand_out(|_, _| ((), vec![(0, task.clone())]));
    let held_view = f.muster.revoke(held, &Actor::cli()).unwrap();
    assert_eq!(
        held_view.delivery_state, "sending",
        "left to its connection"
    );
    let unsettled = f.muster.store.read().unwrap().revoked_unsettled().unwrap();
    assert_eq!(unsettled, vec![held.clone()], "what a start would settle");
    // The connection's outcome was a retry: recorded, it hands the task back.
    assert_eq!(f.muster.queue.recorded([task.as_str()]), vec![task.clone()]);
    f.muster.settle_unsent(std::slice::from_ref(held)).unwrap();
    let settled = f.muster.get_invite(held).unwrap();
    assert_eq!(
        (settled.delivery_state, settled.delivery_detail.as_deref()),
        ("withdrawn", Some("not sent: the invite was revoked"))
    );
    assert!(
        f.muster
            .store
            .read()
            .unwrap()
            .revoked_unsettled()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_link_made_with_another_key_is_a_conflict_that_says_to_resend() {
    let f = fixture(|_| {});
    let created = f.muster.create_batch(batch(1, "key")).unwrap();
    let id = &created.invites[0].id;
    let other = Muster::new(
        f.muster.config.clone(),
        f.muster.store.clone(),
        f.muster.host.clone(),
        f.clock.clone(),
        LinkKey::from_bytes([4; 32]),
    );
    let err = other.current_link(id, &Actor::cli()).unwrap_err();
    assert_eq!(err.code(), "link_key_changed");
    assert_eq!(err.kind(), codes::ErrorKind::Conflict);
    assert!(
        err.to_string().contains("resend it for a new link"),
        "{err}"
    );
    // Resent, the invite has a link from the key in use.
    other.resend(id, &Actor::cli()).unwrap();
    assert!(other.current_link(id, &Actor::cli()).is_ok());
}
