//! The preview (R4–R6): what each row becomes, every problem with it, and
//! what is left of the domain's mailbox cap and of the storage pool.

use std::collections::HashMap;

use serde::Serialize;
use time::OffsetDateTime;

use super::address::{LocalPart, MailboxAddress, RecipientEmail};
use super::capacity::{Capacity, HostLimit};
use super::reserved::ReservedNames;
use super::roster::{CreationRow, InviteRow, parse_allocation};

/// Stable machine codes for row problems; the API and MCP expose them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagCode {
    UnreadableRow,
    InvalidRecipientEmail,
    InvalidLocalPart,
    ReservedLocalPart,
    InvalidDisplayName,
    InvalidLocale,
    InvalidPassword,
    DuplicateRecipient,
    DuplicateMailbox,
    MailboxExists,
    InvitePending,
    InvalidAllocation,
    AllocationOverPool,
    OverCap,
}

impl FlagCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnreadableRow => "unreadable_row",
            Self::InvalidRecipientEmail => "invalid_recipient_email",
            Self::InvalidLocalPart => "invalid_local_part",
            Self::ReservedLocalPart => "reserved_local_part",
            Self::InvalidDisplayName => "invalid_display_name",
            Self::InvalidLocale => "invalid_locale",
            Self::InvalidPassword => "invalid_password",
            Self::DuplicateRecipient => "duplicate_recipient",
            Self::DuplicateMailbox => "duplicate_mailbox",
            Self::MailboxExists => "mailbox_exists",
            Self::InvitePending => "invite_pending",
            Self::InvalidAllocation => "invalid_allocation",
            Self::AllocationOverPool => "allocation_over_pool",
            Self::OverCap => "over_cap",
        }
    }
}

/// One problem with one row: a code, the field at fault and plain words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub code: FlagCode,
    pub field: &'static str,
    pub message: String,
}

impl Flag {
    fn new(code: FlagCode, field: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            field,
            message: message.into(),
        }
    }
}

/// Per-mailbox lookups the preview needs; answered by the store and the
/// host's mailbox list, so the rules here stay free of I/O.
pub trait Occupancy {
    fn mailbox_exists(&self, mailbox: &MailboxAddress) -> bool;
    /// The expiry of a live invite for this mailbox, if there is one.
    fn pending_invite_expiry(&self, mailbox: &MailboxAddress) -> Option<OffsetDateTime>;
}

/// The capacity with this batch counted in, as the preview shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapacityAfter {
    pub domain: String,
    pub cap: u64,
    pub existing: u64,
    pub pending: u64,
    /// Rows that would create a mailbox if sent.
    pub this_batch: u64,
    /// cap − existing − pending − this batch (or the mail host's own
    /// limit, when lower); negative when over.
    pub left_after: i64,
    /// The mailboxes the mail host itself allows in the domain, when it
    /// keeps a limit (Postfix Admin's); 0 when it takes none.
    pub host_limit: Option<u64>,
    pub pool_mb: u64,
    pub pool_allocated_mb: u64,
    pub batch_allocated_mb: u64,
    /// pool − allocated − this batch's allocations; negative when over.
    pub pool_left_after_mb: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvitePreviewRow {
    /// 0-based position in the batch.
    pub index: usize,
    /// The file's own line, when the row came from a file.
    pub line: Option<usize>,
    pub recipient_email: String,
    /// `local@domain`, when a valid local part could be derived.
    pub mailbox: Option<String>,
    pub local_part: Option<String>,
    pub storage_allocation_mb: Option<u64>,
    pub display_name: Option<String>,
    pub locale: Option<String>,
    pub flags: Vec<Flag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvitePreview {
    pub rows: Vec<InvitePreviewRow>,
    pub capacity: CapacityAfter,
    pub clean_rows: usize,
    pub flagged_rows: usize,
}

/// The checked values of one row, ready to become an invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanInvite {
    pub index: usize,
    pub recipient: RecipientEmail,
    pub mailbox: MailboxAddress,
    pub storage_allocation_mb: Option<u64>,
    pub display_name: Option<String>,
    pub locale: Option<String>,
}

