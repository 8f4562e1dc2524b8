//! Recording delivery outcomes in two stages. A relay's verdict on an
//! ended message goes to the delivery journal first (the restart promise
//! needs it durable before its connection ends another message); the
//! store takes every outcome behind, many per commit.
//!
//! The journal is synced by whichever connection needs it (group commit
//! with a leader): a connection whose verdict waits and finds no sync
//! running does the sync itself, for every verdict waiting then; one that
//! finds a sync running waits for the next. At one connection this means
//! no hand-over between threads at all: the sync runs where the verdict
//! is, while the relay reads the next message's envelope. A sync blocks
//! the connection's runtime thread for its duration (a fraction of a
//! millisecond), which costs less than handing it to another thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot, watch};

use super::journal::{Entry, Journal, Verdict};
use super::smtp::Outcome;
use crate::service::Muster;
use crate::service::queue::Recorded;
use crate::store::{StoreError, Task};

/// How long the store's stage gathers outcomes into one commit. Its two
/// syncs share the disk with the journal's and slow them (measured at one
/// connection: 340 µs a journal sync with a commit every 20 ms, 250 µs
/// every 100 ms); the cost is that an outcome shows up to 0.1 s later.
const APPLY_GATHER: Duration = Duration::from_millis(100);

/// One outcome on its way to the store.
pub(super) struct Done {
    pub task: Task,
    /// The invite generation the message carried, if any.
    pub generation: Option<u32>,
    pub outcome: Outcome,
    /// Told once the outcome is durable (journal or store).
    pub ack: Option<oneshot::Sender<()>>,
}

pub(super) struct Recorder {
    journal: Mutex<Journal>,
    /// Verdicts waiting for a sync, and whether one is running.
    group: Mutex<Group>,
    /// A sync ended with verdicts still waiting: one of their
    /// connections leads the next.
    lead_wanted: Notify,
    apply: Mutex<Option<std::sync::mpsc::Sender<Vec<Done>>>>,
    /// Batches given to the store's stage, and those it has committed:
    /// equal means the store holds all the journal does.
    handed: AtomicU64,
    applied: AtomicU64,
}

#[derive(Default)]
struct Group {
    waiting: Vec<Done>,
    syncing: bool,
}

impl Recorder {
    /// The recorder and the thread of the store's stage, which runs until
    /// [`Recorder::close`] and then commits what it holds.
    pub fn start(
        muster: Arc<Muster>,
        journal: Journal,
        stop: watch::Receiver<bool>,
    ) -> (Arc<Self>, std::thread::JoinHandle<()>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let recorder = Arc::new(Self {
            journal: Mutex::new(journal),
            group: Mutex::default(),
            lead_wanted: Notify::new(),
            apply: Mutex::new(Some(tx)),
            handed: AtomicU64::new(0),
            applied: AtomicU64::new(0),
        });
        let r = recorder.clone();
        let thread = std::thread::spawn(move || apply_loop(muster, rx, &r, stop));
        (recorder, thread)
    }

    /// An outcome that is no relay's verdict (nothing was accepted): the
    /// store takes it, no sync needed.
    pub fn report(&self, done: Done) {
        self.forward(vec![done]);
    }

    /// Makes a verdict durable; returns false when it could not be (the
    /// store takes no writes): the connection must not end another message.
    pub async fn durable(&self, mut done: Done) -> bool {
        let (ack, acked) = oneshot::channel();
        done.ack = Some(ack);
        let mut lead = {
            let mut g = lock(&self.group);
            g.waiting.push(done);
            !std::mem::replace(&mut g.syncing, true)
        };
        tokio::pin!(acked);
        loop {
            if lead {
                self.sync_waiting();
            }
            tokio::select! {
                biased;
                r = &mut acked => return r.is_ok(),
                _ = self.lead_wanted.notified() => {
                    let mut g = lock(&self.group);
                    lead = !g.waiting.is_empty() && !std::mem::replace(&mut g.syncing, true);
                }
            }
        }
    }

