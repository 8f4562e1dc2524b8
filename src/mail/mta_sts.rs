//! Destination domains' MTA-STS policies (RFC 8461 section 5): the
//! `_mta-sts` TXT record is asked at each new connection; the policy is
//! fetched over HTTPS (a certificate valid for `mta-sts.<domain>`, no
//! redirects) only when the record's id is new or the kept copy expired,
//! and kept in memory for its max_age. A fetch that fails leaves the kept
//! copy in force; with none, the domain is sent to as without a policy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::dns::Dns;
use crate::domain::mta_sts::{Policy, record_id};

/// The largest policy read (the RFC suggests senders limit it; 64 KB is
/// far more than any list of MX hosts needs).
const MOST_BYTES: usize = 64 * 1024;

/// Names resolved through Muster's own resolver (`dns.resolvers`), as the
/// MX hosts are.
struct ViaDns(Arc<Dns>);

impl Resolve for ViaDns {
    fn resolve(&self, name: Name) -> Resolving {
        let dns = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = dns.addresses(&host).await.map_err(Box::new)?;
            // Port 0: the URL's (443).
            Ok(Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0))) as Addrs)
        })
    }
}

struct Kept {
    id: String,
    policy: Policy,
    until: Instant,
}

pub struct Policies {
    dns: Arc<Dns>,
    client: reqwest::Client,
    kept: Mutex<HashMap<String, Kept>>,
}

impl Policies {
    /// `tls` trusts what direct delivery's verified TLS trusts (the
    /// system's CAs and `smtp.direct.ca_file`).
    pub fn new(
        dns: Arc<Dns>,
        tls: rustls::ClientConfig,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .user_agent(concat!("Muster/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(ViaDns(dns.clone()))
            .build()?;
        Ok(Self {
            dns,
            client,
            kept: Mutex::default(),
        })
    }

    /// The policy `domain` publishes now, if any (mode none included).
    pub async fn of(&self, domain: &str) -> Option<Policy> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let id = match self.dns.txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => record_id(&records),
            Err(_) => None,
        };
        let now = Instant::now();
        let kept = {
            let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            kept.get(&domain)
                .filter(|k| k.until > now)
                .map(|k| (k.id.clone(), k.policy.clone()))
        };
        let (id, policy) = match (id, kept) {
            // No record now (or no answer): a kept policy still holds, so
            // that removing the record cannot switch protection off at once.
            (None, kept) => return kept.map(|(_, p)| p),
            (Some(id), Some((kept_id, policy))) if id == kept_id => return Some(policy),
            (Some(id), kept) => match self.fetch(&domain).await {
                Ok(policy) => (id, policy),
                Err(why) => {
                    tracing::warn!(domain = %domain, why = %why, "cannot fetch the MTA-STS policy");
                    return kept.map(|(_, p)| p);
                }
            },
        };
        let until = now + Duration::from_secs(policy.max_age);
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).insert(
            domain,
            Kept {
                id,
                policy: policy.clone(),
                until,
            },
        );
        Some(policy)
    }

    async fn fetch(&self, domain: &str) -> Result<Policy, String> {
        let url = format!("https://mta-sts.{domain}/.well-known/mta-sts.txt");
        let mut answer = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {}", crate::webhooks::describe(&e)))?;
        let status = answer.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!("{url} answered {status}"));
        }
        let kind = answer
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !kind
            .split(';')
            .next()
            .is_some_and(|k| k.trim().eq_ignore_ascii_case("text/plain"))
        {
            return Err(format!("{url} is {kind:?}, not text/plain"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = answer
            .chunk()
            .await
            .map_err(|e| format!("{url}: {}", crate::webhooks::describe(&e)))?
        {
            if body.len() + chunk.len() > MOST_BYTES {
                return Err(format!("{url} is larger than {MOST_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(|_| format!("{url} is not UTF-8 text"))?;
        Policy::parse(&text).map_err(|e| format!("the policy at {url} cannot be used: {e}"))
    }
}
