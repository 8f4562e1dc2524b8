//! Bulk creation (R13), the sibling of bulk invites: a roster that carries
//! passwords (or asks for generated ones) creates the mailboxes at once,
//! under the same cap and pool rules.

use rand::Rng;

use crate::domain::address::MailboxAddress;
use crate::domain::preview::{CleanCreation, CreationPreview, PasswordChoice, preview_creation};
use crate::domain::roster::CreationRow;
use crate::provision::{HostIndex, NewMailbox};
use crate::store::{Actor, MailboxOrigin, MailboxRecord, Task};

use super::{Muster, Reads, SHARED_QUOTA_COUNTER, ServiceError, StoreOccupancy};

/// A created mailbox; the password is present only when it was generated,
/// and is shown this once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedMailbox {
    pub index: usize,
    pub mailbox: String,
    pub storage_allocation_mb: Option<u64>,
    pub generated_password: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CreatedMailboxes {
    pub batch_id: String,
    pub mailboxes: Vec<CreatedMailbox>,
    pub preview: CreationPreview,
}

/// 20 characters from an alphabet without look-alikes (no 0/O, 1/l/I):
/// about 115 bits.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let raw: String = (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    // Groups of five read and type more easily.
    raw.as_bytes()
        .chunks(5)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("-")
}

/// A bulk creation (R13): the rows, and how.
#[derive(Debug, Clone, Copy)]
pub struct CreationRequest<'a> {
    pub domain: Option<&'a str>,
    pub rows: &'a [CreationRow],
    /// Create the clean rows and leave the flagged ones out.
    pub only_clean: bool,
    pub actor: &'a Actor,
    /// How many rows this caller may send at once (R1).
    pub limit: super::RowLimit,
}

impl Muster {
    /// The mailbox host's hash for a row's password, with the password
    /// itself when it was generated (to show once).
    fn hash_creation(
        &self,
        choice: &PasswordChoice,
    ) -> Result<(String, Option<String>), ServiceError> {
        let (password, generated) = match choice {
            PasswordChoice::Given(p) => (p.clone(), None),
            PasswordChoice::Generate => {
                let p = generate_password();
                (p.clone(), Some(p))
            }
        };
        let hash = self
            .hasher
            .dovecot(self.config.mail_host.hash_scheme, &password)?;
        Ok((hash, generated))
    }

