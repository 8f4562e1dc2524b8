//! Idempotency-Keys (R14): calling again with the same key and the same
//! request answers what the first call answered and creates nothing; the
//! same key with another request is refused. The creating operation checks
//! and claims the key in its own write transaction, so a crash between
//! making the batch and keeping its answer still replays (from the batch).
//!
//! A repeat that arrives while the first call is still running (a client
//! that gave up and retried at once) waits for the first call's answer, so
//! it gets that answer and not one rebuilt from the batch a moment later.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::store::{IdempotencyRecord, KeyState, StoreError, WriteView};

use super::{Muster, ServiceError};

/// A key as a caller sent it: scoped to the caller, with the request's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    principal: String,
    key: String,
    request_hash: String,
}

/// A creating call with a key: made now, or made before and replayed.
#[derive(Debug)]
pub enum Idempotent<T> {
    Made(T),
    Replayed(KeyState),
}

impl<T> Idempotent<T> {
    /// What a call without a key made (it cannot be a replay).
    pub(super) fn made(self) -> T {
        match self {
            Idempotent::Made(t) => t,
            Idempotent::Replayed(_) => unreachable!("only a call with a key is replayed"),
        }
    }
}

/// Keys whose call is running in this process, and how many calls wait
/// for one of them.
#[derive(Default)]
pub struct InFlight {
    state: Mutex<Running>,
    finished: Condvar,
}

#[derive(Default)]
struct Running {
    keys: HashSet<(String, String)>,
    waiting: usize,
}

/// How long a repeat waits for the first call; past that it is answered
/// from the batch, as after a crash.
const REPEAT_WAIT: Duration = Duration::from_secs(30);

/// A running call's hold on its key, released when dropped.
struct Turn<'a> {
    in_flight: &'a InFlight,
    id: (String, String),
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits (at most `wait`) until no other call with `key` runs, then
    /// holds the key. None when the wait ran out.
    fn enter(&self, key: &IdempotencyKey, wait: Duration) -> Option<Turn<'_>> {
        let id = (key.principal.clone(), key.key.clone());
        let deadline = Instant::now() + wait;
        let mut running = self.lock();
        while running.keys.contains(&id) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            running.waiting += 1;
            running = self
                .finished
                .wait_timeout(running, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            running.waiting -= 1;
        }
        running.keys.insert(id.clone());
        Some(Turn {
            in_flight: self,
            id,
        })
    }

    /// How many calls wait for a running call with the same key.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.lock().waiting
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.in_flight.lock().keys.remove(&self.id);
        self.in_flight.finished.notify_all();
    }
}

impl IdempotencyKey {
    /// `principal` scopes the key (each caller has its own); `request_hash`
    /// identifies the request it was first sent with.
    pub fn new(
        principal: impl Into<String>,
        key: impl Into<String>,
        request_hash: impl Into<String>,
    ) -> Self {
        Self {
            principal: principal.into(),
            key: key.into(),
            request_hash: request_hash.into(),
        }
    }

    /// Inside a creating transaction, before anything is made: how far an
    /// earlier call with this key got, if there was one.
    pub(super) fn earlier(&self, w: &WriteView) -> Result<Option<KeyState>, ServiceError> {
        match w.idempotency(&self.principal, &self.key)? {
            None => Ok(None),
            Some(r) if r.request_hash != self.request_hash => {
                Err(ServiceError::IdempotencyMismatch)
            }
            Some(r) => Ok(Some(r.state)),
        }
    }

    /// Whether a call with this key was made before (outside a transaction:
    /// to skip work the transaction would not use).
    pub(super) fn has_record(&self, view: &crate::store::View) -> Result<bool, ServiceError> {
        Ok(view.idempotency(&self.principal, &self.key)?.is_some())
    }

    /// The first call's answer when this key was used before (a replay),
    /// looked up before any other work: a read, and a write transaction
    /// only when there is a record.
    pub(super) fn replayed(
        &self,
        store: &crate::store::Store,
    ) -> Result<Option<KeyState>, ServiceError> {
        if !self.has_record(&store.read()?)? {
            return Ok(None);
        }
        store.write(|w| self.earlier(w))
    }

    /// In the same transaction, once `subject` (a batch id) is made.
    pub(super) fn claim(
        &self,
        w: &WriteView,
        subject: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.put(
            w,
            KeyState::Claimed {
                subject: subject.to_string(),
            },
            now,
        )
    }

    fn put(&self, w: &WriteView, state: KeyState, now: OffsetDateTime) -> Result<(), StoreError> {
        w.put_idempotency(
            &self.principal,
            &self.key,
            &IdempotencyRecord {
                request_hash: self.request_hash.clone(),
                state,
                created_at: now,
            },
        )
    }
}

impl Muster {
    /// Keeps the answer to a call that made something, for its replays.
    pub fn keep_answer(&self, key: &IdempotencyKey, body: String) -> Result<(), ServiceError> {
        let now = self.now();
        self.store
            .write(|w| key.put(w, KeyState::Answered { body }, now))?;
        Ok(())
    }

    /// A surface's whole idempotent flow: `answer` turns what was made into
    /// the response and the form kept for replays; `replay` answers a
    /// repeated call from what was kept.
    pub fn answer_idempotent<T, B, E: From<ServiceError>>(
        &self,
        key: Option<&IdempotencyKey>,
        make: impl FnOnce() -> Result<Idempotent<T>, ServiceError>,
        answer: impl FnOnce(&T) -> (B, String),
        replay: impl FnOnce(&KeyState) -> Result<B, E>,
    ) -> Result<B, E> {
        // Held until the answer is kept: a repeat waits for it.
        let _turn = key.and_then(|k| self.in_flight.enter(k, REPEAT_WAIT));
        match make()? {
            Idempotent::Made(made) => {
                let (body, kept) = answer(&made);
                if let Some(key) = key {
                    self.keep_answer(key, kept)?;
                }
                Ok(body)
            }
            Idempotent::Replayed(state) => replay(&state),
        }
    }
}
