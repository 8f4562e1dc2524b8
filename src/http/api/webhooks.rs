//! Webhook endpoints: add one (its secret shown once), list them, remove
//! one, and each one's delivery log with "redeliver".

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use super::ApiError;
use super::auth::Auth;
use super::invites::blocking;
use super::types::rfc3339;
use crate::http::HttpState;
use crate::store::{WebhookDelivery, WebhookEndpoint};

#[derive(Tags)]
enum Tag {
    /// Events posted to your own endpoints, signed as Standard Webhooks says.
    Webhooks,
}

pub struct WebhooksApi;

#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct NewWebhookBody {
    /// An http:// or https:// URL; link-local and cloud metadata addresses
    /// are refused unless `webhooks.allow_addresses` names them.
    #[oai(validator(max_length = 2048))]
    pub url: String,
    /// The events to post, e.g. `invite.redeemed`; see `GET /settings`
    /// (`webhook_events`) for all of them.
    #[oai(validator(max_items = 20))]
    pub events: Vec<String>,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct WebhookBody {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: String,
    pub created_by: String,
    /// Deliveries not yet taken by the endpoint.
    pub pending: Option<u64>,
    /// The latest delivery's state: pending, delivered or failed.
    pub latest_state: Option<String>,
    pub latest_error: Option<String>,
}

#[derive(Object, Debug, Clone)]
pub struct CreatedWebhook {
    pub webhook: WebhookBody,
    /// The signing secret (`whsec_…`), shown this once: configure your
    /// receiver with it (any Standard Webhooks library verifies with it).
    pub secret: String,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct DeliveryBody {
    /// Its number at this endpoint; newer deliveries have larger ones.
    pub seq: u64,
    /// The `webhook-id` header: the same for a redelivery of the same event.
    pub msg_id: String,
    pub event: String,
    /// What it is about (an invite id).
    pub subject: String,
    /// pending, delivered or failed (given up).
    pub state: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    /// The JSON body as signed.
    pub payload: String,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryBody>,
    /// Pass as `before` for older ones.
    pub next_before: Option<u64>,
}

#[derive(ApiResponse)]
pub enum CreatedResponse {
    #[oai(status = 201)]
    Created(Json<CreatedWebhook>),
}

#[derive(ApiResponse)]
pub enum DeletedResponse {
    /// Removed with its deliveries.
    #[oai(status = 204)]
    Deleted,
}

fn webhook_body(e: &WebhookEndpoint) -> WebhookBody {
    WebhookBody {
        id: e.id.clone(),
        url: e.url.clone(),
        events: e.events.clone(),
        created_at: rfc3339(e.created_at),
        created_by: e.created_by.to_string(),
        pending: None,
        latest_state: None,
        latest_error: None,
    }
}

fn delivery_body(d: &WebhookDelivery) -> DeliveryBody {
    DeliveryBody {
        seq: d.seq,
        msg_id: d.msg_id.clone(),
        event: d.event.clone(),
        subject: d.subject.clone(),
        state: d.state.name().to_string(),
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        created_at: rfc3339(d.created_at),
        next_attempt_at: d.next_attempt_at.map(rfc3339),
        delivered_at: d.delivered_at.map(rfc3339),
        payload: d.payload.clone(),
    }
}

#[OpenApi(tag = "Tag::Webhooks")]
impl WebhooksApi {
    /// The webhook endpoints, oldest first, with how many deliveries wait.
    #[oai(path = "/webhooks", method = "get", operation_id = "list_webhooks")]
    async fn list(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
    ) -> Result<Json<Vec<WebhookBody>>, ApiError> {
        let state = state.0.clone();
        blocking(&state, |muster| {
            Ok(Json(
                muster
                    .list_webhooks()?
                    .iter()
                    .map(|s| WebhookBody {
                        pending: Some(s.pending),
                        latest_state: s.latest.as_ref().map(|d| d.state.name().to_string()),
                        latest_error: s.latest.as_ref().and_then(|d| d.last_error.clone()),
                        ..webhook_body(&s.endpoint)
                    })
                    .collect(),
            ))
        })
        .await
    }

    /// Add an endpoint. The answer carries its signing secret, this once.
    /// A URL that is not http(s), a refused address or an unknown event
    /// is a 422 `invalid_webhook` naming it; nothing is saved.
    #[oai(path = "/webhooks", method = "post", operation_id = "create_webhook")]
    async fn create(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        body: Json<NewWebhookBody>,
    ) -> Result<CreatedResponse, ApiError> {
        let state = state.0.clone();
        let req = body.0;
        blocking(&state, move |muster| {
            let made = muster.create_webhook(&req.url, &req.events, &auth.0.actor())?;
            Ok(CreatedResponse::Created(Json(CreatedWebhook {
                webhook: webhook_body(&made.endpoint),
                secret: made.secret,
            })))
        })
        .await
    }

    /// Remove an endpoint and its deliveries; nothing more is posted to it.
    #[oai(
        path = "/webhooks/:id",
        method = "delete",
        operation_id = "delete_webhook"
    )]
    async fn delete(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        id: Path<String>,
    ) -> Result<DeletedResponse, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            muster.delete_webhook(&id.0, &auth.0.actor())?;
            Ok(DeletedResponse::Deleted)
        })
        .await
    }

    /// An endpoint's deliveries, newest first: state, attempts, the last
    /// answer or error.
    #[oai(
        path = "/webhooks/:id/deliveries",
        method = "get",
        operation_id = "list_webhook_deliveries"
    )]
    async fn deliveries(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        id: Path<String>,
        /// `next_before` of the previous page.
        before: Query<Option<u64>>,
        /// 1 to 200 (default 50).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
    ) -> Result<Json<DeliveryPage>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            let limit = limit.0 as usize;
            let list = muster.webhook_deliveries(&id.0, before.0, limit)?;
            let next_before = (list.len() == limit)
                .then(|| list.last().map(|d| d.seq))
                .flatten();
            Ok(Json(DeliveryPage {
                deliveries: list.iter().map(delivery_body).collect(),
                next_before,
            }))
        })
        .await
    }

    /// Post a delivery's event again, as a new delivery with the same
    /// `webhook-id`.
    #[oai(
        path = "/webhooks/:id/deliveries/:seq/redeliver",
        method = "post",
        operation_id = "redeliver_webhook"
    )]
    async fn redeliver(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        id: Path<String>,
        seq: Path<u64>,
    ) -> Result<Json<DeliveryBody>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            let d = muster.redeliver(&id.0, seq.0, &auth.0.actor())?;
            Ok(Json(delivery_body(&d)))
        })
        .await
    }
}

fn default_limit() -> u32 {
    50
}
