//! Headers every response carries: a strict Content-Security-Policy (no
//! inline script or style), no referrer (setup links carry tokens), no
//! framing, no sniffing, and no caching unless a route says otherwise.

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub struct SecurityHeaders {
    pub https: bool,
}

impl<E: Endpoint> Middleware<E> for SecurityHeaders {
    type Output = SecurityHeadersEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        SecurityHeadersEndpoint {
            inner: ep,
            https: self.https,
        }
    }
}

pub struct SecurityHeadersEndpoint<E> {
    inner: E,
    https: bool,
}

impl<E: Endpoint> Endpoint for SecurityHeadersEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let mut resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let h = resp.headers_mut();
        let set = |h: &mut poem::http::HeaderMap, k: &'static str, v: &'static str| {
            if !h.contains_key(k) {
                h.insert(k, HeaderValue::from_static(v));
            }
        };
        set(h, "content-security-policy", CSP);
        set(h, "x-content-type-options", "nosniff");
        set(h, "referrer-policy", "no-referrer");
        set(h, "x-frame-options", "DENY");
        set(h, "cross-origin-opener-policy", "same-origin");
        set(h, "cross-origin-resource-policy", "same-origin");
        set(
            h,
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), interest-cohort=()",
        );
        set(h, "cache-control", "no-store");
        if self.https {
            set(h, "strict-transport-security", "max-age=31536000");
        }
        Ok(resp)
    }
}

/// Refuses request bodies over their limit with 413, without reading
/// more than that: by Content-Length when given, else while reading. JSON
/// bodies get `http.body_limit_bytes`; the routes that take a roster's
/// text get the upload limit.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub json: usize,
    pub upload: usize,
}

/// Where a roster's text (a pasted list or a CSV) is sent.
const UPLOAD_ROUTES: &[&str] = &[
    "/api/v1/previews/invites",
    "/api/v1/previews/creations",
    "/api/v1/batches",
    "/api/v1/creations",
];

impl BodyLimit {
    /// The limit for `path` and the setting it comes from.
    fn for_path(&self, path: &str) -> (usize, &'static str) {
        if UPLOAD_ROUTES.contains(&path.trim_end_matches('/')) {
            (self.upload, "invites.upload_limit_bytes")
        } else {
            (self.json, "http.body_limit_bytes")
        }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limits: *self,
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
fn too_large(limit: usize, setting: &str) -> Response {
    Response::builder()
        .status(poem::http::StatusCode::PAYLOAD_TOO_LARGE)
        .content_type("application/json")
        .header(poem::http::header::CONNECTION, "close")
        .body(
            serde_json::json!({
                "code": "payload_too_large",
                "message": format!("the request body is larger than {limit} bytes ({setting}); send less, or raise the setting"),
            })
            .to_string(),
        )
}

/// Bodies over the limit but at most this large are read before the 413.
const DRAIN_MAX_BYTES: u64 = 8 << 20;
/// How long such a body may take to arrive.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let (limit, setting) = self.limits.for_path(req.uri().path());
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n > limit as u64 => {
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
                return Ok(too_large(limit, setting));
            }
            Some(_) => {}
            None if req
                .headers()
                .contains_key(poem::http::header::TRANSFER_ENCODING) =>
            {
                use tokio::io::AsyncReadExt;
                let mut bytes = Vec::new();
                let mut reader = req.take_body().into_async_read().take(limit as u64 + 1);
                if reader.read_to_end(&mut bytes).await.is_err() {
                    return Ok(Response::builder()
                        .status(poem::http::StatusCode::BAD_REQUEST)
                        .finish());
                }
                if bytes.len() > limit {
                    return Ok(too_large(limit, setting));
                }
                req.set_body(bytes);
            }
            None => {}
        }
        Ok(match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        })
    }
}
