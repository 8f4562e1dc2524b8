//! After a batch: listing invites, resend, revoke, copying a link, the
//! expiry sweep and recipients' requests for a new link (R8, R10).

use std::sync::{Arc, MutexGuard};

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::invite::{Delivery, Invite, LinkState};
use crate::domain::reminders::ReminderPlan;
use crate::domain::token::{LinkToken, TokenPurpose};
use crate::domain::webhook::EventKind;
use crate::store::view::{InviteFilter, InvitePage};
use crate::store::{Actor, Task, WriteView};

use super::{Muster, ServiceError, StoreOccupancy};
use crate::domain::preview::Occupancy as _;
use crate::provision::HostIndex;

/// See [`Muster::hold_for_reopening`].
pub(super) struct ReopenHold<'m>(Option<(MutexGuard<'m, ()>, Arc<HostIndex>)>);

impl ReopenHold<'_> {
    pub fn host(&self) -> Option<&HostIndex> {
        self.0.as_ref().map(|(_, host)| &**host)
    }
}

/// A link this close to its expiry is resent as an expired one (checked
/// against the cap), so it cannot expire between the look and the write.
const REOPEN_MARGIN: time::Duration = time::Duration::minutes(1);

/// An invite as the admin, the API and MCP see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InviteView {
    pub id: String,
    pub batch_id: String,
    pub recipient_email: String,
    pub mailbox: String,
    pub display_name: Option<String>,
    pub storage_allocation_mb: Option<u64>,
    /// live, redeeming, redeemed, revoked, expired or blocked.
    pub link_state: &'static str,
    /// queued, sending, sent (a relay accepted it), in_outbox (written to
    /// the outbox folder: no relay configured), deferred, failed or
    /// withdrawn (the invite was revoked before its email went).
    pub delivery_state: &'static str,
    /// The relay's reply for sent and failed; the last error when deferred;
    /// why it was withdrawn.
    pub delivery_detail: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub redeemed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub new_link_requested_at: Option<OffsetDateTime>,
    /// Why the last redemption could not create the mailbox.
    pub last_error: Option<String>,
    /// `setup` (an invite) or `password_reset`.
    pub purpose: &'static str,
}

impl InviteView {
    pub fn of(invite: &Invite, now: OffsetDateTime, sending: bool) -> Self {
        let (detail, next) = match &invite.delivery {
            Delivery::Sent { reply, .. }
            | Delivery::Failed { reply, .. }
            | Delivery::Withdrawn { reason: reply, .. } => (Some(reply.clone()), None),
            Delivery::InOutbox { file, .. } => (Some(file.clone()), None),
            Delivery::Deferred {
                next_attempt_at,
                last_error,
            } => (Some(last_error.clone()), Some(*next_attempt_at)),
            Delivery::Queued | Delivery::Sending => (None, None),
        };
        Self {
            id: invite.id.clone(),
            batch_id: invite.batch_id.clone(),
            recipient_email: invite.recipient_email.to_string(),
            mailbox: invite.mailbox.to_string(),
            display_name: invite.display_name.clone(),
            storage_allocation_mb: invite.storage_allocation_mb,
            link_state: invite.link_state(now).as_str(),
            delivery_state: if sending && !invite.delivery.is_final() {
                "sending"
            } else {
                invite.delivery.name()
            },
            delivery_detail: detail,
            next_attempt_at: next,
            attempts: invite.attempts,
            created_at: invite.created_at,
            expires_at: invite.expires_at,
            redeemed_at: invite.redeemed_at,
            new_link_requested_at: invite.new_link_requested_at,
            last_error: invite.last_error.clone(),
            purpose: invite.purpose.name(),
        }
    }
}

impl Muster {
    pub fn invite_view(&self, invite: &Invite) -> InviteView {
        InviteView::of(invite, self.now(), self.is_sending(&invite.id))
    }

    /// Whether the invite's email is on the wire right now.
    pub fn is_sending(&self, invite_id: &str) -> bool {
        self.queue
            .is_out(&crate::store::Task::invite_task_id(invite_id))
    }

