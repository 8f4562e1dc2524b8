//! The DNS questions Muster asks: a recipient domain's mail servers (direct
//! delivery), and the records the deliverability check reads. One resolver
//! (hickory, through mail-auth, which also verifies SPF, DKIM and DMARC
//! with it), built from `dns.resolvers` or the system's configuration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::hickory_resolver::system_conf::read_system_conf;
// No cache of our own: hickory keeps answers for their TTL.
use mail_auth::common::cache::NoCache;
use mail_auth::{DnsError, IpLookupStrategy, MX, MessageAuthenticator, RecordSet};

use crate::config::DnsSettings;
use crate::domain::route::{MailExchanger, Route};

/// How long one question may take, all retries included.
const QUESTION_TIMEOUT: Duration = Duration::from_secs(10);

/// `dns.resolvers` entry: `address` (port 53) or `address:port`.
pub fn parse_resolver(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
}

/// What a lookup came to when it found nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// NXDOMAIN: the name does not exist.
    #[error("{0} does not exist in DNS")]
    NoSuchName(String),
    /// The name exists but has no records of the type asked for.
    #[error("{0} has no such record")]
    NoRecords(String),
    /// No answer (timeout, SERVFAIL, no resolver): worth asking again.
    #[error("DNS lookup of {name} failed: {error}")]
    Failed { name: String, error: String },
}

