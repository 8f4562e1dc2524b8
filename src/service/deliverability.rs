//! The DNS and deliverability report: for each hosted domain and the
//! sender's, the records it needs, looked up now through `dns.resolvers`,
//! SPF evaluated for the addresses Muster's mail leaves from.

use std::net::IpAddr;

use time::OffsetDateTime;

use super::{Muster, ServiceError};
use crate::config::{Config, SmtpMode};
use crate::dns::{Dns, LookupError};
use crate::domain::deliverability::{
    Answer, DkimKeyFacts, DomainFacts, Finding, HostFacts, Sending, SpfVerdict, assess_domain,
    assess_host, is_local_address,
};

/// What the report says about one domain.
#[derive(Debug, Clone)]
pub struct DomainReport {
    pub domain: String,
    /// Muster's mail comes from this domain.
    pub sender: bool,
    /// Mailboxes are made in it.
    pub hosted: bool,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone)]
pub struct DeliverabilityReport {
    pub checked_at: OffsetDateTime,
    pub mode: SmtpMode,
    /// Where the questions went.
    pub resolver: String,
    pub sender_domain: String,
    pub helo_name: String,
    /// The addresses SPF must cover.
    pub sending_addresses: Vec<IpAddr>,
    /// Where those addresses come from, in words.
    pub sending_from: String,
    /// The HELO name and reverse DNS (direct mode only).
    pub host: Vec<Finding>,
    pub domains: Vec<DomainReport>,
}

impl DeliverabilityReport {
    pub fn all_findings(&self) -> impl Iterator<Item = &Finding> {
        self.host
            .iter()
            .chain(self.domains.iter().flat_map(|d| d.findings.iter()))
    }

    /// How many records got no answer from DNS.
    pub fn unanswered(&self) -> usize {
        self.all_findings()
            .filter(|f| f.status == crate::domain::deliverability::Status::Unknown)
            .count()
    }

    /// How many findings need fixing.
    pub fn to_fix(&self) -> usize {
        self.all_findings()
            .filter(|f| f.status.needs_action())
            .count()
    }
}

fn answer<T>(r: Result<Vec<T>, LookupError>) -> Answer<T> {
    match r {
        Ok(v) if v.is_empty() => Answer::Absent,
        Ok(v) => Answer::Records(v),
        Err(e) if e.is_absent() => Answer::Absent,
        Err(e) => Answer::NoAnswer(e.to_string()),
    }
}

/// TXT records at `name` that start with `tag` (`v=spf1`, `v=DMARC1`),
/// compared as bytes (a record may hold anything).
async fn tagged_txt(dns: &Dns, name: &str, tag: &str) -> Answer<String> {
    let starts = |r: &String| {
        let r = r.trim_start().as_bytes();
        let n = tag.len();
        r.get(..n)
            .is_some_and(|p| p.eq_ignore_ascii_case(tag.as_bytes()))
            && r.get(n).is_none_or(|c| *c == b' ' || *c == b';')
    };
    only(dns.txt(name).await, starts)
}

/// The TXT records at `name` that `keep`, or absent when none is kept.
fn only(r: Result<Vec<String>, LookupError>, keep: impl Fn(&String) -> bool) -> Answer<String> {
    match answer(r) {
        Answer::Records(r) => {
            let kept: Vec<String> = r.into_iter().filter(|r| keep(r)).collect();
            if kept.is_empty() {
                Answer::Absent
            } else {
                Answer::Records(kept)
            }
        }
        other => other,
    }
}

/// DKIM key records at `name`: `v=` is optional (RFC 6376 section
/// 3.6.1), so any record with a `p=` tag, and `v=DKIM1` first when there.
async fn dkim_txt(dns: &Dns, name: &str) -> Answer<String> {
    only(dns.txt(name).await, |r| {
        let tags: Vec<&str> = r.split(';').map(str::trim).collect();
        let has_p = tags.iter().any(|t| t.starts_with("p="));
        let version_ok = tags
            .iter()
            .position(|t| t.starts_with("v="))
            .is_none_or(|i| i == 0 && tags[0] == "v=DKIM1");
        has_p && version_ok
    })
}

