//! Recording delivery outcomes in two stages. A relay's verdict on an
//! ended message goes to the delivery journal first (the restart promise
//! needs it durable before its connection ends another message); the
//! store takes every outcome behind, many per commit.
//!
//! The journal has its own thread (group commit): it syncs every verdict
//! waiting at once, back to back while they come. A connection hands its
//! verdict over and goes straight on with the next message (compose, the
//! content); only that message's end waits for the ticket, and the
//! journal's thread writes that end itself the moment the verdict is
//! durable (see [`Handoff`]). No runtime thread ever blocks on the disk.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// One outcome on its way to the store.
pub(super) struct Done {
    pub task: Task,
    /// The invite generation the message carried, if any.
    pub generation: Option<u32>,
    pub outcome: Outcome,
    /// Told once the outcome is durable: by the journal's thread, or when
    /// it wrote the connection's whole next end (the relay's answer then
    /// wakes the connection), by the store's stage after its commit.
    pub ack: Option<oneshot::Sender<()>>,
    /// The end of the connection's next message, when the journal's thread
    /// is to write it (see [`Handoff`]).
    pub handoff: Option<Arc<Handoff>>,
}

/// The end of a connection's next message, written on its socket by the
/// journal's thread the moment the previous verdict is durable. Otherwise
/// the connection's task would first have to be woken and scheduled, all
/// connections at once after the same sync (measured here at 4
/// connections: about 50 µs of a 330 µs cycle per message). Only for
/// connections in the clear, whose socket takes bytes from any thread.
#[derive(Default)]
pub(super) struct Handoff(Mutex<Pass>);

/// How much of a connection's end the journal's thread wrote, and when:
/// the relay's reply is due a timeout after that, not after the
/// connection's task learns of it. `at` is the real clock's, so not for
/// a test on tokio's paused clock.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Written {
    pub bytes: usize,
    pub at: Option<Instant>,
}

#[derive(Default)]
enum Pass {
    /// The verdict is not durable yet, and nothing is to be sent.
    #[default]
    Waiting,
    /// To be written once the verdict is durable.
    Queued {
        socket: Arc<OwnedFd>,
        bytes: Vec<u8>,
    },
    /// The verdict is durable; the journal's thread wrote some bytes.
    Sent(Written),
    /// The verdict is durable; nothing was written for the connection.
    Durable,
}

impl Handoff {
    /// The verdict is durable: writes what is queued, as much as the
    /// socket takes without waiting. True when all of it went: the
    /// relay's answer then wakes the connection, not the journal's thread.
    fn release(&self) -> bool {
        let mut pass = lock(&self.0);
        let (next, whole) = match std::mem::take(&mut *pass) {
            Pass::Queued { socket, bytes } => {
                let sent = send_now(&socket, &bytes);
                let written = Written {
                    bytes: sent,
                    at: Some(Instant::now()),
                };
                (Pass::Sent(written), sent == bytes.len())
            }
            _ => (Pass::Durable, false),
        };
        *pass = next;
        whole
    }
}

/// Writes as much of `bytes` as the socket takes now, and returns how much
/// that was; it stops at the first error (the connection's task then
/// writes the rest, and meets the error itself).
fn send_now(socket: &OwnedFd, bytes: &[u8]) -> usize {
    let mut sent = 0;
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        // SAFETY: the descriptor is open (owned here) and the buffer valid
        // for its length.
        let n = unsafe {
            libc::send(
                socket.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n > 0 {
            sent += n as usize;
        } else if n == 0
            || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            break;
        }
    }
    sent
}

pub(super) struct Recorder {
    journal: Mutex<Journal>,
    /// Verdicts waiting for the journal's thread.
    group: Mutex<Group>,
    /// Verdicts came, or the recorder closed.
    wanted: Condvar,
    /// Outcomes for the store's stage.
    outbound: Mutex<Outbound>,
    /// Outcomes came to an idle store stage, enough came to commit at
    /// once, or the recorder closed.
    to_apply: Condvar,
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

/// Batches handed to the store's stage and not yet taken. It is not woken
/// for each (thousands a second): it takes all that came while it
/// gathered.
#[derive(Default)]
struct Outbound {
    batches: Vec<Vec<Done>>,
    outcomes: usize,
    closed: bool,
}

/// The most outcomes one store commit takes (a commit holds the store's
/// write lock; after a slow one, the rest wait for the next).
const APPLY_MOST: usize = 2048;

/// Says when a verdict is durable (journal or store), or that it could
/// not be (the store takes no writes): the connection must not end
/// another message then.
pub(super) struct Ticket {
    acked: oneshot::Receiver<()>,
    handoff: Arc<Handoff>,
}

impl Ticket {
    /// Has the journal's thread write `bytes` (the end of the connection's
    /// next message) on `socket` the moment the verdict is durable.
    pub fn send_when_durable(&self, socket: &Arc<OwnedFd>, bytes: &[u8]) {
        let mut pass = lock(&self.handoff.0);
        if matches!(*pass, Pass::Waiting) {
            *pass = Pass::Queued {
                socket: socket.clone(),
                bytes: bytes.to_vec(),
            };
        }
    }

