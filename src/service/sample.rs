//! The invite email before it is sent: how one row's email will read
//! (language, expiry date), and an invite-shaped test sent to the admin,
//! through the same relay or outbox the invites use.

use time::OffsetDateTime;

use super::{Muster, ServiceError};
use crate::domain::address::RecipientEmail;
use crate::domain::delivery::Outcome;
use crate::domain::duration::HumanDuration;
use crate::domain::roster::InviteRow;
use crate::mail::compose::{Composer, InviteText};
use crate::mail::outbox::Outbox;
use crate::mail::smtp::Relay;
use crate::store::Actor;

/// One row's invite email, as the recipient will read it.
#[derive(Debug, Clone)]
pub struct SampleInvite {
    pub recipient: String,
    pub mailbox: String,
    pub locale: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub expires_at: OffsetDateTime,
}

/// Where a test message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestDelivery {
    /// The relay took it: its reply.
    Sent(String),
    /// No relay: the file written.
    InOutbox(String),
}

/// The row being previewed, checked as the batch will check it.
struct Drafted {
    recipient: String,
    mailbox: String,
    display_name: Option<String>,
    locale: Option<String>,
    expires_at: OffsetDateTime,
}

impl Drafted {
    fn text(&self) -> InviteText<'_> {
        InviteText {
            recipient: &self.recipient,
            mailbox: &self.mailbox,
            display_name: self.display_name.as_deref(),
            locale: self.locale.as_deref(),
            expires_at: self.expires_at,
        }
    }
}

impl Muster {
    fn composer(&self) -> Result<Composer, ServiceError> {
        Composer::new(&self.config).map_err(|e| ServiceError::Email(e.to_string()))
    }

    /// Where the link will be: the recipient's own, made when it is sent.
    fn sample_link(&self) -> String {
        format!("{}/invite/…", self.config.public_url())
    }

    fn draft(
        &self,
        domain: Option<&str>,
        row: &InviteRow,
        expires_in: Option<HumanDuration>,
    ) -> Result<Drafted, ServiceError> {
        let domain = self.resolve_domain(domain)?;
        let window = self.batch_expiry(expires_in)?;
        let view = self.store.read()?;
        let (preview, clean) = self.checked_rows(&view, &domain, std::slice::from_ref(row))?;
        let Some(Some(clean)) = clean.into_iter().next() else {
            return Err(ServiceError::NothingClean {
                preview: Box::new(preview),
            });
        };
        Ok(Drafted {
            recipient: clean.recipient.to_string(),
            mailbox: clean.mailbox.to_string(),
            display_name: clean.display_name,
            locale: clean.locale,
            expires_at: self.now() + window.to_time(),
        })
    }

    /// How `row`'s invite email will read if the batch is sent now.
    pub fn sample_invite(
        &self,
        domain: Option<&str>,
        row: &InviteRow,
        expires_in: Option<HumanDuration>,
    ) -> Result<SampleInvite, ServiceError> {
        let draft = self.draft(domain, row, expires_in)?;
        let composer = self.composer()?;
        let (locale, rendered) = composer
            .render_invite(&draft.text(), &self.sample_link())
            .map_err(|e| ServiceError::Email(e.to_string()))?;
        Ok(SampleInvite {
            recipient: draft.recipient,
            mailbox: draft.mailbox,
            locale,
            from: composer.from_line(),
            subject: rendered.subject,
            text: rendered.text,
            expires_at: draft.expires_at,
        })
    }

    /// Sends `row`'s invite email to `to` as a test, through the relay or
    /// into the outbox, and says where it went. Audited; nothing else is
    /// stored, and its link leads nowhere.
    pub async fn send_test_invite(
        &self,
        domain: Option<&str>,
        row: &InviteRow,
        expires_in: Option<HumanDuration>,
        to: &RecipientEmail,
        actor: &Actor,
    ) -> Result<TestDelivery, ServiceError> {
        let draft = self.draft(domain, row, expires_in)?;
        let id = self.new_id();
        let to = to.to_string();
        let msg = self
            .composer()?
            .test_invite(&draft.text(), &self.sample_link(), &to, &id, self.now())
            .map_err(|e| ServiceError::Email(e.to_string()))?;
        let outcome = match Relay::from_config(&self.config).map_err(ServiceError::Email)? {
            Some(relay) => match relay.connect().await {
                Err(outcome) => outcome,
                Ok(mut c) => {
                    let outcome = match c.begin(&msg).await {
                        Ok(()) => c.finish(None).await.map_err(|f| f.outcome),
                        Err(f) => Err(f.outcome),
                    };
                    c.quit().await;
                    outcome.unwrap_or_else(|o| o)
                }
            },
            None => {
                let outbox = Outbox::new(self.config.outbox_dir());
                let name = format!("test-{id}");
                tokio::task::spawn_blocking(move || outbox.write(&name, &msg))
                    .await
                    .map_err(|_| ServiceError::Stopped)?
            }
        };
        let delivery = match outcome {
            Outcome::Accepted(reply) => TestDelivery::Sent(reply),
            Outcome::Written(file) => TestDelivery::InOutbox(file),
            other => return Err(ServiceError::TestNotSent(other.to_string())),
        };
        let detail = match &delivery {
            TestDelivery::Sent(reply) => format!("as {}'s invite; relay: {reply}", draft.recipient),
            TestDelivery::InOutbox(file) => {
                format!("as {}'s invite; written to {file}", draft.recipient)
            }
        };
        self.store
            .write(|w| self.audit(w, actor, "invite.test_sent", &to, detail))?;
        Ok(delivery)
    }
}