async fn spf_verdict(dns: &Dns, ip: IpAddr, helo: &str, domain: &str) -> SpfVerdict {
    use mail_auth::SpfResult;
    use mail_auth::spf::verify::SpfParameters;
    let sender = format!("postmaster@{domain}");
    let output = dns
        .authenticator()
        .verify_spf(SpfParameters::verify_mail_from(
            ip,
            helo,
            "deliverability-check.muster",
            &sender,
        ))
        .await;
    match output.result() {
        SpfResult::Pass => SpfVerdict::Pass,
        SpfResult::Fail => SpfVerdict::Fail,
        SpfResult::SoftFail => SpfVerdict::SoftFail,
        SpfResult::Neutral => SpfVerdict::Neutral,
        SpfResult::None => SpfVerdict::None,
        SpfResult::TempError => SpfVerdict::TempError,
        SpfResult::PermError => SpfVerdict::PermError,
    }
}

pub async fn addresses(dns: &Dns, host: &str) -> Answer<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Answer::Records(vec![ip]);
    }
    answer(dns.addresses(host).await)
}

struct Common<'a> {
    config: &'a Config,
    dns: &'a Dns,
    helo: &'a str,
    sending: &'a [IpAddr],
    sender_domain: &'a str,
    mail_host: String,
    mail_host_addresses: Vec<IpAddr>,
}

async fn domain_facts(c: &Common<'_>, domain: String, hosted: bool) -> DomainFacts {
    let dns = c.dns;
    let sender = domain == c.sender_domain;
    let mx = async {
        match dns.mx(&domain).await {
            Ok(records) if records.is_empty() => Answer::Absent,
            Ok(records) => {
                let mut out = Vec::new();
                for (preference, host) in records {
                    let addrs = if host.is_empty() {
                        Vec::new()
                    } else {
                        dns.addresses(&host).await.unwrap_or_default()
                    };
                    out.push((preference, host, addrs));
                }
                Answer::Records(out)
            }
            Err(e) => answer::<(u16, String, Vec<IpAddr>)>(Err(e)),
        }
    };
    let spf = tagged_txt(dns, &domain, "v=spf1");
    let (dmarc_name, autoconfig_name, autodiscover_name) = (
        format!("_dmarc.{domain}"),
        format!("autoconfig.{domain}"),
        format!("autodiscover.{domain}"),
    );
    let dmarc = tagged_txt(dns, &dmarc_name, "v=DMARC1");
    let verdicts = async {
        let mut out = Vec::new();
        for ip in c.sending {
            out.push((*ip, spf_verdict(dns, *ip, c.helo, &domain).await));
        }
        out
    };
    let autoconfig = addresses(dns, &autoconfig_name);
    let autodiscover = addresses(dns, &autodiscover_name);
    let (mut dkim_keys, mut dkim_problem) = (Vec::new(), None);
    match crate::mail::dkim::keys_of(&c.config.dkim_dir(), &domain) {
        Ok(keys) => {
            for k in keys {
                let name = format!("{}._domainkey.{domain}", k.selector);
                dkim_keys.push(DkimKeyFacts {
                    published: dkim_txt(dns, &name).await,
                    selector: k.selector,
                    algorithm: k.algorithm.tag(),
                    public_b64: k.public_b64,
                });
            }
        }
        Err(e) => dkim_problem = Some(e.to_string()),
    }
    let (mx, spf, mut dmarc, spf_verdicts, autoconfig, autodiscover) =
        tokio::join!(mx, spf, dmarc, verdicts, autoconfig, autodiscover);
    // None of its own: the nearest parent's applies (the tree walk of
    // DMARCbis; the top two labels are as far as it goes).
    let mut dmarc_at = None;
    let labels: Vec<&str> = domain.split('.').collect();
    for i in 1..labels.len().saturating_sub(1) {
        if dmarc != Answer::Absent {
            break;
        }
        let parent = labels[i..].join(".");
        dmarc = tagged_txt(dns, &format!("_dmarc.{parent}"), "v=DMARC1").await;
        if matches!(dmarc, Answer::Records(_)) {
            dmarc_at = Some(parent);
        }
    }
    DomainFacts {
        sender,
        hosted,
        mail_host: c.mail_host.clone(),
        mail_host_addresses: c.mail_host_addresses.clone(),
        mx,
        spf,
        spf_verdicts,
        dkim_keys,
        dkim_signing: c.config.dkim.sign,
        dkim_problem,
        dmarc,
        dmarc_at,
        autoconfig,
        autodiscover,
        public_host: c.config.public_host(),
        domain,
    }
}

/// The name Muster greets destination servers (or the relay) with.
pub fn helo_name(config: &Config) -> String {
    config
        .smtp
        .helo_name
        .clone()
        .unwrap_or_else(|| config.public_host())
}

