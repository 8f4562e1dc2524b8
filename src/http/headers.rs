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
