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
    pub fn token(name: &str, id: &str) -> Self {
        Self(format!("token:{name}:{id}"))
    }
    pub fn recipient(email: &str) -> Self {
        Self(format!("recipient:{email}"))
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
    pub fn invite(invite_id: &str, now: OffsetDateTime) -> Self {
        Self {
            id: format!("invite:{invite_id}"),
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

/// The first response to a creating call, kept for replays with the same
/// Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Hex SHA-256 of the request body: another body with the same key is refused.
    pub request_hash: String,
    pub status: u16,
    pub body: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}
