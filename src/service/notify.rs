//! Telling the inviter: who hears about a batch, the notices queued in the
//! same commit as the events they tell of (`notifications.mode = each`),
//! and the daily digest (`digest`), planned once a day at
//! `notifications.digest_hour` and read from the store when it goes out.

use time::{Duration, OffsetDateTime, Time};

use crate::config::NotificationMode;
use crate::domain::invite::{Invite, LinkState};
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
    /// Of the pending, those whose recipient chose a password but whose
    /// mailbox could not be made.
    pub setup_failed: Vec<Invite>,
}

impl Digest {
    /// Nothing happened and nothing waits: no digest is sent.
    pub fn is_empty(&self) -> bool {
        self.redeemed.is_empty() && self.pending.is_empty() && self.failed.is_empty()
    }
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
        Ok(match batch.created_by.token_id() {
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
            w.put_task(&Task::notice(&to, invite, event, now), now)?;
        }
        Ok(())
    }

    /// With `notifications.mode = digest`, once the digest hour has come:
    /// queues a digest for each admin with something to hear, once per
    /// digest hour. The last one planned is kept in the store, so a
    /// restart plans none twice, and a digest hour missed while Muster was
    /// down is made up at the next start, covering everything since the
    /// last digest (at most a week). Returns how many were queued.
    pub fn plan_digests(&self) -> Result<usize, ServiceError> {
        let n = &self.config.notifications;
        if n.mode != NotificationMode::Digest {
            return Ok(0);
        }
        let now = self.now();
        let hour = Time::from_hms(n.digest_hour, 0, 0).unwrap_or(Time::MIDNIGHT);
        let today = now.date().with_time(hour).assume_utc();
        // The heavy part on a read view: the writer is not held meanwhile.
        let view = self.store.read()?;
        let last = view.counter(DIGEST_PLANNED)?;
        // The latest digest hour passed; before any digest was planned,
        // the first is today's (none for the days before Muster ran).
        let until = match (now < today, last) {
            (true, 0) => return Ok(0),
            (true, _) => today - Duration::days(1),
            (false, _) => today,
        };
        let until_ms = crate::store::millis(until);
        if last >= until_ms {
            return Ok(0);
        }
        let since = if last == 0 {
            until - Duration::days(1)
        } else {
            let last = OffsetDateTime::from_unix_timestamp_nanos(i128::from(last) * 1_000_000)
                .unwrap_or(until - Duration::days(1));
            last.max(until - Duration::days(7))
        };
        let batches = view.batches()?;
        let mut recipients = Vec::new();
        for batch in &batches {
            if let Some(to) = self.hears(batch, |id| view.api_token(id))?
                && !recipients.contains(&to)
            {
                recipients.push(to);
            }
        }
        let mut wanted = Vec::new();
        for to in recipients {
            let d = self.digest_from(
                &batches,
                &to,
                since,
                until,
                |id| view.api_token(id),
                |b| view.invites_of_batch(b),
            )?;
            if !d.is_empty() {
                wanted.push(to);
            }
        }
        drop(view);
        let planned = self.store.write(|w| -> Result<usize, ServiceError> {
            // Planned meanwhile (the upkeep and a caller at once): done.
            if w.counter(DIGEST_PLANNED)? >= until_ms {
                return Ok(0);
            }
            w.set_counter(DIGEST_PLANNED, until_ms)?;
            for to in &wanted {
                w.put_task(&Task::digest(to, since, until, now), now)?;
            }
            Ok(wanted.len())
        })?;
        if planned > 0 {
            self.queue.wake();
            tracing::info!(digests = planned, "queued the daily digests");
        }
        Ok(planned)
    }

    /// What the digest to `to` for the time from `since` to `until` says,
    /// as the store holds it now.
    pub fn digest(
        &self,
        view: &View,
        to: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Digest, StoreError> {
        self.digest_from(
            &view.batches()?,
            to,
            since,
            until,
            |id| view.api_token(id),
            |b| view.invites_of_batch(b),
        )
    }

    fn digest_from(
        &self,
        batches: &[Batch],
        to: &str,
        since: OffsetDateTime,
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
        Ok(digest_of(invites, since, until))
    }
}

/// The store's note of the last digest hour planned (ms since the epoch).
const DIGEST_PLANNED: &str = "digest_planned_until_ms";

/// Sorts a recipient's invites into the digest's lists, for the time from
/// `since` to `until`.
pub fn digest_of(invites: Vec<Invite>, since: OffsetDateTime, until: OffsetDateTime) -> Digest {
    let mut d = Digest::default();
    for i in invites.into_iter().filter(|i| i.purpose.is_setup()) {
        let link = i.link_state(until);
        if link == LinkState::Redeemed && i.redeemed_at.is_some_and(|t| t > since && t <= until) {
            d.redeemed.push(i);
            continue;
        }
        if i.undeliverable(until) {
            d.failed.push(i);
            continue;
        }
        if matches!(link, LinkState::Live | LinkState::Blocked) {
            if i.expiring_soon(until) {
                d.expiring.push(i.clone());
            }
            if i.setup_failed(until) {
                d.setup_failed.push(i.clone());
            }
            d.pending.push(i);
        }
    }
    d.redeemed.sort_by_key(|i| i.redeemed_at);
    d.expiring.sort_by_key(|i| i.expires_at);
    d
}
