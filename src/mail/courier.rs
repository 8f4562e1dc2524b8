//! The connection tasks: each takes jobs, composes and signs them, sends
//! them over one reused connection (the relay's, or one destination
//! domain's) or writes them to the outbox, and hands each outcome to the
//! recorder.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{Mutex as AsyncMutex, mpsc, watch};

use super::compose::{Composer, Outgoing};
use super::direct::Direct;
use super::dkim::Signer;
use super::journal::Verdict;
use super::outbox::Outbox;
use super::recorder::{Done, Recorder, Ticket, Written};
use super::smtp::{Connection, Outcome, Relay};
use super::worker::{IDLE, Job, Payload, compose};
use crate::service::Muster;
use crate::store::Task;

/// Where a connection goes.
pub(super) enum Link {
    Relay(Box<Relay>),
    /// One destination domain's mail servers.
    Direct {
        direct: Arc<Direct>,
        domain: String,
    },
}

impl Link {
    async fn connect(&self) -> Result<Connection, Outcome> {
        match self {
            Link::Relay(relay) => relay.connect().await,
            Link::Direct { direct, domain } => {
                let (conn, reached) = direct.connect(domain).await?;
                tracing::debug!(domain = %domain, host = %reached.host, address = %reached.address, tls = reached.tls, "connected to a destination mail server");
                Ok(conn)
            }
        }
    }
}

/// The rate limits a connection keeps: everything Muster sends
/// (`smtp.rate_per_minute`), and in direct mode its destination domain's.
#[derive(Clone, Default)]
pub(super) struct Pace {
    all: Option<Arc<DefaultDirectRateLimiter>>,
    domain: Option<(Arc<DefaultKeyedRateLimiter<String>>, String)>,
}

impl Pace {
    pub fn overall(rate_per_minute: u32, burst: u32) -> Self {
        Self {
            all: NonZeroU32::new(rate_per_minute).map(|rate| {
                let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
                Arc::new(RateLimiter::direct(
                    Quota::per_minute(rate).allow_burst(burst),
                ))
            }),
            domain: None,
        }
    }

    /// Per destination domain, shared by every lane.
    pub fn per_domain(
        rate_per_minute: u32,
        burst: u32,
    ) -> Option<Arc<DefaultKeyedRateLimiter<String>>> {
        NonZeroU32::new(rate_per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            Arc::new(RateLimiter::keyed(
                Quota::per_minute(rate).allow_burst(burst),
            ))
        })
    }

    pub fn for_domain(
        &self,
        limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
        domain: &str,
    ) -> Self {
        Self {
            all: self.all.clone(),
            domain: limiter.map(|l| (l, domain.to_string())),
        }
    }

    pub fn is_limited(&self) -> bool {
        self.all.is_some() || self.domain.is_some()
    }

    /// Whether a message may go now. The domain's turn is asked first, so
    /// a refusal there spends none of the overall allowance; a refusal by
    /// the overall limit has spent the domain's turn, which then sends
    /// below its rate, never above.
    fn check(&self) -> bool {
        if let Some((l, d)) = &self.domain
            && l.check_key(d).is_err()
        {
            return false;
        }
        self.all.as_ref().is_none_or(|l| l.check().is_ok())
    }

    async fn until_ready(&self) {
        if let Some((l, d)) = &self.domain {
            l.until_key_ready(d).await;
        }
        if let Some(l) = &self.all {
            l.until_ready().await;
        }
    }
}

/// What one connection task shares with the others.
pub(super) struct Courier {
    pub muster: Arc<Muster>,
    pub composer: Arc<Composer>,
    pub pace: Pace,
    pub jobs: Arc<AsyncMutex<mpsc::Receiver<Job>>>,
    pub recorder: Arc<Recorder>,
    pub stop: watch::Receiver<bool>,
    /// Direct delivery: the courier's lane (it ends when the lane stays
    /// empty, or gives its connection up for a lane that has none).
    pub lane: Option<LaneTurn>,
    /// DKIM: every message is signed before it goes out.
    pub signer: Option<Arc<Signer>>,
}

/// A direct-delivery courier's place among the lanes.
pub(super) struct LaneTurn {
    /// Jobs waiting in its lane.
    pub waiting: Arc<AtomicUsize>,
    /// Lanes with work and no connection, all connections being in use.
    pub starving: Arc<AtomicUsize>,
    pub since: Instant,
}

/// How long a courier keeps its connection while another domain waits for
/// one: long enough to reuse it, short enough that one big domain does not
/// hold every connection until it drains.
const FAIR_TURN: std::time::Duration = std::time::Duration::from_secs(20);

/// A job composed and ready to go out.
pub(super) struct Ready {
    task: Task,
    generation: Option<u32>,
    name: String,
    msg: Outgoing,
}

pub(super) fn done(outcome: Outcome, generation: Option<u32>, task: Task) -> Done {
    Done {
        task,
        generation,
        outcome,
        ack: None,
        handoff: None,
    }
}

