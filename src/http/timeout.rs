//! Connections that stall or crowd: every connection is wrapped so that
//!
//! - a client that sends nothing for `http.idle_timeout_secs` is cut off;
//! - a request head (request line and headers) must arrive completely
//!   within `http.header_timeout_secs` of its first byte, however slowly
//!   it trickles in (the idle timer alone would reset on every byte);
//! - at most `http.max_connections` are open, and one client address (an
//!   IPv6 /64 counts as one) may hold at most
//!   `http.max_connections_per_client` of them (not behind a proxy, where
//!   every connection comes from the proxy). At either limit the
//!   connection that has waited longest for its next request, with no
//!   traffic either way, makes room; failing that, a connection whose
//!   request head has been arriving for at least [`SLOW_HEAD`], taken from
//!   the client address that holds the most places (a crowd pays before a
//!   person on a slow link), the oldest head first. Only when every
//!   connection is answering a request (or began its head just now) is the
//!   new one closed. A crowd of idle connections, or of trickled heads
//!   that outlive a second, cannot hold every place; one that keeps its
//!   heads younger, or trickles bodies, still can until their deadlines.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a request head must have been arriving before its connection
/// may be closed to make room. A person's browser sends the head in one
/// go; a head still coming after a second is a slow link or an attack.
pub const SLOW_HEAD: Duration = Duration::from_secs(1);

/// The limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub idle: Duration,
    pub header: Duration,
    pub max_connections: usize,
    /// None behind a reverse proxy.
    pub max_per_client: Option<usize>,
}

/// What the server and another connection's acceptor share about one
/// open connection.
struct Shared {
    /// The client's address as limits count it.
    client: Option<IpAddr>,
    /// The last byte read or written (ms since the table's start).
    last_active: AtomicU64,
    /// Between requests (or HTTP/2, which Muster cannot see into): may be
    /// closed to make room.
    evictable: AtomicBool,
    /// When the request head now arriving began (ms), 0 when none is.
    head_since: AtomicU64,
    evicted: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Shared {
    fn evict(&self) {
        self.evicted.store(true, Ordering::Relaxed);
        if let Some(w) = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            w.wake();
        }
    }
}

#[derive(Default)]
struct Table {
    open: HashMap<u64, Arc<Shared>>,
    per_ip: HashMap<IpAddr, usize>,
    next_id: u64,
}

/// The open connections, for the caps and for `/metrics`.
pub struct Connections {
    table: Mutex<Table>,
    started: std::time::Instant,
    refused: AtomicU64,
    evicted: AtomicU64,
    /// When a refusal was last logged (ms), to log at most once a minute.
    last_warning: AtomicU64,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            table: Mutex::default(),
            started: std::time::Instant::now(),
            refused: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            last_warning: AtomicU64::new(0),
        }
    }
}

/// The address limits count: an IPv6 client gets a whole /64 for itself
/// (one host usually has that many addresses), an IPv4 client its address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
        v4 => v4,
    }
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionStats {
    pub open: usize,
    pub refused: u64,
    pub evicted: u64,
}

impl Connections {
    fn now_ms(&self) -> u64 {
        // Never 0, which means "busy".
        self.started.elapsed().as_millis() as u64 + 1
    }

    pub fn stats(&self) -> ConnectionStats {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        ConnectionStats {
            open: t.open.len(),
            refused: self.refused.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }

    /// The connection to close to make room, of `client` only when given:
    /// the evictable one with the oldest traffic, else a head arriving for
    /// at least [`SLOW_HEAD`] of the address holding the most places, the
    /// oldest first.
    fn to_make_room(&self, t: &Table, client: Option<IpAddr>) -> Option<Arc<Shared>> {
        let candidates = || {
            t.open
                .values()
                .filter(move |s| client.is_none() || s.client == client)
                .filter(|s| !s.evicted.load(Ordering::Relaxed))
        };
        let idle = candidates()
            .filter(|s| s.evictable.load(Ordering::Relaxed))
            .min_by_key(|s| s.last_active.load(Ordering::Relaxed));
        if let Some(s) = idle {
            return Some(s.clone());
        }
        let slow_since = self.now_ms().saturating_sub(SLOW_HEAD.as_millis() as u64);
        let places = |s: &Shared| {
            s.client
                .and_then(|c| t.per_ip.get(&c).copied())
                .unwrap_or(0)
        };
        candidates()
            .map(|s| (s, s.head_since.load(Ordering::Relaxed)))
            .filter(|(_, since)| *since != 0 && *since <= slow_since)
            .min_by_key(|(s, since)| (std::cmp::Reverse(places(s)), *since))
            .map(|(s, _)| s.clone())
    }

    fn refuse(&self, why: &str) -> Option<Guard> {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) > 60_000)
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!("closed a new connection at once: {why} (logged at most once a minute)");
        }
        None
    }

    /// Admits a new connection from `ip`, making room by closing a
    /// connection that waits for its next request; None when every one in
    /// the way is busy.
    fn admit(self: &Arc<Self>, ip: Option<IpAddr>, limits: &ConnectionLimits) -> Option<Guard> {
        let client = ip.map(client_key);
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(c), Some(max)) = (client, limits.max_per_client)
            && t.per_ip.get(&c).copied().unwrap_or(0) >= max
        {
            match self.to_make_room(&t, Some(c)) {
                Some(s) => {
                    s.evict();
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    return self.refuse(&format!(
                        "{c} already holds http.max_connections_per_client ({max}) busy connections"
                    ));
                }
            }
        }
        if t.open.len() >= limits.max_connections {
            match self.to_make_room(&t, None) {
                Some(s) => {
                    s.evict();
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    return self.refuse(&format!(
                        "all http.max_connections ({}) are busy",
                        limits.max_connections
                    ));
                }
            }
        }
        t.next_id += 1;
        let id = t.next_id;
        let shared = Arc::new(Shared {
            client,
            last_active: AtomicU64::new(self.now_ms()),
            evictable: AtomicBool::new(true),
            head_since: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        t.open.insert(id, shared.clone());
        if let Some(c) = client {
            *t.per_ip.entry(c).or_default() += 1;
        }
        Some(Guard {
            table: self.clone(),
            id,
            shared,
        })
    }
}

