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

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Mutex as AsyncMutex, mpsc, watch};
use tokio::task::JoinHandle;

use super::MailError;
use super::compose::{Composer, Outgoing, WelcomeText};
use super::courier::{Courier, Link, Pace, connection_loop, outbox_loop};
use super::direct::Direct;
use super::dkim::Signer;
use super::journal::Journal;
use super::lanes::{self, LaneKit};
use super::mta_sts::Keeping;
use super::notices;
use super::outbox::Outbox;
use super::recorder::{Done, Recorder};
use super::smtp::{Outcome, Relay};
use crate::config::SmtpMode;
use crate::domain::invite::{Invite, LinkState};
use crate::domain::token::TokenPurpose;
use crate::service::Muster;
use crate::store::{NoticeEvent, StoreError, Task, TaskKind};

/// Idle connections are closed after this long without work.
pub(super) const IDLE: Duration = Duration::from_secs(5);
/// Jobs ready for the connections when sending is unthrottled.
const LOOKAHEAD: usize = 16;
/// The dispatcher looks at the queue at least this often.
const POLL: Duration = Duration::from_secs(1);

/// What a connection needs to send one task.
pub(super) struct Job {
    /// When the task was due: with its id, its key in the queue.
    due: u64,
    pub task: Task,
    pub payload: Payload,
}

