//! The invite life cycle: link state and delivery state, and the
//! transitions between them. Time is always a parameter.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::address::{DomainName, MailboxAddress, RecipientEmail};
use super::token::TokenHash;

/// "Expiring soon" in the pending list and the daily digest.
pub const EXPIRING_SOON: time::Duration = time::Duration::days(7);

/// What the link can do. `Expired` is also derived from the expiry time,
/// so an invite past its expiry reads as expired before any sweep runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Live,
    /// A redemption is provisioning the mailbox right now.
    Redeeming,
    Redeemed,
    Revoked,
    Expired,
    /// The allocation no longer fit at redemption (R7); the link stays valid.
    Blocked,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Redeeming => "redeeming",
            Self::Redeemed => "redeemed",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Blocked => "blocked",
        }
    }

    /// Holds a place under the domain's cap (R5) until it expires: the link
    /// can still become a mailbox.
    pub fn holds_place(self) -> bool {
        matches!(self, Self::Live | Self::Blocked | Self::Redeeming)
    }

    /// Every state, in the order a link goes through them.
    pub const ALL: [Self; 6] = [
        Self::Live,
        Self::Blocked,
        Self::Redeeming,
        Self::Redeemed,
        Self::Expired,
        Self::Revoked,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Where the invite email is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Delivery {
    Queued,
    Sending,
    /// A relay accepted it.
    Sent {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        reply: String,
    },
    /// Written to the outbox folder (no relay configured): not on its way
    /// to the recipient until someone delivers the file.
    InOutbox {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        file: String,
    },
    Deferred {
        #[serde(with = "time::serde::rfc3339")]
        next_attempt_at: OffsetDateTime,
        last_error: String,
    },
    Failed {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        reply: String,
    },
    /// Never sent, or taken back out of the outbox, because the invite was
    /// revoked first: nothing failed.
    Withdrawn {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        reason: String,
    },
}

impl Delivery {
    /// Every state's name, in the order of the life cycle.
    pub const NAMES: [&'static str; 7] = [
        "queued",
        "sending",
        "sent",
        "in_outbox",
        "deferred",
        "failed",
        "withdrawn",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent { .. } => "sent",
            Self::InOutbox { .. } => "in_outbox",
            Self::Deferred { .. } => "deferred",
            Self::Failed { .. } => "failed",
            Self::Withdrawn { .. } => "withdrawn",
        }
    }

    /// Sent, in the outbox, failed or withdrawn: the worker has nothing
    /// more to do.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Sent { .. }
                | Self::InOutbox { .. }
                | Self::Failed { .. }
                | Self::Withdrawn { .. }
        )
    }

    /// Why an email is withdrawn: never sent, or its file taken back out of
    /// the outbox (also the words schema 1 stored as a failure's reply).
    pub const UNSENT_BY_REVOKE: &'static str = "not sent: the invite was revoked";
    pub const OUTBOXED_BY_REVOKE: &'static str = "removed from the outbox: the invite was revoked";

    /// Not sent because the invite was revoked first (`outboxed`: its file
    /// was taken out of the outbox).
    pub fn withdrawn(at: OffsetDateTime, outboxed: bool) -> Self {
        Self::Withdrawn {
            at,
            reason: if outboxed {
                Self::OUTBOXED_BY_REVOKE
            } else {
                Self::UNSENT_BY_REVOKE
            }
            .into(),
        }
    }
}

/// What using the link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitePurpose {
    /// Creates the mailbox with the password chosen (an invite).
    #[default]
    Setup,
    /// Sets a new password on a mailbox Muster made; holds no place
    /// under the cap.
    PasswordReset,
}

impl InvitePurpose {
    pub fn is_setup(&self) -> bool {
        *self == InvitePurpose::Setup
    }

    pub fn name(self) -> &'static str {
        match self {
            InvitePurpose::Setup => "setup",
            InvitePurpose::PasswordReset => "password_reset",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub id: String,
    pub batch_id: String,
    pub recipient_email: RecipientEmail,
    /// The mailbox to create; its domain is the batch's.
    pub mailbox: MailboxAddress,
    pub storage_allocation_mb: Option<u64>,
    pub display_name: Option<String>,
    pub locale: Option<String>,
    /// Bumped by every resend; part of the token derivation.
    pub generation: u32,
    /// SHA-256 of the current generation's token (hex in the store).
    pub token_hash: TokenHash,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub link: LinkState,
    pub delivery: Delivery,
    /// Send attempts of the current generation.
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub redeemed_at: Option<OffsetDateTime>,
    /// Why the last redemption attempt could not provision (shown to admins).
    pub last_error: Option<String>,
    /// Set when the recipient asked for a new link from the expired page.
    #[serde(with = "time::serde::rfc3339::option")]
    pub new_link_requested_at: Option<OffsetDateTime>,
    /// Setup (an invite) or a password reset; absent in the store for setup.
    #[serde(default, skip_serializing_if = "InvitePurpose::is_setup")]
    pub purpose: InvitePurpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the invite was already redeemed")]
    Redeemed,
    #[error("the invite was revoked")]
    Revoked,
    #[error("the invite has expired")]
    Expired,
    #[error("the mailbox is being set up right now; try again in a moment")]
    Busy,
}

impl Invite {
    /// The hosted domain of the mailbox.
    pub fn domain(&self) -> &DomainName {
        self.mailbox.domain()
    }

