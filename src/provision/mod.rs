//! Provisioning on the host mail server: the [`MailHost`] trait and its
//! backends (Dovecot passwd-file with a Postfix map, or an operator's
//! command), plus password hashing in the schemes Dovecot reads.

mod command;
mod files;
pub mod hash;
mod index;
mod passwd_file;
pub mod sql;

use std::sync::Arc;

pub use command::CommandHost;
pub use files::{
    append_problem, dovecot_gid, group_name, may_give_group, running_as_root, writable,
};
pub use index::{HostIndex, HostMailbox};

pub use passwd_file::{PasswdFileHost, parse_passwd_file};

use crate::config::{Config, MailHostBackend};

/// A mailbox to create. The password is already hashed, with its scheme
/// prefix (e.g. `{ARGON2ID}$argon2id$…`).
#[derive(Debug, Clone)]
pub struct NewMailbox {
    pub address: crate::domain::address::MailboxAddress,
    pub password_hash: String,
    pub quota_mb: Option<u64>,
    pub display_name: Option<String>,
}

/// A change to one mailbox already on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxChange {
    /// Its quota: a dedicated allocation, or the default for the shared
    /// pool (None).
    Quota(Option<u64>),
    /// Refuse (true) or allow (false) its logins; mail is still accepted.
    Suspended(bool),
    /// A new password hash, with its scheme prefix.
    Password(String),
}

/// What became of a removed mailbox's mail folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailFolder {
    /// Left where it is (the default).
    Kept(String),
    Deleted(String),
    /// Asked for, but there was no folder there (no mail had arrived).
    Absent(String),
    /// Asked for, but the folder could not be deleted (often: it belongs
    /// to the mail server's user); the mailbox is removed all the same.
    NotDeleted {
        path: String,
        why: String,
    },
    /// The host does not say where the mail is.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    /// The address was already on the host; nothing was written.
    AlreadyExists,
}

/// What to do about a failed write, by its cause.
fn write_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            "free space on that disk"
        }
        std::io::ErrorKind::ReadOnlyFilesystem => "its file system is read-only: make it writable",
        _ => "check that Muster may write it and its folder",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}; {}", write_hint(source))]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} does not end with a newline: its last line may be half written, and Muster will not add a line to it. Check the last line, end it with a newline, and try again"
    )]
    Unterminated { path: String },
    #[error("{path} is locked by another writer (lock file {lock}); try again when it is done")]
    Locked { path: String, lock: String },
    #[error("the reload command `{command}` failed ({status}): {stderr}")]
    Reload {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("the mail host command failed ({status}): {stderr}")]
    Command { status: String, stderr: String },
    #[error("the mail host command answered something unreadable: {0}")]
    CommandOutput(String),
    #[error("{0}")]
    Invalid(String),
    /// The host takes no such change, in Muster's own words (the address
    /// exists, a domain limit is reached): nothing was changed, and the
    /// words are safe to show the admin who asked.
    #[error("{0}")]
    Refused(String),
    /// A host that creates one mailbox at a time stopped part way: `made`
    /// are on it, the rest are not, and Muster recorded none of them.
    #[error("{error}; created before the failure: {}", made.join(", "))]
    Partial { made: Vec<String>, error: String },
    #[error("{0} cannot change or remove a mailbox; do it on the mail server")]
    Unsupported(String),
    /// The SQL backend's database did not do what was asked (down,
    /// unreachable, a missing table): nothing was changed.
    #[error("the mail database, {what}: {error}")]
    Database { what: String, error: String },
}

/// The host mail server as Muster sees it.
pub trait MailHost: Send + Sync {
    /// The mailboxes on the host, cached until the host changes.
    fn list(&self) -> Result<Arc<HostIndex>, ProvisionError>;
    /// Creates one mailbox, or reports that it already exists. Leaves
    /// nothing behind when it fails.
    fn create(&self, mailbox: &NewMailbox) -> Result<Created, ProvisionError>;
    /// Creates all of them, refusing if any exists. The default creates
    /// them one by one and stops at the first failure (saying which were
    /// made); backends that can do it atomically override it.
    fn create_many(&self, boxes: &[NewMailbox]) -> Result<(), ProvisionError> {
        let mut done = Vec::new();
        for m in boxes {
            match self.create(m) {
                Ok(Created::Created) => done.push(m.address.to_string()),
                Ok(Created::AlreadyExists) if done.is_empty() => {
                    return Err(ProvisionError::Refused(format!(
                        "the mailbox {} already exists; nothing was created",
                        m.address
                    )));
                }
                // Some were made: not a plain refusal, and the log keeps
                // which (this backend cannot take them off again).
                Ok(Created::AlreadyExists) => {
                    return Err(ProvisionError::Partial {
                        made: done,
                        error: format!("the mailbox {} already exists", m.address),
                    });
                }
                Err(e) if done.is_empty() => return Err(e),
                Err(e) => {
                    return Err(ProvisionError::Partial {
                        made: done,
                        error: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
    /// Changes one mailbox on the host. Backends that cannot say so.
    fn change(&self, address: &str, change: &MailboxChange) -> Result<(), ProvisionError> {
        let _ = (address, change);
        Err(ProvisionError::Unsupported(self.describe()))
    }
    /// Takes a mailbox off the host (its login and its address), and its
    /// mail folder too when asked; whole or not at all for the first two.
    fn remove(&self, address: &str, delete_mail: bool) -> Result<MailFolder, ProvisionError> {
        let _ = (address, delete_mail);
        Err(ProvisionError::Unsupported(self.describe()))
    }
    /// A line for logs and `muster check`.
    fn describe(&self) -> String;
    /// Why a create would fail now for reasons an operator must fix (a
    /// file that does not end cleanly), for start-up and `/readyz`.
    fn write_problem(&self) -> Option<ProvisionError> {
        None
    }
}

/// The backend the configuration asks for.
pub fn from_config(config: &Config) -> Result<Arc<dyn MailHost>, ProvisionError> {
    Ok(match config.mail_host.backend {
        MailHostBackend::PasswdFile => Arc::new(PasswdFileHost::from_config(config)),
        MailHostBackend::Command => Arc::new(CommandHost::new(
            config.mail_host.command.clone().unwrap_or_default(),
        )),
        MailHostBackend::Sql => Arc::new(sql::SqlHost::from_config(config)?),
    })
}
