//! Direct delivery: a connection straight to one of a recipient domain's
//! mail servers, found through its MX records and tried in preference
//! order (each of their addresses in turn). STARTTLS whenever a server
//! offers it, its certificate verified only when `require_tls` asks (as
//! mail servers do among themselves, RFC 7435); a TLS handshake that fails
//! is retried in the clear unless TLS is required. A domain whose MTA-STS
//! policy says enforce (RFC 8461) gets mail only at the MX hosts it lists,
//! over TLS whose certificate verifies for the host's name.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use mail_send::SmtpClient;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use smtp_proto::EXT_START_TLS;
use tokio_rustls::TlsConnector;

use super::mta_sts::{Keeping, Policies};
use super::smtp::{Connection, Outcome, Stream};
use crate::config::Config;
use crate::dns::{Dns, LookupError};
use crate::domain::delivery::{Reply, Trouble};
use crate::domain::mta_sts::Mode;
use crate::domain::route::{MailExchanger, Route};

/// How one destination server was reached, for the pending list and logs.
#[derive(Debug, Clone)]
pub struct Reached {
    pub host: String,
    pub address: IpAddr,
    pub tls: bool,
    /// The address the connection left from (what the server's SPF check
    /// sees, NAT aside).
    pub local: Option<IpAddr>,
}

/// Addresses tried for one message at most, across all its MX hosts (as
/// Postfix's smtp_mx_address_limit): a domain publishing dozens cannot hold
/// a connection for hours.
const MOST_ADDRESSES: usize = 5;

pub struct Direct {
    dns: Arc<Dns>,
    port: u16,
    helo: String,
    timeout: Duration,
    require_tls: bool,
    /// Any certificate (opportunistic TLS), and a verified one.
    any_certificate: TlsConnector,
    verified: TlsConnector,
    /// Destination domains' MTA-STS policies (`smtp.direct.mta_sts`).
    policies: Option<Policies>,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").field("port", &self.port).finish()
    }
}

/// Why a server could not be used, and whether another may do better.
enum Miss {
    /// Not reached, or TLS failed: the next server may work.
    Trouble(String),
    /// It answered with a refusal (at the greeting or EHLO).
    Refused(Reply),
}

/// Why direct delivery cannot be set up from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("smtp.direct.ca_file {path}: {why}")]
    CaFile { path: String, why: String },
    #[error("smtp.direct.ca_file {0} holds no PEM certificate")]
    NoCertificate(String),
    #[error("cannot set up fetching MTA-STS policies: {0}")]
    PolicyClient(String),
}

