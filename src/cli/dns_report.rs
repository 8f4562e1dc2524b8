//! `muster check --deliverability`: the DNS records each domain needs,
//! what is published now, and what to change, in words.

use super::{EXIT_PROBLEMS, EXIT_UNUSABLE};
use crate::config::Config;
use crate::dns::Dns;
use crate::domain::deliverability::{Finding, Status};
use crate::service::deliverability::{DeliverabilityReport, report};

pub async fn run(config: Config) -> anyhow::Result<u8> {
    let dns = match Dns::from_config(&config.dns) {
        Ok(dns) => dns,
        Err(e) => {
            eprintln!("error: {e}; set dns.resolvers to a resolver Muster can ask");
            return Ok(EXIT_UNUSABLE);
        }
    };
    let report = report(&config, &dns, time::OffsetDateTime::now_utc()).await;
    print!("{}", render(&report));
    Ok(if report.to_fix() + report.unanswered() > 0 {
        EXIT_PROBLEMS
    } else {
        0
    })
}

fn label(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Missing => "MISSING",
        Status::Wrong => "WRONG",
        Status::Advice => "advice",
        Status::Unknown => "unknown",
    }
}

/// The record as a zone file line.
fn zone_line(f: &Finding, value: &str) -> String {
    match f.record_type {
        "TXT" => crate::mail::dkim::zone_line(&f.name, value),
        "PTR" => format!("{}. 3600 IN PTR {value}", f.name),
        other => format!("{}. 3600 IN {other} {value}", f.name),
    }
}

fn finding(out: &mut String, f: &Finding) {
    out.push_str(&format!(
        "  {:<8} {:<5} {}: {}\n",
        label(f.status),
        f.record_type,
        f.name,
        f.words
    ));
    for p in &f.published {
        out.push_str(&format!("           published: {p}\n"));
    }
    if let Some(value) = &f.publish {
        out.push_str(&format!("           publish:   {}\n", zone_line(f, value)));
    }
}

pub fn render(r: &DeliverabilityReport) -> String {
    let mut out = format!(
        "Mail leaves by {} mode; sending address{}: {} ({}).\nDNS answers from {}.\n",
        r.mode.name(),
        if r.sending_addresses.len() == 1 {
            ""
        } else {
            "es"
        },
        if r.sending_addresses.is_empty() {
            "none known".to_string()
        } else {
            r.sending_addresses
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        r.sending_from,
        r.resolver
    );
    if !r.host.is_empty() {
        out.push_str(&format!("\nThis server ({})\n", r.helo_name));
        for f in &r.host {
            finding(&mut out, f);
        }
    }
    for d in &r.domains {
        let role = match (d.sender, d.hosted) {
            (true, true) => "sends Muster's mail; hosted",
            (true, false) => "sends Muster's mail",
            _ => "hosted",
        };
        out.push_str(&format!("\n{} ({role})\n", d.domain));
        for f in &d.findings {
            finding(&mut out, f);
        }
    }
    let (to_fix, unanswered) = (r.to_fix(), r.unanswered());
    out.push('\n');
    if to_fix == 0 && unanswered == 0 {
        out.push_str("Nothing to fix.\n");
    }
    if to_fix > 0 {
        out.push_str(&format!(
            "{to_fix} record{} to fix (MISSING or WRONG above). DNS changes take up to the record's TTL to be seen.\n",
            if to_fix == 1 { "" } else { "s" }
        ));
    }
    if unanswered > 0 {
        out.push_str(&format!(
            "{unanswered} record{} got no answer from {}: check that it answers (dns.resolvers), then run this again.\n",
            if unanswered == 1 { "" } else { "s" },
            r.resolver
        ));
    }
    out
}
