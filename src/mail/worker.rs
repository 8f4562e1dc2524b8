//! The delivery worker. A dispatcher takes due tasks from the queue (a range
//! scan over keys that start with the due time); connection tasks send them,
//! each over one reused SMTP connection; the recorder makes the outcomes
//! durable (see `recorder`).
//!
//! Restart safety: the store changes only when an outcome is committed, so
//! after a kill every task not recorded is sent again. A connection sends
//! the final dot of a message only once the previous message's verdict is
//! durable, so at most one message per connection can have been accepted by
//! the relay without being recorded: that one is sent again after a restart.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use time::OffsetDateTime;
use tokio::sync::{Mutex as AsyncMutex, mpsc, watch};
use tokio::task::JoinHandle;

use super::MailError;
use super::compose::{Composer, Outgoing, WelcomeText};
use super::journal::{Journal, Verdict};
use super::notices;
use super::outbox::Outbox;
use super::recorder::{Done, Recorder, Ticket};
use super::smtp::{Connection, Outcome, Relay};
use crate::domain::invite::Invite;
use crate::domain::token::TokenPurpose;
use crate::service::Muster;
use crate::store::{NoticeEvent, StoreError, Task, TaskKind};

/// Idle connections are closed after this long without work.
const IDLE: Duration = Duration::from_secs(5);
/// Jobs ready for the connections when sending is unthrottled.
const LOOKAHEAD: usize = 16;
/// The dispatcher looks at the queue at least this often.
const POLL: Duration = Duration::from_secs(1);

/// What a connection needs to send one task.
struct Job {
    /// When the task was due: with its id, its key in the queue.
    due: u64,
    task: Task,
    payload: Payload,
}

enum Payload {
    Invite(Box<Invite>),
    /// A reminder about an invite (the task says which, and which
    /// generation); the invite is read when its turn comes.
    Reminder,
    /// A notice to an admin (the task says what and to whom), read from
    /// the store when its turn comes.
    Notice,
    /// A digest to an admin, read from the store when its turn comes.
    Digest,
    Reset {
        email: String,
        token_id: String,
        expires_at: OffsetDateTime,
    },
    /// A new mailbox's first message (the task says whose).
    Welcome,
    /// The task's subject is gone (deleted invite or mailbox): drop the task.
    Gone,
}

#[derive(Clone)]
enum Transport {
    Relay(Box<Relay>),
    Outbox(Outbox),
}

