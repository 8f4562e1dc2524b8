//! What `/metrics` and `/readyz` report that the store does not hold: the
//! delivery latency histogram and the worker's heartbeat.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Upper bounds of the delivery-latency buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [
    0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

#[derive(Debug, Default, Clone)]
pub struct Histogram {
    /// Observations at or below each bucket's bound (not cumulative).
    pub counts: [u64; LATENCY_BUCKETS.len()],
    pub over: u64,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, secs: f64) {
        match LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            Some(i) => self.counts[i] += 1,
            None => self.over += 1,
        }
        self.sum += secs;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// From queued to accepted by the relay (or written to the outbox).
    pub delivery_latency: Mutex<Histogram>,
    /// Unix seconds of the delivery worker's last pass over the queue.
    pub worker_heartbeat: AtomicI64,
}

impl Metrics {
    pub fn observe_delivery(&self, secs: f64) {
        self.delivery_latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(secs.max(0.0));
    }

    pub fn beat(&self) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.worker_heartbeat.store(now, Ordering::Relaxed);
    }

    /// Whether the worker passed over the queue within the last 30 seconds.
    pub fn worker_alive(&self) -> bool {
        let last = self.worker_heartbeat.load(Ordering::Relaxed);
        last > 0 && time::OffsetDateTime::now_utc().unix_timestamp() - last < 30
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        let mut h = Histogram::default();
        for s in [0.1, 2.0, 2.0, 100_000.0] {
            h.observe(s);
        }
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[2], 2);
        assert_eq!(h.over, 1);
        assert_eq!(h.count, 4);
    }
}