impl Direct {
    /// `keeping`: where destinations' MTA-STS policies are kept.
    pub fn from_config(
        config: &Config,
        dns: Arc<Dns>,
        keeping: Keeping,
    ) -> Result<Self, DirectError> {
        let d = &config.smtp.direct;
        let any_certificate =
            mail_send::smtp::tls::build_tls_connector(true).map_err(DirectError::Tls)?;
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = &d.ca_file {
            let unusable = |e: &dyn std::fmt::Display| DirectError::CaFile {
                path: path.display().to_string(),
                why: e.to_string(),
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| unusable(&e))?
                .collect::<Result<_, _>>()
                .map_err(|e| unusable(&e))?;
            if certs.is_empty() {
                return Err(DirectError::NoCertificate(path.display().to_string()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| unusable(&e))?;
            }
        }
        let verified_tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let timeout = Duration::from_secs(config.smtp.timeout_secs);
        let policies = d
            .mta_sts
            .then(|| Policies::new(dns.clone(), verified_tls.clone(), timeout, keeping))
            .transpose()
            .map_err(|e| DirectError::PolicyClient(e.to_string()))?;
        Ok(Self {
            dns,
            port: d.port,
            helo: config
                .smtp
                .helo_name
                .clone()
                .unwrap_or_else(|| config.public_host()),
            timeout,
            require_tls: d.require_tls,
            any_certificate,
            verified: TlsConnector::from(Arc::new(verified_tls)),
            policies,
        })
    }

    /// A connection to one of `domain`'s mail servers. A domain that can
    /// never take mail (null MX, no such domain) is `Unsendable`; servers
    /// that all refuse are that refusal; anything else is trouble, tried
    /// again on the retry schedule.
    pub async fn connect(&self, domain: &str) -> Result<(Connection, Reached), Outcome> {
        let route = match self.dns.route(domain).await {
            Ok(route) => route,
            Err(e @ LookupError::Failed { .. }) => {
                return Err(Outcome::Trouble(Trouble::Connect(format!(
                    "the mail servers of {domain} could not be looked up: {e}"
                ))));
            }
            Err(e) => return Err(Outcome::Unsendable(e.to_string())),
        };
        let exchangers = match route {
            Route::Exchangers(list) => list,
            dead => {
                return Err(Outcome::Unsendable(
                    dead.dead_end(domain).unwrap_or_default(),
                ));
            }
        };
        let mut misses = Vec::new();
        let mut refusal = None;
        // Every server tried refused for good: no point trying again.
        let mut permanent = true;
        let mut tries: Vec<(String, IpAddr)> = Vec::new();
        for mx in &exchangers {
            for ip in &mx.addresses {
                tries.push((mx.host.clone(), *ip));
            }
        }
        let required = match self.held_to_policy(domain, &exchangers, &mut tries).await? {
            Some(rule) => Some(rule),
            None => self
                .require_tls
                .then(|| "smtp.direct.require_tls".to_string()),
        };
        tries.truncate(MOST_ADDRESSES);
        for (host, ip) in &tries {
            match self.connect_to(host, *ip, required.as_deref()).await {
                Ok(done) => return Ok(done),
                Err(Miss::Trouble(why)) => {
                    permanent = false;
                    misses.push(format!("{host} ({ip}): {why}"));
                }
                Err(Miss::Refused(reply)) => {
                    permanent &= reply.code >= 500;
                    misses.push(format!("{host} ({ip}): {reply}"));
                    refusal = Some(reply);
                }
            }
        }
        match refusal {
            Some(reply) if permanent => Err(Outcome::Refused(reply)),
            _ => Err(Outcome::Trouble(Trouble::Connect(format!(
                "no mail server of {domain} took the connection{}: {}",
                required
                    .map(|rule| format!(" over verified TLS, as {rule} requires"))
                    .unwrap_or_default(),
                misses.join("; ")
            )))),
        }
    }

    /// Narrows `tries` to the MX hosts `domain`'s MTA-STS policy lists when
    /// it says enforce, and returns that rule (which then requires TLS that
    /// verifies); an error when it lists none of them.
    async fn held_to_policy(
        &self,
        domain: &str,
        exchangers: &[MailExchanger],
        tries: &mut Vec<(String, IpAddr)>,
    ) -> Result<Option<String>, Outcome> {
        let Some(policies) = &self.policies else {
            return Ok(None);
        };
        let Some(kept) = policies.of(domain).await else {
            return Ok(None);
        };
        let policy = &kept.policy;
        let unlisted: Vec<&str> = exchangers
            .iter()
            .map(|mx| mx.host.as_str())
            .filter(|h| !policy.lists(h))
            .collect();
        match policy.mode {
            Mode::None => Ok(None),
            Mode::Testing => {
                if !unlisted.is_empty() {
                    tracing::warn!(domain = %domain, unlisted = ?unlisted, "MX hosts the domain's MTA-STS policy (testing) does not list; sending to them as it asks");
                }
                Ok(None)
            }
            Mode::Enforce => {
                // When it was fetched: a policy kept after its record went
                // away is not what a DNS lookup shows now.
                let rule = format!(
                    "the MTA-STS policy of {domain} (enforce, fetched {})",
                    crate::domain::rfc3339(kept.fetched_at)
                );
                tries.retain(|(host, _)| policy.lists(host));
                if tries.is_empty() {
                    let why = if unlisted.is_empty() {
                        "but none of those hosts has an address".to_string()
                    } else {
                        format!("but its MX records name {}", some_of(&unlisted))
                    };
                    return Err(Outcome::Trouble(Trouble::Connect(format!(
                        "{rule} allows only {}, {why}; not sent, tried again later (the domain must mend its MX records or its policy)",
                        some_of(&policy.mx),
                    ))));
                }
                Ok(Some(rule))
            }
        }
    }

    /// `required`: why TLS with a verified certificate is a must, if it is.
    async fn connect_to(
        &self,
        host: &str,
        ip: IpAddr,
        required: Option<&str>,
    ) -> Result<(Connection, Reached), Miss> {
        match self.session(host, ip, true, required).await {
            // A handshake that fails may work in the clear (RFC 7435).
            Err(Miss::Trouble(why)) if required.is_none() && why.starts_with("TLS") => self
                .session(host, ip, false, None)
                .await
                .map_err(|e| match e {
                    Miss::Trouble(plain) => {
                        Miss::Trouble(format!("{why}; then in the clear: {plain}"))
                    }
                    refused => refused,
                }),
            other => other,
        }
    }

    /// A session ready for mail, over whichever stream it ended on.
    fn opened<S: Stream + 'static>(
        &self,
        client: SmtpClient<S>,
        caps: &smtp_proto::EhloResponse<String>,
        reached: Reached,
        socket: Option<OwnedFd>,
    ) -> (Connection, Reached) {
        let client = SmtpClient {
            stream: Box::new(client.stream) as Box<dyn Stream>,
            timeout: client.timeout,
        };
        (
            Connection::open(client, caps, self.timeout, socket),
            reached,
        )
    }

