//! The JSON shapes of the API (poem-openapi objects), and their
//! conversions from the service's types.

use poem_openapi::{Enum, Object};

use crate::domain::capacity::HostLimit;
use crate::domain::preview::{CapacityAfter, CreationPreview, Flag, InvitePreview};
use crate::domain::roster::{CreationRow, InviteRow};
use crate::service::InviteView;

/// One error, as every API error looks.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `flagged_items`, `unauthorized`.
    pub code: String,
    /// Plain words for people.
    pub message: String,
    /// Per-item problems, for 422 on bulk calls.
    pub errors: Option<Vec<ItemError>>,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct ItemError {
    /// 0-based position of the item in the request.
    pub index: u32,
    /// The file's own line, for uploads.
    pub line: Option<u32>,
    pub field: String,
    /// A flag code such as `invalid_recipient_email` or `over_cap`.
    pub code: String,
    pub message: String,
}

/// An optional field as sent, with blank meaning left out.
pub(crate) fn given(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.trim().is_empty())
}

/// A bulk-invite item (R14). Absent fields stay out of its JSON, so an
/// Idempotency-Key's request hash is what it was before the optional
/// fields existed.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct InviteItem {
    /// The mailbox name on the domain, e.g. `jane.doe`.
    #[oai(validator(max_length = 320))]
    pub local_part: String,
    /// Where the invite is sent.
    #[oai(validator(max_length = 320))]
    pub recipient_email: String,
    /// Dedicated storage in MB; leave out for the shared pool.
    pub storage_allocation_mb: Option<i64>,
    /// The recipient's name, for the greeting (`Hello Jane Doe`).
    #[oai(validator(max_length = 400))]
    pub display_name: Option<String>,
    /// The email's language, such as `en` or `de`; left out, the
    /// configured default.
    #[oai(validator(max_length = 35))]
    pub locale: Option<String>,
}

impl InviteItem {
    pub fn to_row(&self) -> InviteRow {
        InviteRow {
            line: None,
            recipient_email: self.recipient_email.clone(),
            storage_allocation_mb: self.storage_allocation_mb.map(|n| n.to_string()),
            local_part: Some(self.local_part.clone()),
            display_name: given(&self.display_name),
            locale: given(&self.locale),
            problem: None,
        }
    }
}

/// `POST /api/v1/mailboxes/invites:bulk`.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct InvitesBulkRequest {
    /// A hosted domain; may be left out when only one is hosted.
    #[oai(validator(max_length = 253))]
    pub domain: Option<String>,
    /// Link lifetime such as `7d` or `48h`: at least 1h, at most the configured maximum (30d).
    #[oai(validator(max_length = 32))]
    pub expires_in: Option<String>,
    /// When recipients who have not used their link are reminded: a share
    /// of the link's life (`50%`) or a time before it expires (`48h`), at
    /// most 5; `[]` sends none; left out, the configured defaults
    /// (`invites.reminders`) that fit the link's life.
    #[oai(validator(max_items = 5))]
    pub reminders: Option<Vec<String>>,
    /// 1 to 100 items; more are refused with 422 `too_many_items`.
    pub items: Vec<InviteItem>,
}

/// A row as the web wizard sends it: values as typed, so bad ones are
/// flagged rather than refused.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct RosterRowBody {
    #[oai(validator(max_length = 320))]
    pub recipient_email: String,
    #[oai(validator(max_length = 320))]
    pub local_part: Option<String>,
    #[oai(validator(max_length = 32))]
    pub storage_allocation_mb: Option<String>,
    #[oai(validator(max_length = 400))]
    pub display_name: Option<String>,
    #[oai(validator(max_length = 35))]
    pub locale: Option<String>,
    /// The line of the file the row came from.
    pub line: Option<u32>,
}