    fn creation_preview_in(
        &self,
        view: &dyn Reads,
        host: &HostIndex,
        domain: &crate::domain::address::DomainName,
        rows: &[CreationRow],
    ) -> Result<(CreationPreview, Vec<Option<CleanCreation>>), ServiceError> {
        let now = self.now();
        let facts = self.capacity(view, host, domain, now)?;
        let occupancy = StoreOccupancy::new(view, host);
        let policy = self.config.password_policy;
        let check = |password: &str, m: &MailboxAddress| {
            policy
                .check(password, None, m.local().as_str(), m.domain().as_str())
                .map_err(|ps| {
                    ps.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
        };
        let reserved = self.config.reserved_names();
        let out = preview_creation(rows, &facts, &occupancy, &reserved, now, &check);
        occupancy.finish()?;
        Ok(out)
    }

    pub fn preview_creation(
        &self,
        domain: Option<&str>,
        rows: &[CreationRow],
        limit: super::RowLimit,
    ) -> Result<CreationPreview, ServiceError> {
        self.check_rows(rows.len(), limit)?;
        if rows.is_empty() {
            return Err(ServiceError::NoItems);
        }
        let domain = self.resolve_domain(domain)?;
        let host = self.host_index()?;
        let view = self.store.read()?;
        Ok(self.creation_preview_in(&view, &host, &domain, rows)?.0)
    }

    /// Creates every clean row's mailbox, or none: the passwd-file backend
    /// writes them all in one atomic rewrite. Flagged rows refuse the whole
    /// call unless `only_clean`.
    pub fn create_mailboxes(
        &self,
        req: &CreationRequest<'_>,
    ) -> Result<CreatedMailboxes, ServiceError> {
        Ok(self.create_mailboxes_keyed(req, None)?.made())
    }

    /// [`Muster::create_mailboxes`] with an Idempotency-Key. A replay does
    /// not show generated passwords again: they are never kept.
    pub fn create_mailboxes_keyed(
        &self,
        req: &CreationRequest<'_>,
        key: Option<&super::IdempotencyKey>,
    ) -> Result<super::Idempotent<CreatedMailboxes>, ServiceError> {
        let CreationRequest {
            domain,
            rows,
            only_clean,
            actor,
            limit,
        } = *req;
        self.check_rows(rows.len(), limit)?;
        let domain = self.resolve_domain(domain)?;
        if rows.is_empty() {
            return Err(ServiceError::NoItems);
        }
        // Hashing is the slow part (and may wait for the hashing pool): done
        // first, outside the lock and the store's one write transaction, for
        // the rows that are clean now. The check inside decides what is made.
        let hashed = 'hash: {
            let view = self.store.read()?;
            // A repeated key is answered inside (a replay, or a mismatch).
            if let Some(key) = key
                && key.has_record(&view)?
            {
                break 'hash std::collections::HashMap::new();
            }
            let host = self.host_index()?;
            let (preview, clean) = self.creation_preview_in(&view, &host, &domain, rows)?;
            if (preview.flagged_rows > 0 && !only_clean) || preview.clean_rows == 0 {
                return Err(ServiceError::CreationFlagged(Box::new(preview)));
            }
            let mut hashed = std::collections::HashMap::new();
            for row in clean.into_iter().flatten() {
                hashed.insert(row.index, self.hash_creation(&row.password)?);
            }
            hashed
        };
        // The pool, the cap and the host are checked and written under the
        // provisioning lock, which everything that changes them takes (a
        // batch's invites too). The mail host is written outside the
        // store's write transaction, so a mail database that hangs holds up
        // provisioning only, not sending, sign-in or revoking.
        let _guard = self
            .provision_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.ensure_host_whole()?;
        if let Some(earlier) = key.map(|k| k.replayed(&self.store)).transpose()?.flatten() {
            return Ok(super::Idempotent::Replayed(earlier));
        }
        let host = self.host_index()?;
        let view = self.store.read()?;
        let (preview, clean) = self.creation_preview_in(&view, &host, &domain, rows)?;
        drop(view);
        if preview.flagged_rows > 0 && !only_clean {
            return Err(ServiceError::CreationFlagged(Box::new(preview)));
        }
        if preview.clean_rows == 0 {
            return Err(ServiceError::CreationFlagged(Box::new(preview)));
        }
        let mut created = Vec::new();
        let mut new_boxes = Vec::new();
        for row in clean.into_iter().flatten() {
            let (hash, generated) = match hashed.get(&row.index) {
                Some(h) => h.clone(),
                // Clean only now (the host changed meanwhile): rare.
                None => self.hash_creation(&row.password)?,
            };
            new_boxes.push(NewMailbox {
                address: row.mailbox.clone(),
                password_hash: hash,
                quota_mb: row.storage_allocation_mb,
                display_name: row.display_name.clone(),
            });
            created.push((row, generated));
        }
        // A store that takes no writes would leave the mailboxes unrecorded.
        self.store.ensure_writable()?;
        self.host.create_many(&new_boxes)?;
        let result = self.store.write(|w| {
            let batch_id = self.new_id();
            let now = self.now();
            if let Some(key) = key {
                key.claim(w, &batch_id, now)?;
            }
            let mut out = Vec::with_capacity(created.len());
            for (row, generated) in created {
                w.put_mailbox(&MailboxRecord {
                    address: row.mailbox.to_string(),
                    created_at: now,
                    storage_allocation_mb: row.storage_allocation_mb,
                    display_name: row.display_name.clone(),
                    origin: MailboxOrigin::BulkCreation {
                        batch_id: batch_id.clone(),
                    },
                    reset_invite_id: None,
                })?;
                if self.config.client.welcome {
                    let welcome = Task::welcome(
                        &row.mailbox.to_string(),
                        row.display_name.as_deref(),
                        None,
                        actor,
                        now,
                    );
                    w.put_task(&welcome, now)?;
                }
                if row.storage_allocation_mb.is_none()
                    && let Some(q) = self.config.mail_host.default_quota_mb
                {
                    w.bump(SHARED_QUOTA_COUNTER, q)?;
                }
                out.push(CreatedMailbox {
                    index: row.index,
                    mailbox: row.mailbox.to_string(),
                    storage_allocation_mb: row.storage_allocation_mb,
                    generated_password: generated,
                });
            }
            w.bump("mailboxes_created", out.len() as u64)?;
            self.audit(
                w,
                actor,
                "mailboxes.bulk_create",
                &batch_id,
                format!(
                    "{} created on {domain}{}",
                    match out.len() {
                        1 => "1 mailbox".to_string(),
                        n => format!("{n} mailboxes"),
                    },
                    match preview.flagged_rows {
                        0 => String::new(),
                        1 => " (1 flagged row left out)".to_string(),
                        n => format!(" ({n} flagged rows left out)"),
                    }
                ),
            )?;
            Ok(super::Idempotent::Made(CreatedMailboxes {
                batch_id,
                mailboxes: out,
                preview,
            }))
        });
        if result.is_err() {
            self.undo_creation(&new_boxes);
        }
        if let Ok(super::Idempotent::Made(c)) = &result {
            tracing::info!(batch = %c.batch_id, mailboxes = c.mailboxes.len(), actor = %actor, "mailboxes created in bulk");
            // Their welcome messages are queued.
            self.queue.wake();
        }
        result
    }
}

impl Muster {
    /// Mailboxes made on the host for a creation the store did not record
    /// are taken off again (their mail folders, new and empty, stay), so
    /// the answer "nothing was created" holds; what cannot be taken off is
    /// logged by address.
    fn undo_creation(&self, made: &[NewMailbox]) {
        for m in made {
            let address = m.address.to_string();
            if let Err(e) = self.host.remove(&address, false) {
                tracing::error!(mailbox = %address, error = %e, "a mailbox made for a bulk creation the store did not record could not be taken off the mail host; remove it there");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_unambiguous() {
        let p = generate_password();
        assert_eq!(p.len(), 23);
        assert!(!p.contains(['0', 'O', '1', 'l', 'I']));
        assert_ne!(p, generate_password());
        let policy = crate::domain::password::PasswordPolicy::default();
        assert!(policy.check(&p, None, "jane", "team.example").is_ok());
    }
}