    /// One sync for every verdict waiting; then the store's stage takes
    /// them, and a waiting connection leads the next sync.
    fn sync_waiting(&self) {
        let mut batch = std::mem::take(&mut lock(&self.group).waiting);
        let entries: Vec<Entry> = batch
            .iter()
            .filter_map(|d| {
                Verdict::of(&d.outcome).map(|verdict| Entry {
                    task: d.task.clone(),
                    generation: d.generation,
                    verdict,
                })
            })
            .collect();
        {
            let mut journal = lock(&self.journal);
            match journal.append(&entries) {
                Ok(()) => {
                    for d in &mut batch {
                        if let Some(ack) = d.ack.take() {
                            let _ = ack.send(());
                        }
                    }
                }
                // They wait for the store's commit instead.
                Err(e) => tracing::error!(error = %e, "cannot write the delivery journal"),
            }
            // Handed on while the journal is held, so it is never emptied
            // while it holds an entry the store's stage has not been given.
            self.forward(batch);
        }
        let more = {
            let mut g = lock(&self.group);
            g.syncing = false;
            !g.waiting.is_empty()
        };
        if more {
            self.lead_wanted.notify_one();
        }
    }

    fn forward(&self, batch: Vec<Done>) {
        let apply = lock(&self.apply);
        if let Some(tx) = apply.as_ref() {
            self.handed.fetch_add(1, Ordering::AcqRel);
            if tx.send(batch).is_err() {
                self.handed.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Empties the journal when the store holds all it does.
    fn clear_if_caught_up(&self, journal: &mut Journal) {
        if !journal.is_empty()
            && self.applied.load(Ordering::Acquire) == self.handed.load(Ordering::Acquire)
            && let Err(e) = journal.clear()
        {
            tracing::error!(error = %e, "cannot empty the delivery journal");
        }
    }

    /// No more outcomes come: the store's stage commits what it holds and
    /// ends (join its thread), and the journal is emptied if it can be.
    pub fn close(&self) {
        lock(&self.apply).take();
    }

    /// After the store's stage has ended.
    pub fn finish(&self) {
        self.clear_if_caught_up(&mut lock(&self.journal));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The store's stage: outcomes into the store, as many per commit as have
/// arrived; then the queue, listeners and waiting connections are told.
fn apply_loop(
    muster: Arc<Muster>,
    batches: std::sync::mpsc::Receiver<Vec<Done>>,
    recorder: &Recorder,
    stop: watch::Receiver<bool>,
) {
    while let Ok(first) = batches.recv() {
        // A store commit costs two syncs on the disk the journal syncs on:
        // gather for a moment so that one commit covers many outcomes.
        let gather_until = Instant::now() + APPLY_GATHER;
        let mut batch = first;
        let mut count = 1;
        while batch.len() < 2048 {
            let wait = gather_until.saturating_duration_since(Instant::now());
            match batches.recv_timeout(wait) {
                Ok(more) => {
                    batch.extend(more);
                    count += 1;
                }
                Err(_) => break,
            }
        }
        let mut delay = Duration::from_millis(200);
        let recorded = loop {
            let result = muster
                .store
                .write(|w| -> Result<Vec<Recorded>, StoreError> {
                    let mut outcomes = Vec::new();
                    for d in &batch {
                        outcomes.extend(super::worker::record(&muster, w, d)?);
                    }
                    Ok(outcomes)
                });
            match result {
                Ok(outcomes) => break Some(outcomes),
                Err(e) if stopping(&stop) || matches!(e, StoreError::NeedsRestart) => {
                    // Shutting down, or a store that takes no writes until
                    // Muster restarts (a full disk): the tasks stay queued,
                    // and what the journal holds is applied at the next start.
                    tracing::error!(error = %e, outcomes = batch.len(), "cannot record delivery outcomes; leaving them queued");
                    break None;
                }
                Err(e) => {
                    // Nothing is lost: the tasks stay queued until recorded.
                    tracing::error!(error = %e, "cannot record delivery outcomes; retrying");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        };
        let Some(outcomes) = recorded else {
            // No acks for those still waiting: each such connection drops
            // its next message before the end and stops (see send_loop);
            // the tasks stay out of the dispatcher until the next start.
            continue;
        };
        recorder.applied.fetch_add(count, Ordering::Release);
        muster
            .queue
            .recorded(batch.iter().map(|d| d.task.id.as_str()));
        for d in batch {
            if let Some(ack) = d.ack {
                let _ = ack.send(());
            }
        }
        muster.queue.announce(outcomes);
        muster.queue.wake();
        // Not while a connection syncs: the next commit will do.
        if let Ok(mut journal) = recorder.journal.try_lock() {
            recorder.clear_if_caught_up(&mut journal);
        }
    }
}

/// True once the worker is told to stop, or its owner is gone.
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}