impl RosterRowBody {
    pub fn to_row(&self) -> InviteRow {
        InviteRow {
            line: self.line.map(|l| l as usize),
            recipient_email: self.recipient_email.clone(),
            storage_allocation_mb: given(&self.storage_allocation_mb),
            local_part: given(&self.local_part),
            display_name: given(&self.display_name),
            locale: given(&self.locale),
            problem: None,
        }
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum RosterFormatBody {
    /// One recipient email per line.
    Lines,
    /// CSV with an optional header.
    Csv,
}

/// `POST /api/v1/previews/invites`: a pasted list or CSV text, or rows.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct InvitePreviewRequest {
    #[oai(validator(max_length = 253))]
    pub domain: Option<String>,
    pub format: Option<RosterFormatBody>,
    /// The list or CSV as text (at most the upload limit, 2 MiB by default).
    pub text: Option<String>,
    /// Rows to check again after edits in the wizard (at most 500).
    pub rows: Option<Vec<RosterRowBody>>,
}

/// `POST /api/v1/batches`: the web wizard's send (up to 500 rows).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct BatchRequestBody {
    #[oai(validator(max_length = 253))]
    pub domain: Option<String>,
    pub rows: Vec<RosterRowBody>,
    #[oai(validator(max_length = 32))]
    pub expires_in: Option<String>,
    /// As in `invites:bulk`: `[]` sends none, left out the defaults.
    #[oai(validator(max_items = 5))]
    pub reminders: Option<Vec<String>>,
    /// Send the clean rows and leave flagged ones out.
    #[oai(default)]
    pub only_clean: bool,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct FlagBody {
    pub code: String,
    pub field: String,
    pub message: String,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct PreviewRowBody {
    /// The row as it was read, for editing and checking again.
    pub input: RosterRowBody,
    pub index: u32,
    pub line: Option<u32>,
    pub recipient_email: String,
    pub mailbox: Option<String>,
    pub local_part: Option<String>,
    pub storage_allocation_mb: Option<u64>,
    pub display_name: Option<String>,
    pub locale: Option<String>,
    pub flags: Vec<FlagBody>,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct CapacityBody {
    pub domain: String,
    pub cap: u64,
    pub existing: u64,
    pub pending: u64,
    pub this_batch: u64,
    /// Under the cap, or under the mail server's own limit when lower.
    pub left_after: i64,
    /// The mailboxes the mail server itself allows in the domain, when it
    /// keeps a limit (Postfix Admin's); 0 when it takes none; absent when
    /// it keeps none.
    pub host_limit: Option<u64>,
    pub pool_mb: u64,
    pub pool_allocated_mb: u64,
    pub batch_allocated_mb: u64,
    pub pool_left_after_mb: i64,
}

impl From<&CapacityAfter> for CapacityBody {
    fn from(c: &CapacityAfter) -> Self {
        Self {
            domain: c.domain.clone(),
            cap: c.cap,
            existing: c.existing,
            pending: c.pending,
            this_batch: c.this_batch,
            left_after: c.left_after,
            host_limit: c.host_limit,
            pool_mb: c.pool_mb,
            pool_allocated_mb: c.pool_allocated_mb,
            batch_allocated_mb: c.batch_allocated_mb,
            pool_left_after_mb: c.pool_left_after_mb,
        }
    }
}

fn flags(fs: &[Flag]) -> Vec<FlagBody> {
    fs.iter()
        .map(|f| FlagBody {
            code: f.code.as_str().to_string(),
            field: f.field.to_string(),
            message: f.message.clone(),
        })
        .collect()
}

#[derive(Object, Debug, Clone)]
pub struct PreviewBody {
    pub rows: Vec<PreviewRowBody>,
    pub capacity: CapacityBody,
    pub clean_rows: u32,
    pub flagged_rows: u32,
}

impl PreviewBody {
    /// The preview of `input` (the same rows, in order).
    pub fn of(p: &InvitePreview, input: &[InviteRow]) -> Self {
        Self {
            rows: p
                .rows
                .iter()
                .zip(input)
                .map(|(r, i)| PreviewRowBody {
                    input: RosterRowBody {
                        recipient_email: i.recipient_email.clone(),
                        local_part: i.local_part.clone(),
                        storage_allocation_mb: i.storage_allocation_mb.clone(),
                        display_name: i.display_name.clone(),
                        locale: i.locale.clone(),
                        line: i.line.map(|l| l as u32),
                    },
                    index: r.index as u32,
                    line: r.line.map(|l| l as u32),
                    recipient_email: r.recipient_email.clone(),
                    mailbox: r.mailbox.clone(),
                    local_part: r.local_part.clone(),
                    storage_allocation_mb: r.storage_allocation_mb,
                    display_name: r.display_name.clone(),
                    locale: r.locale.clone(),
                    flags: flags(&r.flags),
                })
                .collect(),
            capacity: (&p.capacity).into(),
            clean_rows: p.clean_rows as u32,
            flagged_rows: p.flagged_rows as u32,
        }
    }
}

/// Per-item errors of a flagged invite preview.
impl From<&crate::service::codes::ItemProblem> for ItemError {
    fn from(p: &crate::service::codes::ItemProblem) -> Self {
        Self {
            index: p.index as u32,
            line: p.line.map(|l| l as u32),
            field: p.field.to_string(),
            code: p.code.to_string(),
            message: p.message.clone(),
        }
    }
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct InviteBody {
    pub id: String,
    pub batch_id: String,
    pub recipient_email: String,
    pub mailbox: String,
    pub display_name: Option<String>,
    pub storage_allocation_mb: Option<u64>,
    /// live, redeeming, redeemed, revoked, expired or blocked.
    pub link_state: String,
    /// queued, sending, sent (a relay accepted it), in_outbox (written to
    /// the outbox folder: no relay configured), deferred, failed or
    /// withdrawn (the invite was revoked before its email went).
    pub delivery_state: String,
    /// The relay's reply (sent, failed), the last error (deferred) or why
    /// it was withdrawn.
    pub delivery_detail: Option<String>,
    pub next_attempt_at: Option<String>,
    pub attempts: u32,
    pub created_at: String,
    pub expires_at: String,
    pub redeemed_at: Option<String>,
    pub new_link_requested_at: Option<String>,
    /// Why the last redemption could not create the mailbox.
    pub last_error: Option<String>,
    /// `setup` (an invite) or `password_reset` (a link to choose a new
    /// password for a mailbox Muster made).
    pub purpose: String,
}

pub use crate::domain::rfc3339;

impl From<&InviteView> for InviteBody {
    fn from(v: &InviteView) -> Self {
        Self {
            id: v.id.clone(),
            batch_id: v.batch_id.clone(),
            recipient_email: v.recipient_email.clone(),
            mailbox: v.mailbox.clone(),
            display_name: v.display_name.clone(),
            storage_allocation_mb: v.storage_allocation_mb,
            link_state: v.link_state.to_string(),
            delivery_state: v.delivery_state.to_string(),
            delivery_detail: v.delivery_detail.clone(),
            next_attempt_at: v.next_attempt_at.map(rfc3339),
            attempts: v.attempts,
            created_at: rfc3339(v.created_at),
            expires_at: rfc3339(v.expires_at),
            redeemed_at: v.redeemed_at.map(rfc3339),
            new_link_requested_at: v.new_link_requested_at.map(rfc3339),
            last_error: v.last_error.clone(),
            purpose: v.purpose.to_string(),
        }
    }
}

#[derive(Object, Debug, Clone)]
pub struct CreatedInvite {
    /// Position of the item in the request.
    pub index: u32,
    pub invite_id: String,
    pub mailbox: String,
    pub recipient_email: String,
    pub link_state: String,
    pub delivery_state: String,
}

#[derive(Object, Debug, Clone)]
pub struct BatchCreated {
    pub batch_id: String,
    pub expires_at: String,
    pub invites: Vec<CreatedInvite>,
    /// Rows left out because they were flagged (with `only_clean`).
    pub skipped_rows: u32,
}

#[derive(Object, Debug, Clone)]
pub struct InvitePage {
    pub invites: Vec<InviteBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Object, Debug, Clone)]
pub struct BatchSummary {
    pub id: String,
    pub domain: String,
    pub created_at: String,
    pub created_by: String,
    pub expires_in: String,
    pub invite_count: u32,
    /// When its links are recalled to recipients who have not used them.
    pub reminders: Vec<String>,
}

/// An invite a bulk resend would send a fresh link to.
#[derive(Object, Debug, Clone)]
pub struct ResendCandidateBody {
    pub invite: InviteBody,
    /// When its current link went out.
    pub link_sent_at: String,
}

/// What `POST /invites/resend-pending` would do with the same filters.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct ResendPendingPreview {
    pub older_than: String,
    pub batch_id: Option<String>,
    pub count: u32,
    /// Oldest link first.
    pub invites: Vec<ResendCandidateBody>,
}

#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct ResendPendingRequest {
    /// How long the invites have waited since their link went out, such
    /// as `7d` (at least `1h`).
    #[oai(validator(max_length = 32))]
    pub older_than: String,
    /// Only this batch.
    #[oai(validator(max_length = 64))]
    pub batch_id: Option<String>,
    /// Only these (the ones a preview showed); each must still be waiting.
    #[oai(validator(max_items = 5000))]
    pub invite_ids: Option<Vec<String>>,
}

#[derive(Object, Debug, Clone)]
pub struct SkippedInvite {
    pub invite_id: String,
    pub reason: String,
}

#[derive(Object, Debug, Clone)]
pub struct ResendPendingResult {
    /// Each with its fresh link on its way.
    pub resent: Vec<InviteBody>,
    /// Asked for but not resent, and why.
    pub skipped: Vec<SkippedInvite>,
}

#[derive(Object, Debug, Clone)]
pub struct StateCount {
    pub state: String,
    pub count: u32,
}

#[derive(Object, Debug, Clone)]
pub struct BatchStatus {
    pub batch: BatchSummary,
    /// Counts by delivery state.
    pub delivery: Vec<StateCount>,
    /// Counts by link state.
    pub links: Vec<StateCount>,
    pub invites: Vec<InviteBody>,
}

#[derive(Object, Debug, Clone)]
pub struct LinkBody {
    pub url: String,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct MailboxBody {
    pub address: String,
    /// The quota on the mail server, in MB.
    pub storage_allocation_mb: Option<u64>,
    /// A dedicated allocation (Muster's mailboxes); absent on the shared pool.
    pub dedicated_mb: Option<u64>,
    /// Logins refused; mail still accepted.
    pub suspended: bool,
    pub created_by_muster: bool,
    pub created_at: Option<String>,
    pub display_name: Option<String>,
}

/// How the mailbox list is ordered.
#[derive(poem_openapi::Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum MailboxSort {
    Address,
    Allocation,
    Created,
}

#[derive(Object, Debug, Clone)]
pub struct MailboxList {
    pub domain: String,
    pub mailboxes: Vec<MailboxBody>,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct DomainCapacity {
    pub domain: String,
    pub cap: u64,
    pub existing: u64,
    pub pending: u64,
    /// Under the cap, or under the mail server's own limit when lower.
    pub left: i64,
    /// The mailboxes the mail server itself allows in the domain, when it
    /// keeps a limit (Postfix Admin's); 0 when it takes none; absent when
    /// it keeps none.
    pub host_limit: Option<u64>,
}

#[derive(Object, Debug, Clone)]
pub struct PoolBody {
    pub pool_mb: u64,
    pub allocated_mb: u64,
    pub available_mb: i64,
}

#[derive(Object, Debug, Clone)]
pub struct CapacityOverview {
    pub domains: Vec<DomainCapacity>,
    pub pool: PoolBody,
}

impl CapacityOverview {
    /// Every domain's cap and the pool (the same in each), for REST and MCP.
    pub fn of(capacities: &[crate::domain::capacity::Capacity], pool_mb: u64) -> Self {
        let pool = capacities.first().map_or(
            PoolBody {
                pool_mb,
                allocated_mb: 0,
                available_mb: pool_mb as i64,
            },
            |c| PoolBody {
                pool_mb: c.pool_mb,
                allocated_mb: c.pool_allocated_mb,
                available_mb: c.pool_available_mb(),
            },
        );
        Self {
            domains: capacities
                .iter()
                .map(|c| DomainCapacity {
                    domain: c.domain.to_string(),
                    cap: c.cap,
                    existing: c.existing,
                    pending: c.pending,
                    left: c.left(),
                    host_limit: c.host_limit.as_ref().map(HostLimit::allowed),
                })
                .collect(),
            pool,
        }
    }
}

#[derive(Object, Debug, Clone)]
pub struct Settings {
    pub organisation: String,
    pub domains: Vec<String>,
    pub default_expiry: String,
    pub max_expiry: String,
    /// The reminders a batch gets unless it says otherwise (`invites.reminders`).
    pub reminders: Vec<String>,
    /// The events a webhook endpoint may ask for.
    pub webhook_events: Vec<String>,
    pub batch_limit: u32,
    pub api_call_limit: u32,
    pub upload_limit_bytes: u64,
    pub password_min_length: u32,
    /// With no SMTP relay configured, the folder invites are written to
    /// (they do not leave the server); absent when a relay is set.
    pub outbox_dir: Option<String>,
}

/// A bulk-creation item (R13).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct CreationItem {
    #[oai(validator(max_length = 320))]
    pub local_part: String,
    /// The password, or leave out (or `generate`) for a generated one.
    #[oai(validator(max_length = 256))]
    pub password: Option<String>,
    pub storage_allocation_mb: Option<i64>,
    #[oai(validator(max_length = 400))]
    pub display_name: Option<String>,
}

impl CreationItem {
    pub fn to_row(&self) -> CreationRow {
        CreationRow {
            line: None,
            local_part: self.local_part.clone(),
            password: self.password.clone(),
            storage_allocation_mb: self.storage_allocation_mb.map(|n| n.to_string()),
            display_name: self.display_name.clone(),
            problem: None,
        }
    }
}

/// `POST /api/v1/mailboxes:bulk`.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct MailboxesBulkRequest {
    #[oai(validator(max_length = 253))]
    pub domain: Option<String>,
    /// 1 to 100 items; more are refused with 422 `too_many_items`.
    pub items: Vec<CreationItem>,
}