impl Courier {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// A job the dispatcher has ready now, if any.
    fn ready_job(&self) -> Option<Job> {
        let job = self.jobs.try_lock().ok()?.try_recv().ok();
        self.took(job.is_some());
        job
    }

    /// The next job, waiting for it up to `IDLE`: `Err` when none came,
    /// `Ok(None)` when the dispatcher is gone.
    async fn next_job(&self) -> Result<Option<Job>, ()> {
        let mut rx = self.jobs.lock().await;
        let job = tokio::time::timeout(IDLE, rx.recv()).await.map_err(|_| ());
        self.took(matches!(job, Ok(Some(_))));
        job
    }

    fn took(&self, one: bool) {
        if one && let Some(lane) = &self.lane {
            lane.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Another domain has work and no connection, and this one has had its
    /// turn.
    /// One courier gives way per lane left out.
    fn should_yield(&self) -> bool {
        self.lane.as_ref().is_some_and(|l| {
            l.since.elapsed() >= FAIR_TURN
                && l.starving
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
        })
    }

    /// A job withdrawn while this connection held it, dropped unsent: a
    /// revoked invite's email is marked not sent (the revoke left that to
    /// the connection); a resend's old one needs nothing, its new one is
    /// queued. Off the runtime's threads: it is a store commit.
    fn dropped(&self, job: &Job) {
        if let Payload::Invite(invite) = &job.payload {
            let (muster, id) = (self.muster.clone(), invite.id.clone());
            tokio::task::spawn_blocking(move || {
                if let Err(e) = muster.settle_unsent(&[id]) {
                    tracing::error!(error = %e, "cannot mark a revoked invite's email as not sent");
                }
            });
        }
    }

    /// The job's email, unless it was revoked or resent since it was
    /// handed out (nothing to send) or cannot be composed (recorded).
    fn prepare(&self, job: Job) -> Option<Ready> {
        if self.muster.queue.take_withdrawn(&job.task.id) {
            self.dropped(&job);
            return None;
        }
        match compose(&self.muster, &self.composer, &job).and_then(|(mut msg, generation, name)| {
            if let Some(signer) = &self.signer {
                signer
                    .sign(&mut msg)
                    .map_err(|e| Outcome::Unsendable(format!("DKIM signing failed: {e}")))?;
            }
            Ok((msg, generation, name))
        }) {
            Ok((msg, generation, name)) => Some(Ready {
                task: job.task,
                generation,
                name,
                msg,
            }),
            Err(outcome) => {
                self.recorder.report(done(outcome, None, job.task));
                None
            }
        }
    }
}

/// Writes each job's email to the outbox folder; no rate limit (files in
/// the outbox protect nobody by waiting).
pub(super) async fn outbox_loop(s: Courier, outbox: Outbox) {
    while !s.stopping() {
        let job = match s.ready_job() {
            Some(job) => job,
            None => match s.next_job().await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(()) => continue,
            },
        };
        let Some(r) = s.prepare(job) else { continue };
        let (outbox, name, msg) = (outbox.clone(), r.name, r.msg);
        let outcome = tokio::task::spawn_blocking(move || outbox.write(&name, &msg))
            .await
            .unwrap_or_else(|e| {
                Outcome::Trouble(crate::domain::delivery::Trouble::Write(e.to_string()))
            });
        s.recorder.report(done(outcome, r.generation, r.task));
    }
}

/// Sends jobs over one reused connection (to the relay, or to one
/// destination domain). A message goes out whole but its end (`begin`);
/// its end waits until the previous message's verdict is durable, and
/// carries the next message's envelope when a job is ready then, so one
/// round trip ends one message and opens the next.
pub(super) async fn connection_loop(s: Courier, link: Link) {
    let mut conn: Option<Connection> = None;
    // The relay's verdict on the last message ended on this connection, on
    // its way to the journal: it must be durable before this connection
    // ends another message.
    let mut previous: Option<Ticket> = None;
    // The message begun on `conn` and not yet ended.
    let mut begun: Option<Ready> = None;
    // A job taken while another message was begun, waiting for its turn
    // under the rate limit.
    let mut held: Option<Job> = None;
    loop {
        if s.stopping() {
            break;
        }
        // Only between messages (a begun one is ended first); a job held
        // for its turn goes back to the queue unsent.
        let yielding = begun.is_none() && s.should_yield();
        if yielding && let Some(job) = held.take() {
            if s.muster.queue.take_withdrawn(&job.task.id) {
                s.dropped(&job);
            } else {
                s.muster.queue.release(&job.task.id);
            }
        }
        let job = match if yielding {
            None
        } else {
            held.take().or_else(|| s.ready_job())
        } {
            Some(job) => Some(job),
            // A begun message is ended at once rather than held open.
            None if begun.is_some() => None,
            // Its turn is over: the router gives the connection to a domain
            // that has none, and this one gets another when one is free.
            None if yielding => break,
            None => {
                // No telling how long the next job takes: learn now
                // whether the verdict was recorded.
                if let Some(t) = previous.take()
                    && t.durable().await.is_none()
                {
                    s.recorder.mark_broken();
                    break;
                }
                match s.next_job().await {
                    Ok(Some(job)) => Some(job),
                    Ok(None) => break,
                    Err(()) => {
                        if let Some(c) = conn.take() {
                            c.quit().await;
                        }
                        // A lane's courier ends; the router starts another
                        // when its domain has work again.
                        if s.lane.is_some() {
                            break;
                        }
                        continue;
                    }
                }
            }
        };
        // The rate limits protect the relay, the destination and the
        // sender's reputation. With a message begun, the next one rides
        // along only if its turn is now.
        let job = match job {
            Some(job) if s.pace.is_limited() && begun.is_some() => {
                if s.pace.check() {
                    Some(job)
                } else {
                    held = Some(job);
                    None
                }
            }
            Some(job) if s.pace.is_limited() => {
                // A turn may be a minute away: stopping does not wait for
                // it (the job stays queued for the next start).
                let mut stop = s.stop.clone();
                tokio::select! {
                    _ = s.pace.until_ready() => Some(job),
                    _ = stop.wait_for(|v| *v) => break,
                }
            }
            job => job,
        };
        let next = job.and_then(|job| s.prepare(job));
        if let Some(b) = begun.take() {
            let Some(c) = conn.as_mut() else {
                s.recorder.report(done(
                    Outcome::Trouble(crate::domain::delivery::Trouble::Connection(
                        "the connection was lost".into(),
                    )),
                    b.generation,
                    b.task,
                ));
                continue;
            };
            // The end goes out the moment the previous verdict is durable,
            // written by the journal's thread when the socket allows. Once
            // queued, it may go out whatever other connections do next, so
            // the broken flag is read once, before.
            let (ending, lead) = c.end_bytes(next.as_ref().map(|n| &n.msg));
            let sent = match previous.take() {
                _ if s.recorder.is_broken() => None,
                Some(t) => match c.socket() {
                    Some(socket) => {
                        t.send_when_durable(socket, &ending[..lead]);
                        t.durable_or_answered(c.answered()).await
                    }
                    None => t.durable().await,
                },
                None => Some(Written::default()),
            };
            let Some(sent) = sent else {
                // The previous outcome was not recorded (the store takes
                // no writes): ending this message, or any later one, could
                // send it twice after a restart. The server discards a
                // message left without its end.
                s.recorder.mark_broken();
                return;
            };
            let kept;
            (previous, kept) = end(&s, c, b, &ending, sent).await;
            if !kept {
                conn = None;
            }
        }
        let Some(n) = next else { continue };
        if conn.is_none() {
            match link.connect().await {
                Ok(c) => conn = Some(c),
                Err(outcome) => {
                    // When the destination can never take mail (a null MX,
                    // no such domain, a 5xx greeting), the jobs waiting for
                    // it get the same answer now; a passing trouble (a
                    // refused second connection, a timeout) is this job's.
                    if s.lane.is_some() && outcome.is_permanent() {
                        while let Some(job) = s.ready_job() {
                            if let Some(r) = s.prepare(job) {
                                s.recorder
                                    .report(done(outcome.clone(), r.generation, r.task));
                            }
                        }
                    }
                    s.recorder.report(done(outcome, n.generation, n.task));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match c.begin(&n.msg).await {
            Ok(()) => begun = Some(n),
            Err(f) => {
                if !f.connection_usable {
                    conn = None;
                }
                s.recorder.report(done(f.outcome, n.generation, n.task));
            }
        }
    }
    // Stopping: the message begun is ended, once the one before is durable.
    if let (Some(b), Some(c)) = (begun.take(), conn.as_mut())
        && !s.recorder.is_broken()
        && recorded(&mut previous).await
    {
        let kept;
        let (ending, _) = c.end_bytes(None);
        (previous, kept) = end(&s, c, b, &ending, Written::default()).await;
        if !kept {
            conn = None;
        }
    }
    recorded(&mut previous).await;
    if let Some(c) = conn.take() {
        c.quit().await;
    }
}

/// Ends the begun message `b` (`ending`, of which the journal's thread
/// wrote what `sent` says) and hands the outcome over: a relay's
/// verdict to the journal, with the ticket that says when it is durable;
/// anything else to the store. Returns that ticket, and whether the
/// connection is still usable.
async fn end(
    s: &Courier,
    c: &mut Connection,
    b: Ready,
    ending: &[u8],
    sent: Written,
) -> (Option<Ticket>, bool) {
    match c.finish(ending, sent.bytes, sent.at).await {
        Ok(outcome) if Verdict::of(&outcome).is_some() => {
            let d = done(outcome, b.generation, b.task);
            (Some(s.recorder.submit(d)), true)
        }
        Ok(outcome) => {
            s.recorder.report(done(outcome, b.generation, b.task));
            (None, true)
        }
        Err(f) => {
            s.recorder.report(done(f.outcome, b.generation, b.task));
            (None, false)
        }
    }
}

/// Waits until the previous verdict is durable: false when it cannot be.
async fn recorded(previous: &mut Option<Ticket>) -> bool {
    match previous.take() {
        Some(t) => t.durable().await.is_some(),
        None => true,
    }
}
