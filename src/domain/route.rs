//! Where mail for a domain goes, from its MX records (RFC 5321 section
//! 5.1, RFC 7505): pure, the lookups are the caller's.

use std::net::IpAddr;

/// One mail server of a destination domain, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailExchanger {
    pub host: String,
    pub preference: u16,
    pub addresses: Vec<IpAddr>,
}

/// What the DNS says about a destination domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Its mail servers, most preferred first.
    Exchangers(Vec<MailExchanger>),
    /// A null MX (`MX 0 .`): the domain takes no email.
    NullMx,
    /// The domain does not exist (NXDOMAIN).
    NoSuchDomain,
    /// No MX and no address, or MX hosts without addresses.
    NoMailServer,
}

impl Route {
    /// Why nothing can ever be delivered there, in words; `None` when
    /// there are servers to try.
    pub fn dead_end(&self, domain: &str) -> Option<String> {
        match self {
            Route::Exchangers(_) => None,
            Route::NullMx => Some(format!(
                "{domain} takes no email (it publishes a null MX record, RFC 7505): check the address"
            )),
            Route::NoSuchDomain => Some(format!(
                "the domain {domain} does not exist: check the address for a typo"
            )),
            Route::NoMailServer => Some(format!(
                "{domain} has no mail server (no MX record, and no address for its MX hosts or for itself)"
            )),
        }
    }
}

/// The hosts to look up, or where the records already lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// (preference, host), most preferred first.
    Hosts(Vec<(u16, String)>),
    Nowhere(Route),
}

/// From the MX records of `domain` ((preference, host); the root name as
/// `""` or `"."`): its hosts in preference order (answer order kept among
/// equals, duplicates dropped), the domain itself when it has none, or a
/// null MX when that is all it publishes.
pub fn plan(domain: &str, records: &[(u16, String)]) -> Plan {
    if records.is_empty() {
        return Plan::Hosts(vec![(0, domain.to_string())]);
    }
    let is_root = |h: &str| h.trim_end_matches('.').is_empty();
    let mut hosts: Vec<(u16, String)> = Vec::new();
    for (preference, host) in records {
        if is_root(host) {
            continue;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if !hosts.iter().any(|(_, h)| *h == host) {
            hosts.push((*preference, host));
        }
    }
    if hosts.is_empty() {
        // RFC 7505: a null MX is the only MX; nothing else to try.
        return Plan::Nowhere(Route::NullMx);
    }
    hosts.sort_by_key(|(p, _)| *p);
    Plan::Hosts(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(p: Plan) -> Vec<String> {
        match p {
            Plan::Hosts(h) => h.into_iter().map(|(_, h)| h).collect(),
            Plan::Nowhere(r) => panic!("{r:?}"),
        }
    }

    #[test]
    fn hosts_come_in_preference_order_without_duplicates() {
        let records = vec![
            (20, "mx2.example.org.".to_string()),
            (10, "MX1.example.org".to_string()),
            (20, "mx3.example.org".to_string()),
            (30, "mx1.example.org".to_string()),
        ];
        assert_eq!(
            hosts(plan("example.org", &records)),
            ["mx1.example.org", "mx2.example.org", "mx3.example.org"]
        );
    }

    #[test]
    fn no_mx_means_the_domain_itself() {
        assert_eq!(hosts(plan("example.org", &[])), ["example.org"]);
    }

    #[test]
    fn a_null_mx_is_a_dead_end_unless_other_hosts_are_listed() {
        assert_eq!(
            plan("example.org", &[(0, ".".into())]),
            Plan::Nowhere(Route::NullMx)
        );
        assert_eq!(
            plan("example.org", &[(0, "".into())]),
            Plan::Nowhere(Route::NullMx)
        );
        assert_eq!(
            hosts(plan(
                "example.org",
                &[(0, ".".into()), (10, "mx.example.org".into())]
            )),
            ["mx.example.org"]
        );
        assert!(
            Route::NullMx
                .dead_end("example.org")
                .unwrap()
                .contains("takes no email")
        );
    }
}
