//! Mail client autoconfiguration for the hosted domains: Thunderbird's
//! autoconfig, Outlook's Autodiscover and the Apple profile. They say only
//! which servers a hosted domain uses, the same for every local part, so
//! they tell nobody whether a mailbox exists.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Query};
use poem::{Body, Request, Response, handler};
use serde::Deserialize;

use super::HttpState;
use crate::config::Config;
use crate::domain::address::{DomainName, MailboxAddress};
use crate::domain::client_setup::{autodiscover_error, autodiscover_request_address};

#[derive(Deserialize)]
pub struct ForAddress {
    emailaddress: Option<String>,
}

fn xml(status: StatusCode, content_type: &str, body: String) -> Response {
    Response::builder()
        .status(status)
        .content_type(content_type)
        .header("cache-control", "no-cache")
        .body(body)
}

fn plain(status: StatusCode, text: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .body(format!("{text}\n"))
}

fn hosted(config: &Config, domain: &DomainName) -> bool {
    config.domain_cap(domain).is_some()
}

/// The hosted domain a Thunderbird request is about: the address's, or
/// else the host it was sent to (`autoconfig.D`).
/// Err: why the request names no domain (a 400).
fn autoconfig_domain(req: &Request, q: &ForAddress) -> Result<DomainName, String> {
    if let Some(raw) = q.emailaddress.as_deref() {
        return MailboxAddress::parse(raw.trim())
            .map(|a| a.domain().clone())
            .map_err(|e| {
                format!("emailaddress: {e}; give a whole address such as jane@example.org")
            });
    }
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let host = host.strip_prefix("autoconfig.").unwrap_or(host);
    DomainName::parse(host).map_err(|_| {
        "emailaddress: missing; add ?emailaddress=jane@example.org, or ask on autoconfig.<domain>"
            .to_string()
    })
}

/// `GET /.well-known/autoconfig/mail/config-v1.1.xml` and
/// `GET /mail/config-v1.1.xml`.
#[handler]
pub fn thunderbird(req: &Request, q: Query<ForAddress>, state: Data<&Arc<HttpState>>) -> Response {
    let config = &state.muster.config;
    let domain = match autoconfig_domain(req, &q) {
        Ok(d) => d,
        Err(why) => return plain(StatusCode::BAD_REQUEST, &why),
    };
    if !hosted(config, &domain) {
        return plain(
            StatusCode::NOT_FOUND,
            &format!("{domain} is not a domain this server hosts"),
        );
    }
    xml(
        StatusCode::OK,
        "application/xml; charset=utf-8",
        config.mail_settings().thunderbird(&domain),
    )
}

/// `POST /autodiscover/autodiscover.xml`: Outlook's request names the
/// address in `<EMailAddress>`.
#[handler]
pub async fn autodiscover(body: Body, state: Data<&Arc<HttpState>>) -> Response {
    let config = &state.muster.config;
    let answer = |status, message: &str| {
        xml(
            status,
            "text/xml; charset=utf-8",
            autodiscover_error(message),
        )
    };
    // The body limit of every route applies before this.
    let Ok(text) = body.into_string().await else {
        return answer(StatusCode::BAD_REQUEST, "the request is not UTF-8 text");
    };
    let Some(raw) = autodiscover_request_address(&text) else {
        return answer(StatusCode::BAD_REQUEST, "the request names no EMailAddress");
    };
    let address = match MailboxAddress::parse(raw) {
        Ok(a) => a,
        Err(e) => return answer(StatusCode::BAD_REQUEST, &format!("EMailAddress: {e}")),
    };
    if !hosted(config, address.domain()) {
        return answer(
            StatusCode::NOT_FOUND,
            &format!("{} is not a domain this server hosts", address.domain()),
        );
    }
    xml(
        StatusCode::OK,
        "text/xml; charset=utf-8",
        config.mail_settings().autodiscover(&address),
    )
}

/// `GET /mail/apple.mobileconfig?emailaddress=…`: the profile to open on
/// an iPhone, iPad or Mac.
#[handler]
pub fn apple_profile(q: Query<ForAddress>, state: Data<&Arc<HttpState>>) -> Response {
    let config = &state.muster.config;
    let Some(raw) = q.emailaddress.as_deref() else {
        return plain(
            StatusCode::BAD_REQUEST,
            "emailaddress: missing; add ?emailaddress=jane@example.org",
        );
    };
    let address = match MailboxAddress::parse(raw.trim()) {
        Ok(a) => a,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("emailaddress: {e}")),
    };
    if !hosted(config, address.domain()) {
        return plain(
            StatusCode::NOT_FOUND,
            &format!("{} is not a domain this server hosts", address.domain()),
        );
    }
    let mut resp = xml(
        StatusCode::OK,
        "application/x-apple-aspen-config",
        config.mail_settings().apple_profile(&address),
    );
    // The domain is a validated host name: safe inside the quotes.
    if let Ok(v) = format!("attachment; filename=\"{}.mobileconfig\"", address.domain()).parse() {
        resp.headers_mut().insert("content-disposition", v);
    }
    resp
}
