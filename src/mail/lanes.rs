//! Direct delivery's router: jobs are grouped by destination domain into
//! lanes, and each lane gets connections of its own (up to
//! `smtp.direct.connections_per_domain`, within `smtp.connections` in all),
//! so messages to one domain share connections and one slow or throttled
//! domain holds up no other: when every connection is in use and a domain
//! has none, a courier that has had its turn gives its connection up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use governor::DefaultKeyedRateLimiter;
use tokio::sync::{Mutex as AsyncMutex, mpsc};
use tokio::task::JoinHandle;

use super::courier::{Courier, LaneTurn, Link, Pace, connection_loop};
use super::direct::Direct;
use super::worker::{Job, Payload};
use crate::service::Muster;
use crate::store::TaskKind;

/// Jobs held in lanes at most; beyond, the router takes no more from the
/// dispatcher until the lanes drain (tasks stay in the durable queue). A
/// job is a task and its invite (under a kilobyte): room for twenty
/// 500-invite batches to throttled providers before other domains wait.
const MOST_HELD: usize = 10_000;

struct Lane {
    tx: mpsc::Sender<Job>,
    rx: LaneJobs,
    /// Jobs sent to the lane and not yet taken by a courier.
    waiting: Arc<AtomicUsize>,
    couriers: usize,
    /// When a courier last started for it: a lane never served, then the
    /// one served longest ago, gets a free connection first.
    served: Option<Instant>,
}

/// The jobs a lane's couriers share.
pub(super) type LaneJobs = Arc<AsyncMutex<mpsc::Receiver<Job>>>;

/// Makes a courier for a lane: its jobs, its place among the lanes, its pace.
pub(super) type MakeCourier = Box<dyn Fn(LaneJobs, LaneTurn, Pace) -> Courier + Send>;

/// What the router needs to start a lane's courier.
pub(super) struct LaneKit {
    pub make: MakeCourier,
    pub direct: Arc<Direct>,
    pub pace: Pace,
    pub per_domain: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    pub per_domain_connections: usize,
    pub connections: usize,
    /// The recorder could not make a verdict durable: no new connection.
    pub broken: Arc<AtomicBool>,
}

/// Tells the router a courier ended, also when it panicked (its slot
/// would otherwise stay taken).
struct Ended(mpsc::UnboundedSender<String>, String);

impl Drop for Ended {
    fn drop(&mut self) {
        let _ = self.0.send(std::mem::take(&mut self.1));
    }
}

/// Routes jobs until the dispatcher is gone, then waits for the lanes'
/// couriers to finish.
pub(super) async fn route(muster: Arc<Muster>, mut jobs: mpsc::Receiver<Job>, kit: LaneKit) {
    let mut lanes: HashMap<String, Lane> = HashMap::new();
    let (ended_tx, mut ended) = mpsc::unbounded_channel::<String>();
    let mut running: Vec<JoinHandle<()>> = Vec::new();
    let mut open = 0usize;
    let mut dispatcher_gone = false;
    let starving = Arc::new(AtomicUsize::new(0));
    loop {
        let held: usize = lanes
            .values()
            .map(|l| l.waiting.load(Ordering::SeqCst))
            .sum();
        let take = !dispatcher_gone && held < MOST_HELD;
        tokio::select! {
            job = jobs.recv(), if take => match job {
                Some(job) => {
                    let domain = destination(&muster, &job);
                    let lane = lanes.entry(domain.clone()).or_insert_with(|| {
                        // Room for every job the router may hold.
                        let (tx, rx) = mpsc::channel(MOST_HELD + 1);
                        Lane { tx, rx: Arc::new(AsyncMutex::new(rx)), waiting: Arc::new(AtomicUsize::new(0)), couriers: 0, served: None }
                    });
                    lane.waiting.fetch_add(1, Ordering::SeqCst);
                    if lane.tx.send(job).await.is_err() {
                        lane.waiting.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                None => dispatcher_gone = true,
            },
            Some(domain) = ended.recv() => {
                open -= 1;
                if let Some(lane) = lanes.get_mut(&domain) {
                    lane.couriers -= 1;
                    if lane.couriers == 0 && lane.waiting.load(Ordering::SeqCst) == 0 {
                        lanes.remove(&domain);
                    }
                }
            }
            // Held jobs drain without telling the router: look again soon.
            _ = tokio::time::sleep(Duration::from_millis(20)), if !take && !dispatcher_gone => {}
        }
        if dispatcher_gone && open == 0 {
            break;
        }
        if dispatcher_gone || kit.broken.load(Ordering::SeqCst) {
            // Stopping, or nothing more may be ended safely: the couriers
            // finish what they may and end.
            continue;
        }
        // Lanes without a courier first, then lanes with more waiting than
        // couriers, while connections are left.
        let mut wanting: Vec<(&String, &mut Lane)> = lanes
            .iter_mut()
            .filter(|(_, l)| {
                let waiting = l.waiting.load(Ordering::SeqCst);
                waiting > 0
                    && l.couriers < kit.per_domain_connections
                    && (l.couriers == 0 || waiting > l.couriers)
            })
            .collect();
        wanting.sort_by_key(|(_, l)| (l.couriers, l.served));
        for (domain, lane) in wanting {
            if open >= kit.connections {
                break;
            }
            let pace = kit.pace.for_domain(kit.per_domain.clone(), domain);
            let turn = LaneTurn {
                waiting: lane.waiting.clone(),
                starving: starving.clone(),
                since: Instant::now(),
            };
            let courier = (kit.make)(lane.rx.clone(), turn, pace);
            let link = Link::Direct {
                direct: kit.direct.clone(),
                domain: domain.clone(),
            };
            let ended = Ended(ended_tx.clone(), domain.clone());
            running.push(tokio::spawn(async move {
                let _ended = ended;
                connection_loop(courier, link).await;
            }));
            lane.couriers += 1;
            lane.served = Some(Instant::now());
            open += 1;
        }
        // Lanes left without a connection: couriers that have had their
        // turn give theirs up.
        let left_out = lanes
            .values()
            .filter(|l| l.couriers == 0 && l.waiting.load(Ordering::SeqCst) > 0)
            .count();
        starving.store(left_out, Ordering::SeqCst);
        running.retain(|h| !h.is_finished());
    }
    for h in running {
        let _ = h.await;
    }
}

/// The domain a job's email goes to ("" when it cannot be told: the job is
/// composed, fails and is recorded without a connection).
fn destination(muster: &Muster, job: &Job) -> String {
    let address = match (&job.payload, &job.task.kind) {
        (Payload::Invite(invite), _) => invite.recipient_email.to_string(),
        (_, TaskKind::Reminder { invite_id, .. }) => muster
            .store
            .read()
            .ok()
            .and_then(|v| v.invite(invite_id).ok().flatten())
            .map(|i| i.recipient_email.to_string())
            .unwrap_or_default(),
        (_, TaskKind::Notice { to, .. }) | (_, TaskKind::Digest { to, .. }) => to.clone(),
        (_, TaskKind::PasswordReset { email, .. }) => email.clone(),
        (_, TaskKind::Welcome { mailbox, .. }) => mailbox.clone(),
        _ => String::new(),
    };
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}
