//! Whether mail from Muster and for the hosted domains can reach an inbox:
//! the DNS records each domain needs, compared with what is published, as
//! findings in words. Pure: the lookups and the SPF evaluation are the
//! caller's.

use std::net::IpAddr;

/// How one record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Published and right.
    Ok,
    /// Not published: the finding says what to publish.
    Missing,
    /// Published but wrong, or in a way receivers hold against the mail.
    Wrong,
    /// Not needed for invites to arrive, but worth having.
    Advice,
    /// No answer from DNS.
    Unknown,
}

impl Status {
    /// Something to fix before sending.
    pub fn needs_action(self) -> bool {
        matches!(self, Status::Missing | Status::Wrong)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Wrong => "wrong",
            Status::Advice => "advice",
            Status::Unknown => "unknown",
        }
    }
}

/// Which record a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Mx,
    Spf,
    Dkim,
    Dmarc,
    /// The name Muster greets destination servers with (direct mode).
    HeloName,
    /// The sending address's PTR record (direct mode).
    ReverseDns,
    /// `autoconfig.D`, for Thunderbird and other mail clients.
    Autoconfig,
    /// `autodiscover.D`, for Outlook.
    Autodiscover,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Mx => "mx",
            Check::Spf => "spf",
            Check::Dkim => "dkim",
            Check::Dmarc => "dmarc",
            Check::HeloName => "helo_name",
            Check::ReverseDns => "reverse_dns",
            Check::Autoconfig => "autoconfig",
            Check::Autodiscover => "autodiscover",
        }
    }
}

/// One record: where it lives, what is there, what should be, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub status: Status,
    /// The DNS name the record lives at.
    pub name: String,
    pub record_type: &'static str,
    /// What DNS answers now, one entry per record.
    pub published: Vec<String>,
    /// The value to publish, when something is to be done.
    pub publish: Option<String>,
    pub words: String,
}

/// What DNS answered for one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    Records(Vec<T>),
    /// The name or the record type does not exist.
    Absent,
    /// No answer (timeout, SERVFAIL): the error.
    NoAnswer(String),
}

impl<T> Answer<T> {
    fn records(&self) -> &[T] {
        match self {
            Answer::Records(r) => r,
            _ => &[],
        }
    }
}

/// An SPF evaluation's result (RFC 7208 section 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfVerdict {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
}

impl SpfVerdict {
    fn name(self) -> &'static str {
        match self {
            SpfVerdict::Pass => "pass",
            SpfVerdict::Fail => "fail",
            SpfVerdict::SoftFail => "softfail",
            SpfVerdict::Neutral => "neutral",
            SpfVerdict::None => "none",
            SpfVerdict::TempError => "temperror",
            SpfVerdict::PermError => "permerror",
        }
    }
}

/// One DKIM key Muster holds for a domain, and its record in DNS.
#[derive(Debug, Clone)]
pub struct DkimKeyFacts {
    pub selector: String,
    /// `rsa` or `ed25519`.
    pub algorithm: &'static str,
    /// The `p=` value the record must carry.
    pub public_b64: String,
    pub published: Answer<String>,
}

/// Everything looked up for one domain.
#[derive(Debug, Clone)]
pub struct DomainFacts {
    pub domain: String,
    /// Muster's mail comes from this domain (`smtp.from_address`).
    pub sender: bool,
    /// Mailboxes are made in this domain.
    pub hosted: bool,
    /// The mail host clients and MX records should name.
    pub mail_host: String,
    pub mail_host_addresses: Vec<IpAddr>,
    /// (preference, host, the host's addresses).
    pub mx: Answer<(u16, String, Vec<IpAddr>)>,
    /// The domain's TXT records that start `v=spf1`.
    pub spf: Answer<String>,
    /// The SPF result for each address Muster's mail leaves from.
    pub spf_verdicts: Vec<(IpAddr, SpfVerdict)>,
    /// Muster signs mail from this domain with these keys.
    pub dkim_keys: Vec<DkimKeyFacts>,
    pub dkim_signing: bool,
    /// The keys could not be read: why.
    pub dkim_problem: Option<String>,
    /// The TXT records at `_dmarc.D` that start `v=DMARC1`, or at the
    /// nearest parent's when D has none (receivers look up the tree).
    pub dmarc: Answer<String>,
    /// That parent, when the record is its.
    pub dmarc_at: Option<String>,
    pub autoconfig: Answer<IpAddr>,
    pub autodiscover: Answer<IpAddr>,
    /// Muster's host name, for the autoconfig advice.
    pub public_host: String,
}

