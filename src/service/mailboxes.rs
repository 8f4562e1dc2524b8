//! Care for the mailboxes Muster made: a new allocation (the pool checked
//! again), suspension and restoration (logins refused, mail still taken),
//! and removal (login and address gone; the mail folder only when asked).
//! Each is audited; mailboxes made elsewhere are the mail server's to change.

use super::{InviteView, Muster, SHARED_QUOTA_COUNTER, ServiceError};
use crate::domain::address::{MailboxAddress, RecipientEmail};
use crate::domain::capacity::Capacity;
use crate::domain::invite::{Delivery, Invite, InvitePurpose, LinkState};
use crate::domain::token::TokenPurpose;
use crate::provision::{HostMailbox, MailFolder, MailboxChange};
use crate::store::{Actor, Batch, MailboxOrigin, MailboxRecord, Task, WriteView};

/// How long a password-reset link works: a day, whatever the invites'.
const RESET_LINK_HOURS: i64 = 24;

/// A managed mailbox as it is now.
#[derive(Debug, Clone)]
pub struct ManagedMailbox {
    pub record: MailboxRecord,
    pub host: HostMailbox,
}

/// "100 MB", "2 GB", "1.5 GB": sizes in the words of the pages and the CLI.
pub fn size_words(mb: u64) -> String {
    if mb >= 1024 {
        let gb = mb as f64 / 1024.0;
        if mb.is_multiple_of(1024) {
            format!("{} GB", mb / 1024)
        } else {
            format!("{gb:.1} GB")
        }
    } else {
        format!("{mb} MB")
    }
}

fn allocation_words(mb: Option<u64>) -> String {
    mb.map(size_words)
        .unwrap_or_else(|| "the shared pool".into())
}

impl Muster {
    /// Makes `change` on the host, then `record`s it in the store. The host
    /// is changed outside the store's write transaction (a mail database
    /// that hangs must not hold up every other write); a change the store
    /// does not take is changed back with `undo`, so the two agree, and the
    /// store's error is the answer.
    fn change_then_record(
        &self,
        address: &str,
        change: MailboxChange,
        undo: MailboxChange,
        record: impl FnOnce(&WriteView) -> Result<(), ServiceError>,
    ) -> Result<(), ServiceError> {
        self.store.ensure_writable()?;
        self.host.change(address, &change)?;
        let written = self.store.write(record);
        if written.is_err()
            && let Err(e) = self.host.change(address, &undo)
        {
            tracing::error!(mailbox = %address, error = %e, "a mail host change the store did not record could not be changed back: the mail host and Muster now differ for this mailbox");
        }
        written
    }

    /// The mailbox, when Muster made it and it is on the host.
    pub fn managed_mailbox(&self, address: &str) -> Result<ManagedMailbox, ServiceError> {
        let address = address.trim().to_lowercase();
        let record = self
            .store
            .read()?
            .created_mailbox(&address)?
            .ok_or_else(|| ServiceError::NotManaged(address.clone()))?;
        let host = self
            .host_index()?
            .get(&address)
            .ok_or_else(|| ServiceError::NotManaged(address.clone()))?;
        Ok(ManagedMailbox { record, host })
    }