    /// Waits until the verdict is durable: what of the end
    /// `send_when_durable` queued was written for the connection, or None
    /// when it cannot be made durable.
    pub async fn durable(self) -> Option<Written> {
        self.durable_or_answered(std::future::pending()).await
    }

    /// As `durable`, for a connection whose end is queued: `answered`
    /// completes when the relay sends something (or its time is up). Once
    /// the journal's thread wrote the whole end, it does not wake the
    /// connection: the relay's answer does (one wake a message instead of
    /// two), or else the store's stage's ack.
    pub async fn durable_or_answered(
        mut self,
        answered: impl std::future::Future<Output = ()>,
    ) -> Option<Written> {
        let acked = tokio::select! {
            biased;
            acked = &mut self.acked => acked.is_ok(),
            () = answered => match self.take_sent() {
                Some(n) => return Some(n),
                None => {
                    // The relay spoke before the end went (a 421, a close)
                    // or kept silent: the end is the connection's again,
                    // and the journal's thread acks as soon as it syncs.
                    self.withdraw();
                    (&mut self.acked).await.is_ok()
                }
            },
        };
        // Written by the journal's thread means durable, whatever the
        // store's stage told since.
        self.take_sent().or(acked.then_some(Written::default()))
    }

    /// Takes back an end not yet written.
    fn withdraw(&self) {
        let mut pass = lock(&self.handoff.0);
        if matches!(*pass, Pass::Queued { .. }) {
            *pass = Pass::Waiting;
        }
    }

    /// What the journal's thread wrote, once it has.
    fn take_sent(&self) -> Option<Written> {
        let mut pass = lock(&self.handoff.0);
        match *pass {
            Pass::Sent(written) => {
                *pass = Pass::Durable;
                Some(written)
            }
            _ => None,
        }
    }
}

impl Drop for Ticket {
    /// A connection that stops waiting ends no message.
    fn drop(&mut self) {
        self.withdraw();
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
        let recorder = Arc::new(Self::new(journal));
        let r = recorder.clone();
        let store = std::thread::Builder::new()
            .name("delivery-store".into())
            .spawn(move || apply_loop(muster, &r, stop))
            .expect("a thread starts");
        let r = recorder.clone();
        let journal = std::thread::Builder::new()
            .name("delivery-journal".into())
            .spawn(move || r.journal_loop())
            .expect("a thread starts");
        (recorder, Stages { journal, store })
    }