impl LookupError {
    fn of(name: &str, e: mail_auth::Error) -> Self {
        match e {
            mail_auth::Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain)) => {
                LookupError::NoSuchName(name.to_string())
            }
            mail_auth::Error::Dns(DnsError::RecordNotFound(_))
            | mail_auth::Error::Dns(DnsError::InvalidRecordType) => {
                LookupError::NoRecords(name.to_string())
            }
            other => LookupError::Failed {
                name: name.to_string(),
                error: other.to_string(),
            },
        }
    }

    /// Nothing there (as opposed to no answer).
    pub fn is_absent(&self) -> bool {
        !matches!(self, LookupError::Failed { .. })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the DNS resolver cannot be set up: {0}")]
pub struct SetupError(String);

/// The resolver, shared by everything that asks DNS.
pub struct Dns {
    auth: MessageAuthenticator,
    /// Where the questions go, for messages.
    pub servers: String,
}

impl Dns {
    pub fn from_config(settings: &DnsSettings) -> Result<Self, SetupError> {
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 2;
        // Receivers see public DNS, not this machine's /etc/hosts.
        opts.use_hosts_file = ResolveHosts::Never;
        let (auth, servers) = if settings.resolvers.is_empty() {
            let (config, mut system) = read_system_conf()
                .map_err(|e| SetupError(format!("reading /etc/resolv.conf: {e}")))?;
            system.use_hosts_file = ResolveHosts::Never;
            let auth = MessageAuthenticator::new(config, system)
                .map_err(|e| SetupError(format!("reading /etc/resolv.conf: {e}")))?;
            (
                auth,
                "the system's resolvers (/etc/resolv.conf)".to_string(),
            )
        } else {
            let mut config = ResolverConfig::from_name_servers(Vec::new());
            for r in &settings.resolvers {
                let addr = parse_resolver(r)
                    .ok_or_else(|| SetupError(format!("dns.resolvers: {r:?} is not an address")))?;
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                config.add_name_server(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]));
            }
            let auth =
                MessageAuthenticator::new(config, opts).map_err(|e| SetupError(e.to_string()))?;
            (auth, settings.resolvers.join(", "))
        };
        Ok(Self { auth, servers })
    }

    /// The verifier of SPF, DKIM and DMARC, asking this resolver.
    pub fn authenticator(&self) -> &MessageAuthenticator {
        &self.auth
    }

    async fn bounded<T>(
        &self,
        name: &str,
        f: impl std::future::Future<Output = mail_auth::Result<T>>,
    ) -> Result<T, LookupError> {
        match tokio::time::timeout(QUESTION_TIMEOUT, f).await {
            Ok(r) => r.map_err(|e| LookupError::of(name, e)),
            Err(_) => Err(LookupError::Failed {
                name: name.to_string(),
                error: format!(
                    "no answer from {} within {} s",
                    self.servers,
                    QUESTION_TIMEOUT.as_secs()
                ),
            }),
        }
    }

    /// The MX records of `domain`, most preferred first: (preference, host).
    pub async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, LookupError> {
        let set = self
            .bounded(
                domain,
                self.auth
                    .mx_lookup(fqdn(domain), None::<&NoCache<Box<str>, RecordSet<MX>>>),
            )
            .await?;
        let mut out = Vec::new();
        for mx in set.rrset.iter() {
            for host in mx.exchanges.iter() {
                out.push((mx.preference, host.trim_end_matches('.').to_string()));
            }
        }
        Ok(out)
    }

    /// The addresses of `host`, IPv4 first.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        self.bounded(
            host,
            self.auth.ip_lookup(
                &fqdn(host),
                IpLookupStrategy::Ipv4thenIpv6,
                10,
                None::<&NoCache<Box<str>, RecordSet<Ipv4Addr>>>,
                None::<&NoCache<Box<str>, RecordSet<Ipv6Addr>>>,
            ),
        )
        .await
    }

    /// Every TXT record at `name`, each one string (its parts joined).
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        use mail_auth::hickory_resolver::proto::rr::RData;
        let lookup = match tokio::time::timeout(
            QUESTION_TIMEOUT,
            self.auth.resolver().txt_lookup(fqdn(name)),
        )
        .await
        {
            Ok(r) => r.map_err(|e| LookupError::of(name, mail_auth::Error::from(e)))?,
            Err(_) => {
                return Err(LookupError::Failed {
                    name: name.to_string(),
                    error: format!("no answer within {} s", QUESTION_TIMEOUT.as_secs()),
                });
            }
        };
        let mut out = Vec::new();
        for record in lookup.answers() {
            if let RData::TXT(txt) = &record.data {
                let mut joined = Vec::new();
                for part in &txt.txt_data {
                    joined.extend_from_slice(part);
                }
                out.push(String::from_utf8_lossy(&joined).into_owned());
            }
        }
        Ok(out)
    }

    /// The names `ip` points back to (reverse DNS).
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, LookupError> {
        let set = self
            .bounded(
                &ip.to_string(),
                self.auth
                    .ptr_lookup(ip, None::<&NoCache<IpAddr, RecordSet<Box<str>>>>),
            )
            .await?;
        Ok(set
            .rrset
            .iter()
            .map(|h| h.trim_end_matches('.').to_string())
            .collect())
    }

    /// Where mail for `domain` goes (RFC 5321 section 5.1): its MX hosts in
    /// preference order with their addresses, the domain itself when it
    /// has no MX, or nowhere (a null MX, RFC 7505, or a domain that does
    /// not exist).
    pub async fn route(&self, domain: &str) -> Result<Route, LookupError> {
        let records = match self.mx(domain).await {
            Ok(records) => records,
            Err(LookupError::NoSuchName(_)) => return Ok(Route::NoSuchDomain),
            Err(LookupError::NoRecords(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let plan = crate::domain::route::plan(domain, &records);
        let hosts = match plan {
            crate::domain::route::Plan::Nowhere(route) => return Ok(route),
            crate::domain::route::Plan::Hosts(hosts) => hosts,
        };
        let mut exchangers = Vec::new();
        // A host whose lookup got no answer may have addresses after all:
        // with none found, that is worth a later try, not a failure.
        let mut unanswered = None;
        for (preference, host) in hosts {
            match self.addresses(&host).await {
                Ok(addrs) if !addrs.is_empty() => exchangers.push(MailExchanger {
                    host,
                    preference,
                    addresses: addrs,
                }),
                Ok(_) => {}
                Err(e @ LookupError::Failed { .. }) => unanswered = Some(e),
                Err(_) => {}
            }
        }
        if exchangers.is_empty() {
            return match unanswered {
                Some(e) => Err(e),
                None => Ok(Route::NoMailServer),
            };
        }
        Ok(Route::Exchangers(exchangers))
    }
}

/// A name as an absolute DNS name (no search domains appended).
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}