    /// The state as the recipient and the admin see it at `now`.
    pub fn link_state(&self, now: OffsetDateTime) -> LinkState {
        match self.link {
            LinkState::Live | LinkState::Blocked if now >= self.expires_at => LinkState::Expired,
            other => other,
        }
    }

    /// Its email could not be delivered and its link is still open: the
    /// admin has something to fix.
    pub fn undeliverable(&self, now: OffsetDateTime) -> bool {
        matches!(self.delivery, Delivery::Failed { .. })
            && !matches!(
                self.link_state(now),
                LinkState::Redeemed | LinkState::Revoked
            )
    }

    /// Its recipient chose a password but the mailbox could not be made,
    /// and the link still works: the admin has something to fix.
    pub fn setup_failed(&self, now: OffsetDateTime) -> bool {
        self.last_error.is_some()
            && matches!(self.link_state(now), LinkState::Live | LinkState::Blocked)
    }

    /// Live, and expiring within [`EXPIRING_SOON`] of `now`.
    pub fn expiring_soon(&self, now: OffsetDateTime) -> bool {
        self.link_state(now) == LinkState::Live && self.expires_at - now <= EXPIRING_SOON
    }

    /// Holds a place under the domain's cap (R5).
    pub fn counts_as_pending(&self, now: OffsetDateTime) -> bool {
        self.purpose.is_setup() && self.link.holds_place() && now < self.expires_at
    }

    fn ensure_open(&self, now: OffsetDateTime) -> Result<(), TransitionError> {
        match self.link_state(now) {
            LinkState::Redeemed => Err(TransitionError::Redeemed),
            LinkState::Revoked => Err(TransitionError::Revoked),
            LinkState::Redeeming => Err(TransitionError::Busy),
            _ => Ok(()),
        }
    }

    /// Live → redeeming: the first half of an atomic redemption (R9).
    pub fn begin_redeem(&mut self, now: OffsetDateTime) -> Result<(), TransitionError> {
        match self.link_state(now) {
            LinkState::Live | LinkState::Blocked => {
                self.link = LinkState::Redeeming;
                Ok(())
            }
            LinkState::Expired => Err(TransitionError::Expired),
            _ => self.ensure_open(now),
        }
    }

    pub fn finish_redeem(&mut self, now: OffsetDateTime) {
        self.link = LinkState::Redeemed;
        self.redeemed_at = Some(now);
        self.last_error = None;
    }

    /// Provisioning failed: the link works again (R7 when `blocked`).
    pub fn abort_redeem(&mut self, error: String, blocked: bool) {
        self.link = if blocked {
            LinkState::Blocked
        } else {
            LinkState::Live
        };
        self.last_error = Some(error);
    }

    /// An interrupted password reset: whether the new password reached the
    /// host is unknown, so the link stops working (a used link must not
    /// work again) and the admin sends a new one.
    pub fn abandon_reset(&mut self, error: String) {
        self.link = LinkState::Revoked;
        self.last_error = Some(error);
    }

    /// A fresh link and expiry; the old token dies because its hash is
    /// replaced (R10). Expired invites may be resent too (R8).
    pub fn resend(
        &mut self,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
        token_hash: TokenHash,
    ) -> Result<(), TransitionError> {
        self.ensure_open(now)?;
        self.generation += 1;
        self.token_hash = token_hash;
        self.expires_at = expires_at;
        if self.link == LinkState::Expired {
            self.link = LinkState::Live;
        }
        self.delivery = Delivery::Queued;
        self.attempts = 0;
        self.new_link_requested_at = None;
        // A new link starts afresh: its first failure is news again.
        self.last_error = None;
        Ok(())
    }

