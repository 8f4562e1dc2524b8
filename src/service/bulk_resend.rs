//! "Resend every invite still pending after N days": which invites that
//! is (the preview), and resending them, each with the fresh-link resend
//! (R10), checked again as it goes.

use time::OffsetDateTime;

use crate::domain::duration::HumanDuration;
use crate::domain::invite::{Invite, LinkState};
use crate::store::{Actor, Batch};

use super::{InviteView, Muster, ServiceError};

/// Invites resent in one commit.
const RESENDS_PER_COMMIT: usize = 100;

/// The shortest wait a bulk resend takes.
pub const MIN_WAIT: HumanDuration = HumanDuration::from_secs(3_600);

/// An invite a bulk resend would send a fresh link to.
#[derive(Debug, Clone)]
pub struct ResendCandidate {
    pub invite: InviteView,
    /// When its current link went out.
    pub link_sent_at: OffsetDateTime,
}

/// What a bulk resend did.
#[derive(Debug, Clone, Default)]
pub struct BulkResend {
    pub resent: Vec<InviteView>,
    /// Invites asked for that were not resent, and why.
    pub skipped: Vec<(String, String)>,
}

/// Still waiting for its recipient (the link live or expired, not used,
/// revoked or blocked) since its link went out at least `wait` before
/// `now`; when so, the time it went out.
fn waiting(
    i: &Invite,
    batch: &Batch,
    wait: HumanDuration,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let sent = batch.link_sent_at(i);
    (i.purpose.is_setup()
        && matches!(i.link_state(now), LinkState::Live | LinkState::Expired)
        && sent <= now - wait.to_time())
    .then_some(sent)
}

impl Muster {
    fn check_wait(&self, wait: HumanDuration) -> Result<(), ServiceError> {
        if wait < MIN_WAIT {
            return Err(ServiceError::Wait(format!(
                "a wait of {wait} is too short: a bulk resend takes invites whose link went out at least {MIN_WAIT} ago"
            )));
        }
        Ok(())
    }

    /// The invites still pending whose link went out at least `wait` ago,
    /// in `batch_id` or in every batch; oldest link first.
    pub fn resend_candidates(
        &self,
        wait: HumanDuration,
        batch_id: Option<&str>,
    ) -> Result<Vec<ResendCandidate>, ServiceError> {
        self.check_wait(wait)?;
        let now = self.now();
        let view = self.store.read()?;
        let batches = match batch_id.filter(|b| !b.is_empty()) {
            Some(id) => vec![
                view.batch(id)?
                    .ok_or_else(|| ServiceError::NoBatch(id.to_string()))?,
            ],
            None => view.batches()?,
        };
        let mut out = Vec::new();
        for batch in &batches {
            for i in view.invites_of_batch(&batch.id)? {
                if let Some(sent) = waiting(&i, batch, wait, now) {
                    out.push(ResendCandidate {
                        invite: self.invite_view(&i),
                        link_sent_at: sent,
                    });
                }
            }
        }
        out.sort_by_key(|c| c.link_sent_at);
        Ok(out)
    }

    /// Resends every candidate, or of them only those in `only` (the ones
    /// a preview showed): each with its own fresh link, each checked again
    /// inside the transaction that resends it, so two bulk resends at once
    /// send one fresh link. Those asked for but no longer waiting are
    /// skipped, with why; a failure part way keeps what was done.
    pub fn resend_pending(
        &self,
        wait: HumanDuration,
        batch_id: Option<&str>,
        only: Option<&[String]>,
        actor: &Actor,
    ) -> Result<BulkResend, ServiceError> {
        let candidates = self.resend_candidates(wait, batch_id)?;
        let mut done = BulkResend::default();
        let gone = |wait: HumanDuration| {
            format!(
                "not waiting for {wait} any more (set up, revoked or resent since, or not in that batch)"
            )
        };
        let chosen: Vec<String> = match only {
            Some(ids) => {
                for id in ids {
                    if !candidates.iter().any(|c| &c.invite.id == id) {
                        done.skipped.push((id.clone(), gone(wait)));
                    }
                }
                candidates
                    .iter()
                    .filter(|c| ids.contains(&c.invite.id))
                    .map(|c| c.invite.id.clone())
                    .collect()
            }
            None => candidates.iter().map(|c| c.invite.id.clone()).collect(),
        };
        let hold = self.hold_for_reopening(
            candidates
                .iter()
                .filter(|c| chosen.contains(&c.invite.id))
                .map(|c| c.invite.expires_at),
        )?;
        for chunk in chosen.chunks(RESENDS_PER_COMMIT) {
            let outcome = self.store.write(|w| -> Result<_, ServiceError> {
                let now = self.now();
                let (mut resent, mut skipped) = (Vec::new(), Vec::new());
                for id in chunk {
                    let Some(old) = w.invite(id)? else {
                        skipped.push((id.clone(), gone(wait)));
                        continue;
                    };
                    let batch = w.batch(&old.batch_id)?;
                    if batch
                        .as_ref()
                        .and_then(|b| waiting(&old, b, wait, now))
                        .is_none()
                    {
                        skipped.push((id.clone(), gone(wait)));
                        continue;
                    }
                    match self.resend_in(w, &old, batch.as_ref(), actor, hold.host()) {
                        Ok(new) => resent.push(new),
                        Err(ServiceError::Reopen(why)) => skipped.push((id.clone(), why)),
                        Err(e) => return Err(e),
                    }
                }
                Ok((resent, skipped))
            });
            match outcome {
                Ok((resent, skipped)) => {
                    for i in &resent {
                        self.after_resend(i);
                    }
                    done.resent
                        .extend(resent.iter().map(|i| self.invite_view(i)));
                    done.skipped.extend(skipped);
                }
                Err(e) if done.resent.is_empty() => return Err(e),
                // What was resent stays resent; the rest is named.
                Err(e) => {
                    done.skipped
                        .extend(chunk.iter().map(|id| (id.clone(), e.public_message())));
                }
            }
        }
        self.queue.wake();
        if !done.resent.is_empty() {
            self.store.write(|w| {
                self.audit(
                    w,
                    actor,
                    "invite.bulk_resend",
                    batch_id.unwrap_or("all batches"),
                    format!(
                        "fresh links for {} invites still pending after {wait}",
                        done.resent.len()
                    ),
                )
            })?;
        }
        Ok(done)
    }
}
