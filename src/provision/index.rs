//! A snapshot of the host's mailboxes: what exists, how many per domain,
//! and the dedicated allocations they hold. Built from a listing and kept
//! until the listing changes, so previews do not re-read the host. The
//! maps are persistent (imbl): a copy with one more mailbox shares the
//! rest, so a create updates the index in O(1) of the host's size.

use imbl::HashMap;

use crate::domain::capacity::HostLimit;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMailbox {
    /// `local@domain`, lower case.
    pub address: String,
    /// The quota in MB, when the host sets one.
    pub quota_mb: Option<u64>,
    /// Logins refused (Dovecot's `nologin`); mail is still accepted.
    pub suspended: bool,
}

#[derive(Debug, Default, Clone)]
pub struct HostIndex {
    /// Quota and suspension, by address.
    quota: HashMap<String, (Option<u64>, bool)>,
    per_domain: HashMap<String, u64>,
    allocated_mb: u64,
    /// The host's own limits by domain (None: no limit there), when it
    /// keeps any (Postfix Admin); a domain it does not list takes none.
    limits: Option<HashMap<String, Option<HostLimit>>>,
    /// Why a domain missing from `limits` takes no mailbox, `{domain}`
    /// standing for its name.
    unlisted: String,
}

impl HostIndex {
    pub fn new(mailboxes: impl IntoIterator<Item = HostMailbox>) -> Self {
        let mut index = Self::default();
        index.add(mailboxes);
        index
    }

    /// The host's own limits by domain; a domain not among them takes no
    /// mailbox, for the reason `unlisted` gives (`{domain}` is its name).
    pub fn with_limits(
        mut self,
        limits: impl IntoIterator<Item = (String, Option<HostLimit>)>,
        unlisted: &str,
    ) -> Self {
        self.limits = Some(limits.into_iter().collect());
        self.unlisted = unlisted.to_string();
        self
    }

    /// The host's own limit on `domain`, when it keeps one.
    pub fn limit(&self, domain: &str) -> Option<HostLimit> {
        let limits = self.limits.as_ref()?;
        match limits.get(domain) {
            Some(limit) => limit.clone(),
            None => Some(HostLimit::Closed(self.unlisted.replace("{domain}", domain))),
        }
    }

    /// This index with more mailboxes; the copy shares what is unchanged.
    pub fn with_added(&self, mailboxes: impl IntoIterator<Item = HostMailbox>) -> Self {
        let mut index = self.clone();
        index.add(mailboxes);
        index
    }

    fn add(&mut self, mailboxes: impl IntoIterator<Item = HostMailbox>) {
        for m in mailboxes {
            if self.quota.contains_key(&m.address) {
                // Dovecot uses the first line for a user; so do we.
                continue;
            }
            if let Some((_, domain)) = m.address.rsplit_once('@') {
                *self.per_domain.entry(domain.to_string()).or_default() += 1;
            }
            self.allocated_mb += m.quota_mb.unwrap_or(0);
            self.quota.insert(m.address, (m.quota_mb, m.suspended));
        }
    }

    pub fn contains(&self, address: &str) -> bool {
        self.quota.contains_key(address)
    }

    /// One mailbox, when it is on the host.
    pub fn get(&self, address: &str) -> Option<HostMailbox> {
        self.quota.get(address).map(|(q, suspended)| HostMailbox {
            address: address.to_string(),
            quota_mb: *q,
            suspended: *suspended,
        })
    }

    pub fn count_in(&self, domain: &str) -> u64 {
        self.per_domain.get(domain).copied().unwrap_or(0)
    }

    /// The sum of every mailbox's quota, in MB.
    pub fn allocated_mb(&self) -> u64 {
        self.allocated_mb
    }

    pub fn len(&self) -> usize {
        self.quota.len()
    }

    pub fn is_empty(&self) -> bool {
        self.quota.is_empty()
    }

    /// Mailboxes of `domain`, sorted by address.
    pub fn mailboxes_in(&self, domain: &str) -> Vec<HostMailbox> {
        let suffix = format!("@{domain}");
        let mut out: Vec<HostMailbox> = self
            .quota
            .iter()
            .filter(|(a, _)| a.ends_with(&suffix))
            .map(|(a, (q, suspended))| HostMailbox {
                address: a.clone(),
                quota_mb: *q,
                suspended: *suspended,
            })
            .collect();
        out.sort_by(|a, b| a.address.cmp(&b.address));
        out
    }
}
