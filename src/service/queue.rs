//! The delivery queue as the worker and the operations share it: the
//! operations wake the worker when they queue mail; the worker says which
//! tasks are out being sent, so they are neither handed out twice nor
//! shown as merely queued, and tells whoever listens each invite's
//! outcome once it is recorded (the CLI's progress). A revoke or resend
//! withdraws a task that is out, so a connection that holds it (waiting
//! for the rate limit, say) drops it instead of sending a dead link.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::{Notify, broadcast};

/// An invite's delivery outcome, durable in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub invite_id: String,
    /// The delivery state's name: "sent", "deferred" or "failed".
    pub state: &'static str,
}

/// How many outcomes a slow listener may fall behind before it is told it
/// lagged (and re-reads the store).
const EVENTS: usize = 4096;

pub struct DeliveryQueue {
    changed: Notify,
    out: Mutex<Out>,
    recorded: broadcast::Sender<Recorded>,
}

#[derive(Default)]
struct Out {
    /// Task ids handed to a connection and not yet recorded.
    handed: HashSet<String>,
    /// Those of them revoked or resent since: their connection drops them.
    withdrawn: HashSet<String>,
    /// The key (due time, id) of the last task handed out since the queue
    /// last changed: every due task before it is out or recorded, so the
    /// next pass starts after it instead of passing over them all again.
    resume_after: Option<(u64, String)>,
}

impl Default for DeliveryQueue {
    fn default() -> Self {
        Self {
            changed: Notify::new(),
            out: Mutex::default(),
            recorded: broadcast::channel(EVENTS).0,
        }
    }
}

impl DeliveryQueue {
    /// Outcomes recorded from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Recorded> {
        self.recorded.subscribe()
    }

    /// Tells listeners of outcomes just committed.
    pub fn announce(&self, outcomes: impl IntoIterator<Item = Recorded>) {
        if self.recorded.receiver_count() == 0 {
            return;
        }
        for o in outcomes {
            let _ = self.recorded.send(o);
        }
    }

    /// New tasks are due: wakes the worker, whose next pass looks at the
    /// whole queue again.
    pub fn wake(&self) {
        self.lock().resume_after = None;
        self.changed.notify_one();
    }

    /// Resolves when [`DeliveryQueue::wake`] is called.
    pub async fn woken(&self) {
        self.changed.notified().await;
    }

    /// Whether the task is out with a connection.
    pub fn is_out(&self, task_id: &str) -> bool {
        self.lock().handed.contains(task_id)
    }

    /// Whether nothing is out.
    pub fn is_idle(&self) -> bool {
        self.lock().handed.is_empty()
    }

    /// The task was removed or replaced in a commit just made: if it is
    /// out, the connection holding it drops it (see [`Self::take_withdrawn`]).
    /// A replacement (same id) is not handed out while the old one is out.
    /// True when a connection held it.
    pub fn withdraw(&self, task_id: &str) -> bool {
        let mut out = self.lock();
        out.resume_after = None;
        if out.handed.contains(task_id) {
            out.withdrawn.insert(task_id.to_string());
            return true;
        }
        false
    }

    /// True when the task was withdrawn since it was handed out: it is then
    /// no longer out, and there is nothing to record for it.
    pub fn take_withdrawn(&self, task_id: &str) -> bool {
        let mut out = self.lock();
        if out.withdrawn.remove(task_id) {
            out.handed.remove(task_id);
            return true;
        }
        false
    }

    /// A task handed out goes back unsent (a connection giving way to
    /// another domain): it is handed out again on the next pass.
    pub fn release(&self, task_id: &str) {
        let mut out = self.lock();
        out.handed.remove(task_id);
        out.withdrawn.remove(task_id);
        out.resume_after = None;
        drop(out);
        self.changed.notify_one();
    }

    /// Hands out tasks: `pick` sees the set of those already out (hold it
    /// while taking a snapshot, so no task is handed out twice) and the key
    /// to start after, and returns the keys (due time, id) it hands out,
    /// in queue order.
    pub fn hand_out<T>(
        &self,
        pick: impl FnOnce(&dyn Fn(&str) -> bool, Option<(u64, &str)>) -> (T, Vec<(u64, String)>),
    ) -> T {
        let mut out = self.lock();
        let after = out.resume_after.clone();
        let (picked, keys) = pick(
            &|id| out.handed.contains(id),
            after.as_ref().map(|(due, id)| (*due, id.as_str())),
        );
        // A pass that finds nothing lets the next one look at everything.
        out.resume_after = keys.last().cloned();
        out.handed.extend(keys.into_iter().map(|(_, id)| id));
        picked
    }

    /// The tasks' outcomes are recorded: they are no longer out. Returns
    /// those withdrawn meanwhile (a revoke that found them out left their
    /// settling to this moment).
    pub fn recorded<'a>(&self, task_ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut out = self.lock();
        let mut withdrawn = Vec::new();
        for id in task_ids {
            out.handed.remove(id);
            if out.withdrawn.remove(id) {
                withdrawn.push(id.to_string());
            }
        }
        withdrawn
    }

    /// The worker stopped: whatever was out stays queued for next time.
    /// Returns the tasks withdrawn meanwhile (no connection settled them).
    pub fn forget_out(&self) -> Vec<String> {
        let mut out = self.lock();
        out.handed.clear();
        out.resume_after = None;
        out.withdrawn.drain().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }
}
