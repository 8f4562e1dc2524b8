//! The bounded password-hashing pool. Every argon2id hash (sign-in, admin
//! setup and reset, redemption, bulk creation) costs 19 MiB and tens of
//! milliseconds; unbounded, a crowd of sign-in attempts (even for unknown
//! accounts) would take the server's memory. At most `workers` hashes run
//! at once, up to `queue` more wait (each at most `wait`), and beyond that
//! the caller is told at once to come back later (HTTP 503, Retry-After).
//!
//! Waiting hashes are served in arrival order, and work someone is entitled
//! to (redemption, admin setup and reset, bulk creation) before sign-in
//! attempts, which anyone can send: a flood of sign-ins cannot keep
//! recipients from setting up their mailboxes. Sign-ins from a browser that
//! signed in to the account before come next, then everyone else's. Each
//! class has its own queue of `queue` places.
//!
//! Memory is reused while a burst lasts and given back when the pool falls
//! idle, so it does not grow with attempts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::HashScheme;
use crate::provision::hash::{self, Argon2Memory, HashError};

/// The pool is full: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is busy checking passwords; try again in {retry_after_secs} seconds")]
pub struct Busy {
    pub retry_after_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum HashFailure {
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Who is waiting for a hash, in the order they are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Redemption, admin setup and reset, bulk creation.
    Work,
    /// Sign-in attempts from a browser that signed in to the account
    /// before (see `domain::known_device`): a flood of strangers' attempts
    /// does not keep an admin out.
    KnownDevice,
    /// Other sign-in attempts: anyone can send them.
    SignIn,
}

#[derive(Default)]
struct Gate {
    running: usize,
    /// Tickets waiting, per priority (Work first), oldest first.
    waiting: [VecDeque<u64>; 3],
    next_ticket: u64,
    /// Memory of finished hashes, for the next ones of this burst.
    spare: Vec<Argon2Memory>,
}

impl Gate {
    fn waiting(&self) -> usize {
        self.waiting.iter().map(VecDeque::len).sum()
    }

    /// The ticket to be served next.
    fn next(&self) -> Option<u64> {
        self.waiting.iter().find_map(|q| q.front().copied())
    }
}

/// A snapshot of what the pool is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashStats {
    pub workers: usize,
    pub running: usize,
    pub waiting: usize,
    /// The most hashes that ran at once since start.
    pub peak_running: usize,
    /// Calls refused because the queue was full or the wait too long.
    pub refused: u64,
    pub hashed: u64,
}

pub struct HashPool {
    workers: usize,
    queue: usize,
    wait: Duration,
    gate: Mutex<Gate>,
    turn: Condvar,
    peak: AtomicU64,
    refused: AtomicU64,
    hashed: AtomicU64,
}

impl HashPool {
    pub fn new(workers: usize, queue: usize, wait: Duration) -> Self {
        Self {
            workers: workers.max(1),
            queue,
            wait,
            gate: Mutex::default(),
            turn: Condvar::new(),
            peak: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            hashed: AtomicU64::new(0),
        }
    }

    fn busy(&self) -> Busy {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Busy {
            retry_after_secs: self.wait.as_secs().clamp(1, 30),
        }
    }

