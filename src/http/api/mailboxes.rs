//! Mailboxes: the list, capacity, settings for the wizard, and bulk
//! creation (`mailboxes:bulk` for automation, `creations` for the wizard).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::{ApiResponse, OpenApi, Tags};

use super::auth::{AdminAuth, Auth, Principal};
use super::invites::blocking;
use super::types::*;
use super::{ApiError, idempotency_key, request_hash};
use crate::domain::roster::{CreationRow, parse_creation_roster};
use crate::http::HttpState;
use crate::service::{
    CreatedMailboxes, CreationRequest, IdempotencyKey, Muster, RowLimit, ServiceError,
};
use crate::store::KeyState;

#[derive(Tags)]
enum Tag {
    /// Mailboxes, capacity and bulk creation.
    Mailboxes,
}

pub struct MailboxesApi;

#[derive(ApiResponse)]
pub enum CreationResponse {
    /// Created; generated passwords are in this response only.
    #[oai(status = 201)]
    Created(Json<MailboxesCreated>),
    /// `validate_only=true`: the preview; nothing was created.
    #[oai(status = 200)]
    Preview(Json<CreationPreviewBody>),
}

fn created_body(c: &CreatedMailboxes) -> MailboxesCreated {
    MailboxesCreated {
        batch_id: c.batch_id.clone(),
        mailboxes: c
            .mailboxes
            .iter()
            .map(|m| CreatedMailboxBody {
                index: m.index as u32,
                mailbox: m.mailbox.clone(),
                storage_allocation_mb: m.storage_allocation_mb,
                generated_password: m.generated_password.clone(),
            })
            .collect(),
        skipped_rows: c.preview.flagged_rows as u32,
    }
}

/// Creates the mailboxes, or answers a replay (without the generated
/// passwords, which are never kept).
fn create(
    muster: &Muster,
    req: &CreationRequest<'_>,
    key: Option<IdempotencyKey>,
) -> Result<MailboxesCreated, ApiError> {
    muster.answer_idempotent(
        key.as_ref(),
        || muster.create_mailboxes_keyed(req, key.as_ref()),
        |created| {
            let body = created_body(created);
            // Generated passwords are shown once and never stored.
            let mut kept = body.clone();
            for m in &mut kept.mailboxes {
                m.generated_password = None;
            }
            let kept = kept.to_json().map(|v| v.to_string()).unwrap_or_default();
            (body, kept)
        },
        |state| match state {
            KeyState::Answered { body } => {
                let value = serde_json::from_str::<serde_json::Value>(body).ok();
                MailboxesCreated::parse_from_json(value)
                    .map_err(|e| ApiError::internal(format!("a kept answer is unreadable: {e:?}")))
            }
            KeyState::Claimed { subject } => Err(ApiError::conflict(
                "already_created",
                format!("this Idempotency-Key already created batch {subject}"),
            )),
        },
    )
}

fn key_for(principal: &Principal, key: Option<String>, hash: String) -> Option<IdempotencyKey> {
    key.map(|key| IdempotencyKey::new(principal.key(), key, hash))
}

