//! Request bodies, before any handler sees one. A route that needs a
//! caller (the API but for sign-in and its kin, and MCP) checks the caller
//! first and refuses a stranger without reading a byte; every other route
//! takes a small body only. The body then has to arrive whole, within its
//! limit, within `http.body_timeout_secs`: a client cannot hold memory for
//! long by sending slowly, nor hold much of it without signing in.

use std::sync::Arc;
use std::time::Duration;

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tokio::io::AsyncReadExt;

use super::HttpState;
use super::api::auth::{Verified, verify_before_body};

/// Where a roster's text (a pasted list or a CSV) is sent.
const UPLOAD_ROUTES: &[&str] = &[
    "/api/v1/previews/invites",
    "/api/v1/previews/creations",
    "/api/v1/batches",
    "/api/v1/creations",
];

/// API routes anyone may post to: signing in and setting a password.
const PUBLIC_API_ROUTES: &[&str] = &[
    "/api/v1/session",
    "/api/v1/setup",
    "/api/v1/password-reset",
    "/api/v1/password-reset/confirm",
];

/// The most a caller nobody has verified may send: a password form, a
/// sign-in, an Autodiscover request.
const PUBLIC_BODY_LIMIT: usize = 64 * 1024;

/// Bodies over the limit but at most this large are read before the 413.
const DRAIN_MAX_BYTES: u64 = 8 << 20;
/// How long such a body may take to arrive.
const DRAIN_TIME: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct BodyLimit {
    pub limits: Limits,
    pub state: Arc<HttpState>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `http.body_limit_bytes`.
    pub json: usize,
    /// A roster's text plus the JSON around it.
    pub upload: usize,
    /// `http.body_timeout_secs`.
    pub time: Duration,
}

/// Who must be known before a route's body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// An API token or an admin session.
    TokenOrSession,
    /// An API token (MCP).
    Token,
    Anyone,
}

impl Limits {
    /// The limit for `path`, the setting it comes from, and who must call.
    fn for_path(&self, path: &str) -> (usize, &'static str, Caller) {
        let path = path.trim_end_matches('/');
        if path == "/mcp" {
            return (self.json, "http.body_limit_bytes", Caller::Token);
        }
        if !path.starts_with("/api/v1/") || PUBLIC_API_ROUTES.contains(&path) {
            return (
                self.json.min(PUBLIC_BODY_LIMIT),
                "the limit for requests without sign-in",
                Caller::Anyone,
            );
        }
        if UPLOAD_ROUTES.contains(&path) {
            (
                self.upload,
                "invites.upload_limit_bytes",
                Caller::TokenOrSession,
            )
        } else {
            (self.json, "http.body_limit_bytes", Caller::TokenOrSession)
        }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limits: self.clone(),
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    limits: BodyLimit,
}

/// The rest of the body stays unread, so the connection cannot carry
/// another request: `Connection: close` tells the client not to reuse it
/// (without it a pooled client may send its next request into a closing
/// socket).
fn closing(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

fn refusal(status: StatusCode, code: &str, message: String) -> Response {
    closing(
        Response::builder()
            .status(status)
            .content_type("application/json")
            .body(serde_json::json!({"code": code, "message": message}).to_string()),
    )
}

/// The setting is named to those who run Muster; a stranger (signing in,
/// choosing a password) can only send less.
fn too_large(limit: usize, setting: &str, caller: Caller) -> Response {
    let message = if caller == Caller::Anyone {
        format!("the request body is larger than {limit} bytes; send less")
    } else {
        format!(
            "the request body is larger than {limit} bytes ({setting} in muster.toml); send less, or raise {setting}"
        )
    };
    refusal(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let (limit, setting, caller) = self.limits.limits.for_path(req.uri().path());
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
        let has_body = chunked || declared.is_some_and(|n| n > 0);
        if has_body && caller != Caller::Anyone {
            match verify_before_body(&self.limits.state, &req, caller == Caller::TokenOrSession)
                .await
            {
                Ok(p) => {
                    req.extensions_mut().insert(Verified(p));
                }
                Err(resp) => return Ok(closing(resp)),
            }
        }
        if let Some(n) = declared
            && n > limit as u64
        {
            // A client still sending would see the connection reset, not
            // this answer: a body of modest size is read and dropped
            // first, for a few seconds at most.
            if n <= DRAIN_MAX_BYTES {
                let sink = async {
                    let mut body = req.take_body().into_async_read();
                    tokio::io::copy(&mut body, &mut tokio::io::sink()).await
                };
                let _ = tokio::time::timeout(DRAIN_TIME, sink).await;
            }
            return Ok(too_large(limit, setting, caller));
        }
        if has_body {
            let mut bytes = Vec::new();
            let mut reader = req.take_body().into_async_read().take(limit as u64 + 1);
            let time = self.limits.limits.time;
            match tokio::time::timeout(time, reader.read_to_end(&mut bytes)).await {
                Err(_) => {
                    return Ok(refusal(
                        StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        format!(
                            "the request body did not arrive within {} s (http.body_timeout_secs); send it again",
                            time.as_secs()
                        ),
                    ));
                }
                Ok(Err(_)) => {
                    return Ok(refusal(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "the request body could not be read".into(),
                    ));
                }
                Ok(Ok(_)) if bytes.len() > limit => {
                    return Ok(too_large(limit, setting, caller));
                }
                Ok(Ok(_)) => req.set_body(bytes),
            }
        }
        Ok(match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_must_call_before_a_body_is_read() {
        let limits = Limits {
            json: 1 << 20,
            upload: 2 << 20,
            time: Duration::from_secs(60),
        };
        let caller = |p: &str| limits.for_path(p).2;
        assert_eq!(
            caller("/api/v1/mailboxes/invites:bulk"),
            Caller::TokenOrSession
        );
        assert_eq!(caller("/api/v1/previews/invites"), Caller::TokenOrSession);
        assert_eq!(limits.for_path("/api/v1/previews/invites").0, 2 << 20);
        assert_eq!(caller("/mcp"), Caller::Token);
        for public in [
            "/api/v1/session",
            "/api/v1/setup/",
            "/invite/abc",
            "/autodiscover/autodiscover.xml",
        ] {
            assert_eq!(caller(public), Caller::Anyone, "{public}");
            assert_eq!(limits.for_path(public).0, PUBLIC_BODY_LIMIT, "{public}");
        }
    }
}