    /// Runs `f` with hashing memory once a worker's place is free and it
    /// is this caller's turn.
    fn run<T>(
        &self,
        priority: Priority,
        f: impl FnOnce(&mut Argon2Memory) -> T,
    ) -> Result<T, Busy> {
        let deadline = Instant::now() + self.wait;
        let class = priority as usize;
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if gate.running >= self.workers || gate.waiting() > 0 {
            if gate.waiting[class].len() >= self.queue {
                return Err(self.busy());
            }
            gate.next_ticket += 1;
            let ticket = gate.next_ticket;
            gate.waiting[class].push_back(ticket);
            while gate.running >= self.workers || gate.next() != Some(ticket) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    gate.waiting[class].retain(|t| *t != ticket);
                    drop(gate);
                    // The next in line may be able to go now.
                    self.turn.notify_all();
                    return Err(self.busy());
                }
                gate = self
                    .turn
                    .wait_timeout(gate, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            gate.waiting[class].pop_front();
        }
        gate.running += 1;
        self.peak.fetch_max(gate.running as u64, Ordering::Relaxed);
        let memory = gate.spare.pop().unwrap_or_default();
        drop(gate);
        // Gives the place back even if `f` panics.
        let mut place = Place {
            pool: self,
            memory: Some(memory),
        };
        let out = f(place.memory.as_mut().expect("set above"));
        drop(place);
        self.hashed.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// A password hash in `scheme` for the mail host.
    pub fn dovecot(&self, scheme: HashScheme, password: &str) -> Result<String, HashFailure> {
        Ok(self.run(Priority::Work, |m| hash::dovecot_hash(m, scheme, password))??)
    }

    /// An argon2id hash of an admin password.
    pub fn admin(&self, password: &str) -> Result<String, HashFailure> {
        Ok(self.run(Priority::Work, |m| hash::argon2id(m, password))??)
    }

    /// Checks a sign-in attempt against an admin's argon2id hash.
    pub fn verify(&self, password: &str, phc: &str, priority: Priority) -> Result<bool, Busy> {
        self.run(priority, |m| hash::verify_argon2id(m, password, phc))
    }

    pub fn stats(&self) -> HashStats {
        let gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        HashStats {
            workers: self.workers,
            running: gate.running,
            waiting: gate.waiting(),
            peak_running: self.peak.load(Ordering::Relaxed) as usize,
            refused: self.refused.load(Ordering::Relaxed),
            hashed: self.hashed.load(Ordering::Relaxed),
        }
    }
}

/// A running hash's place: given back (with its memory, or the memory
/// freed when the pool falls idle) when dropped.
struct Place<'a> {
    pool: &'a HashPool,
    memory: Option<Argon2Memory>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut gate = self.pool.gate.lock().unwrap_or_else(|p| p.into_inner());
        gate.running -= 1;
        if gate.running == 0 && gate.waiting() == 0 {
            // The burst is over: give the memory back.
            gate.spare.clear();
        } else if let Some(m) = self.memory.take() {
            gate.spare.push(m);
        }
        drop(gate);
        self.pool.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn at_most_workers_run_and_a_full_queue_refuses_at_once() {
        let pool = Arc::new(HashPool::new(2, 3, Duration::from_secs(30)));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let mut threads = Vec::new();
        // Two hold the workers, three wait.
        for _ in 0..5 {
            let (pool, rx) = (pool.clone(), release_rx.clone());
            threads.push(std::thread::spawn(move || {
                pool.run(Priority::SignIn, |_| {
                    let _ = rx.lock().unwrap().recv();
                })
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.stats().running + pool.stats().waiting < 5 {
            assert!(Instant::now() < deadline, "{:?}", pool.stats());
            std::thread::yield_now();
        }
        assert_eq!(pool.stats().running, 2);
        assert_eq!(
            pool.run(Priority::SignIn, |_| ()),
            Err(Busy {
                retry_after_secs: 30
            })
        );
        for _ in 0..5 {
            release_tx.send(()).unwrap();
        }
        for t in threads {
            assert!(t.join().unwrap().is_ok());
        }
        let s = pool.stats();
        assert_eq!((s.peak_running, s.refused, s.hashed), (2, 1, 5));
        // Idle: no memory kept.
        assert!(pool.gate.lock().unwrap().spare.is_empty());
    }

    #[test]
    fn a_wait_past_the_deadline_is_refused() {
        let pool = Arc::new(HashPool::new(1, 5, Duration::from_millis(100)));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let p = pool.clone();
        let holder = std::thread::spawn(move || p.run(Priority::Work, |_| rx.recv()));
        while pool.stats().running == 0 {
            std::thread::yield_now();
        }
        assert!(pool.run(Priority::Work, |_| ()).is_err());
        tx.send(()).unwrap();
        assert!(holder.join().unwrap().is_ok());
        assert!(
            pool.verify("x", "not a hash", Priority::SignIn)
                .is_ok_and(|ok| !ok)
        );
    }

    #[test]
    fn work_then_known_browsers_go_before_sign_ins_and_a_panic_gives_the_place_back() {
        let pool = Arc::new(HashPool::new(1, 8, Duration::from_secs(30)));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let p = pool.clone();
        let holder = std::thread::spawn(move || p.run(Priority::Work, |_| rx.recv()));
        while pool.stats().running == 0 {
            std::thread::yield_now();
        }
        let mut threads = Vec::new();
        for (n, priority) in [
            (1, Priority::SignIn),
            (2, Priority::SignIn),
            (3, Priority::Work),
            (4, Priority::KnownDevice),
        ] {
            let (p, order) = (pool.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                p.run(priority, |_| order.lock().unwrap().push(n))
            }));
            // Each is waiting before the next arrives.
            while pool.stats().waiting < n {
                std::thread::yield_now();
            }
        }
        tx.send(()).unwrap();
        holder.join().unwrap().unwrap().unwrap();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [3, 4, 1, 2]);
        let p = pool.clone();
        assert!(
            std::thread::spawn(move || p.run(Priority::Work, |_| panic!("boom")))
                .join()
                .is_err()
        );
        assert_eq!(pool.stats().running, 0);
        assert!(pool.run(Priority::Work, |_| ()).is_ok());
    }
}
