//! Webhooks: endpoints (made in the web app or the API, their secret shown
//! once and never stored: it is derived from the link key), the events
//! queued in the same commit as the changes they tell of, the delivery log
//! and redelivery. The webhook worker (`crate::webhooks`) posts them.

use serde_json::{Value, json};
use std::sync::Arc;

use crate::domain::rfc3339;

use crate::domain::invite::Invite;
use crate::domain::webhook::{EventKind, WebhookSecret, WebhookUrl, parse_events};
use crate::store::{Actor, DeliveryState, StoreError, WebhookDelivery, WebhookEndpoint, WriteView};

use super::{InviteView, Muster, ServiceError};

/// An endpoint just made, with its secret (shown this once).
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

/// An endpoint as the list shows it.
#[derive(Debug, Clone)]
pub struct WebhookSummary {
    pub endpoint: WebhookEndpoint,
    /// Deliveries not yet taken.
    pub pending: u64,
    /// The latest delivery, if any.
    pub latest: Option<WebhookDelivery>,
}

/// The counter that numbers an endpoint's deliveries.
fn sequence(endpoint: &str) -> String {
    format!("webhook_seq:{endpoint}")
}

impl Muster {
    /// The endpoint's signing secret, derived from the link key.
    pub fn webhook_secret(&self, endpoint: &WebhookEndpoint) -> WebhookSecret {
        WebhookSecret::from_bytes(
            self.link_key
                .mac(&[b"webhook-secret", endpoint.id.as_bytes()]),
        )
    }

    /// Checks the URL and the events; nothing is saved when either is
    /// refused. The secret is returned this once.
    pub fn create_webhook(
        &self,
        url: &str,
        events: &[String],
        actor: &Actor,
    ) -> Result<NewWebhook, ServiceError> {
        let url = WebhookUrl::parse(url, &self.config.webhooks.allow_addresses)?;
        let events = parse_events(events)?;
        let endpoint = WebhookEndpoint {
            id: self.new_id(),
            url: url.as_str().to_string(),
            events: events.iter().map(|e| e.name().to_string()).collect(),
            created_at: self.now(),
            created_by: actor.clone(),
        };
        self.store.write(|w| {
            w.put_webhook(&endpoint)?;
            // No write can run beside this one: the next event reads afresh.
            self.forget_endpoints();
            self.audit(
                w,
                actor,
                "webhook.create",
                &endpoint.id,
                format!("{} for {}", endpoint.url, endpoint.events.join(", ")),
            )
        })?;
        let secret = self.webhook_secret(&endpoint).reveal();
        Ok(NewWebhook { endpoint, secret })
    }

    pub fn list_webhooks(&self) -> Result<Vec<WebhookSummary>, ServiceError> {
        let view = self.store.read()?;
        let mut out = Vec::new();
        for endpoint in view.webhooks()? {
            out.push(WebhookSummary {
                pending: view.pending_webhook_count(&endpoint.id)?,
                latest: view
                    .webhook_deliveries(&endpoint.id, None, 1)?
                    .into_iter()
                    .next(),
                endpoint,
            });
        }
        out.sort_by_key(|a| a.endpoint.created_at);
        Ok(out)
    }

    /// Removes an endpoint and its deliveries; none is posted after this.
    pub fn delete_webhook(&self, id: &str, actor: &Actor) -> Result<(), ServiceError> {
        self.store.write(|w| {
            let e = w
                .webhook(id)?
                .ok_or_else(|| ServiceError::NoWebhook(id.to_string()))?;
            w.remove_webhook(id)?;
            self.forget_endpoints();
            self.audit(w, actor, "webhook.delete", id, format!("{} removed", e.url))?;
            Ok(())
        })
    }

