//! What a delivery outcome changes in the store: the invite's delivery
//! state, the queue (a retry, or the task done), counters, the audit
//! trail, and for a reminder the next one. Applied by the recorder's store
//! stage, and at start-up for what the journal held.

use rand::Rng;

use super::recorder::Done;
use crate::domain::delivery::{self, Next, RetryPolicy};
use crate::domain::invite::{Delivery, LinkState};
use crate::domain::reminders::ReminderPlan;
use crate::domain::webhook::EventKind;
use crate::service::Muster;
use crate::service::queue::Recorded;
use crate::store::{Actor, NoticeEvent, StoreError, Task, TaskKind, WriteView};

/// Applies one outcome: the invite's delivery state, the queue, counters
/// and the audit trail. Returns the invite's new state, if it has one.
pub(super) fn record(
    muster: &Muster,
    w: &WriteView,
    d: &Done,
) -> Result<Option<Recorded>, StoreError> {
    let now = muster.now();
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
        return Ok(None);
    }
    let revoked = invite
        .as_ref()
        .is_some_and(|i| i.link == LinkState::Revoked);
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
            Delivery::Deferred {
                next_attempt_at: at,
                last_error: error,
            }
        }
        Next::Failed { reply } => {
            w.remove_task(&task.id)?;
            w.bump("send_failures", 1)?;
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

/// After a reminder went out: queues the invite's next one, if its plan
/// has one still ahead (one missed while Muster was down is not sent late
/// back to back with this one).
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
    if invite.generation != *generation || invite.link_state(now) != LinkState::Live {
        return Ok(());
    }
    let Some(batch) = w.batch(&invite.batch_id)? else {
        return Ok(());
    };
    let plan = ReminderPlan::stored(&batch.reminders);
    let issued = invite.expires_at - batch.link_life();
    if let Some((number, at)) = plan.next_after(now, issued, invite.expires_at) {
        w.put_task(&Task::reminder(invite_id, *generation, number, at), at)?;
    }
    Ok(())
}
