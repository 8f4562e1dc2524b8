//! Previews and batch creation (R1–R6, R8): one write transaction holds
//! the batch, its invites and their delivery tasks, all or nothing.

use crate::domain::address::DomainName;
use crate::domain::duration::HumanDuration;
use crate::domain::invite::{Delivery, Invite, LinkState};
use crate::domain::preview::{InvitePreview, preview_invites};
use crate::domain::reminders::ReminderPlan;
use crate::domain::roster::{InviteRow, RosterFormat, parse_invite_roster};
use crate::domain::token::TokenPurpose;
use crate::domain::webhook::EventKind;
use crate::provision::HostIndex;
use crate::store::{Actor, Batch, Task, View};

use super::{Muster, Reads, ServiceError, StoreOccupancy};

/// Where a roster comes from.
#[derive(Debug, Clone)]
pub enum RosterInput {
    Rows(Vec<InviteRow>),
    Upload {
        bytes: Vec<u8>,
        format: RosterFormat,
    },
}

#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub domain: Option<String>,
    pub rows: Vec<InviteRow>,
    pub expires_in: Option<HumanDuration>,
    /// When the links are recalled to recipients who have not used them
    /// (`50%`, `48h`); `None` takes `invites.reminders`, an empty list none.
    pub reminders: Option<Vec<String>>,
    /// Send the clean rows and leave the flagged ones out (R4).
    pub only_clean: bool,
    pub actor: Actor,
    /// How many rows this caller may send at once (R1).
    pub limit: super::RowLimit,
}

