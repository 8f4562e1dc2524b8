//! The invite email before it is sent: how one row's email will read
//! (language, expiry date), and an invite-shaped test sent to the admin,
//! through the same relay or outbox the invites use.

use std::sync::Arc;

use time::OffsetDateTime;

use super::authentication::{self, Authentication};
use super::deliverability::{addresses, helo_name, sending_addresses};
use super::{Muster, ServiceError};
use crate::config::SmtpMode;
use crate::domain::address::{RecipientEmail, domain_part};
use crate::domain::delivery::Outcome;
use crate::domain::duration::HumanDuration;
use crate::domain::roster::InviteRow;
use crate::mail::compose::{Composer, InviteText, Outgoing};
use crate::mail::direct::Direct;
use crate::mail::dkim::Signer;
use crate::mail::mta_sts::Keeping;
use crate::mail::outbox::Outbox;
use crate::mail::smtp::{Connection, Relay};
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
    /// A server took it: its reply, and in direct mode which server.
    Sent { reply: String, via: Option<String> },
    /// No relay: the file written.
    InOutbox(String),
}

/// A test sent, and how receivers will judge it.
#[derive(Debug, Clone)]
pub struct TestSent {
    pub delivery: TestDelivery,
    pub authentication: Authentication,
    /// The DKIM keys it was signed with (`selector (algorithm)`).
    pub signed_with: Vec<String>,
}

/// The row being previewed, checked as the batch will check it.
struct Drafted {
    recipient: String,
    mailbox: String,
    display_name: Option<String>,
    locale: Option<String>,
    expires_at: OffsetDateTime,
}

/// A test message ready to go, and what it was made from.
struct SignedTest {
    draft: Drafted,
    msg: Outgoing,
    signer: Option<Signer>,
    /// Names the outbox file when there is no relay.
    id: String,
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
        let host = self.host_index()?;
        let view = self.store.read()?;
        let (preview, clean) =
            self.checked_rows(&view, &host, &domain, std::slice::from_ref(row))?;
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