/// The sending host in direct mode.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub helo_name: String,
    pub helo_addresses: Answer<IpAddr>,
    /// Each sending address's PTR names.
    pub reverse: Vec<(IpAddr, Answer<String>)>,
}

/// An address of this machine or a private network (loopback, RFC 1918,
/// link-local, IPv6 unique-local): nothing the public sees.
pub fn is_local_address(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// A host the public cannot reach by this name: a local address, or a
/// name only this machine or its network resolves (`localhost`, a single
/// label, `.local`, `.internal`, `.lan`, `.home.arpa`, `.localdomain`).
pub fn is_local_host(host: &str) -> bool {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return is_local_address(&ip);
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    !host.contains('.')
        || [
            ".localhost",
            ".local",
            ".internal",
            ".lan",
            ".home.arpa",
            ".localdomain",
        ]
        .iter()
        .any(|suffix| host.ends_with(suffix))
}

fn finding(check: Check, status: Status, name: &str, record_type: &'static str) -> Finding {
    Finding {
        check,
        status,
        name: name.to_string(),
        record_type,
        published: Vec::new(),
        publish: None,
        words: String::new(),
    }
}

fn spf_terms(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => format!("ip4:{v4}"),
            IpAddr::V6(v6) => format!("ip6:{v6}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The addresses Muster's mail leaves from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sending {
    /// Known: SPF must cover them.
    From(Vec<IpAddr>),
    /// Invites go to the outbox: whatever sends them on is not known.
    Outbox,
    /// They should be known but are not: the HELO name (given) does not
    /// resolve.
    Unknown(String),
}

impl Sending {
    fn addresses(&self) -> &[IpAddr] {
        match self {
            Sending::From(a) => a,
            _ => &[],
        }
    }
}

/// The findings for one domain, in the order a person fixes them.
pub fn assess_domain(facts: &DomainFacts, sending: &Sending) -> Vec<Finding> {
    let mut out = Vec::new();
    if facts.hosted {
        out.push(mx(facts));
    }
    out.push(spf(facts, sending));
    out.extend(dkim(facts));
    out.push(dmarc(facts));
    if facts.hosted {
        out.extend(autoconfig(facts));
    }
    out
}

fn mx(f: &DomainFacts) -> Finding {
    let d = &f.domain;
    let mut x = finding(Check::Mx, Status::Ok, d, "MX");
    // An MX names a host the world can look up: with the mail host known
    // only by its address or a local name, the public name comes first.
    let by_address = f.mail_host.parse::<IpAddr>().is_ok();
    let unnamed = by_address || is_local_host(&f.mail_host);
    let wanted = format!("10 {}.", f.mail_host);
    let name_it = if by_address {
        format!(
            "; the mail host is known here only by its address {}: set client.imap_host to the mail server's DNS name, then publish an MX naming it",
            f.mail_host
        )
    } else {
        format!(
            "; the mail host is known here only as {}, a name nothing outside this machine or network can look up: set client.imap_host to the mail server's public DNS name, then publish an MX naming it",
            f.mail_host
        )
    };
    match &f.mx {
        Answer::NoAnswer(e) => {
            x.status = Status::Unknown;
            x.words = format!("no answer for {d}'s MX records: {e}");
        }
        Answer::Absent => {
            x.status = Status::Missing;
            x.words = format!(
                "{d} has no MX record: mail to the new mailboxes goes nowhere, or to {d}'s own address at best"
            );
            if unnamed {
                x.words.push_str(&name_it);
            } else {
                x.publish = Some(wanted);
                x.words.push_str(&format!(
                    ". Publish one naming the mail host {}",
                    f.mail_host
                ));
            }
        }
        Answer::Records(records) => {
            x.published = records
                .iter()
                .map(|(p, h, _)| format!("{p} {}.", if h.is_empty() { "" } else { h }))
                .collect();
            let null = records.iter().all(|(_, h, _)| h.is_empty() || h == ".");
            // Senders try the most preferred first: those must be ours.
            let best = records.iter().map(|(p, _, _)| *p).min().unwrap_or(0);
            let ours = records
                .iter()
                .filter(|(p, _, _)| *p == best)
                .all(|(_, h, addrs)| {
                    h.eq_ignore_ascii_case(&f.mail_host)
                        || addrs.iter().any(|a| f.mail_host_addresses.contains(a))
                });
            if null {
                x.status = Status::Wrong;
                x.publish = (!unnamed).then_some(wanted);
                x.words = format!(
                    "{d} publishes a null MX (it takes no email): replace it with an MX naming {}",
                    f.mail_host
                );
                if unnamed {
                    x.words.push_str(&name_it);
                }
            } else if ours {
                x.words = format!("mail for {d} goes to the mail host {}", f.mail_host);
            } else {
                x.status = Status::Wrong;
                x.publish = (!unnamed).then_some(wanted);
                x.words = format!(
                    "{d}'s most preferred MX names other servers than the mail host {}: mail to the new mailboxes lands there first, not in the mailboxes Muster makes. Point it at {}, unless those servers forward to it",
                    f.mail_host, f.mail_host
                );
            }
        }
    }
    x
}

fn spf(f: &DomainFacts, how: &Sending) -> Finding {
    let d = &f.domain;
    let sending = how.addresses();
    let mut x = finding(Check::Spf, Status::Ok, d, "TXT");
    x.published = f.spf.records().to_vec();
    let suggested = match how {
        Sending::From(a) => format!("v=spf1 mx {} -all", spf_terms(a)),
        Sending::Unknown(helo) => format!("v=spf1 mx a:{helo} -all"),
        // Whatever sends the outbox on must be added: softfail meanwhile.
        Sending::Outbox => "v=spf1 mx ~all".to_string(),
    };
    match &f.spf {
        Answer::NoAnswer(e) => {
            x.status = Status::Unknown;
            x.words = format!("no answer for {d}'s TXT records: {e}");
            return x;
        }
        Answer::Absent => {
            x.status = Status::Missing;
            x.publish = Some(suggested);
            x.words = format!(
                "{d} has no SPF record: Gmail and Outlook reject or junk mail from domains without SPF or DKIM. Publish one that names the servers mail from {d} leaves from"
            );
            return x;
        }
        Answer::Records(r) if r.len() > 1 => {
            x.status = Status::Wrong;
            x.words = format!(
                "{d} publishes {} SPF records; receivers treat that as an error (permerror) and ignore them all. Merge them into one",
                r.len()
            );
            return x;
        }
        Answer::Records(_) => {}
    }
    if sending.is_empty() {
        if let Sending::Unknown(helo) = how {
            x.status = Status::Unknown;
            x.words = format!(
                "{d} publishes SPF, but the address Muster's mail leaves from is not known ({helo} does not resolve), so whether it covers it is not checked"
            );
        } else {
            x.status = Status::Advice;
            x.words = format!(
                "{d} publishes SPF; Muster writes invites to the outbox, so which address they leave from, and whether SPF covers it, is up to what sends them on"
            );
        }
        return x;
    }
    let uncovered: Vec<&(IpAddr, SpfVerdict)> = f
        .spf_verdicts
        .iter()
        .filter(|(_, v)| *v != SpfVerdict::Pass)
        .collect();
    if uncovered.is_empty() {
        x.words = format!(
            "{d}'s SPF record covers the address{} mail leaves from ({})",
            if sending.len() == 1 { "" } else { "es" },
            list(sending)
        );
        return x;
    }
    if uncovered
        .iter()
        .all(|(_, v)| matches!(v, SpfVerdict::TempError))
    {
        x.status = Status::Unknown;
        x.words =
            format!("{d}'s SPF record could not be evaluated (a lookup it needs got no answer)");
        return x;
    }
    x.status = Status::Wrong;
    if uncovered
        .iter()
        .any(|(_, v)| matches!(v, SpfVerdict::PermError))
    {
        x.words = format!(
            "{d}'s SPF record is broken (permerror: a syntax error, too many DNS lookups, or a missing include); receivers ignore it"
        );
        x.publish = Some(suggested);
        return x;
    }
    let missing: Vec<IpAddr> = uncovered.iter().map(|(ip, _)| *ip).collect();
    x.words = format!(
        "{d}'s SPF record does not cover {} (result: {}): add {} before its `all`",
        list(&missing),
        uncovered[0].1.name(),
        spf_terms(&missing)
    );
    x.publish = x.published.first().map(|r| add_terms(r, &missing));
    x
}

/// The record with the addresses added in front of its `all` (or at the end).
fn add_terms(record: &str, addresses: &[IpAddr]) -> String {
    let terms = spf_terms(addresses);
    let mut parts: Vec<String> = record.split_whitespace().map(str::to_string).collect();
    let at = parts
        .iter()
        .position(|p| {
            p.trim_start_matches(['+', '-', '~', '?']) == "all" || p.starts_with("redirect=")
        })
        .unwrap_or(parts.len());
    parts.insert(at, terms);
    parts.join(" ")
}

fn list(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `p=` value of a DKIM key record, whitespace removed.
fn dkim_public(record: &str) -> Option<String> {
    record.split(';').find_map(|tag| {
        let (k, v) = tag.split_once('=')?;
        (k.trim() == "p").then(|| v.chars().filter(|c| !c.is_whitespace()).collect())
    })
}

fn dkim(f: &DomainFacts) -> Vec<Finding> {
    let d = &f.domain;
    if let Some(problem) = &f.dkim_problem {
        let mut x = finding(
            Check::Dkim,
            Status::Wrong,
            &format!("*._domainkey.{d}"),
            "TXT",
        );
        x.words = format!("Muster cannot read its DKIM keys for {d}: {problem}");
        return vec![x];
    }
    if f.dkim_keys.is_empty() {
        let mut x = finding(
            Check::Dkim,
            Status::Missing,
            &format!("*._domainkey.{d}"),
            "TXT",
        );
        if f.sender {
            x.words = format!(
                "Muster does not sign mail from {d}: run `muster dkim generate --domain {d}`, then publish the record it prints. Without DKIM, DMARC rests on SPF alone and forwarded invites fail it"
            );
        } else {
            x.status = Status::Advice;
            x.words = format!(
                "Muster's own mail comes from another domain; mail people send from {d} is signed, or not, by the mail server"
            );
        }
        return vec![x];
    }
    f.dkim_keys
        .iter()
        .map(|k| {
            let name = format!("{}._domainkey.{d}", k.selector);
            let wanted = format!("v=DKIM1; k={}; p={}", k.algorithm, k.public_b64);
            let mut x = finding(Check::Dkim, Status::Ok, &name, "TXT");
            x.published = k.published.records().to_vec();
            let signing = if !f.sender {
                " (Muster itself signs only mail from its sender's domain)"
            } else if !f.dkim_signing {
                " (dkim.sign is off: Muster does not sign with it)"
            } else {
                ""
            };
            match &k.published {
                Answer::NoAnswer(e) => {
                    x.status = Status::Unknown;
                    x.words = format!("no answer for {name}: {e}");
                }
                Answer::Absent => {
                    x.status = Status::Missing;
                    x.publish = Some(wanted);
                    x.words = format!(
                        "the {} key `{}` is not published: receivers cannot verify its signatures{signing}",
                        k.algorithm, k.selector
                    );
                }
                Answer::Records(records) => {
                    let keys: Vec<Option<String>> =
                        records.iter().map(|r| dkim_public(r)).collect();
                    if keys.iter().any(|p| p.as_deref() == Some(k.public_b64.as_str())) {
                        if f.sender && !f.dkim_signing {
                            x.status = Status::Advice;
                        }
                        x.words = format!(
                            "the {} key `{}` is published and matches the key Muster holds{signing}",
                            k.algorithm, k.selector
                        );
                    } else if keys.iter().any(|p| p.as_deref() == Some("")) {
                        x.status = Status::Wrong;
                        x.publish = Some(wanted);
                        x.words = format!(
                            "the key `{}` is published as revoked (empty p=): signatures with it fail",
                            k.selector
                        );
                    } else {
                        x.status = Status::Wrong;
                        x.publish = Some(wanted);
                        x.words = format!(
                            "the record at {name} is not the key Muster holds: signatures with it fail. Publish Muster's key, or remove {}.pem if another server uses this selector",
                            k.selector
                        );
                    }
                }
            }
            x
        })
        .collect()
}

fn dmarc(f: &DomainFacts) -> Finding {
    let d = &f.domain;
    let name = format!("_dmarc.{d}");
    let mut x = finding(Check::Dmarc, Status::Ok, &name, "TXT");
    x.published = f.dmarc.records().to_vec();
    let suggested = format!("v=DMARC1; p=none; rua=mailto:postmaster@{d}");
    match &f.dmarc {
        Answer::NoAnswer(e) => {
            x.status = Status::Unknown;
            x.words = format!("no answer for {name}: {e}");
        }
        Answer::Absent => {
            x.status = Status::Missing;
            x.publish = Some(suggested);
            x.words = format!(
                "{d} has no DMARC record: Gmail and Yahoo require one from domains that send in bulk. Start with p=none and raise it to quarantine once the reports show only your own servers"
            );
        }
        Answer::Records(r) if r.len() > 1 => {
            x.status = Status::Wrong;
            x.words = format!(
                "{d} publishes {} DMARC records; receivers ignore them all. Keep one",
                r.len()
            );
        }
        Answer::Records(r) => {
            let tag = |name: &str| {
                r[0].split(';').find_map(|tag| {
                    let (k, v) = tag.split_once('=')?;
                    (k.trim() == name).then(|| v.trim().to_ascii_lowercase())
                })
            };
            // A parent's record rules its subdomains by `sp=`, else `p=`.
            let policy = match &f.dmarc_at {
                Some(_) => tag("sp").or_else(|| tag("p")),
                None => tag("p"),
            };
            let whose = match &f.dmarc_at {
                Some(parent) => {
                    format!("{d} has no DMARC record of its own; receivers apply _dmarc.{parent}'s")
                }
                None => format!("{d} publishes DMARC"),
            };
            match policy.as_deref() {
                Some("none") => {
                    x.words = format!(
                        "{whose}, with p=none: receivers report but do not act on failures"
                    );
                }
                Some(p @ ("quarantine" | "reject")) => {
                    x.words = format!(
                        "{whose}, with p={p}: mail that fails SPF and DKIM alignment is {}",
                        if p == "reject" { "refused" } else { "junked" }
                    );
                }
                _ => {
                    x.status = Status::Wrong;
                    x.publish = Some(suggested);
                    x.words = format!(
                        "{whose}, but with no valid policy (none, quarantine or reject); receivers ignore it"
                    );
                }
            }
        }
    }
    x
}

fn autoconfig(f: &DomainFacts) -> Vec<Finding> {
    let d = &f.domain;
    // A public URL on this machine or a private network has nothing
    // public to point the names at yet.
    let local = is_local_host(&f.public_host);
    [
        (Check::Autoconfig, "autoconfig", &f.autoconfig, "Thunderbird and other clients set themselves up"),
        (Check::Autodiscover, "autodiscover", &f.autodiscover, "Outlook sets itself up"),
    ]
    .into_iter()
    .map(|(check, label, answer, who)| {
        let name = format!("{label}.{d}");
        // A public URL by address gets an address record, a name a CNAME.
        let (record_type, target) = match f.public_host.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => ("A", f.public_host.clone()),
            Ok(IpAddr::V6(_)) => ("AAAA", f.public_host.clone()),
            Err(_) => ("CNAME", format!("{}.", f.public_host)),
        };
        let mut x = finding(check, Status::Ok, &name, record_type);
        x.published = answer.records().iter().map(IpAddr::to_string).collect();
        match answer {
            Answer::NoAnswer(e) => {
                x.status = Status::Unknown;
                x.words = format!("no answer for {name}: {e}");
            }
            Answer::Absent if local => {
                x.status = Status::Advice;
                x.words = format!(
                    "optional: {name} pointed at Muster means {who} from the address alone; Muster's public URL names a host only this machine or its network reaches ({}), so set public_url to its public name first",
                    f.public_host
                );
            }
            Answer::Absent => {
                x.status = Status::Advice;
                x.publish = Some(target.clone());
                x.words = format!(
                    "optional: point {name} at Muster ({}), and {who} from the address alone",
                    f.public_host
                );
            }
            Answer::Records(_) => {
                x.words = format!("{name} resolves, so {who} from the address alone");
            }
        }
        x
    })
    .collect()
}

/// The findings about the sending host itself (direct mode).
pub fn assess_host(facts: &HostFacts) -> Vec<Finding> {
    let helo = &facts.helo_name;
    let mut out = Vec::new();
    let mut x = finding(Check::HeloName, Status::Ok, helo, "A");
    x.published = facts
        .helo_addresses
        .records()
        .iter()
        .map(IpAddr::to_string)
        .collect();
    match &facts.helo_addresses {
        Answer::NoAnswer(e) => {
            x.status = Status::Unknown;
            x.words = format!("no answer for {helo}: {e}");
        }
        Answer::Absent => {
            x.status = Status::Missing;
            x.words = format!(
                "the HELO name {helo} (smtp.helo_name) has no address: many receivers refuse a greeting from a name that does not resolve. Give it an A record with this server's address, or set smtp.helo_name to a name that has one"
            );
        }
        Answer::Records(_) => {
            x.words = format!("Muster greets destination servers as {helo}, which resolves");
        }
    }
    out.push(x);
    if facts.reverse.is_empty() {
        let mut x = finding(Check::ReverseDns, Status::Unknown, helo, "PTR");
        x.words = format!(
            "the reverse DNS of this server's address cannot be checked until {helo} resolves to it"
        );
        out.push(x);
    }
    for (ip, names) in &facts.reverse {
        let reverse_name = reverse_name(*ip);
        let mut x = finding(Check::ReverseDns, Status::Ok, &reverse_name, "PTR");
        x.published = names.records().to_vec();
        match names {
            Answer::NoAnswer(e) => {
                x.status = Status::Unknown;
                x.words = format!("no answer for the reverse name of {ip}: {e}");
            }
            Answer::Absent => {
                x.status = Status::Missing;
                x.publish = Some(format!("{helo}."));
                x.words = format!(
                    "{ip} has no reverse DNS name: Gmail and Outlook refuse mail from addresses without one. Ask whoever runs the address (the hosting provider) to set its PTR to {helo}"
                );
            }
            Answer::Records(r) if r.iter().any(|n| n.eq_ignore_ascii_case(helo)) => {
                x.words = format!("{ip} points back to {helo}");
            }
            Answer::Records(r) => {
                x.status = Status::Wrong;
                x.publish = Some(format!("{helo}."));
                x.words = format!(
                    "{ip} points back to {}, not to the HELO name {helo}: set smtp.helo_name = \"{}\", or have the PTR changed to {helo}",
                    r[0], r[0]
                );
            }
        }
        out.push(x);
    }
    out
}

/// `4.3.2.1.in-addr.arpa`, or the nibbles of an IPv6 address.
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut nibbles: Vec<String> = v6
                .octets()
                .iter()
                .flat_map(|b| [b >> 4, b & 0xf])
                .map(|n| format!("{n:x}"))
                .collect();
            nibbles.reverse();
            format!("{}.ip6.arpa", nibbles.join("."))
        }
    }
}

#[cfg(test)]
mod tests;