impl BatchRequest {
    /// Every row, on the only hosted domain, with the default expiry and
    /// the batch limit; set the other fields with struct update syntax.
    pub fn new(rows: Vec<InviteRow>, actor: Actor) -> Self {
        Self {
            domain: None,
            rows,
            expires_in: None,
            reminders: None,
            only_clean: false,
            actor,
            limit: super::RowLimit::Batch,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CreatedBatch {
    pub batch: Batch,
    pub invites: Vec<Invite>,
    pub preview: InvitePreview,
}

impl Muster {
    /// Reads an upload or takes rows, refusing more than `limit` allows
    /// (R1) before anything else is looked at.
    pub fn roster(
        &self,
        input: RosterInput,
        limit: super::RowLimit,
    ) -> Result<Vec<InviteRow>, ServiceError> {
        let rows = match input {
            RosterInput::Rows(rows) => rows,
            RosterInput::Upload { bytes, format } => {
                parse_invite_roster(&bytes, format, self.row_limit(limit))?
            }
        };
        if rows.is_empty() {
            return Err(ServiceError::NoItems);
        }
        self.check_rows(rows.len(), limit)?;
        Ok(rows)
    }

    /// The link lifetime for a batch: the default, or a shorter one (R8).
    pub fn batch_expiry(
        &self,
        asked: Option<HumanDuration>,
    ) -> Result<HumanDuration, ServiceError> {
        let inv = &self.config.invites;
        let chosen = asked.unwrap_or(self.config.default_expiry());
        if chosen < crate::config::MIN_EXPIRY || chosen > inv.max_expiry {
            return Err(ServiceError::Expiry {
                asked: chosen.to_string(),
                max: inv.max_expiry.to_string(),
            });
        }
        Ok(chosen)
    }

    /// A batch's reminders: those asked for, each checked to fall inside
    /// the links' life `window`, or the configured defaults that do.
    pub fn reminder_plan(
        &self,
        asked: Option<&[String]>,
        window: HumanDuration,
    ) -> Result<ReminderPlan, ServiceError> {
        Ok(match asked {
            Some(items) => ReminderPlan::asked(items, window.to_time())?,
            None => ReminderPlan::defaults(&self.config.invites.reminders, window.to_time()),
        })
    }

    /// The preview of `rows` for a domain, against the current store.
    pub fn preview(
        &self,
        domain: Option<&str>,
        rows: &[InviteRow],
        limit: super::RowLimit,
    ) -> Result<(DomainName, InvitePreview), ServiceError> {
        self.check_rows(rows.len(), limit)?;
        if rows.is_empty() {
            return Err(ServiceError::NoItems);
        }
        let domain = self.resolve_domain(domain)?;
        let host = self.host_index()?;
        let view = self.store.read()?;
        let (preview, _) = self.checked_rows(&view, &host, &domain, rows)?;
        Ok((domain, preview))
    }

    pub(super) fn checked_rows(
        &self,
        view: &dyn Reads,
        host: &HostIndex,
        domain: &DomainName,
        rows: &[InviteRow],
    ) -> Result<
        (
            InvitePreview,
            Vec<Option<crate::domain::preview::CleanInvite>>,
        ),
        ServiceError,
    > {
        let now = self.now();
        let facts = self.capacity(view, host, domain, now)?;
        let occupancy = StoreOccupancy::new(view, host);
        let out = preview_invites(rows, &facts, &occupancy, &self.config.reserved_names(), now);
        occupancy.finish()?;
        Ok(out)
    }

    /// Creates a batch from a clean preview, or from its clean rows when
    /// `only_clean` is set. The preview is computed again inside the write
    /// transaction, so two batches racing for the last places under a cap
    /// cannot both take them.
    pub fn create_batch(&self, req: BatchRequest) -> Result<CreatedBatch, ServiceError> {
        Ok(self.create_batch_keyed(req, None)?.made())
    }

    /// [`Muster::create_batch`] with an Idempotency-Key: a repeated call is
    /// answered from what the first one kept.
    pub fn create_batch_keyed(
        &self,
        req: BatchRequest,
        key: Option<&super::IdempotencyKey>,
    ) -> Result<super::Idempotent<CreatedBatch>, ServiceError> {
        self.check_rows(req.rows.len(), req.limit)?;
        let domain = self.resolve_domain(req.domain.as_deref())?;
        let window = self.batch_expiry(req.expires_in)?;
        let reminders = self.reminder_plan(req.reminders.as_deref(), window)?;
        if req.rows.is_empty() {
            return Err(ServiceError::NoItems);
        }
        // A repeated call is answered from what the first kept, without
        // the mail host.
        if let Some(earlier) = key.map(|k| k.replayed(&self.store)).transpose()?.flatten() {
            return Ok(super::Idempotent::Replayed(earlier));
        }
        // Bulk creation and redemptions write the host outside the store's
        // write transaction, under the provisioning lock: held here, the
        // host's count and the invites' stay together. The host is read
        // before the transaction (listing it may wait on a mail database).
        let _guard = self
            .provision_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let host = self.host_index()?;
        let created = self.store.write(|w| {
            if let Some(earlier) = key.map(|k| k.earlier(w)).transpose()?.flatten() {
                return Ok(super::Idempotent::Replayed(earlier));
            }
            let (preview, clean) = self.checked_rows(w, &host, &domain, &req.rows)?;
            if preview.flagged_rows > 0 && !req.only_clean {
                return Err(ServiceError::Flagged {
                    flagged: preview.flagged_rows,
                    total: preview.rows.len(),
                    preview: Box::new(preview),
                });
            }
            if preview.clean_rows == 0 {
                return Err(ServiceError::NothingClean {
                    preview: Box::new(preview),
                });
            }
            let now = self.now();
            let batch = Batch {
                id: self.new_id(),
                domain: domain.to_string(),
                created_at: now,
                created_by: req.actor.clone(),
                expires_in_secs: window.as_secs(),
                invite_count: preview.clean_rows,
                reminders: reminders.to_strings(),
            };
            w.put_batch(&batch)?;
            if let Some(key) = key {
                key.claim(w, &batch.id, now)?;
            }
            let mut invites = Vec::with_capacity(preview.clean_rows);
            for row in clean.into_iter().flatten() {
                let id = self.new_id();
                let token = self.token(TokenPurpose::Invite, &id, 0);
                let invite = Invite {
                    id: id.clone(),
                    batch_id: batch.id.clone(),
                    recipient_email: row.recipient,
                    mailbox: row.mailbox,
                    storage_allocation_mb: row.storage_allocation_mb,
                    display_name: row.display_name,
                    locale: row.locale,
                    generation: 0,
                    token_hash: token.hash(),
                    created_at: now,
                    expires_at: now + window.to_time(),
                    link: LinkState::Live,
                    purpose: Default::default(),
                    delivery: Delivery::Queued,
                    attempts: 0,
                    redeemed_at: None,
                    last_error: None,
                    new_link_requested_at: None,
                };
                w.put_invite(None, &invite)?;
                self.emit_invite(w, EventKind::InviteCreated, &invite)?;
                w.put_task(&Task::invite(&id, now), now)?;
                if let Some((number, at)) = reminders.next_after(now, now, invite.expires_at) {
                    w.put_task(&Task::reminder(&id, 0, number, at), at)?;
                }
                invites.push(invite);
            }
            w.bump("invites_created", invites.len() as u64)?;
            self.audit(
                w,
                &req.actor,
                "batch.create",
                &batch.id,
                format!(
                    "{} invites for {} (expiry {}, reminders {}, {} flagged rows left out)",
                    invites.len(),
                    domain,
                    window,
                    reminders,
                    preview.flagged_rows
                ),
            )?;
            Ok(super::Idempotent::Made(CreatedBatch {
                batch,
                invites,
                preview,
            }))
        })?;
        if let super::Idempotent::Made(created) = &created {
            self.queue.wake();
            tracing::info!(
                batch = %created.batch.id,
                domain = %created.batch.domain,
                invites = created.invites.len(),
                actor = %req.actor,
                "batch created"
            );
        }
        Ok(created)
    }

    /// A read view, for callers that list or count.
    pub fn view(&self) -> Result<View, ServiceError> {
        Ok(self.store.read()?)
    }
}