/// Keeps a connection in the table until it closes.
struct Guard {
    table: Arc<Connections>,
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut t = self.table.table.lock().unwrap_or_else(|p| p.into_inner());
        t.open.remove(&self.id);
        if let Some(ip) = self.shared.client
            && let Some(n) = t.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                t.per_ip.remove(&ip);
            }
        }
    }
}

pub struct TimeoutAcceptor<A> {
    pub inner: A,
    pub limits: ConnectionLimits,
    pub connections: Arc<Connections>,
}

impl<A: Acceptor> Acceptor for TimeoutAcceptor<A> {
    type Io = TimeoutIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            let (io, local, remote, scheme) = self.inner.accept().await?;
            let ip = remote.as_socket_addr().map(|a| a.ip());
            // Over its share: the connection is closed at once (dropped).
            let Some(guard) = self.connections.admit(ip, &self.limits) else {
                continue;
            };
            return Ok((
                TimeoutIo {
                    inner: io,
                    limits: self.limits,
                    deadline: Box::pin(tokio::time::sleep(self.limits.idle)),
                    head: Head::Waiting,
                    first_read: true,
                    guard,
                },
                local,
                remote,
                scheme,
            ));
        }
    }
}

/// Where the connection is in the request it is reading.
#[derive(Debug, Clone, Copy)]
enum Head {
    /// Between requests: nothing of the next one has arrived.
    Waiting,
    /// The head has begun; `matched` bytes of its end (`\r\n\r\n`) seen.
    Reading { deadline: Instant, matched: u8 },
    /// The head is complete: the body, and the answer.
    Done,
    /// HTTP/2 (prior knowledge): frames, not heads; only the idle timer.
    Untracked,
}

pub struct TimeoutIo<T> {
    inner: T,
    limits: ConnectionLimits,
    deadline: Pin<Box<Sleep>>,
    head: Head,
    first_read: bool,
    guard: Guard,
}

impl<T> TimeoutIo<T> {
    fn active(&mut self) {
        let next = match self.head {
            Head::Reading { deadline, .. } => deadline.min(Instant::now() + self.limits.idle),
            _ => Instant::now() + self.limits.idle,
        };
        self.deadline.as_mut().reset(next);
    }

    fn touch(&self) {
        let now = self.guard.table.now_ms();
        self.guard.shared.last_active.store(now, Ordering::Relaxed);
    }

    /// Follows the request head through the bytes just read.
    fn saw(&mut self, bytes: &[u8]) {
        if std::mem::take(&mut self.first_read) && bytes.starts_with(b"PRI * HTTP/2") {
            self.head = Head::Untracked;
            // Its streams are invisible here: judged by its traffic alone.
            self.guard.shared.evictable.store(true, Ordering::Relaxed);
        }
        for &b in bytes {
            self.head = match self.head {
                Head::Untracked => return,
                Head::Waiting => {
                    self.guard.shared.evictable.store(false, Ordering::Relaxed);
                    let now = self.guard.table.now_ms();
                    self.guard.shared.head_since.store(now, Ordering::Relaxed);
                    Head::Reading {
                        deadline: Instant::now() + self.limits.header,
                        matched: u8::from(b == b'\r'),
                    }
                }
                Head::Reading { deadline, matched } => {
                    let matched = match (matched, b) {
                        (0 | 2, b'\r') => matched + 1,
                        (1 | 3, b'\n') => matched + 1,
                        // A bare LF ends a line too.
                        (0, b'\n') => 2,
                        (2, b'\n') => 4,
                        (_, b'\r') => 1,
                        _ => 0,
                    };
                    if matched >= 4 {
                        self.guard.shared.head_since.store(0, Ordering::Relaxed);
                        Head::Done
                    } else {
                        Head::Reading { deadline, matched }
                    }
                }
                Head::Done => Head::Done,
            };
        }
    }
}

fn timed_out(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, message)
}

