//! Outgoing mail: composing invite and reset emails, DKIM signing, and the
//! delivery worker that sends them through the SMTP relay, straight to
//! each recipient domain's mail servers, or into the outbox folder.

pub mod compose;
mod courier;
pub mod direct;
pub mod dkim;
pub mod journal;
mod lanes;
pub mod mta_sts;
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
    #[error("direct delivery (smtp.mode = \"direct\"): {0}")]
    Dns(#[from] crate::dns::SetupError),
    #[error("direct delivery (smtp.mode = \"direct\"): {0}")]
    Direct(#[from] direct::DirectError),
    #[error(transparent)]
    Dkim(#[from] dkim::DkimError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("cannot apply the delivery journal to the store: {0}")]
    Replay(#[from] crate::store::StoreError),
}
