//! Whether the mail host still holds every mailbox Muster created. If the
//! passwd-file was deleted, truncated or edited by hand, writing to it
//! would recreate it with one line, and the caps would count wrong: Muster
//! refuses to provision until the file is restored (or the missing
//! mailboxes are forgotten on purpose), `/readyz` answers 503 and
//! `muster check` says why.

use std::sync::Arc;

use crate::provision::HostIndex;
use crate::store::Actor;

use super::{Muster, ServiceError};

/// Mailboxes Muster created that the host does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{missing} mailbox(es) Muster created are missing from the mail host ({host}), e.g. {examples}: the file was deleted, truncated or edited. Nothing is provisioned until it is restored from a backup; if they were removed on purpose, stop `muster serve` and run `muster mailboxes forget ADDRESS...`"
)]
pub struct HostDamage {
    pub missing: usize,
    pub examples: String,
    pub host: String,
}

/// The last verdict, kept while neither the host's listing nor the count
/// of Muster's mailboxes changes.
pub(super) type HostCheckCache = Option<(Arc<HostIndex>, u64, Option<HostDamage>)>;

impl Muster {
    /// The mailboxes Muster created that the host no longer has, if any.
    pub fn host_damage(&self) -> Result<Option<HostDamage>, ServiceError> {
        // The store first: a mailbox it records was on the host before
        // the record, so a listing read after it has it.
        let view = self.store.read()?;
        let host = self.host_index()?;
        let recorded = view.created_mailbox_count()?;
        let mut cache = self.host_check.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((index, count, verdict)) = cache.as_ref()
            && Arc::ptr_eq(index, &host)
            && *count == recorded
        {
            return Ok(verdict.clone());
        }
        let missing: Vec<String> = view
            .created_mailbox_addresses()?
            .into_iter()
            .filter(|a| !host.contains(a))
            .collect();
        let verdict = (!missing.is_empty()).then(|| HostDamage {
            missing: missing.len(),
            examples: missing
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            host: self.host.describe(),
        });
        *cache = Some((host, recorded, verdict.clone()));
        Ok(verdict)
    }

    /// Refuses to provision while the host is missing Muster's mailboxes.
    pub(super) fn ensure_host_whole(&self) -> Result<(), ServiceError> {
        match self.host_damage()? {
            Some(damage) => Err(ServiceError::HostDamaged(damage)),
            None => Ok(()),
        }
    }

    /// Forgets mailboxes Muster created, for ones removed from the host on
    /// purpose. Returns the addresses that were recorded (trimmed, lower
    /// case).
    pub fn forget_mailboxes(
        &self,
        addresses: &[String],
        actor: &Actor,
    ) -> Result<Vec<String>, ServiceError> {
        let forgotten = self.store.write(|w| -> Result<Vec<String>, ServiceError> {
            let mut done = Vec::new();
            for a in addresses {
                let a = a.trim().to_lowercase();
                if let Some(record) = w.created_mailbox(&a)? {
                    w.remove_mailbox(&a)?;
                    // Its default quota left the host with it (R6).
                    if record.storage_allocation_mb.is_none()
                        && let Some(q) = self.config.mail_host.default_quota_mb
                    {
                        w.lower(super::SHARED_QUOTA_COUNTER, q)?;
                    }
                    self.audit(
                        w,
                        actor,
                        "mailbox.forget",
                        &a,
                        "forgotten: removed from the mail host outside Muster",
                    )?;
                    done.push(a);
                }
            }
            Ok(done)
        })?;
        Ok(forgotten)
    }
}
