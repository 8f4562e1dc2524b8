//! Posting one delivery: the signed request, with the address checks that
//! keep webhooks off link-local and cloud metadata addresses (the URL's own
//! address, and every address its host resolves to), no redirects, and a
//! deadline.

use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use time::OffsetDateTime;

use super::Attempt;
use crate::config::Config;
use crate::domain::webhook::{WebhookSecret, WebhookUrl};
use crate::store::{WebhookDelivery, WebhookEndpoint};

/// Most of an answer's body kept as the delivery's last error.
const ANSWER_KEPT: usize = 300;

/// Resolves names as the system does, leaving out refused addresses.
struct CheckedResolver {
    allowed: Arc<Vec<String>>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = self.allowed.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let url = WebhookUrl::parse(&format!("https://{host}/"), &allowed)?;
            let mut kept = Vec::new();
            let mut refused = None;
            for addr in tokio::net::lookup_host((host.as_str(), 0)).await? {
                match url.address_ok(addr.ip(), &allowed) {
                    Ok(()) => kept.push(addr),
                    Err(why) => refused = Some(format!("{host} resolves to {} ({why})", addr.ip())),
                }
            }
            if kept.is_empty() {
                let message = refused.unwrap_or_else(|| format!("{host} has no address"));
                return Err(message.into());
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// Posts deliveries; cheap to clone.
#[derive(Clone)]
pub struct Poster {
    client: reqwest::Client,
    allowed: Arc<Vec<String>>,
}

impl Poster {
    pub fn new(config: &Config) -> Result<Self, reqwest::Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let allowed = Arc::new(config.webhooks.allow_addresses.clone());
        let timeout = Duration::from_secs(config.webhooks.timeout_secs);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would be the only address the checks see.
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("Muster/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(CheckedResolver {
                allowed: allowed.clone(),
            })
            .build()?;
        Ok(Self { client, allowed })
    }

    pub async fn post(
        &self,
        endpoint: &WebhookEndpoint,
        d: &WebhookDelivery,
        secret: &WebhookSecret,
        now: OffsetDateTime,
    ) -> Attempt {
        let failed = |error: String| Attempt {
            status: None,
            error: Some(error),
        };
        // Checked again as it goes: the settings may have changed since.
        let url = match WebhookUrl::parse(&endpoint.url, &self.allowed) {
            Ok(u) => u,
            Err(e) => return failed(e.to_string()),
        };
        // An address in the URL is never resolved: check it here.
        if let Some(ip) = url.ip()
            && let Err(why) = url.address_ok(ip, &self.allowed)
        {
            return failed(format!("{ip} is {why}"));
        }
        let timestamp = now.unix_timestamp();
        let signature = secret.sign(&d.msg_id, timestamp, d.payload.as_bytes());
        let sent = self
            .client
            .post(url.as_str())
            .header("content-type", "application/json")
            .header("webhook-id", &d.msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.payload.clone())
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    return Attempt {
                        status: Some(status.as_u16()),
                        error: None,
                    };
                }
                let body = resp.text().await.unwrap_or_default();
                let said: String = body.trim().chars().take(ANSWER_KEPT).collect();
                Attempt {
                    status: Some(status.as_u16()),
                    error: Some(if said.is_empty() {
                        format!("answered {status}")
                    } else {
                        format!("answered {status}: {said}")
                    }),
                }
            }
            Err(e) => failed(describe(&e)),
        }
    }
}

/// A failed request in words, with its cause (reqwest's own message alone
/// says only "error sending request").
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "no answer in time".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        what
    } else {
        format!("{what}: {cause}")
    }
}
