//! Outgoing mail: composing invite and reset emails, and the delivery
//! worker that sends them through the SMTP relay or into the outbox folder.

pub mod compose;
pub mod journal;
pub mod notices;
pub mod outbox;
mod outcomes;
mod recorder;
pub mod smtp;
pub mod templates;
pub mod worker;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error(transparent)]
    Template(#[from] templates::TemplateError),
    #[error("the SMTP relay settings: {0}")]
    Relay(String),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("cannot apply the delivery journal to the store: {0}")]
    Replay(#[from] crate::store::StoreError),
}