    /// Gives the mailbox a dedicated allocation of `mb`, or puts it on the
    /// shared pool (None). A bigger allocation must fit what the pool has
    /// left (R6), checked under the provisioning lock.
    pub fn set_allocation(
        &self,
        address: &str,
        mb: Option<u64>,
        actor: &Actor,
    ) -> Result<ManagedMailbox, ServiceError> {
        if mb == Some(0) {
            return Err(ServiceError::Allocation(
                "an allocation is at least 1 MB; leave it empty for the shared pool".into(),
            ));
        }
        let _guard = self
            .provision_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.ensure_host_whole()?;
        let current = self.managed_mailbox(address)?;
        let old = current.record.storage_allocation_mb;
        if old == mb {
            return Ok(current);
        }
        let host = self.host_index()?;
        let fits = |shared: u64| {
            let allocated = Capacity::allocated_mb(host.allocated_mb(), shared);
            let without = allocated.saturating_sub(old.unwrap_or(0));
            match mb {
                Some(mb) if without.saturating_add(mb) > self.config.storage_pool_mb => {
                    Err(ServiceError::Allocation(format!(
                        "{} does not fit the storage pool: {} of {} are allocated to other mailboxes, so at most {} is left; choose a smaller allocation or the shared pool",
                        size_words(mb),
                        size_words(without),
                        size_words(self.config.storage_pool_mb),
                        size_words(self.config.storage_pool_mb.saturating_sub(without)),
                    )))
                }
                _ => Ok(()),
            }
        };
        fits(self.store.read()?.counter(SHARED_QUOTA_COUNTER)?)?;
        let address = current.record.address.clone();
        let (change, undo) = (MailboxChange::Quota(mb), MailboxChange::Quota(old));
        self.change_then_record(&address, change, undo, |w| {
            // Forgetting a mailbox changes the pool without the lock.
            fits(w.counter(SHARED_QUOTA_COUNTER)?)?;
            let default = self.config.mail_host.default_quota_mb;
            match (old, mb, default) {
                (None, Some(_), Some(q)) => w.lower(SHARED_QUOTA_COUNTER, q)?,
                (Some(_), None, Some(q)) => w.bump(SHARED_QUOTA_COUNTER, q)?,
                _ => {}
            }
            // Read again in this write: a reset link may have been noted since.
            let latest = w.created_mailbox(&current.record.address)?;
            let record = MailboxRecord {
                storage_allocation_mb: mb,
                ..latest.unwrap_or_else(|| current.record.clone())
            };
            w.put_mailbox(&record)?;
            self.audit(
                w,
                actor,
                "mailbox.allocation",
                &record.address,
                format!(
                    "allocation changed from {} to {}",
                    allocation_words(old),
                    allocation_words(mb)
                ),
            )?;
            Ok(())
        })?;
        self.managed_mailbox(&address)
    }

    /// Refuses (true) or allows again (false) the mailbox's logins; its
    /// mail is still accepted and kept meanwhile.
    pub fn set_suspended(
        &self,
        address: &str,
        suspended: bool,
        actor: &Actor,
    ) -> Result<ManagedMailbox, ServiceError> {
        let _guard = self
            .provision_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let current = self.managed_mailbox(address)?;
        if current.host.suspended == suspended {
            return Ok(current);
        }
        let address = current.record.address.clone();
        let (change, undo) = (
            MailboxChange::Suspended(suspended),
            MailboxChange::Suspended(!suspended),
        );
        self.change_then_record(&address, change, undo, |w| {
            let (action, detail) = if suspended {
                (
                    "mailbox.suspend",
                    "suspended: logins refused, mail still accepted",
                )
            } else {
                ("mailbox.restore", "restored: logins allowed again")
            };
            self.audit(w, actor, action, &address, detail)?;
            Ok(())
        })?;
        self.managed_mailbox(&address)
    }

    /// Takes the mailbox off the host and forgets it. Its mail folder stays
    /// unless `delete_mail`; what became of it is the answer.
    pub fn remove_mailbox(
        &self,
        address: &str,
        delete_mail: bool,
        actor: &Actor,
    ) -> Result<MailFolder, ServiceError> {
        let _guard = self
            .provision_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let current = self.managed_mailbox(address)?;
        let address = current.record.address.clone();
        self.store.ensure_writable()?;
        // Off the store's write lock: deleting a large mail folder takes a
        // while. Should the commit below fail, the host check reports the
        // record without its mailbox, and `muster mailboxes forget` clears it.
        let folder = self.host.remove(&address, delete_mail)?;
        self.store.write(|w| {
            w.remove_mailbox(&address)?;
            if current.record.storage_allocation_mb.is_none()
                && let Some(q) = self.config.mail_host.default_quota_mb
            {
                w.lower(SHARED_QUOTA_COUNTER, q)?;
            }
            let detail = match &folder {
                MailFolder::Kept(path) => format!("removed; its mail folder {path} is kept"),
                MailFolder::Deleted(path) => format!("removed with its mail folder {path}"),
                MailFolder::Absent(path) => format!("removed; it had no mail folder at {path}"),
                MailFolder::NotDeleted { path, why } => {
                    format!("removed; its mail folder {path} could not be deleted: {why}")
                }
                MailFolder::Unknown => "removed".to_string(),
            };
            self.audit(w, actor, "mailbox.remove", &address, detail)?;
            Ok::<_, ServiceError>(folder)
        })
    }
}