    pub fn list_invites(
        &self,
        filter: &InviteFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<InviteView>, Option<String>), ServiceError> {
        if let Some(words) = filter.unknown_state() {
            return Err(ServiceError::UnknownState(words));
        }
        // A page's cursor is an invite's id (a ULID): anything else would
        // quietly start somewhere in the middle.
        if let Some(c) = cursor
            && (c.len() != 26
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()))
        {
            return Err(ServiceError::BadCursor(c.chars().take(40).collect()));
        }
        let InvitePage {
            invites,
            next_cursor,
        } = self
            .store
            .read()?
            .list_invites(filter, cursor, limit.clamp(1, 500), self.now())?;
        Ok((
            invites.iter().map(|i| self.invite_view(i)).collect(),
            next_cursor,
        ))
    }

    pub fn get_invite(&self, id: &str) -> Result<InviteView, ServiceError> {
        let invite = self
            .store
            .read()?
            .invite(id)?
            .ok_or_else(|| ServiceError::NoInvite(id.to_string()))?;
        Ok(self.invite_view(&invite))
    }

    pub fn batch_invites(
        &self,
        batch_id: &str,
    ) -> Result<(crate::store::Batch, Vec<InviteView>), ServiceError> {
        let view = self.store.read()?;
        let batch = view
            .batch(batch_id)?
            .ok_or_else(|| ServiceError::NoBatch(batch_id.to_string()))?;
        let invites = view.invites_of_batch(batch_id)?;
        Ok((batch, invites.iter().map(|i| self.invite_view(i)).collect()))
    }

    /// A fresh link and expiry; the old link dies in the same commit (R10).
    pub fn resend(&self, id: &str, actor: &Actor) -> Result<InviteView, ServiceError> {
        let old = self.store.read()?.invite(id)?;
        // An expired link takes a place again, as one that is about to:
        // stored expired by the sweep, or still stored live past its time.
        let hold = self.hold_for_reopening(
            old.iter()
                .filter(|i| {
                    matches!(
                        i.link,
                        LinkState::Live | LinkState::Blocked | LinkState::Expired
                    )
                })
                .map(|i| i.expires_at),
        )?;
        let invite = self.store.write(|w| {
            let old = w
                .invite(id)?
                .ok_or_else(|| ServiceError::NoInvite(id.to_string()))?;
            let batch = w.batch(&old.batch_id)?;
            self.resend_in(w, &old, batch.as_ref(), actor, hold.host())
        })?;
        self.after_resend(&invite);
        self.queue.wake();
        Ok(self.invite_view(&invite))
    }

    /// When any of the open links to be resent (their expiries) has
    /// expired, or is about to: such a link takes a place under the cap
    /// again, checked against the host, so the provisioning lock and the
    /// host's listing. Resends of live links take neither, so they never
    /// wait on the mail host.
    pub(super) fn hold_for_reopening(
        &self,
        expiries: impl IntoIterator<Item = OffsetDateTime>,
    ) -> Result<ReopenHold<'_>, ServiceError> {
        let soon = self.now() + REOPEN_MARGIN;
        if !expiries.into_iter().any(|expires_at| soon >= expires_at) {
            return Ok(ReopenHold(None));
        }
        let guard = self
            .provision_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Ok(ReopenHold(Some((guard, self.host_index()?))))
    }

    /// Resends `old` (of `batch`) inside a write; the caller calls
    /// [`Muster::after_resend`] once it is committed.
    pub(super) fn resend_in(
        &self,
        w: &WriteView,
        old: &Invite,
        batch: Option<&crate::store::Batch>,
        actor: &Actor,
        host: Option<&HostIndex>,
    ) -> Result<Invite, ServiceError> {
        let id = old.id.as_str();
        let window = batch
            .map(|b| b.expires_in_secs)
            .unwrap_or(self.config.default_expiry().as_secs());
        let now = self.now();
        if old.link_state(now) == LinkState::Expired {
            self.check_reopen(w, old, host, now)?;
        }
        let mut new = old.clone();
        let token = self.token(TokenPurpose::Invite, id, old.generation + 1);
        new.resend(
            now,
            now + time::Duration::seconds(window as i64),
            token.hash(),
        )?;
        w.put_invite(Some(old), &new)?;
        w.put_task(&Task::invite(id, now), now)?;
        // The old link's reminders die with it; the new link gets its own.
        let reminders = batch
            .map(|b| ReminderPlan::stored(&b.reminders))
            .unwrap_or_default();
        match reminders.next_after(now, now, new.expires_at) {
            Some((number, at)) => {
                w.put_task(&Task::reminder(id, new.generation, number, at), at)?
            }
            None => {
                w.remove_task(&Task::reminder_task_id(id))?;
            }
        }
        self.audit(
            w,
            actor,
            "invite.resend",
            id,
            format!("new link for {}", new.mailbox),
        )?;
        Ok(new)
    }

    /// Whether an expired invite may hold a place again: its mailbox not
    /// made since, no other invite open for it, and room under the cap
    /// (and the mail host's own limit).
    fn check_reopen(
        &self,
        w: &WriteView,
        old: &Invite,
        host: Option<&HostIndex>,
        now: time::OffsetDateTime,
    ) -> Result<(), ServiceError> {
        let mailbox = &old.mailbox;
        let Some(host) = host else {
            // It expired between the caller's look and this write.
            return Err(ServiceError::Reopen(format!(
                "the link for {mailbox} expired a moment ago; resend it again"
            )));
        };
        // As a preview sees the mailbox. This invite's own open entry, if
        // any, has expired, so a live one is another invite's.
        let occupancy = StoreOccupancy::new(w, host);
        let made = occupancy.mailbox_exists(mailbox);
        let other = occupancy
            .pending_invite_expiry(mailbox)
            .is_some_and(|expiry| expiry > now);
        occupancy.finish()?;
        if made {
            return Err(ServiceError::Reopen(format!(
                "the mailbox {mailbox} exists on the mail server now; revoke this invite instead"
            )));
        }
        if other {
            return Err(ServiceError::Reopen(format!(
                "another invite for {mailbox} is pending; resend or revoke that one instead"
            )));
        }
        let facts = self.capacity(w, host, mailbox.domain(), now)?;
        if facts.left() < 1 {
            return Err(ServiceError::Reopen(format!(
                "no place is left for {mailbox}: {}; revoke an invite to free one, then resend",
                facts.over_words(0)
            )));
        }
        Ok(())
    }

    /// After a resend's commit (`new` is the invite as resent): a
    /// connection holding the old link's email or reminder drops it, and
    /// the old link's files leave the outbox.
    pub(super) fn after_resend(&self, new: &Invite) {
        self.queue.withdraw(&Task::invite_task_id(&new.id));
        self.queue.withdraw(&Task::reminder_task_id(&new.id));
        self.clear_outbox(&new.id, new.generation.checked_sub(1));
    }

    /// After a commit that killed an invite's links up to `generation`: its
    /// emails and reminders in the outbox folder carry dead links, so they
    /// go, lest someone deliver them later. By name, as the worker writes
    /// them; a file already gone is fine. True when none is left.
    pub(super) fn clear_outbox(&self, id: &str, generation: Option<u32>) -> bool {
        let Some(generation) = generation else {
            return true;
        };
        use crate::mail::outbox::{invite_file, reminder_file, remove_dead};
        let dir = self.config.outbox_dir();
        let names = (0..=generation).flat_map(|g| {
            let reminders =
                (1..=crate::domain::reminders::MAX_REMINDERS).map(move |n| reminder_file(id, g, n));
            std::iter::once(invite_file(id, g)).chain(reminders)
        });
        let mut cleared = true;
        for name in names {
            cleared &= remove_dead(&dir.join(format!("{name}.eml")));
        }
        cleared
    }

    /// Kills the link and frees its place under the cap (R10). An email
    /// not yet sent is not sent.
    pub fn revoke(&self, id: &str, actor: &Actor) -> Result<InviteView, ServiceError> {
        let invite = self.store.write(|w| {
            let old = w
                .invite(id)?
                .ok_or_else(|| ServiceError::NoInvite(id.to_string()))?;
            let detail = format!("revoked {}", old.mailbox);
            self.revoke_in(w, &old, actor, detail)
        })?;
        let invite = self.after_revoke(invite);
        Ok(self.invite_view(&invite))
    }

    /// After a revoke's commit: a connection holding the email drops it
    /// (or has sent it already, and its outcome says so); an email no
    /// connection holds is marked not sent, since none can take it now
    /// (its task is gone). The invite's files leave the outbox. Returns
    /// the invite as it stands.
    /// The revoke stands whatever happens here: a failure to mark the
    /// email is logged, and the worker's next start marks it.
    pub(super) fn after_revoke(&self, invite: Invite) -> Invite {
        let held = self.queue.withdraw(&Task::invite_task_id(&invite.id));
        self.queue.withdraw(&Task::reminder_task_id(&invite.id));
        let cleared = self.clear_outbox(&invite.id, Some(invite.generation));
        let outboxed = matches!(invite.delivery, Delivery::InOutbox { .. });
        // An outbox file that could not be removed is still there: the
        // invite says so until a later start removes it.
        if held || (invite.delivery.is_final() && !outboxed) || (outboxed && !cleared) {
            return invite;
        }
        match self.settle_unsent(std::slice::from_ref(&invite.id)) {
            Ok(mut settled) => settled.pop().unwrap_or(invite),
            Err(e) => {
                tracing::error!(invite = %invite.id, error = %e, "cannot mark a revoked invite's email as not sent; the next start does");
                invite
            }
        }
    }

    /// Revoked invites whose email no connection holds and none will take
    /// (their task is gone) are marked not sent; the others are returned
    /// as they are. For a revoke, and for a connection or a stopping
    /// worker that dropped a revoked invite's email.
    pub fn settle_unsent(&self, invite_ids: &[String]) -> Result<Vec<Invite>, ServiceError> {
        let now = self.now();
        self.store.write(|w| -> Result<Vec<Invite>, ServiceError> {
            let mut settled = Vec::with_capacity(invite_ids.len());
            for id in invite_ids {
                let Some(old) = w.invite(id)? else {
                    continue;
                };
                // An email left in the outbox went with the revoke's
                // clearing: it was never on its way either.
                let outboxed = matches!(old.delivery, Delivery::InOutbox { .. });
                if old.link != LinkState::Revoked
                    || (old.delivery.is_final() && !outboxed)
                    || w.task(&Task::invite_task_id(id))?.is_some()
                    || (outboxed && !self.clear_outbox(id, Some(old.generation)))
                {
                    settled.push(old);
                    continue;
                }
                let mut new = old.clone();
                new.delivery = Delivery::withdrawn(now, outboxed);
                w.put_invite(Some(&old), &new)?;
                settled.push(new);
            }
            Ok(settled)
        })
    }

    /// Revokes `old` inside a write; the caller calls
    /// [`Muster::after_revoke`] once it is committed.
    pub(super) fn revoke_in(
        &self,
        w: &WriteView,
        old: &Invite,
        actor: &Actor,
        detail: String,
    ) -> Result<Invite, ServiceError> {
        let mut new = old.clone();
        let now = self.now();
        new.revoke(now)?;
        w.remove_task(&Task::reminder_task_id(&old.id))?;
        w.remove_task(&Task::invite_task_id(&old.id))?;
        w.put_invite(Some(old), &new)?;
        self.emit_invite(w, EventKind::InviteRevoked, &new)?;
        self.audit(w, actor, "invite.revoke", &old.id, detail)?;
        Ok(new)
    }

    /// The current link of an invite, for when the email is lost. Rebuilt
    /// from the link key; checked against the stored hash.
    pub fn current_link(&self, id: &str, actor: &Actor) -> Result<String, ServiceError> {
        let invite = self
            .store
            .read()?
            .invite(id)?
            .ok_or_else(|| ServiceError::NoInvite(id.to_string()))?;
        match invite.link_state(self.now()) {
            LinkState::Redeemed => {
                return Err(crate::domain::invite::TransitionError::Redeemed.into());
            }
            LinkState::Revoked => {
                return Err(crate::domain::invite::TransitionError::Revoked.into());
            }
            _ => {}
        }
        let token = self.invite_token(&invite)?;
        self.store.write(|w| {
            self.audit(
                w,
                actor,
                "invite.copy_link",
                id,
                format!("link of {} copied", invite.mailbox),
            )
        })?;
        Ok(self.invite_link(&token))
    }

    /// The token of the invite's current generation.
    pub fn invite_token(&self, invite: &Invite) -> Result<LinkToken, ServiceError> {
        let token = self.token(TokenPurpose::Invite, &invite.id, invite.generation);
        if !token.hash().matches(&invite.token_hash) {
            return Err(ServiceError::LinkKeyChanged);
        }
        Ok(token)
    }

    /// Drops expired sessions and one-time links, idempotency keys older
    /// than two days (they live at least 24 hours), and webhook deliveries
    /// finished over a week ago.
    pub fn purge_expired(&self) -> Result<(), ServiceError> {
        let now = self.now();
        self.store.write(|w| {
            w.purge(now, now - time::Duration::hours(48))?;
            w.prune_webhook_deliveries(now - time::Duration::days(7))
        })?;
        Ok(())
    }

    /// Marks invites past their expiry as expired, so they stop holding
    /// places (they already stop counting at expiry; this keeps indexes
    /// small), and tells webhooks (`invite.expired`).
    pub fn sweep_expired(&self) -> Result<usize, ServiceError> {
        let now = self.now();
        let mut swept = 0;
        for (domain, _) in self.config.hosted_domains() {
            swept += self.store.write(|w| -> Result<usize, ServiceError> {
                let ids = w.expired_open_invites(domain.as_str(), now, 1000)?;
                for id in &ids {
                    if let Some(old) = w.invite(id)? {
                        if old.link == LinkState::Redeeming {
                            continue;
                        }
                        let mut new = old.clone();
                        new.link = LinkState::Expired;
                        w.put_invite(Some(&old), &new)?;
                        self.emit_invite(w, EventKind::InviteExpired, &new)?;
                    }
                }
                Ok(ids.len())
            })?;
        }
        Ok(swept)
    }
}
