//! A sent message checked as a receiver checks it: its DKIM signatures
//! against the keys published now, SPF for its envelope sender from the
//! address mail leaves from, and DMARC alignment of both (mail-auth's
//! verifier, through `dns.resolvers`).

use std::net::IpAddr;

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, SpfOutput, SpfResult};

use crate::dns::Dns;
use crate::domain::address::domain_part;

/// One mechanism's result: `pass`, `fail`, `softfail`, `neutral`, `none`,
/// `temperror`, `permerror`, or `not_checked`; and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub result: String,
    pub words: String,
}

impl Verdict {
    fn new(result: &str, words: impl Into<String>) -> Self {
        Self {
            result: result.to_string(),
            words: words.into(),
        }
    }

    pub fn passed(&self) -> bool {
        self.result == "pass"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    pub dkim: Verdict,
    pub spf: Verdict,
    pub dmarc: Verdict,
}

impl Authentication {
    fn all(result: &str, words: &str) -> Self {
        let v = Verdict::new(result, words);
        Self {
            dkim: v.clone(),
            spf: v.clone(),
            dmarc: v,
        }
    }

    pub fn not_checked(why: &str) -> Self {
        Self::all("not_checked", why)
    }

    pub fn unanswered(why: &str) -> Self {
        Self::all("temperror", why)
    }
}

fn dkim_name(r: &DkimResult) -> (&'static str, String) {
    match r {
        DkimResult::Pass => ("pass", String::new()),
        DkimResult::Neutral(e) => ("neutral", e.to_string()),
        DkimResult::Fail(e) => ("fail", e.to_string()),
        DkimResult::PermError(e) => ("permerror", e.to_string()),
        DkimResult::TempError(e) => ("temperror", e.to_string()),
        DkimResult::None => ("none", String::new()),
    }
}

fn spf_name(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::None => "none",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
    }
}

fn dmarc_name(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

/// Checks `message` (as sent, signatures included) from `envelope_from`,
/// leaving from `sending` (unknown in outbox mode) as `helo`.
pub async fn check(
    dns: &Dns,
    message: &[u8],
    envelope_from: &str,
    sending: Option<IpAddr>,
    helo: &str,
) -> Authentication {
    let Some(parsed) = AuthenticatedMessage::parse(message) else {
        return Authentication::all("permerror", "the message could not be read back");
    };
    let auth = dns.authenticator();
    let outputs = auth.verify_dkim(&parsed).await;
    let dkim = if outputs.is_empty() {
        Verdict::new(
            "none",
            "not signed: run `muster dkim generate --domain` with the sender's domain, and publish the record it prints",
        )
    } else {
        let each: Vec<(String, &'static str, String)> = outputs
            .iter()
            .map(|o| {
                let (name, why) = dkim_name(o.result());
                let selector = o
                    .signature()
                    .map(|s| format!("{} at {}", s.s, s.d))
                    .unwrap_or_else(|| "a signature".into());
                (selector, name, why)
            })
            .collect();
        let passed = each.iter().any(|(_, r, _)| *r == "pass");
        let words = each
            .iter()
            .map(|(s, r, why)| {
                if why.is_empty() {
                    format!("{s}: {r}")
                } else {
                    format!("{s}: {r} ({why})")
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        let result = if passed { "pass" } else { each[0].1 };
        Verdict::new(result, words)
    };
    let from_domain = domain_part(envelope_from).to_string();
    let spf_output = match sending {
        Some(ip) => {
            auth.verify_spf(SpfParameters::verify_mail_from(
                ip,
                helo,
                "test-send.muster",
                envelope_from,
            ))
            .await
        }
        None => SpfOutput::new(from_domain.clone()),
    };
    let spf = match sending {
        Some(ip) => {
            let name = spf_name(spf_output.result());
            let words = match spf_output.result() {
                SpfResult::Pass => format!("{from_domain}'s SPF record allows {ip}"),
                SpfResult::None => format!("{from_domain} publishes no SPF record"),
                SpfResult::TempError => format!("no DNS answer for {from_domain}'s SPF record"),
                SpfResult::PermError => format!("{from_domain}'s SPF record is broken"),
                _ => format!("{from_domain}'s SPF record does not allow {ip}"),
            };
            Verdict::new(name, words)
        }
        None => Verdict::new(
            "not_checked",
            "the address mail leaves from is not known: smtp.helo_name does not resolve (see the DNS page)",
        ),
    };
    let dmarc_output = auth
        .verify_dmarc(DmarcParameters::new(
            &parsed,
            &outputs,
            &from_domain,
            &spf_output,
        ))
        .await;
    let dmarc = match (dmarc_output.dkim_result(), dmarc_output.spf_result()) {
        (DmarcResult::None, DmarcResult::None) => {
            Verdict::new("none", format!("{from_domain} publishes no DMARC record"))
        }
        (d, s) if *d == DmarcResult::Pass || *s == DmarcResult::Pass => Verdict::new(
            "pass",
            format!("aligned: DKIM {}, SPF {}", dmarc_name(d), dmarc_name(s)),
        ),
        (DmarcResult::TempError(_), _) | (_, DmarcResult::TempError(_)) => Verdict::new(
            "temperror",
            format!("no DNS answer for {from_domain}'s DMARC record"),
        ),
        (DmarcResult::PermError(_), _) | (_, DmarcResult::PermError(_)) => Verdict::new(
            "permerror",
            format!("{from_domain}'s DMARC record cannot be read; receivers ignore it"),
        ),
        (d, s) => Verdict::new(
            "fail",
            format!(
                "neither DKIM ({}) nor SPF ({}) passes aligned with {from_domain}: receivers apply its policy ({})",
                dmarc_name(d),
                dmarc_name(s),
                format!("{:?}", dmarc_output.policy()).to_ascii_lowercase()
            ),
        ),
    };
    Authentication { dkim, spf, dmarc }
}
