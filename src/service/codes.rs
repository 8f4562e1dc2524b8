//! The stable machine codes of service errors, and what kind of failure
//! each is. REST maps the kind to a status; MCP reports the same code, so
//! the same bad call gets the same answer on every surface.

use crate::domain::preview::{CreationPreview, Flag, InvitePreview};

use super::ServiceError;
use crate::provision::ProvisionError;
use crate::store::StoreError;

/// What kind of failure an error is, for a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request asks for something the rules refuse (422).
    Invalid,
    /// Names something that does not exist (404).
    NotFound,
    /// The thing's state does not allow this now (409).
    Conflict,
    /// Not now: a part Muster depends on cannot serve (503), with when to
    /// try again when known.
    Unavailable { retry_after_secs: Option<u64> },
    /// A fault of Muster's own; its details belong in the log (500).
    Internal,
}

/// One problem with one item of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemProblem {
    /// 0-based position of the item in the request.
    pub index: usize,
    /// The file's own line, for uploads.
    pub line: Option<usize>,
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

fn problems<'a>(
    rows: impl Iterator<Item = (usize, Option<usize>, &'a [Flag])>,
) -> Vec<ItemProblem> {
    rows.flat_map(|(index, line, flags)| {
        flags.iter().map(move |f| ItemProblem {
            index,
            line,
            field: f.field,
            code: f.code.as_str(),
            message: f.message.clone(),
        })
    })
    .collect()
}

pub fn invite_problems(p: &InvitePreview) -> Vec<ItemProblem> {
    problems(p.rows.iter().map(|r| (r.index, r.line, r.flags.as_slice())))
}

pub fn creation_problems(p: &CreationPreview) -> Vec<ItemProblem> {
    problems(p.rows.iter().map(|r| (r.index, r.line, r.flags.as_slice())))
}

impl ServiceError {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        use ServiceError as S;
        match self {
            S::Roster(t) => t.code(),
            S::UnknownDomain { .. } => "unknown_domain",
            S::DomainRequired(_) => "domain_required",
            S::TooManyItems { .. } => "too_many_items",
            S::NoItems => "no_items",
            S::Expiry { .. } => "invalid_expiry",
            S::Reminders(_) => "invalid_reminders",
            S::Wait(_) => "invalid_older_than",
            S::Webhook(_) => "invalid_webhook",
            S::NoWebhook(_) => "no_such_webhook",
            S::NoDelivery(_) => "no_such_delivery",
            S::Flagged { .. } | S::CreationFlagged(_) => "flagged_items",
            S::NothingClean { .. } => "nothing_clean",
            S::NoInvite(_) => "no_such_invite",
            S::NoBatch(_) => "no_such_batch",
            S::UnknownState(_) => "invalid_state",
            S::BadCursor(_) => "invalid_cursor",
            S::Transition(_) => "invite_state",
            S::Reopen(_) => "cannot_reopen",
            S::IdempotencyMismatch => "idempotency_key_reused",
            S::Host(ProvisionError::Refused(_)) => "mail_host_refused",
            S::Host(ProvisionError::Partial { .. }) => "mail_host_partial",
            S::Host(_) => "mail_host_failed",
            S::HostDamaged(_) => "mail_host_damaged",
            S::Busy(_) => "busy",
            S::Store(s) if s.is_unavailable() => "store_unavailable",
            S::Email(_) => "email_template",
            S::NotManaged(_) => "no_such_mailbox",
            S::Allocation(_) => "invalid_allocation",
            S::ResetRecipient(_) => "invalid_reset",
            S::TestNotSent(_) => "test_not_sent",
            S::TestRefused(_) => "test_refused",
            S::Dns(_) => "dns_unavailable",
            S::LinkKeyChanged => "link_key_changed",
            S::Store(_) | S::Io(_) | S::Hash(_) | S::Stopped | S::DataFolder(_) => "internal",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        use ServiceError as S;
        match self {
            S::NoInvite(_)
            | S::NoBatch(_)
            | S::NotManaged(_)
            | S::NoWebhook(_)
            | S::NoDelivery(_) => ErrorKind::NotFound,
            S::Transition(_)
            | S::Reopen(_)
            | S::Host(ProvisionError::Refused(_))
            | S::LinkKeyChanged => ErrorKind::Conflict,
            S::Busy(b) => ErrorKind::Unavailable {
                retry_after_secs: Some(b.retry_after_secs),
            },
            S::Host(_) | S::HostDamaged(_) | S::TestNotSent(_) | S::Dns(_) => {
                ErrorKind::Unavailable {
                    retry_after_secs: None,
                }
            }
            S::Store(s) if s.is_unavailable() => ErrorKind::Unavailable {
                retry_after_secs: None,
            },
            S::Store(_) | S::Io(_) | S::Hash(_) | S::Stopped | S::Email(_) | S::DataFolder(_) => {
                ErrorKind::Internal
            }
            _ => ErrorKind::Invalid,
        }
    }

    /// The mail host refused (in Muster's words); worth a line in the log.
    pub fn is_host_refusal(&self) -> bool {
        matches!(self, ServiceError::Host(ProvisionError::Refused(_)))
    }

    /// Words safe to show any caller: the error itself, except for faults
    /// and the mail host (whose details go to the log).
    pub fn public_message(&self) -> String {
        match (self, self.kind()) {
            (_, ErrorKind::Internal) => {
                "internal error; the server log has the details".to_string()
            }
            // Muster's own words on what the host does not take (a
            // domain's limit, an address there already) tell the admin what
            // to do; anything else the host said stays in the log.
            (ServiceError::Host(ProvisionError::Refused(refusal)), _) => {
                format!("the mail server refused: {refusal}")
            }
            // The addresses are the admin's own request; what the host said
            // stays in the log.
            (ServiceError::Host(ProvisionError::Partial { made, .. }), _) => format!(
                "the mail server stopped part way: {} were made on it, and Muster did not record them; remove them on the mail server, then try again; the server log has the details",
                made.join(", ")
            ),
            (ServiceError::Host(_), _) => {
                "the mail server could not be updated; the server log has the details".to_string()
            }
            (ServiceError::Store(StoreError::Gone(_)), _) => {
                "Muster's store file was removed or replaced while it ran; nothing was changed. The administrator has to put the store back (muster restore) and restart Muster.".to_string()
            }
            (ServiceError::Store(_), _) => {
                "Muster cannot write its data folder (is the disk full?); nothing was changed. Free space, then restart Muster.".to_string()
            }
            _ => self.to_string(),
        }
    }

    /// Each flagged item's problems, for the errors about flagged rows.
    pub fn item_problems(&self) -> Option<Vec<ItemProblem>> {
        match self {
            ServiceError::Flagged { preview, .. } | ServiceError::NothingClean { preview } => {
                Some(invite_problems(preview))
            }
            ServiceError::CreationFlagged(preview) => Some(creation_problems(preview)),
            _ => None,
        }
    }
}