    fn new(journal: Journal) -> Self {
        Self {
            journal: Mutex::new(journal),
            group: Mutex::default(),
            wanted: Condvar::new(),
            outbound: Mutex::default(),
            to_apply: Condvar::new(),
            handed: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            broken: Arc::default(),
        }
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

    /// Hands a relay's verdict to the journal's thread.
    pub fn submit(&self, mut done: Done) -> Ticket {
        let (ack, acked) = oneshot::channel();
        let handoff = Arc::new(Handoff::default());
        done.ack = Some(ack);
        done.handoff = Some(handoff.clone());
        lock(&self.group).waiting.push(done);
        self.wanted.notify_one();
        Ticket { acked, handoff }
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
                // No waiting for verdicts still on their way: the disk is
                // the busiest part, and those that come while it syncs
                // share the next sync (measured at 4 connections: 0.94 of
                // the promise's floor, against 0.85 when the sync waited
                // up to 0.2 ms for them).
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
                // The ends first, so the relay has them soonest. A
                // connection whose whole end went waits for the relay's
                // answer; the store's stage acks its verdict later.
                let mut to_wake = Vec::with_capacity(batch.len());
                for d in &mut batch {
                    if !d.handoff.as_ref().is_some_and(|h| h.release()) {
                        to_wake.extend(d.ack.take());
                    }
                }
                for ack in to_wake {
                    let _ = ack.send(());
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
        let mut out = lock(&self.outbound);
        if out.closed {
            return;
        }
        self.handed.fetch_add(1, Ordering::AcqRel);
        let before = out.outcomes;
        out.outcomes += batch.len();
        out.batches.push(batch);
        if before == 0 || (before < APPLY_MOST && out.outcomes >= APPLY_MOST) {
            self.to_apply.notify_one();
        }
    }

    /// Waits for outcomes, gathers for up to `APPLY_GATHER`, and takes
    /// them: with how many batches they came. None once closed and empty.
    fn take_outbound(&self) -> Option<(Vec<Done>, u64)> {
        let mut out = lock(&self.outbound);
        while out.batches.is_empty() && !out.closed {
            out = self.to_apply.wait(out).unwrap_or_else(|p| p.into_inner());
        }
        if out.batches.is_empty() {
            return None;
        }
        // A store commit costs two syncs on the disk the journal syncs on:
        // one commit covers what comes in a moment.
        let (mut out, _) = self
            .to_apply
            .wait_timeout_while(out, APPLY_GATHER, |o| !o.closed && o.outcomes < APPLY_MOST)
            .unwrap_or_else(|p| p.into_inner());
        let mut taken = 0;
        let count = out
            .batches
            .iter()
            .take_while(|b| {
                let room = taken < APPLY_MOST;
                taken += b.len();
                room
            })
            .count();
        let batch: Vec<Done> = out.batches.drain(..count).flatten().collect();
        out.outcomes -= batch.len();
        Some((batch, count as u64))
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
        lock(&self.outbound).closed = true;
        self.to_apply.notify_one();
        let _ = stages.store.join();
        self.clear_if_caught_up(&mut lock(&self.journal));
    }
}

/// The store's stage: outcomes into the store, as many per commit as have
/// arrived; then the queue, listeners and waiting connections are told.
fn apply_loop(muster: Arc<Muster>, recorder: &Recorder, stop: watch::Receiver<bool>) {
    while let Some((batch, count)) = recorder.take_outbound() {
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
            // No acks for those still waiting: a connection whose verdict
            // the journal missed too drops its next message before the end
            // and stops (see connection_loop); the tasks stay out of the
            // dispatcher until the next start.
            continue;
        };
        recorder.applied.fetch_add(count, Ordering::Release);
        let withdrawn = muster
            .queue
            .recorded(batch.iter().map(|d| d.task.id.as_str()));
        // Revoked while out, their outcome a retry (now without a task):
        // no connection holds them any more.
        let revoked: Vec<String> = withdrawn
            .iter()
            .filter_map(|t| Task::invite_of_task_id(t).map(str::to_string))
            .collect();
        if !revoked.is_empty()
            && let Err(e) = muster.settle_unsent(&revoked)
        {
            tracing::error!(error = %e, "cannot mark revoked invites' emails as not sent; the next start does");
        }
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

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    use super::*;

    fn ticket() -> (Ticket, oneshot::Sender<()>, Arc<Handoff>) {
        let (ack, acked) = oneshot::channel();
        let handoff = Arc::new(Handoff::default());
        let ticket = Ticket {
            acked,
            handoff: handoff.clone(),
        };
        (ticket, ack, handoff)
    }

    fn pair() -> (Arc<OwnedFd>, UnixStream) {
        let (ours, peer) = UnixStream::pair().unwrap();
        peer.set_nonblocking(true).unwrap();
        (Arc::new(OwnedFd::from(ours)), peer)
    }

    fn received(peer: &mut UnixStream) -> Vec<u8> {
        let mut got = vec![0; 1 << 16];
        match peer.read(&mut got) {
            Ok(n) => got[..n].to_vec(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Vec::new(),
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn a_queued_end_goes_out_only_once_the_verdict_is_durable() {
        let (socket, mut peer) = pair();
        let (t, ack, handoff) = ticket();
        let end = b".\r\nMAIL FROM:<a@b>\r\n";
        t.send_when_durable(&socket, end);
        assert!(received(&mut peer).is_empty(), "nothing before the sync");
        handoff.release();
        let _ = ack.send(());
        assert_eq!(t.durable().await.map(|w| w.bytes), Some(end.len()));
        assert_eq!(received(&mut peer), end);
    }

    fn done(id: usize) -> Done {
        Done {
            task: Task {
                id: id.to_string(),
                kind: crate::store::TaskKind::Invite {
                    invite_id: id.to_string(),
                },
                queued_at: time::OffsetDateTime::UNIX_EPOCH,
                attempts: 0,
            },
            generation: Some(0),
            outcome: Outcome::Accepted("250 2.0.0 Ok".into()),
            ack: None,
            handoff: None,
        }
    }

    /// Outcomes that piled up behind a slow commit go to the store about
    /// 2,048 at a time, whole batches, in order; none is left behind.
    #[test]
    fn a_store_commit_takes_at_most_its_share_of_what_waits() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(&dir.path().join("delivery.journal")).unwrap();
        let recorder = Recorder::new(journal);
        for b in 0..10 {
            recorder.forward((b * 500..(b + 1) * 500).map(done).collect());
        }
        lock(&recorder.outbound).closed = true;
        let mut seen = Vec::new();
        let mut batches = 0;
        while let Some((batch, count)) = recorder.take_outbound() {
            assert!(batch.len() <= APPLY_MOST + 500, "{} in one", batch.len());
            seen.extend(batch.iter().map(|d| d.task.id.parse::<usize>().unwrap()));
            batches += count;
        }
        assert_eq!(seen, (0..5000).collect::<Vec<_>>());
        assert_eq!(batches, 10);
        assert_eq!(recorder.handed.load(Ordering::Acquire), 10);
    }

    /// The journal's thread wrote the whole end and acks nothing: the
    /// relay's answer tells the connection.
    #[tokio::test]
    async fn the_relays_answer_wakes_a_connection_whose_whole_end_went() {
        let (socket, mut peer) = pair();
        let (t, _ack, handoff) = ticket();
        let end = b".\r\nMAIL FROM:<a@b>\r\n";
        t.send_when_durable(&socket, end);
        assert!(handoff.release(), "the whole end went");
        assert_eq!(received(&mut peer), end);
        let written = t.durable_or_answered(async {}).await.unwrap();
        assert_eq!(written.bytes, end.len());
        assert!(written.at.is_some(), "when it went is known");
    }

    /// The relay spoke before the sync (a 421, a close): the end is taken
    /// back, nothing is written for the connection, and the journal's
    /// thread wakes it once the verdict is durable.
    #[tokio::test]
    async fn an_answer_before_the_sync_takes_the_end_back() {
        let (socket, mut peer) = pair();
        let (t, ack, handoff) = ticket();
        t.send_when_durable(&socket, b".\r\n");
        let waiting = tokio::spawn(t.durable_or_answered(async {}));
        for _ in 0..1000 {
            if matches!(*lock(&handoff.0), Pass::Waiting) {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(!handoff.release(), "nothing is written once taken back");
        let _ = ack.send(());
        assert_eq!(waiting.await.unwrap(), Some(Written::default()));
        assert!(received(&mut peer).is_empty());

        let (t, ack, _handoff) = ticket();
        t.send_when_durable(&socket, b".\r\n");
        drop(ack);
        assert_eq!(t.durable_or_answered(async {}).await, None);
        assert!(received(&mut peer).is_empty(), "no end without a sync");
    }

    #[tokio::test]
    async fn an_end_queued_after_the_sync_is_the_connections_to_write() {
        let (socket, mut peer) = pair();
        let (t, ack, handoff) = ticket();
        handoff.release();
        let _ = ack.send(());
        t.send_when_durable(&socket, b".\r\n");
        assert_eq!(t.durable().await.map(|w| w.bytes), Some(0));
        assert!(received(&mut peer).is_empty());
    }

    #[tokio::test]
    async fn no_end_goes_out_for_a_connection_that_stopped_waiting() {
        let (socket, mut peer) = pair();
        let (t, _ack, handoff) = ticket();
        t.send_when_durable(&socket, b".\r\n");
        drop(t);
        handoff.release();
        assert!(received(&mut peer).is_empty());
    }

    /// The journal could not be written: no release; the store's stage
    /// acks once it has committed (the connection writes the end), or
    /// never (it must not end the message).
    #[tokio::test]
    async fn a_verdict_the_journal_missed_leaves_the_end_to_the_connection() {
        let (socket, mut peer) = pair();
        let (t, ack, _handoff) = ticket();
        t.send_when_durable(&socket, b".\r\n");
        let _ = ack.send(());
        assert_eq!(t.durable().await.map(|w| w.bytes), Some(0));
        assert!(received(&mut peer).is_empty());

        let (t, ack, _handoff) = ticket();
        t.send_when_durable(&socket, b".\r\n");
        drop(ack);
        assert_eq!(t.durable().await.map(|w| w.bytes), None);
    }

    #[tokio::test]
    async fn a_full_socket_takes_part_and_the_count_says_which() {
        let (socket, mut peer) = pair();
        let (t, ack, handoff) = ticket();
        let end: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
        t.send_when_durable(&socket, &end);
        handoff.release();
        let _ = ack.send(());
        let sent = t.durable().await.unwrap().bytes;
        assert!(sent > 0 && sent < end.len(), "{sent} of {}", end.len());
        let mut got = Vec::new();
        while got.len() < sent {
            let more = received(&mut peer);
            assert!(!more.is_empty(), "the peer has all that was sent");
            got.extend(more);
        }
        assert_eq!(got, end[..sent]);
    }

    #[tokio::test]
    async fn a_closed_socket_leaves_the_whole_end_to_the_connection() {
        let (socket, peer) = pair();
        drop(peer);
        let (t, ack, handoff) = ticket();
        t.send_when_durable(&socket, b".\r\n");
        handoff.release();
        let _ = ack.send(());
        assert_eq!(t.durable().await.map(|w| w.bytes), Some(0));
    }
}
