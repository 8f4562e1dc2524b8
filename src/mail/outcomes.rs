//! What a delivery outcome changes in the store: the invite's delivery
//! state, the queue (a retry, or the task done), counters, the audit
//! trail, and for a reminder the next one. Applied by the recorder's store
//! stage, and at start-up for what the journal held.

use rand::Rng;

use super::recorder::Done;
use crate::domain::delivery::{self, Next, Outcome, RetryPolicy};
use crate::domain::invite::{Delivery, LinkState};
use crate::domain::reminders::ReminderPlan;
use crate::domain::webhook::EventKind;
use crate::service::Muster;
use crate::service::queue::Recorded;
use crate::store::{Actor, NoticeEvent, StoreError, Task, TaskKind, WriteView};

/// A delivery that met trouble, in the log at the default level: a relay
/// down or a full disk must show without opening the pending list. Once
/// per reason a minute, with how many more met it, so a batch of 500
/// behind one dead relay is a line, not 500.
fn trouble_in_the_log(what: &str, reason: &str) {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    static LAST: Mutex<Option<(String, Instant, u64)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    // A relay's reply names the recipient or a queue id: emails meeting
    // the same kind of trouble ("unknown recipient", "relay host:port")
    // are counted together.
    let kind = reason.split_once(": ").map_or(reason, |(kind, _)| kind);
    let key = format!("{what}: {kind}");
    match &mut *last {
        Some((said, at, more)) if *said == key && at.elapsed() < Duration::from_secs(60) => {
            *more += 1;
        }
        slot => {
            if let Some((said, _, more)) = slot.as_ref()
                && *more > 0
            {
                tracing::warn!("{more} more emails since were {said}");
            }
            tracing::warn!(reason, "an email was {what}");
            *slot = Some((key, Instant::now(), 0));
        }
    }
}

