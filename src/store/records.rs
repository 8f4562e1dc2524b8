//! Records kept in the store besides invites (which live in `domain`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Who started something: an admin, an API token, the CLI, or the system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor(pub String);

impl Actor {
    pub fn cli() -> Self {
        Self("cli".into())
    }
    pub fn system() -> Self {
        Self("system".into())
    }
    pub fn admin(email: &str) -> Self {
        Self(format!("admin:{email}"))
    }
    /// The admin's address, when an admin acted.
    pub fn admin_email(&self) -> Option<&str> {
        self.0.strip_prefix("admin:")
    }
    pub fn token(name: &str, id: &str) -> Self {
        Self(format!("token:{name}:{id}"))
    }
    /// The API token's id, when a token acted.
    pub fn token_id(&self) -> Option<&str> {
        self.0
            .strip_prefix("token:")
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(_, id)| id)
    }
    pub fn recipient(email: impl std::fmt::Display) -> Self {
        Self(format!("recipient:{email}"))
    }

    /// In words, as the audit page shows it (the API's `actor_name`), so
    /// its filter finds what a person reads: "Muster", "command line".
    pub fn words(&self) -> String {
        let (kind, rest) = self.0.split_once(':').unwrap_or((&self.0, ""));
        match kind {
            "admin" => format!("{rest} (admin)"),
            "token" => format!(
                "API token \"{}\"",
                rest.rsplit_once(':').map_or(rest, |(name, _)| name)
            ),
            "recipient" => format!("{rest} (recipient)"),
            "client" => format!("client {rest}"),
            "cli" => "command line".into(),
            "system" => "Muster".into(),
            _ => self.0.clone(),
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    pub domain: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: Actor,
    /// Link lifetime chosen for the batch, in seconds; resends reuse it.
    pub expires_in_secs: u64,
    pub invite_count: usize,
    /// When its links' reminders go (`50%`, `48h`; see
    /// [`crate::domain::reminders::ReminderPlan`]); none for batches made
    /// before reminders existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reminders: Vec<String>,
}

impl Batch {
    /// How long its links live: a resent link lives as long again.
    pub fn link_life(&self) -> time::Duration {
        time::Duration::seconds(self.expires_in_secs as i64)
    }

    /// When the current link of one of its invites went out: its expiry
    /// less the links' life (a resend gives a fresh life from then).
    pub fn link_sent_at(&self, invite: &crate::domain::invite::Invite) -> OffsetDateTime {
        invite.expires_at - self.link_life()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskKind {
    /// Send (or re-send) the invite email of the invite's current generation.
    Invite { invite_id: String },
    /// Send an admin their password-reset link.
    PasswordReset {
        token_id: String,
        email: String,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// Remind the recipient of a link still unused: reminder `number`
    /// (1-based) of the invite's generation `generation`.
    Reminder {
        invite_id: String,
        generation: u32,
        number: u32,
    },
    /// Tell whoever hears about the invite's batch what became of it.
    Notice {
        to: String,
        invite_id: String,
        event: NoticeEvent,
    },
    /// The daily digest to `to`, about what happened from `since` to
    /// `until` (a day, or longer after Muster was down at digest time).
    Digest {
        to: String,
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
    },
    /// Drop a welcome message into a mailbox just set up.
    Welcome {
        mailbox: String,
        display_name: Option<String>,
        locale: Option<String>,
        /// Who made it (an admin's address), when that was a person.
        inviter: Option<String>,
    },
}

/// What a notice tells the admin about an invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeEvent {
    /// The recipient set up their mailbox.
    Redeemed,
    /// The invite email could not be delivered, for good.
    Failed,
    /// The recipient asked for a new link from the expired page.
    NewLinkRequested,
    /// The recipient chose a password but the mailbox could not be made
    /// (the pool is full, the host refused or failed); their link works.
    SetupFailed,
}

impl NoticeEvent {
    pub fn name(self) -> &'static str {
        match self {
            Self::Redeemed => "redeemed",
            Self::Failed => "failed",
            Self::NewLinkRequested => "new_link_requested",
            Self::SetupFailed => "setup_failed",
        }
    }
}

/// A delivery task. Its key in the queue starts with the time it is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub kind: TaskKind,
    /// When the message was first queued: temporary failures give up
    /// after `smtp.give_up_after` from here.
    #[serde(with = "time::serde::rfc3339")]
    pub queued_at: OffsetDateTime,
    pub attempts: u32,
}

impl Task {
    /// The id of an invite's task (one per invite; a resend replaces it).
    pub fn invite_task_id(invite_id: &str) -> String {
        format!("invite:{invite_id}")
    }

    /// The invite whose own task this is, from the task's id.
    pub fn invite_of_task_id(task_id: &str) -> Option<&str> {
        task_id.strip_prefix("invite:")
    }

    /// The id of an invite's reminder task (one at a time per invite).
    pub fn reminder_task_id(invite_id: &str) -> String {
        format!("reminder:{invite_id}")
    }

    /// A reminder due at `due`: its retries give up counting from then,
    /// not from when it was planned.
    pub fn reminder(invite_id: &str, generation: u32, number: u32, due: OffsetDateTime) -> Self {
        Self {
            id: Self::reminder_task_id(invite_id),
            kind: TaskKind::Reminder {
                invite_id: invite_id.to_string(),
                generation,
                number,
            },
            queued_at: due,
            attempts: 0,
        }
    }

    /// A notice about an event of one invite: one task per event of each
    /// generation; failures, one per batch (while its notice waits to go,
    /// more failures in the batch join it instead of each mailing the admin).
    pub fn notice(
        to: &str,
        invite: &crate::domain::invite::Invite,
        event: NoticeEvent,
        now: OffsetDateTime,
    ) -> Self {
        let key = match event {
            NoticeEvent::Failed => invite.batch_id.clone(),
            // One per reason: a second must not replace the first while it
            // is on its way.
            NoticeEvent::SetupFailed => {
                format!("{}:{}:{}", invite.id, invite.generation, super::millis(now))
            }
            _ => format!("{}:{}", invite.id, invite.generation),
        };
        let invite_id = &invite.id;
        Self {
            id: format!("notice:{}:{key}", event.name()),
            kind: TaskKind::Notice {
                to: to.to_string(),
                invite_id: invite_id.to_string(),
                event,
            },
            queued_at: now,
            attempts: 0,
        }
    }

    /// The digest to `to` for the time from `since` to `until` (one a day).
    pub fn digest(
        to: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: format!("digest:{to}:{}", until.date()),
            kind: TaskKind::Digest {
                to: to.to_string(),
                since,
                until,
            },
            queued_at: now,
            attempts: 0,
        }
    }

    /// The id of a password reset email's task.
    pub fn reset_task_id(token_id: &str) -> String {
        format!("reset:{token_id}")
    }

    /// The welcome message of a new mailbox (one per mailbox).
    pub fn welcome(
        mailbox: &str,
        display_name: Option<&str>,
        locale: Option<&str>,
        created_by: &Actor,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: format!("welcome:{mailbox}"),
            kind: TaskKind::Welcome {
                mailbox: mailbox.to_string(),
                display_name: display_name.map(str::to_string),
                locale: locale.map(str::to_string),
                inviter: created_by.admin_email().map(str::to_string),
            },
            queued_at: now,
            attempts: 0,
        }
    }

    pub fn invite(invite_id: &str, now: OffsetDateTime) -> Self {
        Self {
            id: Self::invite_task_id(invite_id),
            kind: TaskKind::Invite {
                invite_id: invite_id.to_string(),
            },
            queued_at: now,
            attempts: 0,
        }
    }
}

