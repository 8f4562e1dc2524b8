//! Per-client rate limits (governor): on setup links against token
//! guessing, and on sign-in. Over the limit: 429 with Retry-After.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::Request;

pub struct Limiter {
    inner: DefaultKeyedRateLimiter<String>,
}

impl Limiter {
    pub fn per_minute(n: u32) -> Self {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self {
            inner: RateLimiter::keyed(Quota::per_minute(n)),
        }
    }

    /// Ok, or how long the caller must wait.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.inner
            .check_key(&key.to_string())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Drops keys that are back to a full quota, so memory stays bounded.
    pub fn forget_idle(&self) {
        self.inner.retain_recent();
    }
}

/// The client address: the peer, or behind a trusted reverse proxy the
/// address it appended last to X-Forwarded-For.
pub fn client_ip(req: &Request, behind_proxy: bool) -> String {
    if behind_proxy
        && let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return ip.to_string();
    }
    req.remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}
