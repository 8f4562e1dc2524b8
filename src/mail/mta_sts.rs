//! Destination domains' MTA-STS policies (RFC 8461 section 5): the
//! `_mta-sts` TXT record is asked at each new connection; the policy is
//! fetched over HTTPS (a certificate valid for `mta-sts.<domain>`, no
//! redirects) when the record's id is new, the kept copy is a day old or
//! has expired, and kept for its max_age (in memory, and in the store
//! across restarts). A fetch that fails leaves the kept copy in force (with
//! none, the domain is sent to as without a policy) and is not tried again
//! for ten minutes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use time::OffsetDateTime;

use crate::dns::Dns;
use crate::domain::mta_sts::{KeptPolicy, Policy, Step, record_id, step};
use crate::lock;
use crate::service::Clock;
use crate::store::Store;

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

/// Where fetched policies are kept across restarts (none: in memory only),
/// and the clock their max_age runs on.
#[derive(Clone)]
pub struct Keeping {
    pub store: Option<Store>,
    pub clock: Arc<dyn Clock>,
}

impl Keeping {
    /// In Muster's store, on its clock.
    pub fn of(muster: &crate::service::Muster) -> Self {
        Self {
            store: Some(muster.store.clone()),
            clock: muster.clock.clone(),
        }
    }
}

pub struct Policies {
    dns: Arc<Dns>,
    client: reqwest::Client,
    keeping: Keeping,
    memory: Mutex<Memory>,
    /// Per domain, whose turn it is to fetch its policy.
    looking: Mutex<Turns>,
}

type Turns = HashMap<String, Arc<tokio::sync::Mutex<()>>>;

/// A domain's turn to fetch its policy. The last one to leave takes the
/// domain's entry away (counted while `looking` is held, so no one can
/// join meanwhile).
struct Turn<'a> {
    looking: &'a Mutex<Turns>,
    domain: String,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut looking = lock(self.looking);
        if let Some(held) = self.held.take() {
            let mine = tokio::sync::OwnedMutexGuard::mutex(&held).clone();
            drop(held);
            // Its entry's and ours: no one else waits.
            if Arc::strong_count(&mine) == 2 {
                looking.remove(&self.domain);
            }
        }
    }
}

#[derive(Default)]
struct Memory {
    kept: HashMap<String, KeptPolicy>,
    /// Fetches that failed: (domain, record id) → until when not to try
    /// again, so that a broken or hostile policy server does not hold a
    /// connection for a fetch at every new connection.
    failed: HashMap<(String, String), OffsetDateTime>,
}

/// How long a failed fetch is not tried again.
const FAILED_FOR: time::Duration = time::Duration::minutes(10);

/// The longest a policy fetch may take (the RFC says at most 60 s).
const MOST_FETCH: Duration = Duration::from_secs(15);

impl Policies {
    /// `tls` trusts what direct delivery's verified TLS trusts (the
    /// system's CAs and `smtp.direct.ca_file`).
    pub fn new(
        dns: Arc<Dns>,
        tls: rustls::ClientConfig,
        timeout: Duration,
        keeping: Keeping,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout.min(MOST_FETCH))
            .user_agent(concat!("Muster/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(ViaDns(dns.clone()))
            .build()?;
        Ok(Self {
            dns,
            client,
            keeping,
            memory: Mutex::default(),
            looking: Mutex::default(),
        })
    }

    /// The policy in force for `domain` now, if any (mode none included).
    pub async fn of(&self, domain: &str) -> Option<KeptPolicy> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let record = match self.dns.txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => record_id(&records),
            Err(_) => None,
        };
        let now = self.keeping.clock.now();
        match step(record.clone(), self.kept(&domain), now) {
            Step::Keep(kept) => return Some(kept),
            Step::None => return None,
            Step::Fetch { .. } => {}
        }
        // One fetch at a time per domain: a second connection opened
        // meanwhile waits for the first one's fetch and uses what it found.
        let turn = self.turn(&domain).await;
        let now = self.keeping.clock.now();
        let (id, fallback) = match step(record, self.kept(&domain), now) {
            Step::Keep(kept) => return Some(kept),
            Step::None => return None,
            Step::Fetch { id, fallback } => (id, fallback),
        };
        let key = (domain.clone(), id.clone());
        if self
            .memory()
            .failed
            .get(&key)
            .is_some_and(|until| *until > now)
        {
            return fallback;
        }
        let policy = match self.fetch(&domain).await {
            Ok(policy) => policy,
            Err(why) => {
                tracing::warn!(domain = %domain, why = %why, kept = fallback.is_some(), "cannot fetch the MTA-STS policy");
                let mut memory = self.memory();
                memory.failed.retain(|_, until| *until > now);
                memory.failed.insert(key, now + FAILED_FOR);
                return fallback;
            }
        };
        let kept = KeptPolicy {
            id,
            policy,
            fetched_at: now,
        };
        {
            let mut memory = self.memory();
            memory.kept.retain(|_, k| k.holds_at(now));
            memory.kept.insert(domain.clone(), kept.clone());
        }
        drop(turn);
        // max_age 0: in force for this connection only, nothing to keep.
        if let Some(store) = self.keeping.store.clone().filter(|_| kept.holds_at(now)) {
            let keep = kept.clone();
            let written = tokio::task::spawn_blocking(move || {
                store.write(|w| w.put_mta_sts_policy(&domain, &keep))
            })
            .await;
            if let Ok(Err(e)) = written {
                tracing::warn!(error = %e, "cannot keep the MTA-STS policy in the store; it is kept until Muster restarts");
            }
        }
        Some(kept)
    }

    /// Waits for `domain`'s turn to fetch its policy. (A wait cut short
    /// leaves the domain's entry for the next turn to take away.)
    async fn turn(&self, domain: &str) -> Turn<'_> {
        let domains_turn = lock(&self.looking)
            .entry(domain.to_string())
            .or_default()
            .clone();
        Turn {
            looking: &self.looking,
            domain: domain.to_string(),
            held: Some(domains_turn.lock_owned().await),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        lock(&self.memory)
    }

    /// The policy kept for `domain` (in memory, else in the store), in
    /// force or not.
    fn kept(&self, domain: &str) -> Option<KeptPolicy> {
        if let Some(k) = self.memory().kept.get(domain) {
            return Some(k.clone());
        }
        let stored = self
            .keeping
            .store
            .as_ref()?
            .read()
            .and_then(|v| v.mta_sts_policy(domain))
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read a kept MTA-STS policy");
                None
            })?;
        self.memory()
            .kept
            .insert(domain.to_string(), stored.clone());
        Some(stored)
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