/// Applies one outcome: the invite's delivery state, the queue, counters
/// and the audit trail. Returns the invite's new state, if it has one.
pub(super) fn record(
    muster: &Muster,
    w: &WriteView,
    d: &Done,
) -> Result<Option<Recorded>, StoreError> {
    let now = muster.now();
    // Replaced while it was out (a resend queued the new link's email or
    // reminder under the same id): this outcome is the old one's, and the
    // new task stays as it is.
    if let Some(stored) = w.task(&d.task.id)?
        && stored != d.task
    {
        let _ = remove_dead_file(d);
        return Ok(None);
    }
    let mut task = d.task.clone();
    task.attempts += 1;
    let invite = match &task.kind {
        TaskKind::Invite { invite_id } => w.invite(invite_id)?,
        TaskKind::Reminder { .. }
        | TaskKind::Notice { .. }
        | TaskKind::Digest { .. }
        | TaskKind::PasswordReset { .. }
        | TaskKind::Welcome { .. } => None,
    };
    // A resend during sending made a new generation with its own task.
    if let (Some(i), Some(generation)) = (&invite, d.generation)
        && i.generation != generation
    {
        let _ = remove_dead_file(d);
        return Ok(None);
    }
    let revoked = invite
        .as_ref()
        .is_some_and(|i| i.link == LinkState::Revoked);
    // A reminder written while its link died: the file goes (the outcome
    // is recorded as usual; reminders leave the invite's state alone).
    if let TaskKind::Reminder {
        invite_id,
        generation,
        ..
    } = &task.kind
        && matches!(d.outcome, Outcome::Written(_))
        && w.invite(invite_id)?.is_none_or(|i| {
            matches!(i.link, LinkState::Revoked | LinkState::Redeemed)
                || i.generation != *generation
        })
    {
        let _ = remove_dead_file(d);
    }
    // Written while the link was used (a copied link): its use cleared
    // the outbox before this file was there.
    if matches!(d.outcome, Outcome::Written(_))
        && invite
            .as_ref()
            .is_some_and(|i| i.link == LinkState::Redeemed)
    {
        let _ = remove_dead_file(d);
    }
    // Written while a revoke came: the file goes (the revoke's clearing
    // may have run before it was there), as the revoke's clearing says.
    if let (true, Outcome::Written(file)) = (revoked, &d.outcome) {
        let removed = remove_dead_file(d);
        w.remove_task(&task.id)?;
        let Some(old) = invite.filter(|i| !i.delivery.is_final()) else {
            return Ok(None);
        };
        let mut new = old.clone();
        // Still there: said so, and the next start tries again.
        new.delivery = if removed {
            Delivery::withdrawn(now, true)
        } else {
            Delivery::InOutbox {
                at: now,
                file: file.clone(),
            }
        };
        w.put_invite(Some(&old), &new)?;
        return Ok(Some(Recorded {
            invite_id: new.id.clone(),
            state: new.delivery.name(),
        }));
    }
    let (subject, action) = match &task.kind {
        TaskKind::Invite { invite_id } => (invite_id.clone(), "invite"),
        TaskKind::Reminder { invite_id, .. } => (invite_id.clone(), "invite.reminder"),
        TaskKind::Notice { to, .. } => (to.clone(), "notice"),
        TaskKind::Digest { to, .. } => (to.clone(), "digest"),
        TaskKind::PasswordReset { email, .. } => (email.clone(), "admin.reset_email"),
        TaskKind::Welcome { mailbox, .. } => (mailbox.clone(), "mailbox.welcome"),
    };
    let smtp = &muster.config.smtp;
    let policy = RetryPolicy {
        initial: time::Duration::seconds(smtp.retry_initial_secs as i64),
        max: time::Duration::seconds(smtp.retry_max_secs as i64),
        give_up_after: smtp.give_up_after.to_time(),
    };
    let jitter = rand::rng().random_range(0.75..1.25);
    let mut next = delivery::next(
        &d.outcome,
        task.attempts,
        task.queued_at,
        now,
        jitter,
        &policy,
        revoked,
    );
    if matches!(task.kind, TaskKind::Welcome { .. }) {
        next = delivery::for_new_mailbox(
            next,
            &d.outcome,
            task.attempts,
            task.queued_at,
            now,
            jitter,
            &policy,
        );
    }
    // Handed over (to a relay, or to the outbox): the task is done.
    let handed_over = |event: &str, detail: String| -> Result<(), StoreError> {
        w.remove_task(&task.id)?;
        w.bump("sends", 1)?;
        muster
            .metrics
            .observe_delivery((now - task.queued_at).as_seconds_f64());
        muster.audit(
            w,
            &Actor::system(),
            &format!("{action}.{event}"),
            &subject,
            detail,
        )
    };
    let delivery = match next {
        Next::Sent { reply } => {
            handed_over("send", format!("accepted: {reply}"))?;
            schedule_next_reminder(w, &task, now)?;
            Delivery::Sent { at: now, reply }
        }
        // Without a relay the file is all there is: said so, not "sent".
        Next::Written { file } => {
            handed_over("outbox", format!("written to the outbox: {file}"))?;
            schedule_next_reminder(w, &task, now)?;
            Delivery::InOutbox { at: now, file }
        }
        Next::Skipped { reason } => {
            w.remove_task(&task.id)?;
            // Not wanted now (the invite email still on its way, say)
            // need not mean never: the next one checks again.
            schedule_next_reminder(w, &task, now)?;
            muster.audit(
                w,
                &Actor::system(),
                &format!("{action}.skipped"),
                &subject,
                reason,
            )?;
            return Ok(None);
        }
        Next::Retry { at, error } => {
            w.put_task(&task, at)?;
            w.bump("send_deferrals", 1)?;
            trouble_in_the_log("deferred, to be tried again", &error);
            Delivery::Deferred {
                next_attempt_at: at,
                last_error: error,
            }
        }
        // A passing trouble that is not tried again only because the
        // invite was revoked meanwhile: nothing failed, it was withdrawn.
        Next::Failed { reply } if revoked && d.outcome.is_temporary() => {
            w.remove_task(&task.id)?;
            muster.audit(
                w,
                &Actor::system(),
                &format!("{action}.withdrawn"),
                &subject,
                format!("not tried again, the invite was revoked: {reply}"),
            )?;
            Delivery::withdrawn(now, false)
        }
        Next::Failed { reply } => {
            w.remove_task(&task.id)?;
            w.bump("send_failures", 1)?;
            trouble_in_the_log("failed for good", &reply);
            muster.audit(
                w,
                &Actor::system(),
                &format!("{action}.send_failed"),
                &subject,
                reply.clone(),
            )?;
            Delivery::Failed { at: now, reply }
        }
    };
    let Some(old) = invite else {
        return Ok(None);
    };
    let recorded = Recorded {
        invite_id: old.id.clone(),
        state: delivery.name(),
    };
    let mut new = old.clone();
    new.attempts = task.attempts;
    new.delivery = delivery;
    w.put_invite(Some(&old), &new)?;
    match new.delivery {
        // In the outbox is not on its way to anyone: no event.
        Delivery::Sent { .. } => muster.emit_invite(w, EventKind::InviteSent, &new)?,
        Delivery::Deferred { .. } => muster.emit_invite(w, EventKind::InviteDeferred, &new)?,
        Delivery::Failed { .. } if new.link != LinkState::Revoked => {
            muster.emit_invite(w, EventKind::InviteFailed, &new)?;
            muster.queue_notice(w, &new, NoticeEvent::Failed, now)?;
        }
        _ => {}
    }
    Ok(Some(recorded))
}