    /// Why a reminder about generation `generation` is no longer wanted
    /// at `now`, if it is not (R16): only a live, unused link whose email
    /// was delivered gets one.
    pub fn reminder_unwanted(&self, generation: u32, now: OffsetDateTime) -> Option<&'static str> {
        if !self.purpose.is_setup() {
            return Some("not an invite");
        }
        if self.generation != generation {
            return Some("a new link was sent since");
        }
        match self.link_state(now) {
            LinkState::Live => {}
            LinkState::Redeemed | LinkState::Redeeming => return Some("the mailbox was set up"),
            LinkState::Revoked => return Some("the invite was revoked"),
            LinkState::Expired => return Some("the link expired"),
            LinkState::Blocked => {
                return Some("the link is blocked until the storage pool has room");
            }
        }
        match self.delivery {
            Delivery::Sent { .. } | Delivery::InOutbox { .. } => None,
            _ => Some("the invite email itself was not delivered"),
        }
    }

    pub fn revoke(&mut self, now: OffsetDateTime) -> Result<(), TransitionError> {
        self.ensure_open(now)?;
        self.link = LinkState::Revoked;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::{Duration, macros::datetime};

    const T0: OffsetDateTime = datetime!(2026-11-30 12:00 UTC);

    fn invite() -> Invite {
        Invite {
            id: "i1".into(),
            batch_id: "b1".into(),
            recipient_email: RecipientEmail::parse("jane@x.org").unwrap(),
            mailbox: MailboxAddress::parse("jane@team.example").unwrap(),
            storage_allocation_mb: None,
            display_name: None,
            locale: None,
            generation: 0,
            token_hash: TokenHash([0; 32]),
            created_at: T0,
            expires_at: T0 + Duration::days(30),
            link: LinkState::Live,
            delivery: Delivery::Queued,
            attempts: 0,
            redeemed_at: None,
            last_error: None,
            new_link_requested_at: None,
            purpose: InvitePurpose::Setup,
        }
    }

    #[test]
    fn expiry_is_derived_from_time() {
        let i = invite();
        assert_eq!(i.link_state(T0), LinkState::Live);
        assert!(i.counts_as_pending(T0));
        let later = T0 + Duration::days(30);
        assert_eq!(i.link_state(later), LinkState::Expired);
        assert!(!i.counts_as_pending(later));
    }

    #[test]
    fn redeem_once() {
        let mut i = invite();
        i.begin_redeem(T0).unwrap();
        assert!(i.counts_as_pending(T0));
        assert_eq!(i.begin_redeem(T0), Err(TransitionError::Busy));
        i.finish_redeem(T0);
        assert_eq!(i.begin_redeem(T0), Err(TransitionError::Redeemed));
        assert!(!i.counts_as_pending(T0));
    }

    #[test]
    fn blocked_keeps_the_link_valid() {
        let mut i = invite();
        i.begin_redeem(T0).unwrap();
        i.abort_redeem("pool full".into(), true);
        assert_eq!(i.link_state(T0), LinkState::Blocked);
        assert!(i.counts_as_pending(T0));
        i.begin_redeem(T0).unwrap();
    }

    #[test]
    fn a_setup_failure_is_news_while_the_link_still_works() {
        let mut i = invite();
        assert!(!i.setup_failed(T0));
        i.begin_redeem(T0).unwrap();
        i.abort_redeem("the host refused".into(), false);
        assert!(i.setup_failed(T0));
        assert!(!i.setup_failed(T0 + Duration::days(31)), "expired");
        let mut set_up = i.clone();
        set_up.begin_redeem(T0).unwrap();
        set_up.finish_redeem(T0);
        assert!(!set_up.setup_failed(T0));
        // A resent link starts afresh.
        let mut resent = i.clone();
        resent
            .resend(T0, T0 + Duration::days(7), TokenHash([2; 32]))
            .unwrap();
        assert!(!resent.setup_failed(T0));
        i.revoke(T0).unwrap();
        assert!(!i.setup_failed(T0));
    }

    #[test]
    fn expired_links_cannot_be_redeemed_but_can_be_resent() {
        let mut i = invite();
        let later = T0 + Duration::days(31);
        assert_eq!(i.begin_redeem(later), Err(TransitionError::Expired));
        i.resend(later, later + Duration::days(7), TokenHash([1; 32]))
            .unwrap();
        assert_eq!(i.generation, 1);
        assert_eq!(i.link_state(later), LinkState::Live);
        assert_eq!(i.delivery, Delivery::Queued);
    }

    #[test]
    fn revoked_is_final() {
        let mut i = invite();
        i.revoke(T0).unwrap();
        assert!(!i.counts_as_pending(T0));
        assert_eq!(i.revoke(T0), Err(TransitionError::Revoked));
        assert_eq!(
            i.resend(T0, T0, TokenHash([2; 32])),
            Err(TransitionError::Revoked)
        );
        assert_eq!(i.begin_redeem(T0), Err(TransitionError::Revoked));
    }
}
