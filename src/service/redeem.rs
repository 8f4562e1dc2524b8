//! Redeeming a setup link (R7, R9, R11, R12): opening it changes nothing;
//! submitting a valid password takes the invite live → redeeming in one
//! transaction, provisions the mailbox, then marks it redeemed.

use crate::domain::form_proof::{self, ProofError, ValidProof};
use crate::domain::invite::{Invite, InvitePurpose, LinkState, TransitionError};
use crate::domain::password::PasswordProblem;
use crate::domain::token::{LinkToken, TokenHash};
use crate::domain::webhook::EventKind;
use crate::provision::{Created, MailboxChange, NewMailbox, ProvisionError};
use crate::service::hashing::{Busy, HashFailure};
use crate::store::{Actor, MailboxOrigin, MailboxRecord, NoticeEvent, StoreError, Task};

use super::{Muster, SHARED_QUOTA_COUNTER, ServiceError};

/// What the link page shows.
#[derive(Debug, Clone)]
pub enum LinkStatus {
    /// Unknown, malformed, revoked or replaced by a resend.
    Invalid,
    Live(Box<Invite>),
    Redeemed(Box<Invite>),
    Expired(Box<Invite>),
    /// The allocation did not fit the pool at the last try (R7).
    Blocked(Box<Invite>),
    /// Another submission is creating the mailbox right now.
    Busy(Box<Invite>),
}

/// The policy's verdict on a password for a live link's mailbox.
#[derive(Debug)]
pub struct PasswordVerdict {
    pub invite: Box<Invite>,
    pub problems: Vec<PasswordProblem>,
}

