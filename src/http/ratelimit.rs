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

/// Guesses at setup links per client address. An address over its
/// allowance waits before any further link request, right or wrong.
pub struct GuessLimiter {
    limiter: Limiter,
    waiting: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl GuessLimiter {
    pub fn per_minute(n: u32) -> Self {
        Self {
            limiter: Limiter::per_minute(n),
            waiting: Default::default(),
        }
    }

    /// How long `ip` must still wait, if it used up its allowance.
    pub fn waiting(&self, ip: &str) -> Option<Duration> {
        let now = std::time::Instant::now();
        let w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        w.get(ip)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Counts one wrong guess from `ip`.
    pub fn guess(&self, ip: &str) -> Result<(), Duration> {
        self.limiter.check(ip).inspect_err(|wait| {
            self.waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(ip.to_string(), std::time::Instant::now() + *wait);
        })
    }

    pub fn forget_idle(&self) {
        self.limiter.forget_idle();
        let now = std::time::Instant::now();
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, until| *until > now);
    }
}

/// The key rate limits count a client by: its address, or for IPv6 its
/// /64 (one host usually holds a whole /64).
pub fn client_limit_key(req: &Request, behind_proxy: bool) -> String {
    let ip = client_ip(req, behind_proxy);
    match ip.parse::<IpAddr>() {
        Ok(addr) => crate::http::timeout::client_key(addr).to_string(),
        Err(_) => ip,
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