impl Muster {
    /// Sends the owner of a mailbox Muster made a single-use link to choose
    /// a new password: the invite's link mechanism (a page that changes
    /// nothing on GET, a form proof, rate limits), its own email, valid for
    /// a day. It goes to `to`, or to the address the mailbox was invited
    /// at; the language is `locale`, or the invite's.
    pub fn send_password_reset(
        &self,
        address: &str,
        to: Option<&str>,
        locale: Option<&str>,
        actor: &Actor,
    ) -> Result<InviteView, ServiceError> {
        let managed = self.managed_mailbox(address)?;
        let view = self.store.read()?;
        let invited = match &managed.record.origin {
            MailboxOrigin::Invite { invite_id } => view.invite(invite_id)?,
            MailboxOrigin::BulkCreation { .. } => None,
        };
        drop(view);
        let recipient = match (to.map(str::trim).filter(|t| !t.is_empty()), &invited) {
            (Some(to), _) => RecipientEmail::parse(to)
                .map_err(|e| ServiceError::ResetRecipient(format!("`to`: {e}")))?,
            (None, Some(i)) => i.recipient_email.clone(),
            (None, None) => {
                return Err(ServiceError::ResetRecipient(format!(
                    "Muster does not know where the owner of {} reads mail (it was made by bulk creation): name the address to send the link to",
                    managed.record.address
                )));
            }
        };
        let locale = locale
            .map(str::to_string)
            .or_else(|| invited.as_ref().and_then(|i| i.locale.clone()));
        if let Some(l) = &locale
            && !matches!(l.as_str(), "en" | "de")
            && !l.starts_with("en-")
            && !l.starts_with("de-")
        {
            return Err(ServiceError::ResetRecipient(format!(
                "`locale`: {l:?} is not a language Muster writes (en, de)"
            )));
        }
        let mailbox = MailboxAddress::parse(&managed.record.address)
            .map_err(|e| ServiceError::ResetRecipient(e.to_string()))?;
        let now = self.now();
        let id = self.new_id();
        let replaced = self.store.write(|w| {
            // One live reset link per mailbox: the new one revokes the last.
            let mut record = w
                .created_mailbox(&managed.record.address)?
                .ok_or_else(|| ServiceError::NotManaged(managed.record.address.clone()))?;
            let mut replaced = None;
            if let Some(last) = &record.reset_invite_id
                && let Some(old) = w.invite(last)?
                && matches!(old.link_state(now), LinkState::Live | LinkState::Blocked)
            {
                let detail = format!("replaced by a new password-reset link for {mailbox}");
                replaced = Some(self.revoke_in(w, &old, actor, detail)?);
            }
            record.reset_invite_id = Some(id.clone());
            w.put_mailbox(&record)?;
            let batch = Batch {
                id: self.new_id(),
                domain: mailbox.domain().to_string(),
                created_at: now,
                created_by: actor.clone(),
                expires_in_secs: (RESET_LINK_HOURS * 3600) as u64,
                invite_count: 1,
                reminders: Vec::new(),
            };
            w.put_batch(&batch)?;
            let token = self.token(TokenPurpose::Invite, &id, 0);
            let invite = Invite {
                id: id.clone(),
                batch_id: batch.id.clone(),
                recipient_email: recipient.clone(),
                mailbox: mailbox.clone(),
                storage_allocation_mb: managed.record.storage_allocation_mb,
                display_name: managed.record.display_name.clone(),
                locale,
                generation: 0,
                token_hash: token.hash(),
                created_at: now,
                expires_at: now + time::Duration::hours(RESET_LINK_HOURS),
                link: LinkState::Live,
                delivery: Delivery::Queued,
                attempts: 0,
                redeemed_at: None,
                last_error: None,
                new_link_requested_at: None,
                purpose: InvitePurpose::PasswordReset,
            };
            w.put_invite(None, &invite)?;
            w.put_task(&Task::invite(&id, now), now)?;
            self.audit(
                w,
                actor,
                "mailbox.reset_link",
                &managed.record.address,
                format!("password-reset link sent to {recipient} (valid {RESET_LINK_HOURS} hours)"),
            )?;
            Ok::<_, ServiceError>(replaced)
        })?;
        if let Some(old) = replaced {
            self.after_revoke(old);
        }
        self.queue.wake();
        self.get_invite(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::size_words;

    #[test]
    fn sizes_in_words() {
        assert_eq!(size_words(100), "100 MB");
        assert_eq!(size_words(1024), "1 GB");
        assert_eq!(size_words(102400), "100 GB");
        assert_eq!(size_words(1536), "1.5 GB");
    }
}