impl<T: AsyncRead + Unpin> AsyncRead for TimeoutIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let evicted = || {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for a new connection",
            )))
        };
        if self.guard.shared.evicted.load(Ordering::Relaxed) {
            return evicted();
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.saw(&buf.filled()[before..]);
                    self.touch();
                    self.active();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                *self
                    .guard
                    .shared
                    .waker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
                // An eviction between the first check and storing the waker
                // would wake nobody: look again.
                if self.guard.shared.evicted.load(Ordering::Relaxed) {
                    return evicted();
                }
                match self.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(match self.head {
                        Head::Reading { .. } => {
                            timed_out("the request head did not arrive in time")
                        }
                        _ => timed_out("the client sent nothing for too long"),
                    })),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimeoutIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &r
            && *n > 0
        {
            // An answer (not an interim "100 Continue", after which the body
            // follows): the next bytes read begin the next request.
            let interim = data.starts_with(b"HTTP/1.1 1") || data.starts_with(b"HTTP/1.0 1");
            if matches!(self.head, Head::Done) && !interim {
                self.head = Head::Waiting;
                self.guard.shared.evictable.store(true, Ordering::Relaxed);
            }
            self.touch();
            self.active();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per: Option<usize>) -> ConnectionLimits {
        ConnectionLimits {
            idle: Duration::from_secs(30),
            header: Duration::from_secs(10),
            max_connections: max,
            max_per_client: per,
        }
    }

    #[test]
    fn a_client_gets_its_share_and_the_oldest_idle_makes_room() {
        let c = Arc::new(Connections::default());
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let l = limits(3, Some(2));
        let first = c.admit(Some(a), &l).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let second = c.admit(Some(a), &l).unwrap();
        // Over a's share: a's own longest idle makes room.
        let third = c.admit(Some(a), &l).unwrap();
        assert!(first.shared.evicted.load(Ordering::Relaxed));
        drop(first);
        // While a's others are busy, a gets no more.
        for g in [&second, &third] {
            g.shared.evictable.store(false, Ordering::Relaxed);
        }
        assert!(c.admit(Some(a), &l).is_none(), "over a's share, all busy");
        let _b1 = c.admit(Some(b), &l).unwrap();
        // Full, and every one of a's is busy: b's idle one makes room.
        let _b2 = c.admit(Some(b), &l).unwrap();
        assert_eq!(c.stats().evicted, 2);
        assert_eq!(c.stats().refused, 1);
        // Behind a proxy there is no per-client share.
        let unshared = limits(10, None);
        let many: Vec<_> = (0..5).map(|_| c.admit(Some(a), &unshared)).collect();
        assert!(many.iter().all(Option::is_some));
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_longest_trickling_head_makes_room_once_it_is_slow() {
        let c = Arc::new(Connections {
            started: std::time::Instant::now() - Duration::from_secs(10),
            ..Connections::default()
        });
        let l = limits(2, None);
        let slow = c.admit(None, &l).unwrap();
        let young = c.admit(None, &l).unwrap();
        for g in [&slow, &young] {
            g.shared.evictable.store(false, Ordering::Relaxed);
        }
        // A head that began just now is not cut.
        young.shared.head_since.store(c.now_ms(), Ordering::Relaxed);
        slow.shared.head_since.store(c.now_ms(), Ordering::Relaxed);
        assert!(c.admit(None, &l).is_none(), "both heads are young");
        // One arriving for 9 s makes room; the young one stays.
        slow.shared.head_since.store(1_000, Ordering::Relaxed);
        let _new = c.admit(None, &l).unwrap();
        assert!(slow.shared.evicted.load(Ordering::Relaxed));
        assert!(!young.shared.evicted.load(Ordering::Relaxed));
    }

    #[test]
    fn a_slow_head_of_the_crowd_goes_before_a_persons() {
        let c = Arc::new(Connections {
            started: std::time::Instant::now() - Duration::from_secs(10),
            ..Connections::default()
        });
        let person: IpAddr = "192.0.2.1".parse().unwrap();
        let crowd: IpAddr = "198.51.100.7".parse().unwrap();
        let l = limits(4, None);
        let slow_person = c.admit(Some(person), &l).unwrap();
        let crowd_heads: Vec<_> = (0..3).map(|_| c.admit(Some(crowd), &l).unwrap()).collect();
        for (g, since) in std::iter::once(&slow_person)
            .chain(&crowd_heads)
            .zip([1_000, 2_000, 3_000, 4_000])
        {
            g.shared.evictable.store(false, Ordering::Relaxed);
            g.shared.head_since.store(since, Ordering::Relaxed);
        }
        // The person's head is the oldest, but the crowd holds more places.
        let _new = c.admit(Some(person), &l).unwrap();
        assert!(!slow_person.shared.evicted.load(Ordering::Relaxed));
        assert!(crowd_heads[0].shared.evicted.load(Ordering::Relaxed));
    }

    #[test]
    fn busy_connections_are_not_evicted() {
        let c = Arc::new(Connections::default());
        let l = limits(1, None);
        let only = c.admit(None, &l).unwrap();
        only.shared.evictable.store(false, Ordering::Relaxed);
        assert!(c.admit(None, &l).is_none());
        assert_eq!(c.stats().refused, 1);
    }
}