/// A creation row as the wizard sends it.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct CreationRowBody {
    #[oai(validator(max_length = 320))]
    pub local_part: String,
    #[oai(validator(max_length = 256))]
    pub password: Option<String>,
    #[oai(validator(max_length = 32))]
    pub storage_allocation_mb: Option<String>,
    #[oai(validator(max_length = 400))]
    pub display_name: Option<String>,
    pub line: Option<u32>,
}

impl CreationRowBody {
    pub fn to_row(&self) -> CreationRow {
        CreationRow {
            line: self.line.map(|l| l as usize),
            local_part: self.local_part.clone(),
            password: given(&self.password),
            storage_allocation_mb: given(&self.storage_allocation_mb),
            display_name: given(&self.display_name),
            problem: None,
        }
    }
}

#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct CreationPreviewRequest {
    #[oai(validator(max_length = 253))]
    pub domain: Option<String>,
    /// The CSV as text: local_part, password (or `generate`), storage_allocation_mb, display_name.
    pub text: Option<String>,
    pub rows: Option<Vec<CreationRowBody>>,
}

#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct CreationRequestBody {
    #[oai(validator(max_length = 253))]
    pub domain: Option<String>,
    pub rows: Vec<CreationRowBody>,
    #[oai(default)]
    pub only_clean: bool,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct CreationPreviewRowBody {
    /// The row as it was read (passwords included, for editing in the
    /// caller's own session; never stored or logged).
    pub input: CreationRowBody,
    pub index: u32,
    pub line: Option<u32>,
    pub mailbox: Option<String>,
    pub local_part: String,
    /// `given` or `generate`; passwords are never echoed.
    pub password: String,
    pub storage_allocation_mb: Option<u64>,
    pub display_name: Option<String>,
    pub flags: Vec<FlagBody>,
}