/// How a mailbox Muster created came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum MailboxOrigin {
    Invite { invite_id: String },
    BulkCreation { batch_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxRecord {
    pub address: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub storage_allocation_mb: Option<u64>,
    pub display_name: Option<String>,
    pub origin: MailboxOrigin,
    /// The latest password-reset link sent for it: a new one revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_invite_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: Actor,
    /// e.g. `batch.create`, `invite.send`, `invite.redeem`, `admin.sign_in`.
    pub action: String,
    /// What it acted on: a batch, invite, mailbox or account.
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admin {
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub admin_email: String,
    /// Sent by the web app in a header with every state-changing request.
    /// Derived from the session's cookie when read (see
    /// `Muster::session`), never stored; sessions made before that kept
    /// theirs here.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "purpose", rename_all = "snake_case")]
pub enum OneTimePurpose {
    AdminSetup,
    PasswordReset { email: String },
}

/// A single-use link for admins: first-run setup or password reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimeToken {
    pub id: String,
    pub purpose: OneTimePurpose,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub used: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: Actor,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// What a creating call with an Idempotency-Key made and answered, kept
/// for replays with the same key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "IdempotencyOnDisk")]
pub struct IdempotencyRecord {
    /// Hex SHA-256 of the request body: another body with the same key is refused.
    pub request_hash: String,
    pub state: KeyState,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// How far the first call with a key got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// It made `subject` (a batch id) in the same transaction; its answer
    /// was not kept yet (the process stopped in between).
    Claimed { subject: String },
    /// Its answer, as the surface that made it will send it again.
    Answered { body: String },
}

/// The record as written, also by the builds that stored `status` 0 for a
/// claim and 201 for an answer.
#[derive(Deserialize)]
struct IdempotencyOnDisk {
    request_hash: String,
    #[serde(default)]
    state: Option<KeyState>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    body: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<IdempotencyOnDisk> for IdempotencyRecord {
    fn from(d: IdempotencyOnDisk) -> Self {
        let body = d.body.unwrap_or_default();
        let state = d.state.unwrap_or(match d.status {
            Some(0) | None => KeyState::Claimed { subject: body },
            Some(_) => KeyState::Answered { body },
        });
        Self {
            request_hash: d.request_hash,
            state,
            created_at: d.created_at,
        }
    }
}

/// Where Muster posts events, and which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    /// Event names (`invite.redeemed`…).
    pub events: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: Actor,
}

impl WebhookEndpoint {
    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == event)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Given up after `webhooks.give_up_after`.
    Failed,
}

impl DeliveryState {
    pub fn is_pending(self) -> bool {
        self == Self::Pending
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// One event on its way to one endpoint (at least once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub endpoint_id: String,
    pub seq: u64,
    /// `webhook-id`: the same for a redelivery of the same event.
    pub msg_id: String,
    pub event: String,
    /// What it is about (an invite id); its events go in order.
    pub subject: String,
    /// The JSON body as signed.
    pub payload: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub state: DeliveryState,
    pub attempts: u32,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub first_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod actor_tests {
    use super::Actor;

    #[test]
    fn actors_in_the_words_the_audit_page_shows() {
        assert_eq!(Actor::system().words(), "Muster");
        assert_eq!(Actor::cli().words(), "command line");
        assert_eq!(Actor::admin("jo@x.org").words(), "jo@x.org (admin)");
        assert_eq!(
            Actor::token("hr: sync", "T1").words(),
            "API token \"hr: sync\""
        );
        assert_eq!(
            Actor::recipient("kim@y.org").words(),
            "kim@y.org (recipient)"
        );
        assert_eq!(
            Actor("client:203.0.113.9".into()).words(),
            "client 203.0.113.9"
        );
    }
}