    /// Sends `row`'s invite email to `to` as a test, signed as invites
    /// are, through the relay, straight to `to`'s mail servers (direct
    /// mode) or into the outbox, and says where it went and how SPF, DKIM
    /// and DMARC judge it against the DNS published now. Audited; nothing
    /// else is stored, and its link leads nowhere.
    pub async fn send_test_invite(
        self: &Arc<Self>,
        domain: Option<&str>,
        row: &InviteRow,
        expires_in: Option<HumanDuration>,
        to: &RecipientEmail,
        actor: &Actor,
    ) -> Result<TestSent, ServiceError> {
        let to = to.to_string();
        // The row's checks read the host's mailboxes (a file or a
        // database), and the key files are read: off the runtime's workers.
        let SignedTest {
            draft,
            msg,
            signer,
            id,
        } = {
            let (this, domain, row, to) = (
                self.clone(),
                domain.map(str::to_string),
                row.clone(),
                to.clone(),
            );
            tokio::task::spawn_blocking(move || {
                this.signed_test(domain.as_deref(), &row, expires_in, &to)
            })
            .await
            .map_err(|_| ServiceError::Stopped)??
        };
        let (bytes, envelope_from) = (msg.bytes.clone(), msg.from.clone());
        let (mut via, mut left_from) = (None, None);
        let outcome = match self.config.smtp_mode() {
            SmtpMode::Relay => {
                match Relay::from_config(&self.config).map_err(ServiceError::Email)? {
                    Some(relay) => over(relay.connect().await, &msg).await,
                    None => return Err(ServiceError::TestNotSent("smtp.host is not set".into())),
                }
            }
            SmtpMode::Direct => {
                let direct = Direct::from_config(&self.config, self.resolver()?, Keeping::of(self))
                    .map_err(|e| ServiceError::Email(e.to_string()))?;
                let connected = direct.connect(domain_part(&to)).await.map(|(c, reached)| {
                    left_from = reached.local;
                    via = Some(format!(
                        "{} ({}{})",
                        reached.host,
                        reached.address,
                        if reached.tls { ", STARTTLS" } else { "" }
                    ));
                    c
                });
                over(connected, &msg).await
            }
            SmtpMode::Outbox => {
                let outbox = Outbox::new(self.config.outbox_dir());
                let name = format!("test-{id}");
                tokio::task::spawn_blocking(move || outbox.write(&name, &msg))
                    .await
                    .map_err(|_| ServiceError::Stopped)?
            }
        };
        let delivery = match outcome {
            Outcome::Accepted(reply) => TestDelivery::Sent { reply, via },
            Outcome::Written(file) => TestDelivery::InOutbox(file),
            other if other.is_permanent() => {
                let domain = domain_part(&to);
                let hosted = self
                    .config
                    .hosted_domains()
                    .iter()
                    .any(|(d, _)| d.to_string() == domain);
                let hint = if hosted {
                    format!(
                        "; {domain} is hosted here: it needs its MX published first (see the DNS page or `muster check --deliverability`)"
                    )
                } else {
                    String::new()
                };
                return Err(ServiceError::TestRefused(format!("{other}{hint}")));
            }
            other => return Err(ServiceError::TestNotSent(other.to_string())),
        };
        let authentication = match delivery {
            TestDelivery::InOutbox(_) => Authentication::not_checked(
                "written to the outbox: whatever sends it on decides how it is judged",
            ),
            TestDelivery::Sent { .. } => {
                let dns = self.resolver()?;
                let judged = async {
                    let helo = helo_name(&self.config);
                    // Direct: the address the connection left from; a
                    // relay's is its own, so the one it is taken to have
                    // (looked up only then).
                    let sending = match left_from {
                        Some(local) => Some(local),
                        None => {
                            let helo_addresses = addresses(&dns, &helo).await;
                            let (sending, _) =
                                sending_addresses(&self.config, &dns, &helo, &helo_addresses).await;
                            sending
                                .iter()
                                .find(|ip| ip.is_ipv4())
                                .or(sending.first())
                                .copied()
                        }
                    };
                    authentication::check(&dns, &bytes, &envelope_from, sending, &helo).await
                };
                tokio::time::timeout(JUDGING_TIME, judged)
                    .await
                    .unwrap_or_else(|_| {
                        Authentication::unanswered(&format!(
                            "no DNS answer from {} within {} s",
                            dns.servers,
                            JUDGING_TIME.as_secs()
                        ))
                    })
            }
        };
        let detail = match &delivery {
            TestDelivery::Sent { reply, via } => format!(
                "as {}'s invite; {}: {reply}; DKIM {}, SPF {}, DMARC {}",
                draft.recipient,
                via.as_deref().unwrap_or("relay"),
                authentication.dkim.result,
                authentication.spf.result,
                authentication.dmarc.result
            ),
            TestDelivery::InOutbox(file) => {
                format!("as {}'s invite; written to {file}", draft.recipient)
            }
        };
        let (this, actor) = (self.clone(), actor.clone());
        tokio::task::spawn_blocking(move || {
            this.store
                .write(|w| this.audit(w, &actor, "invite.test_sent", &to, detail))
        })
        .await
        .map_err(|_| ServiceError::Stopped)??;
        Ok(TestSent {
            delivery,
            authentication,
            signed_with: signer.map(|s| s.selectors()).unwrap_or_default(),
        })
    }

    /// The test message for `row`, composed and signed as invites are.
    fn signed_test(
        &self,
        domain: Option<&str>,
        row: &InviteRow,
        expires_in: Option<HumanDuration>,
        to: &str,
    ) -> Result<SignedTest, ServiceError> {
        let draft = self.draft(domain, row, expires_in)?;
        let id = self.new_id();
        let mut msg = self
            .composer()?
            .test_invite(&draft.text(), &self.sample_link(), to, &id, self.now())
            .map_err(|e| ServiceError::Email(e.to_string()))?;
        let signer = Signer::load(&self.config).map_err(|e| ServiceError::Email(e.to_string()))?;
        if let Some(signer) = &signer {
            signer
                .sign(&mut msg)
                .map_err(|e| ServiceError::Email(e.to_string()))?;
        }
        Ok(SignedTest {
            draft,
            msg,
            signer,
            id,
        })
    }

    fn resolver(&self) -> Result<std::sync::Arc<crate::dns::Dns>, ServiceError> {
        self.dns().map_err(|e| ServiceError::Dns(e.to_string()))
    }
}

/// How long the SPF, DKIM and DMARC questions of a test may take.
const JUDGING_TIME: std::time::Duration = std::time::Duration::from_secs(20);

/// One message over a connection just opened: the server's last word.
async fn over(connected: Result<Connection, Outcome>, msg: &Outgoing) -> Outcome {
    match connected {
        Err(outcome) => outcome,
        Ok(mut c) => {
            let outcome = match c.begin(msg).await {
                Ok(()) => {
                    let (end, _) = c.end_bytes(None);
                    c.finish(&end, 0, None).await.map_err(|f| f.outcome)
                }
                Err(f) => Err(f.outcome),
            };
            c.quit().await;
            outcome.unwrap_or_else(|o| o)
        }
    }
}
