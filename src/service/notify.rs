//! Telling the inviter: who hears about a batch, the notices queued in the
//! same commit as the events they tell of (`notifications.mode = each`),
//! and the daily digest (`digest`), planned once a day at
//! `notifications.digest_hour` and read from the store when it goes out.

use time::{Duration, OffsetDateTime, Time};

use crate::config::NotificationMode;
use crate::domain::invite::{Delivery, EXPIRING_SOON, Invite, LinkState};
use crate::store::{ApiToken, Batch, NoticeEvent, StoreError, Task, View, WriteView};

use super::{Muster, ServiceError};

/// Each list in a digest names at most this many invites.
pub const DIGEST_LIST: usize = 20;

/// What a digest tells one admin about their batches.
#[derive(Debug, Clone, Default)]
pub struct Digest {
    /// Set up during the day the digest covers.
    pub redeemed: Vec<Invite>,
    /// Links still live.
    pub pending: Vec<Invite>,
    /// Of those, the ones expiring within a week.
    pub expiring: Vec<Invite>,
    /// Invite emails that could not be delivered, links not used or revoked.
    pub failed: Vec<Invite>,
}

impl Digest {
    /// Nothing happened and nothing waits: no digest is sent.
    pub fn is_empty(&self) -> bool {
        self.redeemed.is_empty() && self.pending.is_empty() && self.failed.is_empty()
    }
}

/// The token id in an actor `token:<name>:<id>`.
fn token_id(actor: &str) -> Option<&str> {
    actor
        .strip_prefix("token:")
        .and_then(|rest| rest.rsplit_once(':'))
        .map(|(_, id)| id)
}

impl Muster {
    /// Who hears about `batch`: `notifications.to`, else the admin who made
    /// it, or who made the API token it came through (`token` finds a
    /// token by id); nobody for the CLI.
    fn hears(
        &self,
        batch: &Batch,
        token: impl FnOnce(&str) -> Result<Option<ApiToken>, StoreError>,
    ) -> Result<Option<String>, StoreError> {
        if let Some(to) = &self.config.notifications.to {
            return Ok(Some(to.to_string()));
        }
        if let Some(admin) = batch.created_by.admin_email() {
            return Ok(Some(admin.to_string()));
        }
        Ok(match token_id(&batch.created_by.0) {
            Some(id) => token(id)?.and_then(|t| t.created_by.admin_email().map(str::to_string)),
            None => None,
        })
    }

    /// With `notifications.mode = each`: queues a notice of `event` about
    /// `invite` to whoever hears about its batch, in the caller's commit.
    pub(crate) fn queue_notice(
        &self,
        w: &WriteView,
        invite: &Invite,
        event: NoticeEvent,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if self.config.notifications.mode != NotificationMode::Each || !invite.purpose.is_setup() {
            return Ok(());
        }
        let Some(batch) = w.batch(&invite.batch_id)? else {
            return Ok(());
        };
        if let Some(to) = self.hears(&batch, |id| w.api_token(id))? {
            w.put_task(
                &Task::notice(&to, &invite.id, invite.generation, event, now),
                now,
            )?;
        }
        Ok(())
    }

    /// With `notifications.mode = digest`, once the day's digest hour has
    /// come: queues a digest for each admin with something to hear, once a
    /// day (the day planned is kept in the store, so a restart plans it
    /// neither twice nor never). Returns how many were queued.
    pub fn plan_digests(&self) -> Result<usize, ServiceError> {
        let n = &self.config.notifications;
        if n.mode != NotificationMode::Digest {
            return Ok(0);
        }
        let now = self.now();
        let hour = Time::from_hms(n.digest_hour, 0, 0).unwrap_or(Time::MIDNIGHT);
        let until = now.date().with_time(hour).assume_utc();
        if now < until {
            return Ok(0);
        }
        let day = u64::try_from(until.date().to_julian_day()).unwrap_or(0);
        let planned = self.store.write(|w| -> Result<usize, ServiceError> {
            let last = w.counter("digest_planned_day")?;
            if last >= day {
                return Ok(0);
            }
            w.bump("digest_planned_day", day - last)?;
            let batches = w.batches()?;
            let mut recipients = Vec::new();
            for batch in &batches {
                if let Some(to) = self.hears(batch, |id| w.api_token(id))?
                    && !recipients.contains(&to)
                {
                    recipients.push(to);
                }
            }
            let mut queued = 0;
            for to in recipients {
                let d = self.digest_from(
                    &batches,
                    &to,
                    until,
                    |id| w.api_token(id),
                    |b| w.invites_of_batch(b),
                )?;
                if !d.is_empty() {
                    w.put_task(&Task::digest(&to, until, now), now)?;
                    queued += 1;
                }
            }
            Ok(queued)
        })?;
        if planned > 0 {
            self.queue.wake();
            tracing::info!(digests = planned, "queued the daily digests");
        }
        Ok(planned)
    }

    /// What the digest to `to` for the day that ended at `until` says, as
    /// the store holds it now.
    pub fn digest(
        &self,
        view: &View,
        to: &str,
        until: OffsetDateTime,
    ) -> Result<Digest, StoreError> {
        self.digest_from(
            &view.batches()?,
            to,
            until,
            |id| view.api_token(id),
            |b| view.invites_of_batch(b),
        )
    }

    fn digest_from(
        &self,
        batches: &[Batch],
        to: &str,
        until: OffsetDateTime,
        token: impl Fn(&str) -> Result<Option<ApiToken>, StoreError>,
        invites_of: impl Fn(&str) -> Result<Vec<Invite>, StoreError>,
    ) -> Result<Digest, StoreError> {
        let mut invites = Vec::new();
        for b in batches {
            if self.hears(b, &token)?.as_deref() == Some(to) {
                invites.extend(invites_of(&b.id)?);
            }
        }
        Ok(digest_of(invites, until))
    }
}

/// Sorts a recipient's invites into the digest's lists, for the day that
/// ended at `until`.
pub fn digest_of(invites: Vec<Invite>, until: OffsetDateTime) -> Digest {
    let mut d = Digest::default();
    let since = until - Duration::days(1);
    for i in invites.into_iter().filter(|i| i.purpose.is_setup()) {
        let link = i.link_state(until);
        if link == LinkState::Redeemed && i.redeemed_at.is_some_and(|t| t > since && t <= until) {
            d.redeemed.push(i);
            continue;
        }
        if matches!(i.delivery, Delivery::Failed { .. })
            && !matches!(link, LinkState::Redeemed | LinkState::Revoked)
        {
            d.failed.push(i);
            continue;
        }
        if link == LinkState::Live {
            if i.expires_at - until <= EXPIRING_SOON {
                d.expiring.push(i.clone());
            }
            d.pending.push(i);
        }
    }
    d.redeemed.sort_by_key(|i| i.redeemed_at);
    d.expiring.sort_by_key(|i| i.expires_at);
    d
}
