//! The DNS and deliverability report: the records each domain needs, what
//! DNS answers now, and what to change.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::ApiError;
use super::auth::Auth;
use super::types::rfc3339;
use crate::domain::deliverability::Finding;
use crate::http::HttpState;
use crate::service::deliverability::DeliverabilityReport;

#[derive(Tags)]
enum Tag {
    /// DNS records and whether invites can reach an inbox.
    Deliverability,
}

pub struct DeliverabilityApi;

/// One record: where it lives, what is there, and what to do.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct FindingBody {
    /// `mx`, `spf`, `dkim`, `dmarc`, `helo_name`, `reverse_dns`,
    /// `autoconfig`, `autodiscover`.
    pub check: String,
    /// `ok`, `missing`, `wrong` (both need fixing), `advice`, `unknown`.
    pub status: String,
    /// The DNS name the record lives at.
    pub name: String,
    pub record_type: String,
    /// What DNS answers now, one entry per record.
    pub published: Vec<String>,
    /// The value to publish at `name`, when something is to be done.
    pub publish: Option<String>,
    pub words: String,
}

impl From<&Finding> for FindingBody {
    fn from(f: &Finding) -> Self {
        Self {
            check: f.check.as_str().into(),
            status: f.status.as_str().into(),
            name: f.name.clone(),
            record_type: f.record_type.into(),
            published: f.published.clone(),
            publish: f.publish.clone(),
            words: f.words.clone(),
        }
    }
}

#[derive(Object, Debug, Clone)]
pub struct DomainReportBody {
    pub domain: String,
    /// Muster's mail comes from this domain.
    pub sender: bool,
    /// Mailboxes are made in it.
    pub hosted: bool,
    pub findings: Vec<FindingBody>,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct DeliverabilityBody {
    pub checked_at: String,
    /// `relay`, `direct` or `outbox`.
    pub mode: String,
    /// Where the DNS questions went.
    pub resolver: String,
    pub sender_domain: String,
    /// The name Muster greets servers with (none in outbox mode).
    pub helo_name: Option<String>,
    /// The addresses SPF must cover.
    pub sending_addresses: Vec<String>,
    /// Where those addresses come from, in words.
    pub sending_from: String,
    /// How many findings are `missing` or `wrong`.
    pub to_fix: u32,
    /// How many records got no answer from DNS (`unknown`).
    pub unanswered: u32,
    /// This server's HELO name and reverse DNS (direct mode).
    pub host: Vec<FindingBody>,
    pub domains: Vec<DomainReportBody>,
}

impl From<&DeliverabilityReport> for DeliverabilityBody {
    fn from(r: &DeliverabilityReport) -> Self {
        Self {
            checked_at: rfc3339(r.checked_at),
            mode: r.mode.name().into(),
            resolver: r.resolver.clone(),
            sender_domain: r.sender_domain.clone(),
            helo_name: (r.mode != crate::config::SmtpMode::Outbox).then(|| r.helo_name.clone()),
            sending_addresses: r.sending_addresses.iter().map(|a| a.to_string()).collect(),
            sending_from: r.sending_from.clone(),
            to_fix: r.to_fix() as u32,
            unanswered: r.unanswered() as u32,
            host: r.host.iter().map(FindingBody::from).collect(),
            domains: r
                .domains
                .iter()
                .map(|d| DomainReportBody {
                    domain: d.domain.clone(),
                    sender: d.sender,
                    hosted: d.hosted,
                    findings: d.findings.iter().map(FindingBody::from).collect(),
                })
                .collect(),
        }
    }
}

#[OpenApi(tag = "Tag::Deliverability")]
impl DeliverabilityApi {
    /// For each hosted domain and the sender's domain: the MX, SPF, DKIM
    /// and DMARC records it needs (and, in direct mode, this server's HELO
    /// name and reverse DNS), what the resolver answers now, and what is
    /// missing or wrong, in words. Looked up on each call.
    #[oai(
        path = "/deliverability",
        method = "get",
        operation_id = "deliverability"
    )]
    async fn report(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
    ) -> Result<Json<DeliverabilityBody>, ApiError> {
        let report = state.muster.deliverability().await?;
        Ok(Json(DeliverabilityBody::from(&report)))
    }
}