    /// Greeting, EHLO, STARTTLS when offered and `tls`, EHLO again.
    async fn session(
        &self,
        host: &str,
        ip: IpAddr,
        tls: bool,
        required: Option<&str>,
    ) -> Result<(Connection, Reached), Miss> {
        let trouble = |e: mail_send::Error| Miss::Trouble(e.to_string());
        let mut client = SmtpClient::connect(SocketAddr::new(ip, self.port), self.timeout)
            .await
            .map_err(trouble)?;
        let _ = client.stream.set_nodelay(true);
        let local = client.stream.local_addr().ok().map(|a| a.ip());
        let greeting = tokio::time::timeout(self.timeout, client.read())
            .await
            .map_err(|_| Miss::Trouble("no greeting in time".into()))?
            .map_err(trouble)?;
        if !(200..300).contains(&greeting.code) {
            return Err(Miss::Refused(reply_of(&greeting)));
        }
        let caps = client.ehlo(&self.helo).await.map_err(refused_or_trouble)?;
        let offered = caps.has_capability(EXT_START_TLS);
        if !(tls && offered) {
            if let Some(rule) = required {
                return Err(Miss::Trouble(format!(
                    "TLS is required ({rule}) and {host} does not offer STARTTLS"
                )));
            }
            let reached = Reached {
                host: host.into(),
                address: ip,
                tls: false,
                local,
            };
            let socket = client.stream.as_fd().try_clone_to_owned().ok();
            return Ok(self.opened(client, &caps, reached, socket));
        }
        let connector = if required.is_some() {
            &self.verified
        } else {
            &self.any_certificate
        };
        let mut tls_client = client
            .start_tls(connector, host)
            .await
            .map_err(|e| Miss::Trouble(format!("TLS with {host}: {e}")))?;
        let caps = tls_client
            .ehlo(&self.helo)
            .await
            .map_err(refused_or_trouble)?;
        let reached = Reached {
            host: host.into(),
            address: ip,
            tls: true,
            local,
        };
        Ok(self.opened(tls_client, &caps, reached, None))
    }
}

/// Up to five names, and how many more.
fn some_of<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(AsRef::as_ref).collect();
    match names.len().saturating_sub(5) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

fn reply_of(r: &smtp_proto::Response<String>) -> Reply {
    Reply {
        code: r.code,
        enhanced: (r.esc[0] > 0).then_some(r.esc),
        text: r.message.trim().to_string(),
    }
}

fn refused_or_trouble(e: mail_send::Error) -> Miss {
    match e {
        mail_send::Error::UnexpectedReply(r) => Miss::Refused(reply_of(&r)),
        other => Miss::Trouble(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_only() -> Keeping {
        Keeping {
            store: None,
            clock: Arc::new(crate::service::SystemClock),
        }
    }

    /// A CA file that cannot be used is named, with what is wrong with it.
    #[test]
    fn an_unusable_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let dns = Arc::new(
            Dns::from_config(&crate::config::DnsSettings {
                resolvers: vec!["127.0.0.1:53".into()],
            })
            .unwrap(),
        );
        let mut config = Config::default();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        config.smtp.direct.ca_file = Some(empty.clone());
        let e = Direct::from_config(&config, dns.clone(), memory_only())
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "smtp.direct.ca_file {} holds no PEM certificate",
                empty.display()
            )
        );
        let missing = dir.path().join("missing.pem");
        config.smtp.direct.ca_file = Some(missing.clone());
        let e = Direct::from_config(&config, dns, memory_only())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with(&format!("smtp.direct.ca_file {}: ", missing.display())),
            "{e}"
        );
    }
}
