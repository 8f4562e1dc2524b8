//! Recording delivery outcomes in two stages. A relay's verdict on an
//! ended message goes to the delivery journal first (the restart promise
//! needs it durable before its connection ends another message); the
//! store takes every outcome behind, many per commit.
//!
//! The journal has its own thread (group commit): it syncs every verdict
//! waiting at once, back to back while they come, after waiting briefly
//! for verdicts already on their way (other connections' message ends on
//! the wire). A connection hands its verdict over and goes straight on
//! with the next message (compose, the content); only that message's end
//! waits for the ticket. No runtime thread ever blocks on the disk.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::journal::{Entry, Journal, Verdict};
use super::smtp::Outcome;
use crate::lock;
use crate::service::Muster;
use crate::service::queue::Recorded;
use crate::store::{StoreError, Task};

/// How long the store's stage gathers outcomes into one commit. Its two
/// syncs share the disk with the journal's and slow them (measured at one
/// connection: 340 µs a journal sync with a commit every 20 ms, 250 µs
/// every 100 ms); the cost is that an outcome shows up to 0.1 s later.
const APPLY_GATHER: Duration = Duration::from_millis(100);

/// How long the journal waits, at most, for the verdicts of messages whose
/// end is already on the wire before it syncs: they come within a round
/// trip, and one sync for several connections spares the disk and the CPU
/// (a sync costs ~30 us of kernel time here, more than a round trip).
const SYNC_GATHER: Duration = Duration::from_micros(200);

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
    /// Verdicts waiting for the journal's thread.
    group: Mutex<Group>,
    /// Verdicts came, a message's end was answered, or the recorder closed.
    wanted: Condvar,
    /// Messages whose end is on the wire, their verdict still to come.
    ending: AtomicUsize,
    apply: Mutex<Option<std::sync::mpsc::Sender<Vec<Done>>>>,
    /// Batches given to the store's stage, and those it has committed:
    /// equal means the store holds all the journal does.
    handed: AtomicU64,
    applied: AtomicU64,
    /// A verdict could not be made durable: no connection may end another
    /// message until Muster restarts (it would be sent twice).
    broken: Arc<AtomicBool>,
}

#[derive(Default)]
struct Group {
    waiting: Vec<Done>,
    closed: bool,
}

/// Told once a verdict is durable (journal or store); false when it could
/// not be (the store takes no writes): the connection must not end another
/// message.
pub(super) struct Ticket(oneshot::Receiver<()>);

impl Ticket {
    pub async fn durable(self) -> bool {
        self.0.await.is_ok()
    }
}

/// A message's end on the wire (see [`Recorder::ending`]).
pub(super) struct Flight(Arc<Recorder>);

impl Drop for Flight {
    fn drop(&mut self) {
        self.0.ending.fetch_sub(1, Ordering::AcqRel);
        self.0.wanted.notify_one();
    }
}

/// The recorder's two threads.
pub(super) struct Stages {
    journal: JoinHandle<()>,
    store: JoinHandle<()>,
}

impl Recorder {
    /// The recorder and its threads (the journal's and the store's stage),
    /// which run until [`Recorder::finish`].
    pub fn start(
        muster: Arc<Muster>,
        journal: Journal,
        stop: watch::Receiver<bool>,
    ) -> (Arc<Self>, Stages) {
        let (tx, rx) = std::sync::mpsc::channel();
        let recorder = Arc::new(Self {
            journal: Mutex::new(journal),
            group: Mutex::default(),
            wanted: Condvar::new(),
            ending: AtomicUsize::new(0),
            apply: Mutex::new(Some(tx)),
            handed: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            broken: Arc::default(),
        });
        let r = recorder.clone();
        let store = std::thread::Builder::new()
            .name("delivery-store".into())
            .spawn(move || apply_loop(muster, rx, &r, stop))
            .expect("a thread starts");
        let r = recorder.clone();
        let journal = std::thread::Builder::new()
            .name("delivery-journal".into())
            .spawn(move || r.journal_loop())
            .expect("a thread starts");
        (recorder, Stages { journal, store })
    }

    /// A verdict was not made durable: every connection stops ending
    /// messages.
    pub fn mark_broken(&self) {
        self.broken.store(true, Ordering::SeqCst);
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// The flag, for the direct router (which then starts no connection).
    pub fn broken_flag(&self) -> Arc<AtomicBool> {
        self.broken.clone()
    }

    /// An outcome that is no relay's verdict (nothing was accepted): the
    /// store takes it, no sync needed.
    pub fn report(&self, done: Done) {
        self.forward(vec![done]);
    }

    /// A message's end goes on the wire: the journal may wait for its
    /// verdict (see [`SYNC_GATHER`]) until the returned flight is dropped
    /// or handed to [`Recorder::submit`].
    pub fn ending(self: &Arc<Self>) -> Flight {
        self.ending.fetch_add(1, Ordering::AcqRel);
        Flight(self.clone())
    }

    /// Hands the verdict of the message `flight` ended to the journal's
    /// thread.
    pub fn submit(&self, mut done: Done, flight: Flight) -> Ticket {
        let (ack, acked) = oneshot::channel();
        done.ack = Some(ack);
        lock(&self.group).waiting.push(done);
        drop(flight);
        Ticket(acked)
    }

    /// One sync for all the verdicts waiting, again and again, until the
    /// recorder closes and none are left.
    fn journal_loop(&self) {
        loop {
            let batch = {
                let mut g = lock(&self.group);
                while g.waiting.is_empty() && !g.closed {
                    g = self.wanted.wait(g).unwrap_or_else(|p| p.into_inner());
                }
                if g.waiting.is_empty() {
                    return;
                }
                let until = Instant::now() + SYNC_GATHER;
                while self.ending.load(Ordering::Acquire) > 0 && !g.closed {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    g = self
                        .wanted
                        .wait_timeout(g, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                std::mem::take(&mut g.waiting)
            };
            self.sync(batch);
        }
    }

    /// Appends and syncs the verdicts; then the store's stage takes them.
    fn sync(&self, mut batch: Vec<Done>) {
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

    /// No more outcomes come: the journal syncs what waits, the store's
    /// stage commits what it holds, both end, and the journal is emptied
    /// if the store holds all of it. Blocks until then.
    pub fn finish(&self, stages: Stages) {
        lock(&self.group).closed = true;
        self.wanted.notify_one();
        let _ = stages.journal.join();
        lock(&self.apply).take();
        let _ = stages.store.join();
        self.clear_if_caught_up(&mut lock(&self.journal));
    }
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
                        outcomes.extend(super::outcomes::record(&muster, w, d)?);
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
        // Not while the journal syncs: the next commit will do.
        if let Ok(mut journal) = recorder.journal.try_lock() {
            recorder.clear_if_caught_up(&mut journal);
        }
    }
}

/// True once the worker is told to stop, or its owner is gone.
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}