/// The addresses Muster's mail leaves from, as far as it can tell, and
/// where they come from in words: in direct mode the HELO name's; through
/// a relay the relay's, or the HELO name's when the relay is on this
/// machine or a private network; none for the outbox.
pub async fn sending_addresses(
    config: &Config,
    dns: &Dns,
    helo: &str,
    helo_addresses: &Answer<IpAddr>,
) -> (Vec<IpAddr>, String) {
    let mode = config.smtp_mode();
    match mode {
        SmtpMode::Outbox => (
            Vec::new(),
            "Muster writes invites to the outbox folder: whoever sends those files on decides which address they leave from".to_string(),
        ),
        SmtpMode::Direct => match helo_addresses {
            Answer::Records(r) => (
                r.clone(),
                format!("direct delivery from this server, as {helo} (smtp.helo_name) resolves"),
            ),
            _ => (
                Vec::new(),
                format!(
                    "direct delivery from this server as {helo} (smtp.helo_name); its address is not known because that name does not resolve"
                ),
            ),
        },
        SmtpMode::Relay => {
            let relay = config.smtp.host.clone().unwrap_or_default();
            match addresses(dns, &relay).await {
                Answer::Records(r) if r.iter().any(|ip| !is_local_address(ip)) => (
                    r.into_iter().filter(|ip| !is_local_address(ip)).collect(),
                    format!("the relay {relay} (smtp.host), as it resolves"),
                ),
                _ => (
                    match &helo_addresses {
                        Answer::Records(r) => r.clone(),
                        _ => Vec::new(),
                    },
                    format!(
                        "the relay {relay} is on this machine or a private network, so mail is taken to leave from {helo}'s address (smtp.helo_name); if the relay sends from elsewhere, SPF must cover that address instead"
                    ),
                ),
            }
        }
    }
}

/// Looks up every record the hosted domains and the sender's domain need
/// and says how each stands.
pub async fn report(config: &Config, dns: &Dns, now: OffsetDateTime) -> DeliverabilityReport {
    let mode = config.smtp_mode();
    let helo = helo_name(config);
    let helo_addresses = addresses(dns, &helo).await;
    let (sending, sending_from) = sending_addresses(config, dns, &helo, &helo_addresses).await;
    let how = match (mode, sending.is_empty()) {
        (SmtpMode::Outbox, _) => Sending::Outbox,
        (_, true) => Sending::Unknown(helo.clone()),
        (_, false) => Sending::From(sending.clone()),
    };
    let sender_domain = config.sender_domain();
    let settings = config.mail_settings();
    let mail_host = settings.imap.host.clone();
    let mail_host_addresses = match addresses(dns, &mail_host).await {
        Answer::Records(r) => r,
        _ => Vec::new(),
    };
    let common = Common {
        config,
        dns,
        helo: &helo,
        sending: &sending,
        sender_domain: &sender_domain,
        mail_host,
        mail_host_addresses,
    };
    let mut names: Vec<(String, bool)> = config
        .hosted_domains()
        .into_iter()
        .map(|(d, _)| (d.to_string(), true))
        .collect();
    if !names.iter().any(|(d, _)| *d == sender_domain) {
        names.insert(0, (sender_domain.clone(), false));
    }
    // Each domain's questions at once: a slow resolver costs one timeout,
    // not one per domain.
    let facts = futures_util::future::join_all(
        names
            .into_iter()
            .map(|(d, hosted)| domain_facts(&common, d, hosted)),
    )
    .await;
    let domains = facts
        .iter()
        .map(|f| DomainReport {
            domain: f.domain.clone(),
            sender: f.sender,
            hosted: f.hosted,
            findings: assess_domain(f, &how),
        })
        .collect();
    let host = if mode == SmtpMode::Direct {
        let mut reverse = Vec::new();
        for ip in &sending {
            reverse.push((*ip, answer(dns.ptr(*ip).await)));
        }
        assess_host(&HostFacts {
            helo_name: helo.clone(),
            helo_addresses,
            reverse,
        })
    } else {
        Vec::new()
    };
    DeliverabilityReport {
        checked_at: now,
        mode,
        resolver: dns.servers.clone(),
        sender_domain,
        helo_name: helo,
        sending_addresses: sending,
        sending_from,
        host,
        domains,
    }
}

impl Muster {
    /// The DNS and deliverability report, looked up now.
    pub async fn deliverability(&self) -> Result<DeliverabilityReport, ServiceError> {
        let dns = self.dns().map_err(|e| ServiceError::Dns(e.to_string()))?;
        Ok(report(&self.config, &dns, self.now()).await)
    }
}