pub(super) enum Payload {
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

enum Transport {
    Relay(Box<Relay>),
    Direct(Arc<Direct>),
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
    let signer = Signer::load(&config)?.map(Arc::new);
    if let Some(s) = &signer {
        tracing::info!(domain = %s.domain(), selectors = %s.selectors().join(", "), "signing outgoing email with DKIM");
    }
    let transport = match config.smtp_mode() {
        SmtpMode::Relay => {
            let relay = Relay::from_config(&config)
                .map_err(MailError::Relay)?
                .ok_or_else(|| MailError::Relay("smtp.host is not set".into()))?;
            tracing::info!(relay = %relay.address, connections = config.smtp.connections, "sending invites through the SMTP relay");
            Transport::Relay(Box::new(relay))
        }
        SmtpMode::Direct => {
            let dns = muster.dns()?;
            tracing::info!(resolvers = %dns.servers, connections = config.smtp.connections, per_domain = config.smtp.direct.connections_per_domain, "sending straight to each recipient domain's mail servers");
            Transport::Direct(Arc::new(Direct::from_config(
                &config,
                dns,
                Keeping::of(&muster),
            )?))
        }
        SmtpMode::Outbox => {
            let outbox = Outbox::new(config.outbox_dir());
            tracing::info!(outbox = %outbox.dir().display(), "no SMTP relay configured: invites are written as .eml files to the outbox folder");
            Transport::Outbox(outbox)
        }
    };
    let pace = Pace::overall(config.smtp.rate_per_minute, config.smtp.burst);
    let connections = match transport {
        Transport::Relay(_) | Transport::Direct(_) => config.smtp.connections,
        Transport::Outbox(_) => 1,
    };
    // Jobs ready ahead of the connections. Unthrottled, a pass of the
    // dispatcher (a snapshot and a scan past every task still out) then
    // serves many messages; throttled, jobs would only wait longer.
    let ready = if pace.is_limited() {
        connections * 2
    } else {
        (connections * 2).max(LOOKAHEAD)
    };
    let journal = replay_journal(&muster)?;
    settle_revoked(&muster);
    Ok(tokio::spawn(async move {
        let (job_tx, job_rx) = mpsc::channel::<Job>(ready);
        let (recorder, stages) = Recorder::start(muster.clone(), journal, stop.clone());
        let make = {
            let (muster, composer, recorder, stop, signer) = (
                muster.clone(),
                composer.clone(),
                recorder.clone(),
                stop.clone(),
                signer.clone(),
            );
            move |jobs, lane, pace| Courier {
                muster: muster.clone(),
                composer: composer.clone(),
                pace,
                jobs,
                recorder: recorder.clone(),
                stop: stop.clone(),
                lane,
                signer: signer.clone(),
            }
        };
        let mut senders = Vec::new();
        match &transport {
            Transport::Direct(direct) => {
                let d = &muster.config.smtp.direct;
                let kit = LaneKit {
                    make: Box::new(move |jobs, turn, pace| make(jobs, Some(turn), pace)),
                    direct: direct.clone(),
                    pace: pace.clone(),
                    per_domain: Pace::per_domain(d.rate_per_domain_per_minute, d.burst_per_domain),
                    per_domain_connections: d.connections_per_domain,
                    connections,
                    broken: recorder.broken_flag(),
                };
                senders.push(tokio::spawn(lanes::route(muster.clone(), job_rx, kit)));
            }
            Transport::Relay(relay) => {
                let job_rx = Arc::new(AsyncMutex::new(job_rx));
                for _ in 0..connections {
                    let courier = make(job_rx.clone(), None, pace.clone());
                    senders.push(tokio::spawn(connection_loop(
                        courier,
                        Link::Relay(relay.clone()),
                    )));
                }
            }
            Transport::Outbox(outbox) => {
                let job_rx = Arc::new(AsyncMutex::new(job_rx));
                let courier = make(job_rx, None, Pace::default());
                senders.push(tokio::spawn(outbox_loop(courier, outbox.clone())));
            }
        }
        dispatch_loop(muster.clone(), job_tx, stop).await;
        for s in senders {
            let _ = s.await;
        }
        // The journal and the store's stage take what they hold, then end.
        let _ = tokio::task::spawn_blocking(move || recorder.finish(stages)).await;
        // Whatever was handed out but not sent stays queued for next time;
        // a revoked invite's email that was dropped is marked not sent.
        let withdrawn: Vec<String> = muster
            .queue
            .forget_out()
            .iter()
            .filter_map(|t| Task::invite_of_task_id(t).map(str::to_string))
            .collect();
        if !withdrawn.is_empty() {
            let m = muster.clone();
            let settled = tokio::task::spawn_blocking(move || m.settle_unsent(&withdrawn)).await;
            if let Ok(Err(e)) = settled {
                tracing::error!(error = %e, "cannot mark revoked invites' emails as not sent; the next start does");
            }
        }
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

pub(super) fn compose(
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
            let name = super::outbox::invite_file(&invite.id, invite.generation);
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
            let name = super::outbox::reminder_file(&invite.id, *generation, *number as usize);
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
            // Told only while the link still works (a second try may be
            // under way: still news).
            if *event == NoticeEvent::SetupFailed
                && !matches!(
                    invite.link_state(now),
                    LinkState::Live | LinkState::Blocked | LinkState::Redeeming
                )
            {
                return Err(Outcome::Skipped(
                    "the link was used, revoked or expired since".into(),
                ));
            }
            let words = notices::notice_words(*event, &invite, &failed, muster.config.public_url());
            let mut id = format!("{}.{}.{}", event.name(), invite.id, invite.generation);
            // One invite may fail to set up for more than one reason.
            if *event == NoticeEvent::SetupFailed {
                id.push_str(&format!(".{}", crate::store::millis(job.task.queued_at)));
            }
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
            // In the fragment, as the first admin's setup link: browsers
            // never send it, so no proxy or server log holds the token.
            let link = format!(
                "{}/admin/reset#{}",
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

/// Applies what the journal holds and the store does not (a crash came
/// between the two), then empties it.
/// Revoked invites whose email was left unsettled (a revoke, a
/// connection or a worker cut short before marking it not sent) are
/// settled before sending starts: no connection holds anything yet.
fn settle_revoked(muster: &Muster) {
    let settled = muster
        .store
        .read()
        .and_then(|v| v.revoked_unsettled())
        .map_err(crate::service::ServiceError::from)
        .and_then(|ids| {
            if ids.is_empty() {
                return Ok(0);
            }
            muster.settle_unsent(&ids).map(|s| s.len())
        });
    match settled {
        Ok(0) => {}
        Ok(n) => tracing::info!(invites = n, "revoked invites' emails marked not sent"),
        Err(e) => tracing::error!(error = %e, "cannot settle revoked invites' emails"),
    }
}

fn replay_journal(muster: &Muster) -> Result<Journal, MailError> {
    let (mut journal, found) = Journal::open(&muster.config.data_dir.join("delivery.journal"))?;
    if found.is_empty() {
        return Ok(journal);
    }
    let applied = muster.store.write(|w| -> Result<usize, StoreError> {
        let mut applied = 0;
        for e in &found {
            // Applied already when the task was tried since, or is gone
            // with its outcome stored; gone with a revoke that came first,
            // the verdict is still news (the email did go, or did not).
            let pending = match w.task(&e.task.id)? {
                Some(t) => t.attempts == e.task.attempts,
                None => match Task::invite_of_task_id(&e.task.id) {
                    Some(id) => w
                        .invite(id)?
                        .is_some_and(|i| i.link == LinkState::Revoked && !i.delivery.is_final()),
                    None => false,
                },
            };
            if pending {
                let done = Done {
                    task: e.task.clone(),
                    generation: e.generation,
                    outcome: e.verdict.outcome(),
                    ack: None,
                    handoff: None,
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
