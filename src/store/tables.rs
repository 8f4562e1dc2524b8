//! Every redb table, in one place. Values are JSON documents unless a
//! table says otherwise; keys that start with a time sort by it.

use redb::TableDefinition;

/// `schema_version` → u32 big-endian.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// batch id → [`crate::store::Batch`].
pub const BATCHES: TableDefinition<&str, &[u8]> = TableDefinition::new("batches");

/// invite id → [`crate::domain::invite::Invite`].
pub const INVITES: TableDefinition<&str, &[u8]> = TableDefinition::new("invites");

/// (batch id, invite id) → ().
pub const INVITES_BY_BATCH: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("invites_by_batch");

/// SHA-256 of the current token → invite id. Only live generations are here.
pub const INVITE_BY_TOKEN: TableDefinition<&[u8], &str> = TableDefinition::new("invite_by_token");

/// mailbox → (invite id, expiry in ms) for invites that hold a place:
/// live, blocked or redeeming.
pub const OPEN_BY_MAILBOX: TableDefinition<&str, (&str, u64)> =
    TableDefinition::new("open_by_mailbox");

/// (domain, expiry ms, invite id) → () for the same invites, so the live
/// count of a domain is its counter minus the few already past expiry.
pub const OPEN_BY_EXPIRY: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("open_by_expiry");

/// domain → number of entries in [`OPEN_BY_EXPIRY`] for it.
pub const OPEN_COUNT: TableDefinition<&str, u64> = TableDefinition::new("open_count");

/// invite id → ms when its redemption began: redemptions to finish or
/// undo after a crash.
pub const REDEEMING: TableDefinition<&str, u64> = TableDefinition::new("redeeming");

/// (due ms, task id) → [`crate::store::Task`]: the delivery queue.
pub const TASKS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("tasks");

/// task id → due ms, to find and replace a task.
pub const TASK_DUE: TableDefinition<&str, u64> = TableDefinition::new("task_due");

/// mailbox → [`crate::store::MailboxRecord`]: mailboxes Muster created.
pub const MAILBOXES: TableDefinition<&str, &[u8]> = TableDefinition::new("mailboxes");

/// (time ms, event id) → [`crate::store::AuditEvent`].
pub const AUDIT: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("audit");

/// counter name → value (sends, failures, redemptions), for metrics.
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// admin email → [`crate::store::Admin`].
pub const ADMINS: TableDefinition<&str, &[u8]> = TableDefinition::new("admins");

/// SHA-256 of the session id → [`crate::store::Session`].
pub const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");

/// SHA-256 of a one-time token (admin setup, password reset) → record.
pub const ONE_TIME_TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("one_time_tokens");

/// API token id → [`crate::store::ApiToken`].
pub const API_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_tokens");

/// SHA-256 of the API token secret → token id.
pub const API_TOKEN_BY_HASH: TableDefinition<&[u8], &str> =
    TableDefinition::new("api_token_by_hash");

/// request id (sortable) → the email typed into "forgot password", until
/// the background work looks it up (the answer never waits for that).
pub const RESET_REQUESTS: TableDefinition<&str, &str> = TableDefinition::new("reset_requests");

/// admin email → when the last reset link was sent (unix seconds), for
/// the per-account throttle.
pub const RESET_LAST_SENT: TableDefinition<&str, u64> = TableDefinition::new("reset_last_sent");

/// (principal, idempotency key) → stored response.
pub const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("idempotency");

/// webhook endpoint id → [`crate::store::WebhookEndpoint`].
pub const WEBHOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhooks");

/// (endpoint id, delivery number) → [`crate::store::WebhookDelivery`].
pub const WEBHOOK_DELIVERIES: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("webhook_deliveries");

/// (endpoint id, delivery number) → (next attempt ms, subject) for the
/// deliveries not yet delivered or given up.
pub const WEBHOOK_PENDING: TableDefinition<(&str, u64), (u64, &str)> =
    TableDefinition::new("webhook_pending");

/// Destination domain → [`crate::domain::mta_sts::KeptPolicy`].
pub const MTA_STS_POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("mta_sts_policies");

/// Calls `$m!` with every table, so creating and copying them cannot miss one.
macro_rules! all_tables {
    ($m:ident) => {
        $m!(
            META,
            BATCHES,
            INVITES,
            INVITES_BY_BATCH,
            INVITE_BY_TOKEN,
            OPEN_BY_MAILBOX,
            OPEN_BY_EXPIRY,
            OPEN_COUNT,
            REDEEMING,
            TASKS,
            TASK_DUE,
            MAILBOXES,
            AUDIT,
            COUNTERS,
            ADMINS,
            SESSIONS,
            ONE_TIME_TOKENS,
            API_TOKENS,
            API_TOKEN_BY_HASH,
            RESET_REQUESTS,
            RESET_LAST_SENT,
            IDEMPOTENCY,
            WEBHOOKS,
            WEBHOOK_DELIVERIES,
            WEBHOOK_PENDING,
            MTA_STS_POLICIES
        )
    };
}
pub(crate) use all_tables;