    /// An endpoint's deliveries, newest first, before delivery `before`.
    pub fn webhook_deliveries(
        &self,
        id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>, ServiceError> {
        let view = self.store.read()?;
        if view.webhook(id)?.is_none() {
            return Err(ServiceError::NoWebhook(id.to_string()));
        }
        Ok(view.webhook_deliveries(id, before, limit.clamp(1, 200))?)
    }

    /// Posts a delivery's event again, as a new delivery with the same
    /// `webhook-id` (receivers that already took it can tell), at the end
    /// of the endpoint's queue.
    pub fn redeliver(
        &self,
        id: &str,
        seq: u64,
        actor: &Actor,
    ) -> Result<WebhookDelivery, ServiceError> {
        let now = self.now();
        let again = self.store.write(|w| {
            if w.webhook(id)?.is_none() {
                return Err(ServiceError::NoWebhook(id.to_string()));
            }
            let old = w
                .webhook_delivery(id, seq)?
                .ok_or_else(|| ServiceError::NoDelivery(format!("{id}/{seq}")))?;
            let again = WebhookDelivery {
                seq: w.next_number(&sequence(id))?,
                created_at: now,
                state: DeliveryState::Pending,
                attempts: 0,
                first_attempt_at: None,
                next_attempt_at: Some(now),
                last_status: None,
                last_error: None,
                delivered_at: None,
                ..old
            };
            w.put_webhook_delivery(&again)?;
            self.audit(
                w,
                actor,
                "webhook.redeliver",
                id,
                format!(
                    "{} ({}) again as delivery {}",
                    again.event, again.msg_id, again.seq
                ),
            )?;
            Ok::<_, ServiceError>(again)
        })?;
        self.webhooks_changed.notify_one();
        Ok(again)
    }

    /// The endpoints, read once and kept until one is made or removed
    /// (every event asks, on the path of every message sent).
    fn endpoints(&self, w: &WriteView) -> Result<Arc<Vec<WebhookEndpoint>>, StoreError> {
        let mut cached = self
            .webhook_endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(list) = cached.as_ref() {
            return Ok(list.clone());
        }
        let list = Arc::new(w.webhooks()?);
        *cached = Some(list.clone());
        Ok(list)
    }

    fn forget_endpoints(&self) {
        *self
            .webhook_endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Queues `kind` for every endpoint that asks for it, in the caller's
    /// commit: the event is delivered if and only if the change is made.
    /// `data` is built only when some endpoint wants it.
    pub(crate) fn emit(
        &self,
        w: &WriteView,
        kind: EventKind,
        subject: &str,
        data: impl FnOnce() -> Value,
    ) -> Result<(), StoreError> {
        let endpoints = self.endpoints(w)?;
        if !endpoints.iter().any(|e| e.wants(kind.name())) {
            return Ok(());
        }
        let now = self.now();
        let payload =
            json!({"type": kind.name(), "timestamp": rfc3339(now), "data": data()}).to_string();
        let msg_id = format!("msg_{}", self.new_id());
        for endpoint in endpoints.iter().filter(|e| e.wants(kind.name())) {
            w.put_webhook_delivery(&WebhookDelivery {
                endpoint_id: endpoint.id.clone(),
                seq: w.next_number(&sequence(&endpoint.id))?,
                msg_id: msg_id.clone(),
                event: kind.name().to_string(),
                subject: subject.to_string(),
                payload: payload.clone(),
                created_at: now,
                state: DeliveryState::Pending,
                attempts: 0,
                first_attempt_at: None,
                next_attempt_at: Some(now),
                last_status: None,
                last_error: None,
                delivered_at: None,
            })?;
        }
        let worker = self.webhooks_changed.clone();
        w.after_commit(move || worker.notify_one());
        Ok(())
    }

    /// An event about an invite, with the invite as the API shows it.
    pub(crate) fn emit_invite(
        &self,
        w: &WriteView,
        kind: EventKind,
        invite: &Invite,
    ) -> Result<(), StoreError> {
        if !invite.purpose.is_setup() {
            return Ok(());
        }
        self.emit(w, kind, &invite.id, || {
            serde_json::to_value(InviteView::of(invite, self.now(), false)).unwrap_or(Value::Null)
        })
    }
}