#[derive(Object, Debug, Clone)]
pub struct CreationPreviewBody {
    pub rows: Vec<CreationPreviewRowBody>,
    pub capacity: CapacityBody,
    pub clean_rows: u32,
    pub flagged_rows: u32,
}

impl CreationPreviewBody {
    pub fn of(p: &CreationPreview, input: &[CreationRow]) -> Self {
        Self {
            rows: p
                .rows
                .iter()
                .zip(input)
                .map(|(r, i)| CreationPreviewRowBody {
                    input: CreationRowBody {
                        local_part: i.local_part.clone(),
                        password: i.password.clone(),
                        storage_allocation_mb: i.storage_allocation_mb.clone(),
                        display_name: i.display_name.clone(),
                        line: i.line.map(|l| l as u32),
                    },
                    index: r.index as u32,
                    line: r.line.map(|l| l as u32),
                    mailbox: r.mailbox.clone(),
                    local_part: r.local_part.clone(),
                    password: r.password.to_string(),
                    storage_allocation_mb: r.storage_allocation_mb,
                    display_name: r.display_name.clone(),
                    flags: flags(&r.flags),
                })
                .collect(),
            capacity: (&p.capacity).into(),
            clean_rows: p.clean_rows as u32,
            flagged_rows: p.flagged_rows as u32,
        }
    }
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct CreatedMailboxBody {
    pub index: u32,
    pub mailbox: String,
    pub storage_allocation_mb: Option<u64>,
    /// Present for generated passwords only, and only in this response.
    pub generated_password: Option<String>,
}

#[derive(Object, Debug, Clone)]
pub struct MailboxesCreated {
    pub batch_id: String,
    pub mailboxes: Vec<CreatedMailboxBody>,
    pub skipped_rows: u32,
}

#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct SignInBody {
    #[oai(validator(max_length = 320))]
    pub email: String,
    #[oai(validator(max_length = 256))]
    pub password: String,
}

