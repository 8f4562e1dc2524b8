//! The webhook worker: posts each pending delivery to its endpoint, signed
//! as the Standard Webhooks specification says (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature`), at least once: a delivery
//! stays pending until its endpoint answers 2xx, tried again with doubling
//! delays until `webhooks.give_up_after`. An endpoint takes a few
//! deliveries at once, but one invite's events go one after another, in
//! order. Deliveries are made apart from invite sending, so a slow or
//! silent receiver holds up nothing but its own deliveries.

mod client;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::domain::delivery::RetryPolicy;
use crate::service::Muster;
use crate::store::{DeliveryState, StoreError, WebhookDelivery, WebhookEndpoint};

pub use client::Poster;
pub(crate) use client::describe;

/// Deliveries one endpoint takes at once. There is no limit in all: each
/// is a task waiting on its endpoint, and a cap in all would let a few
/// silent endpoints hold up the others.
const PER_ENDPOINT: usize = 4;
/// The most pending deliveries of one endpoint looked at in one pass
/// (after an outage that many may wait; each invite's first goes first).
const LOOK_AHEAD: usize = 100_000;
/// The worker looks at the queue at least this often.
const POLL: Duration = Duration::from_secs(1);

/// What an attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The HTTP status, when the endpoint answered.
    pub status: Option<u16>,
    /// Why it did not count as delivered.
    pub error: Option<String>,
}

impl Attempt {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

type Key = (String, u64);

pub fn spawn(muster: Arc<Muster>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let poster = match Poster::new(&muster.config) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "webhooks cannot be posted");
                return;
            }
        };
        let mut flights: JoinSet<(Key, Attempt)> = JoinSet::new();
        let mut out: HashSet<Key> = HashSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            let ready = {
                let m = muster.clone();
                let busy = out.clone();
                tokio::task::spawn_blocking(move || ready(&m, &busy))
                    .await
                    .unwrap_or_else(|e| {
                        Err(StoreError::Open {
                            path: Default::default(),
                            message: e.to_string(),
                        })
                    })
            };
            match ready {
                Ok(list) => {
                    for (endpoint, delivery) in list {
                        let key = (endpoint.id.clone(), delivery.seq);
                        out.insert(key.clone());
                        let secret = muster.webhook_secret(&endpoint);
                        let poster = poster.clone();
                        // The moment of sending, as the receiver's clock
                        // checks it: the wall clock, whatever Muster's is.
                        let sent_at = OffsetDateTime::now_utc();
                        flights.spawn(async move {
                            let attempt = poster.post(&endpoint, &delivery, &secret, sent_at).await;
                            (key, attempt)
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read the webhook queue"),
            }
            tokio::select! {
                done = flights.join_next(), if !flights.is_empty() => {
                    if let Some(Ok((key, attempt))) = done {
                        let m = muster.clone();
                        let k = key.clone();
                        let _ = tokio::task::spawn_blocking(move || record(&m, &k, &attempt)).await;
                        out.remove(&key);
                    }
                }
                _ = muster.webhooks_changed.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
        // Posts still in flight stay pending: tried again at the next start.
        flights.abort_all();
        tracing::info!("webhook worker stopped");
    })
}

/// Deliveries due now that may go: per endpoint, in order, skipping those
/// out already, at most [`PER_ENDPOINT`] out at once, and none about a
/// subject whose earlier delivery is still pending.
fn ready(
    muster: &Muster,
    out: &HashSet<Key>,
) -> Result<Vec<(WebhookEndpoint, WebhookDelivery)>, StoreError> {
    let view = muster.store.read()?;
    let now = crate::store::millis(muster.now());
    let mut list = Vec::new();
    for endpoint in view.webhooks()? {
        let mut busy = out.iter().filter(|(e, _)| *e == endpoint.id).count();
        let mut waiting: HashSet<String> = HashSet::new();
        for p in view.pending_webhook_deliveries(&endpoint.id, LOOK_AHEAD)? {
            if busy >= PER_ENDPOINT {
                break;
            }
            // An earlier delivery about the same invite goes first.
            if !waiting.insert(p.subject.clone()) {
                continue;
            }
            if out.contains(&(endpoint.id.clone(), p.seq)) || p.due_ms > now {
                continue;
            }
            if let Some(d) = view.webhook_delivery(&endpoint.id, p.seq)? {
                list.push((endpoint.clone(), d));
                busy += 1;
            }
        }
    }
    Ok(list)
}

/// Records an attempt: delivered, tried again later, or given up.
fn record(muster: &Muster, key: &Key, attempt: &Attempt) {
    let w = &muster.config.webhooks;
    let policy = RetryPolicy {
        initial: time::Duration::seconds(w.retry_initial_secs as i64),
        max: time::Duration::seconds(w.retry_max_secs as i64),
        give_up_after: w.give_up_after.to_time(),
    };
    let jitter = rand::rng().random_range(0.75..1.25);
    let result = muster.store.write(|v| -> Result<(), StoreError> {
        // Deleted (the endpoint, or the delivery with it) meanwhile: nothing.
        let Some(mut d) = v.webhook_delivery(&key.0, key.1)? else {
            return Ok(());
        };
        if !d.state.is_pending() {
            return Ok(());
        }
        let now: OffsetDateTime = muster.now();
        d.attempts += 1;
        // Waiting behind an earlier delivery is not failing: the give-up
        // age counts from the first attempt.
        let first = *d.first_attempt_at.get_or_insert(now);
        d.last_status = attempt.status;
        d.last_error = attempt.error.clone();
        if attempt.delivered() {
            d.state = DeliveryState::Delivered;
            d.delivered_at = Some(now);
            d.next_attempt_at = None;
        } else if now - first >= policy.give_up_after {
            d.state = DeliveryState::Failed;
            d.next_attempt_at = None;
            tracing::warn!(endpoint = %d.endpoint_id, event = %d.event, msg = %d.msg_id, "gave up on a webhook delivery");
        } else {
            d.next_attempt_at = Some(now + policy.backoff(d.attempts, jitter));
        }
        v.put_webhook_delivery(&d)
    });
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot record a webhook delivery; it will be posted again");
    }
}