/// Starts the worker; it runs until `stop` turns true, then finishes the
/// transactions in flight and records their outcomes.
pub fn spawn(
    muster: Arc<Muster>,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, MailError> {
    let config = muster.config.clone();
    let composer = Arc::new(Composer::new(&config)?);
    let transport = match Relay::from_config(&config).map_err(MailError::Relay)? {
        Some(relay) => {
            tracing::info!(relay = %relay.address, connections = config.smtp.connections, "sending invites through the SMTP relay");
            Transport::Relay(Box::new(relay))
        }
        None => {
            let outbox = Outbox::new(config.outbox_dir());
            tracing::info!(outbox = %outbox.dir().display(), "no SMTP relay configured: invites are written as .eml files to the outbox folder");
            Transport::Outbox(outbox)
        }
    };
    let limiter = NonZeroU32::new(config.smtp.rate_per_minute).map(|rate| {
        let burst = NonZeroU32::new(config.smtp.burst).unwrap_or(NonZeroU32::MIN);
        Arc::new(RateLimiter::direct(
            Quota::per_minute(rate).allow_burst(burst),
        ))
    });
    let connections = match transport {
        Transport::Relay(_) => config.smtp.connections,
        Transport::Outbox(_) => 1,
    };
    // Jobs ready ahead of the connections. Unthrottled, a pass of the
    // dispatcher (a snapshot and a scan past every task still out) then
    // serves many messages; throttled, jobs would only wait longer.
    let ready = match limiter {
        None => (connections * 2).max(LOOKAHEAD),
        Some(_) => connections * 2,
    };
    let journal = replay_journal(&muster)?;
    Ok(tokio::spawn(async move {
        let (job_tx, job_rx) = mpsc::channel::<Job>(ready);
        let job_rx = Arc::new(AsyncMutex::new(job_rx));
        let (recorder, stages) = Recorder::start(muster.clone(), journal, stop.clone());
        let mut senders = Vec::new();
        for _ in 0..connections {
            let courier = Courier {
                muster: muster.clone(),
                composer: composer.clone(),
                limiter: limiter.clone(),
                jobs: job_rx.clone(),
                recorder: recorder.clone(),
                stop: stop.clone(),
            };
            senders.push(match &transport {
                Transport::Relay(relay) => tokio::spawn(relay_loop(courier, (**relay).clone())),
                Transport::Outbox(outbox) => tokio::spawn(outbox_loop(courier, outbox.clone())),
            });
        }
        dispatch_loop(muster.clone(), job_tx, stop).await;
        for s in senders {
            let _ = s.await;
        }
        // The journal and the store's stage take what they hold, then end.
        let _ = tokio::task::spawn_blocking(move || recorder.finish(stages)).await;
        // Whatever was handed out but not sent stays queued for next time.
        muster.queue.forget_out();
        tracing::info!("delivery worker stopped");
    }))
}

async fn dispatch_loop(
    muster: Arc<Muster>,
    jobs: mpsc::Sender<Job>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        muster.metrics.beat();
        // Wait for room for a handful of jobs, then fetch them in one pass:
        // a pass per job would rescan the tasks already handed out.
        let want = jobs.max_capacity().div_ceil(2);
        let permits = tokio::select! {
            permits = jobs.reserve_many(want) => match permits {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let fresh = match next_jobs(&muster, want) {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the delivery queue");
                Vec::new()
            }
        };
        if fresh.is_empty() {
            drop(permits);
            tokio::select! {
                _ = muster.queue.woken() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        for (job, permit) in fresh.into_iter().zip(permits) {
            permit.send(job);
        }
    }
}

/// Due tasks not already handed out, with what is needed to send them.
fn next_jobs(muster: &Muster, room: usize) -> Result<Vec<Job>, StoreError> {
    // The snapshot is taken while the set of handed-out tasks is held: the
    // committer takes a task out of the set only after its commit, so a
    // task missing from the set is either not yet handed out or already
    // gone from this snapshot.
    muster.queue.hand_out(|out, after| {
        let jobs = (|| {
            let view = muster.store.read()?;
            let due = view.due_tasks_after(after, muster.now(), room, out)?;
            let mut jobs = Vec::new();
            for (due, task) in due {
                let payload = match &task.kind {
                    TaskKind::Invite { invite_id } => match view.invite(invite_id)? {
                        Some(i) => Payload::Invite(Box::new(i)),
                        None => Payload::Gone,
                    },
                    TaskKind::Reminder { .. } => Payload::Reminder,
                    TaskKind::Notice { .. } => Payload::Notice,
                    TaskKind::Digest { .. } => Payload::Digest,
                    TaskKind::PasswordReset {
                        token_id,
                        email,
                        expires_at,
                    } => Payload::Reset {
                        email: email.clone(),
                        token_id: token_id.clone(),
                        expires_at: *expires_at,
                    },
                    TaskKind::Welcome { mailbox, .. } => match view.created_mailbox(mailbox)? {
                        Some(_) => Payload::Welcome,
                        None => Payload::Gone,
                    },
                };
                jobs.push(Job { due, task, payload });
            }
            Ok(jobs)
        })();
        let keys = match &jobs {
            Ok(jobs) => jobs.iter().map(|j| (j.due, j.task.id.clone())).collect(),
            Err(_) => Vec::new(),
        };
        (jobs, keys)
    })
}

fn compose(
    muster: &Muster,
    composer: &Composer,
    job: &Job,
) -> Result<(Outgoing, Option<u32>, String), Outcome> {
    let now = muster.now();
    match &job.payload {
        Payload::Invite(invite) => {
            let token = muster
                .invite_token(invite)
                .map_err(|e| Outcome::Unsendable(e.to_string()))?;
            let msg = composer
                .invite(invite, &muster.invite_link(&token), now)
                .map_err(|e| Outcome::Unsendable(e.to_string()))?;
            let name = if invite.generation == 0 {
                invite.id.clone()
            } else {
                format!("{}-r{}", invite.id, invite.generation)
            };
            Ok((msg, Some(invite.generation), name))
        }
        Payload::Reminder => {
            let TaskKind::Reminder {
                invite_id,
                generation,
                number,
            } = &job.task.kind
            else {
                return Err(Outcome::Unsendable("not a reminder task".into()));
            };
            // Read and checked now, as it goes out: not when it was queued.
            let invite = muster
                .store
                .read()
                .and_then(|v| v.invite(invite_id))
                .map_err(|e| {
                    Outcome::Trouble(crate::domain::delivery::Trouble::Write(e.to_string()))
                })?
                .ok_or_else(|| {
                    Outcome::Skipped(format!("reminder {number} not sent: the invite is gone"))
                })?;
            let invite = &invite;
            if let Some(reason) = invite.reminder_unwanted(*generation, now) {
                return Err(Outcome::Skipped(format!(
                    "reminder {number} not sent: {reason}"
                )));
            }
            let token = muster
                .invite_token(invite)
                .map_err(|e| Outcome::Unsendable(e.to_string()))?;
            let msg = composer
                .reminder(invite, *number, &muster.invite_link(&token), now)
                .map_err(|e| Outcome::Unsendable(e.to_string()))?;
            let name = format!("{}-reminder{number}", invite.id);
            Ok((msg, None, name))
        }
        Payload::Notice => {
            let TaskKind::Notice {
                to,
                event,
                invite_id,
            } = &job.task.kind
            else {
                return Err(Outcome::Unsendable("not a notice task".into()));
            };
            let unreadable = |e: StoreError| {
                Outcome::Trouble(crate::domain::delivery::Trouble::Write(e.to_string()))
            };
            let view = muster.store.read().map_err(unreadable)?;
            let invite = view
                .invite(invite_id)
                .map_err(unreadable)?
                .ok_or_else(|| Outcome::Skipped("the invite is gone".into()))?;
            // A failure notice names every failed invite of the batch.
            let failed = match event {
                NoticeEvent::Failed => view
                    .invites_of_batch(&invite.batch_id)
                    .map_err(unreadable)?
                    .into_iter()
                    .filter(|i| i.undeliverable(now))
                    .collect(),
                _ => Vec::new(),
            };
            let words = notices::notice_words(*event, &invite, &failed, muster.config.public_url());
            let id = format!("{}.{}.{}", event.name(), invite.id, invite.generation);
            let msg = composer
                .notice(to, &words, &id, now)
                .map_err(|e| Outcome::Unsendable(e.to_string()))?;
            Ok((msg, None, format!("notice-{}", id.replace('.', "-"))))
        }
        Payload::Digest => {
            let TaskKind::Digest { to, since, until } = &job.task.kind else {
                return Err(Outcome::Unsendable("not a digest task".into()));
            };
            let digest = muster
                .store
                .read()
                .and_then(|v| muster.digest(&v, to, *since, *until))
                .map_err(|e| {
                    Outcome::Trouble(crate::domain::delivery::Trouble::Write(e.to_string()))
                })?;
            if digest.is_empty() {
                return Err(Outcome::Skipped("nothing to report".into()));
            }
            let values = notices::digest_values(&digest, muster.config.public_url(), *until);
            use sha2::Digest as _;
            let hash = crate::store::hex_hash(&sha2::Sha256::digest(to.as_bytes()).into());
            let id = format!("{}.{}", until.date(), &hash[..12]);
            let msg = composer
                .digest(to, &values, &id, now)
                .map_err(|e| Outcome::Unsendable(e.to_string()))?;
            Ok((msg, None, format!("digest-{}", id.replace('.', "-"))))
        }
        Payload::Reset {
            email,
            token_id,
            expires_at,
        } => {
            let token = muster.token(TokenPurpose::PasswordReset, token_id, 0);
            let link = format!(
                "{}/admin/reset/{}",
                muster.config.public_url(),
                token.as_str()
            );
            let msg = composer
                .reset(email, token_id, &link, *expires_at, now)
                .map_err(|e| Outcome::Unsendable(e.to_string()))?;
            Ok((msg, None, format!("reset-{token_id}")))
        }
        Payload::Welcome => {
            let TaskKind::Welcome {
                mailbox,
                display_name,
                locale,
                inviter,
            } = &job.task.kind
            else {
                return Err(Outcome::Unsendable("not a welcome task".into()));
            };
            let about = WelcomeText {
                mailbox,
                display_name: display_name.as_deref(),
                locale: locale.as_deref(),
                inviter: inviter.as_deref(),
            };
            let msg = composer
                .welcome(&about, now)
                .map_err(|e| Outcome::Unsendable(e.to_string()))?;
            Ok((
                msg,
                None,
                format!("welcome-{}", job.task.queued_at.unix_timestamp()),
            ))
        }
        Payload::Gone => Err(Outcome::Unsendable(
            "what it was about no longer exists".into(),
        )),
    }
}

/// What one connection task shares with the others.
struct Courier {
    muster: Arc<Muster>,
    composer: Arc<Composer>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    jobs: Arc<AsyncMutex<mpsc::Receiver<Job>>>,
    recorder: Arc<Recorder>,
    stop: watch::Receiver<bool>,
}

/// A job composed and ready to go out.
struct Ready {
    task: Task,
    generation: Option<u32>,
    name: String,
    msg: Outgoing,
}

fn done(outcome: Outcome, generation: Option<u32>, task: Task) -> Done {
    Done {
        task,
        generation,
        outcome,
        ack: None,
    }
}

impl Courier {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// A job the dispatcher has ready now, if any.
    fn ready_job(&self) -> Option<Job> {
        self.jobs.try_lock().ok()?.try_recv().ok()
    }

    /// The next job, waiting for it up to `IDLE`: `Err` when none came,
    /// `Ok(None)` when the dispatcher is gone.
    async fn next_job(&self) -> Result<Option<Job>, ()> {
        let mut rx = self.jobs.lock().await;
        tokio::time::timeout(IDLE, rx.recv()).await.map_err(|_| ())
    }

    /// The job's email, unless it was revoked or resent since it was
    /// handed out (nothing to send) or cannot be composed (recorded).
    fn prepare(&self, job: Job) -> Option<Ready> {
        if self.muster.queue.take_withdrawn(&job.task.id) {
            return None;
        }
        match compose(&self.muster, &self.composer, &job) {
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
async fn outbox_loop(s: Courier, outbox: Outbox) {
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

/// Sends jobs over one reused connection to the relay. A message goes out
/// whole but its end (`begin`); its end waits until the previous message's
/// verdict is durable, and carries the next message's envelope when a job
/// is ready then, so one round trip ends one message and opens the next.
async fn relay_loop(s: Courier, relay: Relay) {
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
        let job = match held.take().or_else(|| s.ready_job()) {
            Some(job) => Some(job),
            // A begun message is ended at once rather than held open.
            None if begun.is_some() => None,
            None => {
                // No telling how long the next job takes: learn now
                // whether the verdict was recorded.
                if let Some(t) = previous.take()
                    && !t.durable().await
                {
                    break;
                }
                match s.next_job().await {
                    Ok(Some(job)) => Some(job),
                    Ok(None) => break,
                    Err(()) => {
                        if let Some(c) = conn.take() {
                            c.quit().await;
                        }
                        continue;
                    }
                }
            }
        };
        // The rate limit protects the relay and its reputation. With a
        // message begun, the next one rides along only if its turn is now.
        let job = match (job, &s.limiter) {
            (Some(job), Some(l)) if begun.is_some() => {
                if l.check().is_ok() {
                    Some(job)
                } else {
                    held = Some(job);
                    None
                }
            }
            (Some(job), Some(l)) => {
                l.until_ready().await;
                Some(job)
            }
            (job, _) => job,
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
            if !recorded(&mut previous).await {
                // The previous outcome was not recorded (the store takes
                // no writes): ending this message, or any later one, could
                // send it twice after a restart. The relay discards a
                // message left without its end.
                return;
            }
            let flight = s.recorder.ending();
            match c.finish(next.as_ref().map(|n| &n.msg)).await {
                Ok(outcome) if Verdict::of(&outcome).is_some() => {
                    let d = done(outcome, b.generation, b.task);
                    previous = Some(s.recorder.submit(d, flight));
                }
                Ok(outcome) => s.recorder.report(done(outcome, b.generation, b.task)),
                Err(f) => {
                    conn = None;
                    s.recorder.report(done(f.outcome, b.generation, b.task));
                }
            }
        }
        let Some(n) = next else { continue };
        if conn.is_none() {
            match relay.connect().await {
                Ok(c) => conn = Some(c),
                Err(outcome) => {
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
        && recorded(&mut previous).await
    {
        let flight = s.recorder.ending();
        match c.finish(None).await {
            Ok(outcome) if Verdict::of(&outcome).is_some() => {
                previous = Some(
                    s.recorder
                        .submit(done(outcome, b.generation, b.task), flight),
                );
            }
            Ok(outcome) => s.recorder.report(done(outcome, b.generation, b.task)),
            Err(f) => {
                conn = None;
                s.recorder.report(done(f.outcome, b.generation, b.task));
            }
        }
    }
    recorded(&mut previous).await;
    if let Some(c) = conn.take() {
        c.quit().await;
    }
}

/// Waits until the previous verdict is durable: false when it cannot be.
async fn recorded(previous: &mut Option<Ticket>) -> bool {
    match previous.take() {
        Some(t) => t.durable().await,
        None => true,
    }
}

/// Applies what the journal holds and the store does not (a crash came
/// between the two), then empties it.
fn replay_journal(muster: &Muster) -> Result<Journal, MailError> {
    let (mut journal, found) = Journal::open(&muster.config.data_dir.join("delivery.journal"))?;
    if found.is_empty() {
        return Ok(journal);
    }
    let applied = muster.store.write(|w| -> Result<usize, StoreError> {
        let mut applied = 0;
        for e in &found {
            // Applied already when the task is gone or was tried since.
            let pending = w
                .task(&e.task.id)?
                .is_some_and(|t| t.attempts == e.task.attempts);
            if pending {
                let done = Done {
                    task: e.task.clone(),
                    generation: e.generation,
                    outcome: e.verdict.outcome(),
                    ack: None,
                };
                super::outcomes::record(muster, w, &done)?;
                applied += 1;
            }
        }
        Ok(applied)
    })?;
    journal.clear()?;
    tracing::info!(
        entries = found.len(),
        applied,
        "recorded the outcomes the delivery journal held"
    );
    Ok(journal)
}
