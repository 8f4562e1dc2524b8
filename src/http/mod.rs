//! HTTP: the setup-link pages, the admin web app's pages and assets, the
//! JSON API, MCP, and the operational endpoints.

pub mod api;
mod assets;
mod body;
mod client_setup;
mod headers;
pub(crate) mod json_guard;
mod link;
pub mod mcp;
mod ops;
pub mod pages;
mod ratelimit;
pub mod timeout;

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{EndpointExt, Request, Response, Route, get, handler, post};

use crate::config::Config;
use crate::service::Muster;
use assets::Audience;
pub use ratelimit::Limiter;

/// What handlers share.
pub struct HttpState {
    pub muster: Arc<Muster>,
    /// Requests per setup link.
    pub link_limiter: Limiter,
    /// Wrong setup links per client address.
    pub link_guesses: ratelimit::GuessLimiter,
    /// Sign-in (and reset) attempts per client address, and per account.
    pub signin_ip_limiter: Limiter,
    pub signin_account_limiter: Limiter,
    /// API requests per token.
    pub api_limiter: Limiter,
    /// Setup-link form proofs already taken.
    pub used_proofs: link::UsedProofs,
    /// The open connections and their caps.
    pub connections: Arc<timeout::Connections>,
}

impl HttpState {
    pub fn new(muster: Arc<Muster>) -> Self {
        let http = &muster.config.http;
        Self {
            link_limiter: Limiter::per_minute(http.link_rate_per_minute),
            link_guesses: ratelimit::GuessLimiter::per_minute(http.link_guesses_per_minute),
            signin_ip_limiter: Limiter::per_minute(http.signin_rate_per_minute),
            signin_account_limiter: Limiter::per_minute(http.signin_rate_per_minute),
            api_limiter: Limiter::per_minute(http.api_rate_per_minute),
            used_proofs: link::UsedProofs::default(),
            connections: Arc::default(),
            muster,
        }
    }

    /// A wrong API token from this client: counted like a failed sign-in.
    /// Some(wait) when the client has used up its allowance.
    pub fn wrong_token(&self, req: &Request) -> Option<std::time::Duration> {
        let ip = ratelimit::client_limit_key(req, self.muster.config.http.behind_proxy);
        self.signin_ip_limiter.check(&format!("token:{ip}")).err()
    }

    /// Periodic upkeep: forget idle rate-limit keys and expired form proofs.
    pub fn tidy(&self) {
        self.used_proofs.forget_expired(self.muster.now());
        self.link_guesses.forget_idle();
        for l in [
            &self.link_limiter,
            &self.signin_ip_limiter,
            &self.signin_account_limiter,
            &self.api_limiter,
        ] {
            l.forget_idle();
        }
    }
}

/// The admin web app's pages: static files that talk to the JSON API.
const PAGES: &[(&str, &str, Audience)] = &[
    ("/", "index.html", Audience::Admin),
    ("/login", "login.html", Audience::Anyone),
    ("/setup", "setup.html", Audience::Anyone),
    ("/admin/reset", "reset.html", Audience::Anyone),
    // Links sent before the token moved into the fragment (valid 1 hour).
    ("/admin/reset/:token", "reset.html", Audience::Anyone),
    ("/invites", "pending.html", Audience::Admin),
    ("/invites/new", "bulk-invites.html", Audience::Admin),
    ("/mailboxes/new", "bulk-create.html", Audience::Admin),
    ("/tokens", "tokens.html", Audience::Admin),
    ("/webhooks", "webhooks.html", Audience::Admin),
    ("/dns", "dns.html", Audience::Admin),
    ("/audit", "audit.html", Audience::Admin),
];

pub fn html(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// A state-changing request from a page must come from Muster's own
/// origin: the public URL's, or the one the browser used to reach it.
pub fn same_origin(req: &Request, config: &Config) -> bool {
    let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) else {
        // Browsers send Origin on cross-site POSTs; without one it is not a browser form post from elsewhere.
        return true;
    };
    if origin == config.public_url.origin() {
        return true;
    }
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

#[handler]
fn docs() -> Response {
    api::docs_page()
}

pub fn routes(state: Arc<HttpState>) -> impl poem::Endpoint {
    let https = state.muster.config.is_https();
    let config = &state.muster.config;
    let body_limit = body::BodyLimit {
        limits: body::Limits {
            json: config.http.body_limit_bytes,
            // A roster's text plus the JSON around it.
            upload: config.invites.upload_limit_bytes + 64 * 1024,
            time: std::time::Duration::from_secs(config.http.body_timeout_secs),
        },
        state: state.clone(),
    };
    let mut route = Route::new()
        .at("/healthz", get(ops::healthz))
        .at("/readyz", get(ops::readyz))
        .at("/metrics", get(ops::metrics))
        .at("/invite/:token", get(link::show).post(link::submit))
        .at("/invite/:token/check", post(link::check))
        .at("/invite/:token/new-link", post(link::new_link))
        .at(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(client_setup::thunderbird),
        )
        .at("/mail/config-v1.1.xml", get(client_setup::thunderbird))
        .at(
            "/autodiscover/autodiscover.xml",
            post(client_setup::autodiscover),
        )
        .at(
            "/Autodiscover/Autodiscover.xml",
            post(client_setup::autodiscover),
        )
        .at("/mail/apple.mobileconfig", get(client_setup::apple_profile))
        .at("/assets/*path", get(assets::asset))
        .at("/favicon.ico", get(assets::favicon))
        .at("/api/docs", get(docs))
        .nest(
            "/api/v1",
            api::endpoint(state.clone())
                .around(|next, req| json_guard::guard(next, req, json_guard::Shape::Api)),
        )
        .at(
            "/mcp",
            mcp::endpoint(state.clone())
                .around(|next, req| json_guard::guard(next, req, json_guard::Shape::JsonRpc)),
        );
    for (path, file, audience) in PAGES {
        route = route.at(*path, get(assets::page(file, *audience)));
    }
    route
        .before(|mut req: Request| async move {
            match api::route_literal_paths(&mut req) {
                None => Ok(req),
                Some(resp) => Err(poem::Error::from_response(resp)),
            }
        })
        .with(body_limit)
        .with(headers::SecurityHeaders { https })
        .data(state)
        .boxed()
}
