//! The delivery queue as the worker and the operations share it: the
//! operations wake the worker when they queue mail; the worker says which
//! tasks are out being sent, so they are neither handed out twice nor
//! shown as merely queued, and tells whoever listens each invite's
//! outcome once it is recorded (the CLI's progress).

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
    /// Task ids handed to a connection and not yet recorded.
    out: Mutex<HashSet<String>>,
    recorded: broadcast::Sender<Recorded>,
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

    /// New tasks are due: wakes the worker.
    pub fn wake(&self) {
        self.changed.notify_one();
    }

    /// Resolves when [`DeliveryQueue::wake`] is called.
    pub async fn woken(&self) {
        self.changed.notified().await;
    }

    /// Whether the task is out with a connection.
    pub fn is_out(&self, task_id: &str) -> bool {
        self.lock().contains(task_id)
    }

    /// Whether nothing is out.
    pub fn is_idle(&self) -> bool {
        self.lock().is_empty()
    }

    /// Hands out tasks: `pick` sees the set of those already out (hold it
    /// while taking a snapshot, so no task is handed out twice) and returns
    /// the ids it hands out.
    pub fn hand_out<T>(&self, pick: impl FnOnce(&dyn Fn(&str) -> bool) -> (T, Vec<String>)) -> T {
        let mut out = self.lock();
        let (picked, ids) = pick(&|id| out.contains(id));
        out.extend(ids);
        picked
    }

    /// The tasks' outcomes are recorded: they are no longer out.
    pub fn recorded<'a>(&self, task_ids: impl IntoIterator<Item = &'a str>) {
        let mut out = self.lock();
        for id in task_ids {
            out.remove(id);
        }
    }

    /// The worker stopped: whatever was out stays queued for next time.
    pub fn forget_out(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }
}