#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct SetupBody {
    #[oai(validator(max_length = 100))]
    pub token: String,
    #[oai(validator(max_length = 320))]
    pub email: String,
    #[oai(validator(max_length = 256))]
    pub password: String,
}

#[derive(Object, Debug, Clone)]
pub struct SessionBody {
    pub email: String,
    /// Send back in the X-CSRF-Token header with every state-changing request.
    pub csrf_token: String,
}

#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct ForgotBody {
    #[oai(validator(max_length = 320))]
    pub email: String,
}

#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct ResetBody {
    #[oai(validator(max_length = 100))]
    pub token: String,
    #[oai(validator(max_length = 256))]
    pub password: String,
}

#[derive(Object, Debug, Clone)]
pub struct MessageBody {
    pub message: String,
}

#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct NewToken {
    #[oai(validator(max_length = 80))]
    pub name: String,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct TokenBody {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub created_by: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Shown once, at creation.
    pub secret: Option<String>,
}

impl TokenBody {
    pub fn of(t: &crate::store::ApiToken, secret: Option<String>) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            created_at: rfc3339(t.created_at),
            created_by: t.created_by.to_string(),
            last_used_at: t.last_used_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
            secret,
        }
    }
}

#[derive(Object, Debug, Clone)]
pub struct AuditBody {
    pub id: String,
    pub at: String,
    /// `admin:EMAIL`, `token:NAME:ID`, `recipient:EMAIL`, `client:ADDRESS`
    /// (a failed sign-in), `cli` or `system`.
    pub actor: String,
    /// The actor in words, as the web app shows it ("jane@… (admin)",
    /// "command line", "Muster").
    pub actor_name: String,
    pub action: String,
    /// What it acted on: an invite, batch or token id, a mailbox or an account.
    pub subject: String,
    /// The subject in words when it is an id: the invite's mailbox and
    /// recipient, the batch's domain and size, the token's name.
    #[oai(skip_serializing_if_is_none)]
    pub subject_name: Option<String>,
    pub detail: String,
}

#[derive(Object, Debug, Clone)]
pub struct AuditPage {
    pub events: Vec<AuditBody>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// A CSV download: the browser saves it under `filename`.
#[derive(poem_openapi::ApiResponse)]
pub enum CsvResponse {
    #[oai(status = 200, content_type = "text/csv; charset=utf-8")]
    Csv(
        poem_openapi::payload::PlainText<String>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

impl CsvResponse {
    pub fn attachment(filename: &str, body: String) -> Self {
        CsvResponse::Csv(
            poem_openapi::payload::PlainText(body),
            format!("attachment; filename=\"{filename}\""),
        )
    }
}

/// A CSV cell: quoted when needed, and formulas defused for spreadsheets.
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}