const MAX_DISPLAY_NAME: usize = 100;

fn check_display_name(name: &str) -> Result<(), String> {
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(format!(
            "the display name is longer than {MAX_DISPLAY_NAME} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("the display name contains a line break or control character".into());
    }
    if let Some(c) = name.chars().find(|c| is_spoofing_char(*c)) {
        return Err(format!(
            "the display name contains an invisible or direction-changing character (U+{:04X}), which can disguise what it says; remove it",
            c as u32
        ));
    }
    Ok(())
}

/// Bidirectional controls and invisible characters: they make a name read
/// differently from what it holds (U+202E turns "gpj.exe" into "exe.jpg").
/// The zero-width joiner and non-joiner (U+200C, U+200D) stay allowed:
/// Persian, Indic names and emoji sequences need them.
fn is_spoofing_char(c: char) -> bool {
    matches!(c,
        '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180E}' | '\u{200B}' | '\u{200E}' | '\u{200F}'
        | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// Why a row's `mb` does not fit in the `pool_left_mb` of the storage pool
/// that the rows above, taking `allocated_mb`, leave it; and what to do.
pub fn over_pool_words(mb: u64, allocated_mb: u64, pool_left_mb: i64) -> String {
    let pool = pool_left_mb.max(0);
    let why = if allocated_mb == 0 {
        format!("{mb} MB is more than the {pool} MB left in the storage pool")
    } else {
        format!(
            "{mb} MB does not fit: the rows above take {allocated_mb} MB of the {pool} MB left in the storage pool"
        )
    };
    format!("{why}; raise storage_pool_mb, allocate less, or leave rows out")
}

/// `s` as a terminal, a log or a spreadsheet may show it: control
/// characters (a CSV cell can carry the escape codes that clear a screen)
/// and the invisible ones that reorder or hide text, written as `\u{…}`.
pub fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| c.is_control() || is_spoofing_char(c);
    if !s.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hidden(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `en`, `de`, `de-DE`, `pt_BR`: a language tag Muster can map to a template.
pub fn check_locale(locale: &str) -> Result<String, String> {
    let norm = locale.trim().replace('_', "-");
    let mut parts = norm.split('-');
    let lang_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()));
    let rest_ok =
        parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if lang_ok && rest_ok {
        Ok(norm.to_ascii_lowercase())
    } else {
        Err(format!(
            "the locale {locale:?} is not a language tag like en or de-DE"
        ))
    }
}

/// The row-independent part shared by both previews: duplicates, the host
/// and pending invites, then the cap and the pool in row order.
struct Candidate<'a> {
    /// The file's line, when the row came from one.
    line: Option<usize>,
    mailbox: Option<&'a MailboxAddress>,
    allocation: Option<u64>,
    flags: &'a mut Vec<Flag>,
}

/// How a row is named in another row's flag: by the file's line, as the
/// preview shows it, else by its place in the list.
fn place(line: Option<usize>, index: usize) -> String {
    match line {
        Some(line) => format!("line {line}"),
        // As the API counts its items (from 0, as its errors' index).
        None => format!("item {index}"),
    }
}

fn apply_capacity(
    candidates: &mut [Candidate<'_>],
    facts: &Capacity,
    occupancy: &dyn Occupancy,
    reserved: &ReservedNames,
    now: OffsetDateTime,
) -> CapacityAfter {
    let mut first_place_of: HashMap<&MailboxAddress, String> = HashMap::new();
    for (i, c) in candidates.iter_mut().enumerate() {
        let Some(mailbox) = c.mailbox else { continue };
        if let Some(why) = reserved.refusal(mailbox) {
            c.flags
                .push(Flag::new(FlagCode::ReservedLocalPart, "local_part", why));
        }
        if let Some(first) = first_place_of.get(mailbox) {
            c.flags.push(Flag::new(
                FlagCode::DuplicateMailbox,
                "local_part",
                format!("the mailbox {mailbox} is already used by {first}"),
            ));
        } else {
            first_place_of.insert(mailbox, place(c.line, i));
        }
        if occupancy.mailbox_exists(mailbox) {
            c.flags.push(Flag::new(
                FlagCode::MailboxExists,
                "local_part",
                format!("the mailbox {mailbox} already exists on the mail server"),
            ));
        } else if occupancy
            .pending_invite_expiry(mailbox)
            .is_some_and(|expiry| expiry > now)
        {
            c.flags.push(Flag::new(
                FlagCode::InvitePending,
                "local_part",
                format!("an invite for {mailbox} is already pending; resend or revoke it instead"),
            ));
        }
    }

    // Only the rows that would go count, in the flags and in the panel: a
    // row flagged here is left out, so it takes nothing from the rows after
    // it, and the panel shows what sending the clean rows leaves. (Each
    // flag says by how much its row is over.)
    let left = facts.left();
    let available_mb = facts.pool_available_mb();
    let (mut this_batch, mut allocated) = (0u64, 0u64);
    for c in candidates.iter_mut() {
        if !c.flags.is_empty() {
            continue;
        }
        if (this_batch + 1) as i64 > left {
            c.flags.push(Flag::new(
                FlagCode::OverCap,
                "recipient_email",
                facts.over_words(this_batch),
            ));
            continue;
        }
        if let Some(mb) = c.allocation
            && (allocated + mb) as i64 > available_mb
        {
            c.flags.push(Flag::new(
                FlagCode::AllocationOverPool,
                "storage_allocation_mb",
                over_pool_words(mb, allocated, available_mb),
            ));
            continue;
        }
        this_batch += 1;
        allocated += c.allocation.unwrap_or(0);
    }
    CapacityAfter {
        domain: facts.domain.to_string(),
        cap: facts.cap,
        existing: facts.existing,
        pending: facts.pending,
        this_batch,
        left_after: left - this_batch as i64,
        host_limit: facts.host_limit.as_ref().map(HostLimit::allowed),
        pool_mb: facts.pool_mb,
        pool_allocated_mb: facts.pool_allocated_mb,
        batch_allocated_mb: allocated,
        pool_left_after_mb: available_mb - allocated as i64,
    }
}

fn row_allocation(raw: Option<&str>, flags: &mut Vec<Flag>) -> Option<u64> {
    match raw.map(parse_allocation) {
        None => None,
        Some(Ok(mb)) => Some(mb),
        Some(Err(e)) => {
            flags.push(Flag::new(
                FlagCode::InvalidAllocation,
                "storage_allocation_mb",
                e.to_string(),
            ));
            None
        }
    }
}

/// Builds the bulk-invite preview for rows bound for `facts.domain`.
pub fn preview_invites(
    rows: &[InviteRow],
    facts: &Capacity,
    occupancy: &dyn Occupancy,
    reserved: &ReservedNames,
    now: OffsetDateTime,
) -> (InvitePreview, Vec<Option<CleanInvite>>) {
    let mut out = Vec::with_capacity(rows.len());
    let mut parsed = Vec::with_capacity(rows.len());
    let mut first_recipient: HashMap<String, String> = HashMap::new();
    for (index, row) in rows.iter().enumerate() {
        let mut flags = Vec::new();
        if let Some(problem) = &row.problem {
            flags.push(Flag::new(FlagCode::UnreadableRow, "row", problem.clone()));
        }
        let recipient = match RecipientEmail::parse(&row.recipient_email) {
            Ok(r) => {
                match first_recipient.get(&r.dedup_key()) {
                    Some(first) => flags.push(Flag::new(
                        FlagCode::DuplicateRecipient,
                        "recipient_email",
                        format!("{r} is already invited by {first}"),
                    )),
                    None => {
                        first_recipient.insert(r.dedup_key(), place(row.line, index));
                    }
                }
                Some(r)
            }
            Err(e) => {
                let message = if row.recipient_email.trim().is_empty() {
                    "the recipient email is missing".to_string()
                } else {
                    format!(
                        "{:?} is not a valid email address: {e}",
                        row.recipient_email
                    )
                };
                flags.push(Flag::new(
                    FlagCode::InvalidRecipientEmail,
                    "recipient_email",
                    message,
                ));
                None
            }
        };
        // The explicit column wins; else the recipient's local part (R2).
        let local_source = row
            .local_part
            .clone()
            .or_else(|| {
                row.recipient_email
                    .trim()
                    .split('@')
                    .next()
                    .map(str::to_string)
            })
            .filter(|s| !s.is_empty());
        let local = match local_source.as_deref().map(LocalPart::parse) {
            Some(Ok(l)) => Some(l),
            Some(Err(e)) => {
                let source = if row.local_part.is_some() {
                    "the local_part column"
                } else {
                    "the part before @ of the recipient email"
                };
                flags.push(Flag::new(
                    FlagCode::InvalidLocalPart,
                    "local_part",
                    format!(
                        "{e} (from {source}); set the mailbox name (local_part) to choose another"
                    ),
                ));
                None
            }
            None => None,
        };
        let mailbox = local.map(|l| MailboxAddress::new(l, facts.domain.clone()));
        // Sent to the mailbox it creates, the invite could never arrive.
        if let (Some(r), Some(m)) = (&recipient, &mailbox)
            && r.to_string().eq_ignore_ascii_case(&m.to_string())
        {
            flags.push(Flag::new(
                FlagCode::InvalidRecipientEmail,
                "recipient_email",
                format!(
                    "{r} is the mailbox this invite creates, which receives nothing until the invite is used: send it to the person's current address"
                ),
            ));
        }
        let allocation = row_allocation(row.storage_allocation_mb.as_deref(), &mut flags);
        let display_name = row.display_name.clone();
        if let Some(Err(e)) = display_name.as_deref().map(check_display_name) {
            flags.push(Flag::new(FlagCode::InvalidDisplayName, "display_name", e));
        }
        let locale = match row.locale.as_deref().map(check_locale) {
            None => None,
            Some(Ok(l)) => Some(l),
            Some(Err(e)) => {
                flags.push(Flag::new(FlagCode::InvalidLocale, "locale", e));
                None
            }
        };
        parsed.push((recipient, mailbox, allocation));
        out.push(InvitePreviewRow {
            index,
            line: row.line,
            recipient_email: row.recipient_email.trim().to_string(),
            mailbox: None,
            local_part: None,
            storage_allocation_mb: allocation,
            display_name,
            locale,
            flags,
        });
    }

    let mut candidates: Vec<Candidate<'_>> = out
        .iter_mut()
        .zip(parsed.iter())
        .map(|(row, (_, mailbox, allocation))| Candidate {
            line: row.line,
            mailbox: mailbox.as_ref(),
            allocation: *allocation,
            flags: &mut row.flags,
        })
        .collect();
    let capacity = apply_capacity(&mut candidates, facts, occupancy, reserved, now);

    let mut clean = Vec::with_capacity(out.len());
    for (row, (recipient, mailbox, allocation)) in out.iter_mut().zip(parsed) {
        row.mailbox = mailbox.as_ref().map(|m| m.to_string());
        row.local_part = mailbox.as_ref().map(|m| m.local().to_string());
        if let Some(r) = &recipient {
            row.recipient_email = r.to_string();
        }
        clean.push(match (row.flags.is_empty(), recipient, mailbox) {
            (true, Some(recipient), Some(mailbox)) => Some(CleanInvite {
                index: row.index,
                recipient,
                mailbox,
                storage_allocation_mb: allocation,
                display_name: row.display_name.clone(),
                locale: row.locale.clone(),
            }),
            _ => None,
        });
    }
    let clean_rows = clean.iter().filter(|c| c.is_some()).count();
    let preview = InvitePreview {
        flagged_rows: out.len() - clean_rows,
        clean_rows,
        rows: out,
        capacity,
    };
    (preview, clean)
}

/// What a bulk-creation row asks for its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChoice {
    Given(String),
    Generate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreationPreviewRow {
    pub index: usize,
    pub line: Option<usize>,
    pub mailbox: Option<String>,
    pub local_part: String,
    /// "given" or "generate"; the password itself never leaves the server.
    pub password: &'static str,
    pub storage_allocation_mb: Option<u64>,
    pub display_name: Option<String>,
    pub flags: Vec<Flag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreationPreview {
    pub rows: Vec<CreationPreviewRow>,
    pub capacity: CapacityAfter,
    pub clean_rows: usize,
    pub flagged_rows: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanCreation {
    pub index: usize,
    pub mailbox: MailboxAddress,
    pub password: PasswordChoice,
    pub storage_allocation_mb: Option<u64>,
    pub display_name: Option<String>,
}

/// Builds the bulk-creation preview (R13). `check_password` applies the
/// password policy to a given password and the mailbox it is for.
pub fn preview_creation(
    rows: &[CreationRow],
    facts: &Capacity,
    occupancy: &dyn Occupancy,
    reserved: &ReservedNames,
    now: OffsetDateTime,
    check_password: &dyn Fn(&str, &MailboxAddress) -> Result<(), String>,
) -> (CreationPreview, Vec<Option<CleanCreation>>) {
    let mut out = Vec::with_capacity(rows.len());
    let mut parsed = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let mut flags = Vec::new();
        if let Some(problem) = &row.problem {
            flags.push(Flag::new(FlagCode::UnreadableRow, "row", problem.clone()));
        }
        let mailbox = match LocalPart::parse(&row.local_part) {
            Ok(l) => Some(MailboxAddress::new(l, facts.domain.clone())),
            Err(e) => {
                flags.push(Flag::new(
                    FlagCode::InvalidLocalPart,
                    "local_part",
                    e.to_string(),
                ));
                None
            }
        };
        let choice = match row.password.as_deref().map(str::trim) {
            None | Some("") => PasswordChoice::Generate,
            Some(p) if p.eq_ignore_ascii_case("generate") => PasswordChoice::Generate,
            Some(_) => PasswordChoice::Given(row.password.clone().unwrap_or_default()),
        };
        if let (PasswordChoice::Given(p), Some(m)) = (&choice, &mailbox)
            && let Err(e) = check_password(p, m)
        {
            flags.push(Flag::new(FlagCode::InvalidPassword, "password", e));
        }
        let allocation = row_allocation(row.storage_allocation_mb.as_deref(), &mut flags);
        if let Some(Err(e)) = row.display_name.as_deref().map(check_display_name) {
            flags.push(Flag::new(FlagCode::InvalidDisplayName, "display_name", e));
        }
        out.push(CreationPreviewRow {
            index,
            line: row.line,
            mailbox: mailbox.as_ref().map(|m| m.to_string()),
            local_part: mailbox
                .as_ref()
                .map(|m| m.local().to_string())
                .unwrap_or_else(|| row.local_part.trim().to_string()),
            password: match choice {
                PasswordChoice::Given(_) => "given",
                PasswordChoice::Generate => "generate",
            },
            storage_allocation_mb: allocation,
            display_name: row.display_name.clone(),
            flags,
        });
        parsed.push((mailbox, choice, allocation));
    }
    let mut candidates: Vec<Candidate<'_>> = out
        .iter_mut()
        .zip(parsed.iter())
        .map(|(row, (mailbox, _, allocation))| Candidate {
            line: row.line,
            mailbox: mailbox.as_ref(),
            allocation: *allocation,
            flags: &mut row.flags,
        })
        .collect();
    let capacity = apply_capacity(&mut candidates, facts, occupancy, reserved, now);
    let clean: Vec<Option<CleanCreation>> = out
        .iter()
        .zip(parsed)
        .map(|(row, (mailbox, password, allocation))| match mailbox {
            Some(mailbox) if row.flags.is_empty() => Some(CleanCreation {
                index: row.index,
                mailbox,
                password,
                storage_allocation_mb: allocation,
                display_name: row.display_name.clone(),
            }),
            _ => None,
        })
        .collect();
    let clean_rows = clean.iter().filter(|c| c.is_some()).count();
    let preview = CreationPreview {
        flagged_rows: out.len() - clean_rows,
        clean_rows,
        rows: out,
        capacity,
    };
    (preview, clean)
}

#[cfg(test)]
mod tests;