/// An invite's email or reminder written to the outbox after its link
/// died (a resend or a revoke came while it was being written): the file
/// goes, lest someone deliver a dead link. Other mail is left alone.
/// False when the file could not be removed (logged).
fn remove_dead_file(d: &Done) -> bool {
    let Outcome::Written(file) = &d.outcome else {
        return true;
    };
    if !matches!(
        d.task.kind,
        TaskKind::Invite { .. } | TaskKind::Reminder { .. }
    ) {
        return true;
    }
    super::outbox::remove_dead(std::path::Path::new(file))
}

/// After a reminder went out (or was not wanted at its turn): queues the
/// invite's next one, if its plan has one still ahead and the link is not
/// done with (one missed while Muster was down is not sent late back to
/// back with this one).
fn schedule_next_reminder(
    w: &WriteView,
    task: &Task,
    now: time::OffsetDateTime,
) -> Result<(), StoreError> {
    let TaskKind::Reminder {
        invite_id,
        generation,
        ..
    } = &task.kind
    else {
        return Ok(());
    };
    let Some(invite) = w.invite(invite_id)? else {
        return Ok(());
    };
    let over = matches!(
        invite.link_state(now),
        LinkState::Redeemed | LinkState::Revoked | LinkState::Expired
    );
    if invite.generation != *generation || over {
        return Ok(());
    }
    let Some(batch) = w.batch(&invite.batch_id)? else {
        return Ok(());
    };
    let plan = ReminderPlan::stored(&batch.reminders);
    let issued = batch.link_sent_at(&invite);
    if let Some((number, at)) = plan.next_after(now, issued, invite.expires_at) {
        w.put_task(&Task::reminder(invite_id, *generation, number, at), at)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::config::Config;
    use crate::domain::delivery::Outcome;
    use crate::domain::roster::InviteRow;
    use crate::domain::token::LinkKey;
    use crate::service::{BatchRequest, ManualClock};
    use crate::store::Store;

    const T0: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

    fn muster(dir: &std::path::Path) -> (Muster, Arc<ManualClock>) {
        let config = Arc::new(Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        });
        let clock = Arc::new(ManualClock::new(T0));
        let m = Muster::new(
            config.clone(),
            Store::in_memory().unwrap(),
            crate::provision::from_config(&config).unwrap(),
            clock.clone(),
            LinkKey::from_bytes([5; 32]),
        );
        (m, clock)
    }

    fn done(task: Task, outcome: Outcome) -> Done {
        Done {
            task,
            generation: None,
            outcome,
            ack: None,
            handoff: None,
        }
    }

    /// A reminder already out when the invite is resent: its outcome must
    /// not touch the new link's reminder, which replaced it in the queue.
    #[test]
    fn an_old_reminders_outcome_leaves_the_new_links_reminder_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (m, clock) = muster(dir.path());
        let made = m
            .create_batch(BatchRequest::new(
                vec![InviteRow::to("ann@elsewhere.org")],
                Actor::cli(),
            ))
            .unwrap();
        let id = made.invites[0].id.clone();
        let reminder_id = Task::reminder_task_id(&id);
        let old = m.store.read().unwrap().task(&reminder_id).unwrap().unwrap();
        clock.advance(Duration::days(15));
        m.resend(&id, &Actor::cli()).unwrap();
        let new = m.store.read().unwrap().task(&reminder_id).unwrap().unwrap();
        assert_ne!(old, new);
        for outcome in [
            Outcome::Accepted("250 ok".into()),
            Outcome::Refused(crate::domain::delivery::Reply {
                code: 451,
                enhanced: None,
                text: "later".into(),
            }),
        ] {
            m.store
                .write(|w| record(&m, w, &done(old.clone(), outcome.clone())))
                .unwrap();
            assert_eq!(
                m.store.read().unwrap().task(&reminder_id).unwrap(),
                Some(new.clone())
            );
        }
    }

    /// An invite's email written to the outbox while a revoke came, its
    /// reminder too, and a resend's old email written after the resend:
    /// the files go (their links are dead), and the revoked invite's email
    /// counts as not sent.
    #[test]
    fn an_email_written_after_its_link_died_leaves_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = muster(dir.path());
        let made = m
            .create_batch(BatchRequest::new(
                vec![
                    InviteRow::to("cy@elsewhere.org"),
                    InviteRow::to("di@elsewhere.org"),
                ],
                Actor::cli(),
            ))
            .unwrap();
        let (revoked, resent) = (&made.invites[0], &made.invites[1]);
        let task = |id: &str| {
            m.store
                .read()
                .unwrap()
                .task(&Task::invite_task_id(id))
                .unwrap()
                .unwrap()
        };
        let (revoked_task, resent_task) = (task(&revoked.id), task(&resent.id));
        let reminder = m
            .store
            .read()
            .unwrap()
            .task(&Task::reminder_task_id(&revoked.id))
            .unwrap()
            .unwrap();
        m.revoke(&revoked.id, &Actor::cli()).unwrap();
        m.resend(&resent.id, &Actor::cli()).unwrap();
        for (t, name) in [
            (revoked_task, "revoked.eml"),
            (resent_task, "resent.eml"),
            (reminder, "reminder.eml"),
        ] {
            let file = dir.path().join(name);
            std::fs::write(&file, "an email with a dead link").unwrap();
            let written = Done {
                generation: Some(0),
                ..done(t, Outcome::Written(file.display().to_string()))
            };
            m.store.write(|w| record(&m, w, &written)).unwrap();
            assert!(!file.exists(), "{name}");
        }
        let after = m.get_invite(&revoked.id).unwrap();
        assert_eq!(
            (after.delivery_state, after.delivery_detail.as_deref()),
            ("withdrawn", Some("not sent: the invite was revoked"))
        );
        assert_eq!(m.get_invite(&resent.id).unwrap().delivery_state, "queued");
    }

    /// A passing trouble met by an email whose invite was revoked meanwhile
    /// is not tried again: withdrawn, not failed, and no failure counted.
    #[test]
    fn a_revoked_invites_passing_trouble_is_withdrawn_not_failed() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = muster(dir.path());
        let made = m
            .create_batch(BatchRequest::new(
                vec![InviteRow::to("ev@elsewhere.org")],
                Actor::cli(),
            ))
            .unwrap();
        let id = &made.invites[0].id;
        let task = m
            .store
            .read()
            .unwrap()
            .task(&Task::invite_task_id(id))
            .unwrap()
            .unwrap();
        m.revoke(id, &Actor::cli()).unwrap();
        let lost = Done {
            generation: Some(0),
            ..done(
                task,
                Outcome::Trouble(crate::domain::delivery::Trouble::Connection(
                    "the connection was lost".into(),
                )),
            )
        };
        m.store.write(|w| record(&m, w, &lost)).unwrap();
        assert_eq!(m.get_invite(id).unwrap().delivery_state, "withdrawn");
        assert_eq!(m.store.read().unwrap().counter("send_failures").unwrap(), 0);
    }

    /// A reminder not wanted at its turn for a reason that passes (the
    /// invite email still on its way) keeps the next one coming.
    #[test]
    fn a_skipped_reminder_keeps_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let (m, clock) = muster(dir.path());
        let made = m
            .create_batch(BatchRequest::new(
                vec![InviteRow::to("bo@elsewhere.org")],
                Actor::cli(),
            ))
            .unwrap();
        let id = made.invites[0].id.clone();
        let reminder_id = Task::reminder_task_id(&id);
        let first = m.store.read().unwrap().task(&reminder_id).unwrap().unwrap();
        clock.advance(Duration::days(15) + Duration::minutes(1));
        let skipped = Outcome::Skipped("the invite email itself was not delivered".into());
        m.store
            .write(|w| record(&m, w, &done(first.clone(), skipped)))
            .unwrap();
        let next = m.store.read().unwrap().task(&reminder_id).unwrap().unwrap();
        assert!(
            matches!(next.kind, TaskKind::Reminder { number: 2, .. }),
            "{next:?}"
        );
        let due = m
            .store
            .read()
            .unwrap()
            .task_due(&reminder_id)
            .unwrap()
            .unwrap();
        assert_eq!(
            due,
            crate::store::millis(T0 + Duration::days(28)),
            "two days before the 30-day link expires"
        );
    }
}
