//! Webhook endpoints and their deliveries: the reads both views share and
//! the writes. Deliveries are numbered per endpoint; the pending index
//! holds each undelivered one with when it is next due and what it is
//! about (an invite), so the worker keeps each invite's events in order.

use redb::ReadableTable;
use time::OffsetDateTime;

use super::tables::*;
use super::view::{View, WriteView};
use super::{Result, WebhookDelivery, WebhookEndpoint, decode, encode, millis};

/// An undelivered delivery as the pending index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelivery {
    pub seq: u64,
    /// When it is next due, in ms.
    pub due_ms: u64,
    /// What it is about: later events about the same subject wait for it.
    pub subject: String,
}

macro_rules! webhook_reads {
    () => {
        pub fn webhooks(&self) -> Result<Vec<WebhookEndpoint>> {
            let t = self.open(WEBHOOKS)?;
            let mut out = Vec::new();
            for entry in t.iter()? {
                let (k, v) = entry?;
                out.push(decode("webhooks", k.value(), v.value())?);
            }
            Ok(out)
        }

        pub fn webhook(&self, id: &str) -> Result<Option<WebhookEndpoint>> {
            let t = self.open(WEBHOOKS)?;
            t.get(id)?
                .map(|v| decode("webhooks", id, v.value()))
                .transpose()
        }

        pub fn webhook_delivery(
            &self,
            endpoint: &str,
            seq: u64,
        ) -> Result<Option<WebhookDelivery>> {
            let t = self.open(WEBHOOK_DELIVERIES)?;
            t.get((endpoint, seq))?
                .map(|v| decode("webhook_deliveries", endpoint, v.value()))
                .transpose()
        }

        /// An endpoint's deliveries, newest first, before `before` (a seq).
        pub fn webhook_deliveries(
            &self,
            endpoint: &str,
            before: Option<u64>,
            limit: usize,
        ) -> Result<Vec<WebhookDelivery>> {
            let t = self.open(WEBHOOK_DELIVERIES)?;
            let end = before.unwrap_or(u64::MAX);
            let mut out = Vec::new();
            for entry in t.range((endpoint, 0u64)..(endpoint, end))?.rev() {
                if out.len() == limit {
                    break;
                }
                let (_, v) = entry?;
                out.push(decode("webhook_deliveries", endpoint, v.value())?);
            }
            Ok(out)
        }

        /// An endpoint's undelivered deliveries, oldest first.
        pub fn pending_webhook_deliveries(
            &self,
            endpoint: &str,
            limit: usize,
        ) -> Result<Vec<PendingDelivery>> {
            let t = self.open(WEBHOOK_PENDING)?;
            let mut out = Vec::new();
            for entry in t.range((endpoint, 0u64)..=(endpoint, u64::MAX))? {
                if out.len() == limit {
                    break;
                }
                let (k, v) = entry?;
                let (due_ms, subject) = v.value();
                out.push(PendingDelivery {
                    seq: k.value().1,
                    due_ms,
                    subject: subject.to_string(),
                });
            }
            Ok(out)
        }

        /// How many deliveries of an endpoint wait.
        pub fn pending_webhook_count(&self, endpoint: &str) -> Result<u64> {
            let t = self.open(WEBHOOK_PENDING)?;
            let mut n = 0;
            for entry in t.range((endpoint, 0u64)..=(endpoint, u64::MAX))? {
                entry?;
                n += 1;
            }
            Ok(n)
        }
    };
}

impl View {
    webhook_reads!();
}

impl WriteView {
    webhook_reads!();

    pub fn put_webhook(&self, e: &WebhookEndpoint) -> Result<()> {
        self.txn
            .open_table(WEBHOOKS)?
            .insert(e.id.as_str(), encode(e).as_slice())?;
        Ok(())
    }

    /// Removes an endpoint and every delivery of it; false when there was none.
    pub fn remove_webhook(&self, id: &str) -> Result<bool> {
        let existed = self.txn.open_table(WEBHOOKS)?.remove(id)?.is_some();
        self.txn
            .open_table(WEBHOOK_DELIVERIES)?
            .retain_in((id, 0u64)..=(id, u64::MAX), |_, _| false)?;
        self.txn
            .open_table(WEBHOOK_PENDING)?
            .retain_in((id, 0u64)..=(id, u64::MAX), |_, _| false)?;
        Ok(existed)
    }

    /// Writes a delivery and keeps the pending index in step with it.
    pub fn put_webhook_delivery(&self, d: &WebhookDelivery) -> Result<()> {
        self.txn
            .open_table(WEBHOOK_DELIVERIES)?
            .insert((d.endpoint_id.as_str(), d.seq), encode(d).as_slice())?;
        let mut pending = self.txn.open_table(WEBHOOK_PENDING)?;
        match (d.state.is_pending(), d.next_attempt_at) {
            (true, Some(at)) => {
                pending.insert(
                    (d.endpoint_id.as_str(), d.seq),
                    (millis(at), d.subject.as_str()),
                )?;
            }
            _ => {
                pending.remove((d.endpoint_id.as_str(), d.seq))?;
            }
        }
        Ok(())
    }

    /// Forgets finished deliveries made before `before` (the log keeps a
    /// week); undelivered ones stay until they are delivered or given up.
    /// Numbers rise with time, so each endpoint is read from its oldest
    /// delivery up to the first one young enough to keep.
    pub fn prune_webhook_deliveries(&self, before: OffsetDateTime) -> Result<()> {
        let cutoff = millis(before);
        let endpoints = self.webhooks()?;
        let mut table = self.txn.open_table(WEBHOOK_DELIVERIES)?;
        for endpoint in endpoints {
            let id = endpoint.id.as_str();
            let mut old = Vec::new();
            for entry in table.range((id, 0u64)..=(id, u64::MAX))? {
                let (k, v) = entry?;
                let d: WebhookDelivery = decode("webhook_deliveries", id, v.value())?;
                if millis(d.created_at) >= cutoff {
                    break;
                }
                if !d.state.is_pending() {
                    old.push(k.value().1);
                }
            }
            for seq in old {
                table.remove((id, seq))?;
            }
        }
        Ok(())
    }
}