#[OpenApi(tag = "Tag::Mailboxes")]
impl MailboxesApi {
    /// The domain's mailboxes on the mail server, with their allocations.
    /// `q` matches part of the address or name; `sort` is `address` (the
    /// default), `allocation` (largest first) or `created` (newest first).
    #[oai(path = "/mailboxes", method = "get", operation_id = "list_mailboxes")]
    async fn list(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        /// A hosted domain; may be left out when only one is hosted.
        domain: Query<Option<String>>,
        #[oai(validator(max_length = 320))] q: Query<Option<String>>,
        sort: Query<Option<MailboxSort>>,
    ) -> Result<Json<MailboxList>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            let domain = muster.resolve_domain(domain.0.as_deref())?;
            let host = muster.host_index()?;
            let view = muster.view()?;
            let wanted = q.0.map(|q| q.trim().to_lowercase()).unwrap_or_default();
            let mut mailboxes = Vec::new();
            for m in host.mailboxes_in(domain.as_str()) {
                let record = view
                    .created_mailbox(&m.address)
                    .map_err(ServiceError::from)?;
                let name = record.as_ref().and_then(|r| r.display_name.clone());
                if !wanted.is_empty()
                    && !m.address.contains(&wanted)
                    && !name
                        .as_deref()
                        .is_some_and(|n| n.to_lowercase().contains(&wanted))
                {
                    continue;
                }
                mailboxes.push(MailboxBody {
                    address: m.address,
                    storage_allocation_mb: m.quota_mb,
                    dedicated_mb: record.as_ref().and_then(|r| r.storage_allocation_mb),
                    suspended: m.suspended,
                    created_by_muster: record.is_some(),
                    created_at: record.as_ref().map(|r| rfc3339(r.created_at)),
                    display_name: name,
                });
            }
            match sort.0.unwrap_or(MailboxSort::Address) {
                MailboxSort::Address => {}
                MailboxSort::Allocation => {
                    mailboxes.sort_by_key(|m| std::cmp::Reverse(m.storage_allocation_mb))
                }
                MailboxSort::Created => mailboxes.sort_by(|a, b| b.created_at.cmp(&a.created_at)),
            }
            Ok(Json(MailboxList {
                domain: domain.to_string(),
                mailboxes,
            }))
        })
        .await
    }

    /// Caps and the storage pool: what is used and what is left.
    #[oai(path = "/capacity", method = "get", operation_id = "get_capacity")]
    async fn capacity(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
    ) -> Result<Json<CapacityOverview>, ApiError> {
        let state = state.0.clone();
        blocking(&state, |muster| {
            Ok(Json(CapacityOverview::of(
                &muster.capacities()?,
                muster.config.storage_pool_mb,
            )))
        })
        .await
    }

    /// Domains, limits and expiry choices, for forms.
    #[oai(path = "/settings", method = "get", operation_id = "get_settings")]
    async fn settings(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
    ) -> Result<Json<Settings>, ApiError> {
        let c = &state.0.muster.config;
        Ok(Json(Settings {
            organisation: c.organisation.clone(),
            domains: c
                .hosted_domains()
                .iter()
                .map(|(d, _)| d.to_string())
                .collect(),
            default_expiry: c.default_expiry().to_string(),
            max_expiry: c.invites.max_expiry.to_string(),
            reminders: c.invites.reminders.clone(),
            webhook_events: crate::domain::webhook::EventKind::ALL
                .iter()
                .map(|e| e.name().to_string())
                .collect(),
            batch_limit: c.invites.batch_limit as u32,
            api_call_limit: c.invites.api_call_limit as u32,
            upload_limit_bytes: c.invites.upload_limit_bytes as u64,
            password_min_length: c.password_policy.min_length as u32,
            outbox_dir: c
                .writes_outbox()
                .then(|| c.outbox_dir().display().to_string()),
        }))
    }

    /// Create up to 100 mailboxes with passwords (given or generated), all
    /// or nothing; flagged items give 422 and nothing is created.
    #[oai(
        path = "/mailboxes__bulk",
        method = "post",
        operation_id = "create_mailboxes_bulk"
    )]
    async fn bulk(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        body: Json<MailboxesBulkRequest>,
        #[oai(default)] validate_only: Query<bool>,
        #[oai(name = "Idempotency-Key")] idempotency: Header<Option<String>>,
    ) -> Result<CreationResponse, ApiError> {
        let key = idempotency_key(idempotency.0.as_deref())?;
        let hash = request_hash(&body.0);
        let state = state.0.clone();
        let req = body.0;
        blocking(&state, move |muster| {
            let rows: Vec<CreationRow> = req.items.iter().map(CreationItem::to_row).collect();
            if validate_only.0 {
                let preview =
                    muster.preview_creation(req.domain.as_deref(), &rows, RowLimit::Call)?;
                return Ok(CreationResponse::Preview(Json(CreationPreviewBody::of(
                    &preview, &rows,
                ))));
            }
            let actor = auth.0.actor();
            let creation = CreationRequest {
                domain: req.domain.as_deref(),
                rows: &rows,
                only_clean: false,
                actor: &actor,
                limit: RowLimit::Call,
            };
            create(muster, &creation, key_for(&auth.0, key, hash))
                .map(|b| CreationResponse::Created(Json(b)))
        })
        .await
    }

    /// Preview a bulk-creation CSV or rows (up to 500). Creates nothing.
    #[oai(
        path = "/previews/creations",
        method = "post",
        operation_id = "preview_creation"
    )]
    async fn preview(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        body: Json<CreationPreviewRequest>,
    ) -> Result<Json<CreationPreviewBody>, ApiError> {
        let state = state.0.clone();
        let req = body.0;
        blocking(&state, move |muster| {
            let limit = muster.row_limit(RowLimit::Batch);
            let rows = match (&req.text, &req.rows) {
                (Some(text), None) => {
                    if text.len() > muster.config.invites.upload_limit_bytes {
                        return Err(ApiError::unprocessable(
                            "too_large",
                            "the CSV is larger than the upload limit",
                            None,
                        ));
                    }
                    parse_creation_roster(text.as_bytes(), limit).map_err(ServiceError::from)?
                }
                (None, Some(rows)) => rows.iter().map(CreationRowBody::to_row).collect(),
                _ => {
                    return Err(ApiError::unprocessable(
                        "text_or_rows",
                        "send either `text` (CSV) or `rows`",
                        None,
                    ));
                }
            };
            let preview = muster.preview_creation(req.domain.as_deref(), &rows, RowLimit::Batch)?;
            Ok(Json(CreationPreviewBody::of(&preview, &rows)))
        })
        .await
    }

    /// Create mailboxes from the web wizard (up to 500 rows; admin session).
    #[oai(
        path = "/creations",
        method = "post",
        operation_id = "create_mailboxes"
    )]
    async fn creations(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<HttpState>>,
        body: Json<CreationRequestBody>,
        #[oai(name = "Idempotency-Key")] idempotency: Header<Option<String>>,
    ) -> Result<CreationResponse, ApiError> {
        let key = idempotency_key(idempotency.0.as_deref())?;
        let hash = request_hash(&body.0);
        let state = state.0.clone();
        let req = body.0;
        blocking(&state, move |muster| {
            let rows: Vec<CreationRow> = req.rows.iter().map(CreationRowBody::to_row).collect();
            let actor = auth.0.actor();
            let creation = CreationRequest {
                domain: req.domain.as_deref(),
                rows: &rows,
                only_clean: req.only_clean,
                actor: &actor,
                limit: RowLimit::Batch,
            };
            create(muster, &creation, key_for(&auth.0, key, hash))
                .map(|b| CreationResponse::Created(Json(b)))
        })
        .await
    }
}