#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("this link is not valid")]
    Invalid,
    #[error("this link has expired")]
    Expired,
    #[error("this link was already used")]
    AlreadyRedeemed,
    #[error("the mailbox is being set up right now")]
    Busy,
    #[error("the password does not meet the policy")]
    Policy(Vec<PasswordProblem>),
    /// R7: nothing created; the link stays valid.
    #[error("the storage pool has no room for this mailbox's allocation")]
    PoolFull,
    /// The mail host refused or failed; nothing was created and the link
    /// works again.
    #[error("the mailbox could not be created: {0}")]
    Provision(#[from] ProvisionError),
    /// Mailboxes Muster made are missing from the host: nothing is written.
    #[error("the mailbox could not be created: {0}")]
    HostDamaged(#[from] crate::service::HostDamage),
    /// The address is on the host already, made outside Muster.
    #[error(
        "the mailbox {0} already exists on the mail server, made outside this invite; revoke the invite and invite the person under another name, or remove that mailbox on the mail server if it is unused"
    )]
    AlreadyOnHost(String),
    #[error("the mailbox could not be created: {0}")]
    Hash(#[from] crate::provision::hash::HashError),
    /// Too many passwords are being hashed right now; nothing changed.
    #[error(transparent)]
    Overloaded(Busy),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for RedeemError {
    fn from(e: StoreError) -> Self {
        RedeemError::Service(e.into())
    }
}

impl Muster {
    fn invite_for_token(&self, raw: &str) -> Result<Option<Invite>, ServiceError> {
        let Some(token) = LinkToken::parse(raw) else {
            return Ok(None);
        };
        let hash = token.hash();
        let invite = self.store.read()?.invite_by_token(&hash.0)?;
        // The index is keyed by the hash; compare again in constant time.
        Ok(invite.filter(|i| i.token_hash.matches(&hash)))
    }

    /// The proof for the form of a page served now for the link `raw`
    /// (see [`form_proof`]). A malformed token gets a proof too, so the
    /// answer does not tell which tokens parse.
    pub fn form_proof(&self, raw: &str) -> String {
        let link = LinkToken::parse(raw)
            .map(|t| t.hash())
            .unwrap_or(TokenHash([0; 32]));
        form_proof::issue(&self.link_key, &link, self.now(), rand::random())
    }

    /// Checks the proof a form posted to the link `raw` carries.
    pub fn check_form_proof(&self, raw: &str, posted: &str) -> Result<ValidProof, ProofError> {
        let link = LinkToken::parse(raw).ok_or(ProofError::Foreign)?;
        form_proof::verify(&self.link_key, &link.hash(), posted, self.now())
    }

    /// The password policy's verdict for a live link's mailbox, without
    /// redeeming: the setup page asks before it submits. None when the
    /// link cannot take a password (unknown, used, expired...).
    pub fn password_problems(
        &self,
        raw: &str,
        password: &str,
        confirmation: &str,
    ) -> Result<Option<PasswordVerdict>, ServiceError> {
        let Some(invite) = self.invite_for_token(raw)? else {
            return Ok(None);
        };
        if !matches!(
            invite.link_state(self.now()),
            LinkState::Live | LinkState::Blocked
        ) {
            return Ok(None);
        }
        let problems = self
            .check_password(&invite, password, confirmation)
            .err()
            .unwrap_or_default();
        Ok(Some(PasswordVerdict {
            invite: Box::new(invite),
            problems,
        }))
    }

    fn check_password(
        &self,
        invite: &Invite,
        password: &str,
        confirmation: &str,
    ) -> Result<(), Vec<PasswordProblem>> {
        let m = &invite.mailbox;
        self.config.password_policy.check(
            password,
            Some(confirmation),
            m.local().as_str(),
            m.domain().as_str(),
        )
    }

    /// What a GET of the link shows. Never changes anything (R9).
    pub fn link_status(&self, raw: &str) -> Result<LinkStatus, ServiceError> {
        let Some(invite) = self.invite_for_token(raw)? else {
            return Ok(LinkStatus::Invalid);
        };
        let invite = Box::new(invite);
        Ok(match invite.link_state(self.now()) {
            LinkState::Live => LinkStatus::Live(invite),
            LinkState::Redeemed => LinkStatus::Redeemed(invite),
            LinkState::Expired => LinkStatus::Expired(invite),
            LinkState::Blocked => LinkStatus::Blocked(invite),
            LinkState::Redeeming => LinkStatus::Busy(invite),
            LinkState::Revoked => LinkStatus::Invalid,
        })
    }

    /// Records the recipient's request for a new link from the expired
    /// page; it shows in the admin's pending list.
    pub fn request_new_link(&self, raw: &str) -> Result<bool, ServiceError> {
        let Some(invite) = self.invite_for_token(raw)? else {
            return Ok(false);
        };
        let now = self.now();
        if invite.link_state(now) != LinkState::Expired {
            return Ok(false);
        }
        self.store.write(|w| {
            let Some(old) = w.invite(&invite.id)? else {
                return Ok::<_, ServiceError>(false);
            };
            if old.new_link_requested_at.is_none() {
                let mut new = old.clone();
                new.new_link_requested_at = Some(now);
                w.put_invite(Some(&old), &new)?;
                self.audit(
                    w,
                    &Actor::recipient(&old.recipient_email),
                    "invite.new_link_requested",
                    &old.id,
                    format!("{} asked for a new link", old.mailbox),
                )?;
                self.queue_notice(w, &new, NoticeEvent::NewLinkRequested, now)?;
                self.emit_invite(w, EventKind::InviteNewLinkRequested, &new)?;
            }
            Ok(true)
        })
    }

    /// Redeems the link with the recipient's password. Exactly one of any
    /// number of concurrent submissions creates the mailbox.
    pub fn redeem(
        &self,
        raw: &str,
        password: &str,
        confirmation: &str,
    ) -> Result<Invite, RedeemError> {
        let invite = self.invite_for_token(raw)?.ok_or(RedeemError::Invalid)?;
        let now = self.now();
        match invite.link_state(now) {
            LinkState::Live | LinkState::Blocked => {}
            LinkState::Redeemed => return Err(RedeemError::AlreadyRedeemed),
            LinkState::Expired => return Err(RedeemError::Expired),
            LinkState::Redeeming => return Err(RedeemError::Busy),
            LinkState::Revoked => return Err(RedeemError::Invalid),
        }
        self.check_password(&invite, password, confirmation)
            .map_err(RedeemError::Policy)?;

        // Live → redeeming: the one transaction that lets a single submission through.
        let token_hash = invite.token_hash;
        let (before, taken) = self.store.write(|w| {
            let old = w.invite(&invite.id)?.ok_or(RedeemError::Invalid)?;
            if old.token_hash != token_hash {
                return Err(RedeemError::Invalid);
            }
            let mut new = old.clone();
            new.begin_redeem(now).map_err(|e| match e {
                TransitionError::Redeemed => RedeemError::AlreadyRedeemed,
                TransitionError::Revoked => RedeemError::Invalid,
                TransitionError::Expired => RedeemError::Expired,
                TransitionError::Busy => RedeemError::Busy,
            })?;
            w.put_invite(Some(&old), &new)?;
            Ok((old.link, new))
        })?;

        match self.provision_invite(&taken, password, now) {
            Ok(()) => {
                let finished = self.finish_redemption(&taken.id, now);
                // Its welcome message is queued.
                self.queue.wake();
                finished.map_err(RedeemError::from)
            }
            Err(RedeemError::Overloaded(busy)) => {
                // Nothing was tried: the link is as it was, with no error to report.
                self.store.write(|w| -> Result<(), ServiceError> {
                    if let Some(old) = w.invite(&taken.id)? {
                        let mut new = old.clone();
                        new.link = before;
                        w.put_invite(Some(&old), &new)?;
                    }
                    Ok(())
                })?;
                Err(RedeemError::Overloaded(busy))
            }
            Err(e) => {
                let blocked = matches!(e, RedeemError::PoolFull);
                let message = match &e {
                    RedeemError::PoolFull => format!(
                        "the storage pool has no room for {} MB; free space or raise storage_pool_mb, then the recipient can use the same link",
                        taken.storage_allocation_mb.unwrap_or(0)
                    ),
                    other => other.to_string(),
                };
                tracing::error!(invite = %taken.id, mailbox = %taken.mailbox, error = %message, "redemption could not create the mailbox");
                self.store.write(|w| -> Result<(), ServiceError> {
                    if let Some(old) = w.invite(&taken.id)? {
                        let mut new = old.clone();
                        new.abort_redeem(message.clone(), blocked);
                        w.put_invite(Some(&old), &new)?;
                        if blocked {
                            self.emit_invite(w, EventKind::InviteBlocked, &new)?;
                        }
                        // The admin hears once per reason: a recipient trying
                        // again and again is not news.
                        if old.last_error.as_deref() != Some(message.as_str()) {
                            self.queue_notice(w, &new, NoticeEvent::SetupFailed, now)?;
                        }
                        self.audit(
                            w,
                            &Actor::recipient(&old.recipient_email),
                            if blocked {
                                "invite.blocked"
                            } else {
                                "invite.redeem_failed"
                            },
                            &old.id,
                            message.clone(),
                        )?;
                    }
                    Ok(())
                })?;
                Err(e)
            }
        }
    }

    /// Checks the pool again (R7), hashes the password and creates the
    /// mailbox. Serialised, so two redemptions cannot both take the last
    /// of the pool.
    fn provision_invite(
        &self,
        invite: &Invite,
        password: &str,
        now: time::OffsetDateTime,
    ) -> Result<(), RedeemError> {
        // Hashing is the slow part: done before taking the lock.
        let password_hash = self
            .hasher
            .dovecot(self.config.mail_host.hash_scheme, password)
            .map_err(|e| match e {
                HashFailure::Busy(b) => RedeemError::Overloaded(b),
                HashFailure::Hash(h) => RedeemError::Hash(h),
            })?;
        let _guard = self
            .provision_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if invite.purpose == InvitePurpose::PasswordReset {
            // The mailbox must still be Muster's and on the host.
            let managed = self
                .managed_mailbox(&invite.mailbox.to_string())
                .map_err(RedeemError::Service)?;
            // A mailbox removed and made again since the link was sent is
            // someone else's now: the old link must not set its password.
            if managed.record.created_at > invite.created_at {
                return Err(RedeemError::Service(ServiceError::NotManaged(
                    managed.record.address,
                )));
            }
            return self
                .host
                .change(
                    &managed.record.address,
                    &MailboxChange::Password(password_hash),
                )
                .map_err(RedeemError::Provision);
        }
        // The host unreadable (a database down) is the mail host failing:
        // the recipient is asked to try again, the link stays usable.
        let host_failed = |e| match e {
            ServiceError::HostDamaged(d) => RedeemError::HostDamaged(d),
            ServiceError::Host(p) => RedeemError::Provision(p),
            other => RedeemError::Service(other),
        };
        self.ensure_host_whole().map_err(host_failed)?;
        if let Some(mb) = invite.storage_allocation_mb {
            let host = self.host_index().map_err(host_failed)?;
            let view = self.store.read()?;
            if !self.capacity(&view, &host, invite.domain(), now)?.fits(mb) {
                return Err(RedeemError::PoolFull);
            }
        }
        let created = self
            .host
            .create(&NewMailbox {
                address: invite.mailbox.clone(),
                password_hash,
                quota_mb: invite.storage_allocation_mb,
                display_name: invite.display_name.clone(),
            })
            .map_err(RedeemError::Provision)?;
        match created {
            Created::Created => Ok(()),
            Created::AlreadyExists => Err(RedeemError::AlreadyOnHost(invite.mailbox.to_string())),
        }
    }

    /// Redeeming → redeemed, with the mailbox record and the audit entry.
    fn finish_redemption(
        &self,
        id: &str,
        now: time::OffsetDateTime,
    ) -> Result<Invite, ServiceError> {
        let shared_quota = self.config.mail_host.default_quota_mb;
        let finished = self.store.write(|w| {
            let old = w
                .invite(id)?
                .ok_or_else(|| ServiceError::NoInvite(id.to_string()))?;
            let mut new = old.clone();
            new.finish_redeem(now);
            w.put_invite(Some(&old), &new)?;
            // Used: no reminder goes after this (R16).
            w.remove_task(&Task::reminder_task_id(id))?;
            if new.purpose == InvitePurpose::PasswordReset {
                w.bump("password_resets", 1)?;
                self.audit(
                    w,
                    &Actor::recipient(&new.recipient_email),
                    "mailbox.password_reset",
                    &new.mailbox.to_string(),
                    format!(
                        "new password set with the link sent to {}",
                        new.recipient_email
                    ),
                )?;
                return Ok(new);
            }
            w.put_mailbox(&MailboxRecord {
                address: new.mailbox.to_string(),
                created_at: now,
                storage_allocation_mb: new.storage_allocation_mb,
                display_name: new.display_name.clone(),
                origin: MailboxOrigin::Invite {
                    invite_id: new.id.clone(),
                },
                reset_invite_id: None,
            })?;
            if new.storage_allocation_mb.is_none()
                && let Some(q) = shared_quota
            {
                w.bump(SHARED_QUOTA_COUNTER, q)?;
            }
            w.bump("redemptions", 1)?;
            self.audit(
                w,
                &Actor::recipient(&new.recipient_email),
                "invite.redeem",
                &new.id,
                format!("mailbox {} created", new.mailbox),
            )?;
            self.queue_notice(w, &new, NoticeEvent::Redeemed, now)?;
            self.emit_invite(w, EventKind::InviteRedeemed, &new)?;
            self.emit(w, EventKind::MailboxCreated, &new.id, || {
                serde_json::json!({
                    "address": new.mailbox.to_string(),
                    "created_at": new.redeemed_at.map(crate::domain::rfc3339),
                    "storage_allocation_mb": new.storage_allocation_mb,
                    "display_name": new.display_name,
                    "invite_id": new.id,
                    "batch_id": new.batch_id,
                })
            })?;
            if self.config.client.welcome {
                let inviter = w
                    .batch(&new.batch_id)?
                    .map_or_else(Actor::system, |b| b.created_by);
                let welcome = Task::welcome(
                    &new.mailbox.to_string(),
                    new.display_name.as_deref(),
                    new.locale.as_deref(),
                    &inviter,
                    now,
                );
                w.put_task(&welcome, now)?;
            }
            Ok(new)
        });
        self.queue.withdraw(&Task::reminder_task_id(id));
        // Its emails' links are dead now: nobody should deliver them later.
        if let Ok(invite) = &finished {
            self.clear_outbox(&invite.id, Some(invite.generation));
        }
        finished
    }

    /// After a crash: redemptions that created their mailbox are finished,
    /// the others return to live. Run at start, before serving.
    pub fn recover_redemptions(&self) -> Result<usize, ServiceError> {
        let ids = self.store.read()?.redeeming()?;
        self.settle_interrupted(ids)
    }

    /// The redemptions `recover_redemptions` had to leave (the mail host
    /// could not be read), tried again: the upkeep calls it. No other
    /// redemption can be among them, since each is still "redeeming".
    pub fn retry_recovery(&self) -> Result<usize, ServiceError> {
        let ids = std::mem::take(&mut *self.unrecovered.lock().unwrap_or_else(|p| p.into_inner()));
        if ids.is_empty() {
            return Ok(0);
        }
        self.settle_interrupted(ids)
    }

    fn settle_interrupted(&self, ids: Vec<String>) -> Result<usize, ServiceError> {
        if ids.is_empty() {
            return Ok(0);
        }
        // A last line cut short (power lost mid-append) may hold the
        // address with half a hash: decide nothing until it is fixed.
        if let Some(problem) = self.host.write_problem()
            && matches!(
                problem,
                crate::provision::ProvisionError::Unterminated { .. }
            )
        {
            tracing::error!(
                redemptions = ids.len(),
                "interrupted redemptions wait until the mail host file is fixed and Muster restarts: {problem}"
            );
            return Ok(0);
        }
        let host = match self.host_index() {
            Ok(host) => host,
            // A database down at start: the redemptions wait (their links
            // answer "being set up") and are tried again every minute.
            Err(ServiceError::Host(e)) => {
                tracing::error!(
                    redemptions = ids.len(),
                    "interrupted redemptions wait until the mail host can be read: {e}"
                );
                *self.unrecovered.lock().unwrap_or_else(|p| p.into_inner()) = ids;
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        for id in &ids {
            let Some(invite) = self.store.read()?.invite(id)? else {
                continue;
            };
            if invite.purpose == InvitePurpose::PasswordReset {
                self.store.write(|w| -> Result<(), ServiceError> {
                    if let Some(old) = w.invite(id)? {
                        let mut new = old.clone();
                        new.abandon_reset(
                            "interrupted: the new password may not be set; send a new link".into(),
                        );
                        w.put_invite(Some(&old), &new)?;
                    }
                    Ok(())
                })?;
                tracing::warn!(invite = %id, "an interrupted password reset was withdrawn; send the owner a new link");
                continue;
            }
            if host.contains(&invite.mailbox.to_string()) {
                self.finish_redemption(id, self.now())?;
                tracing::warn!(invite = %id, mailbox = %invite.mailbox, "finished a redemption interrupted after the mailbox was created");
            } else {
                self.store.write(|w| -> Result<(), ServiceError> {
                    if let Some(old) = w.invite(id)? {
                        let mut new = old.clone();
                        new.abort_redeem("interrupted; the link works again".into(), false);
                        w.put_invite(Some(&old), &new)?;
                    }
                    Ok(())
                })?;
                tracing::warn!(invite = %id, "an interrupted redemption was undone; the link works again");
            }
        }
        Ok(ids.len())
    }
}
