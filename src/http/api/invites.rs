//! Invites: `mailboxes/invites:bulk`, previews, the wizard's batches, the
//! pending list, resend, revoke and copying a link.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::{ApiResponse, OpenApi, Tags};

use super::auth::{AdminAuth, Auth, Principal};
use super::types::*;
use super::{ApiError, idempotency_key, request_hash};
use crate::domain::duration::HumanDuration;
use crate::domain::roster::{InviteRow, RosterFormat};
use crate::http::HttpState;
use crate::service::{
    BatchRequest, CreatedBatch, IdempotencyKey, Muster, RosterInput, RowLimit, ServiceError,
};
use crate::store::KeyState;
use crate::store::view::InviteFilter;

#[derive(Tags)]
enum Tag {
    /// Bulk invites, the pending list and its actions.
    Invites,
}

pub struct InvitesApi;

#[derive(ApiResponse)]
pub enum BulkResponse {
    /// The batch was created; each item's invite is queued for sending.
    #[oai(status = 201)]
    Created(Json<BatchCreated>),
    /// `validate_only=true`: the preview; nothing was created.
    #[oai(status = 200)]
    Preview(Json<PreviewBody>),
}

#[derive(ApiResponse)]
pub enum CreatedResponse {
    #[oai(status = 201)]
    Created(Json<BatchCreated>),
}

/// Runs blocking service work off the async threads.
pub async fn blocking<T: Send + 'static>(
    state: &Arc<HttpState>,
    f: impl FnOnce(&Muster) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let muster = state.muster.clone();
    tokio::task::spawn_blocking(move || f(&muster))
        .await
        .map_err(ApiError::internal)?
}

pub(super) fn expiry(raw: Option<&str>) -> Result<Option<HumanDuration>, ApiError> {
    raw.map(HumanDuration::parse)
        .transpose()
        .map_err(|e| ApiError::unprocessable("invalid_expiry", e.to_string(), None))
}

fn created_body(c: &CreatedBatch, muster: &Muster) -> BatchCreated {
    BatchCreated {
        batch_id: c.batch.id.clone(),
        expires_at: c
            .invites
            .first()
            .map(|i| rfc3339(i.expires_at))
            .unwrap_or_default(),
        invites: c
            .invites
            .iter()
            .zip(c.preview.rows.iter().filter(|r| r.flags.is_empty()))
            .map(|(i, row)| {
                let v = muster.invite_view(i);
                CreatedInvite {
                    index: row.index as u32,
                    invite_id: i.id.clone(),
                    mailbox: i.mailbox.to_string(),
                    recipient_email: i.recipient_email.to_string(),
                    link_state: v.link_state.to_string(),
                    delivery_state: v.delivery_state.to_string(),
                }
            })
            .collect(),
        skipped_rows: c.preview.flagged_rows as u32,
    }
}

/// The answer to a request repeated with its Idempotency-Key: the kept
/// answer, or (when the first call stopped before keeping it) one rebuilt
/// from the batch it made.
fn replayed(muster: &Muster, state: &KeyState) -> Result<BatchCreated, ApiError> {
    let subject = match state {
        KeyState::Answered { body } => {
            let value = serde_json::from_str::<serde_json::Value>(body).ok();
            return BatchCreated::parse_from_json(value)
                .map_err(|e| ApiError::internal(format!("a kept answer is unreadable: {e:?}")));
        }
        KeyState::Claimed { subject } => subject,
    };
    let (batch, invites) = muster.batch_invites(subject)?;
    Ok(BatchCreated {
        batch_id: batch.id,
        expires_at: invites
            .first()
            .map(|i| rfc3339(i.expires_at))
            .unwrap_or_default(),
        invites: invites
            .iter()
            .enumerate()
            .map(|(n, v)| CreatedInvite {
                index: n as u32,
                invite_id: v.id.clone(),
                mailbox: v.mailbox.clone(),
                recipient_email: v.recipient_email.clone(),
                link_state: v.link_state.to_string(),
                delivery_state: v.delivery_state.to_string(),
            })
            .collect(),
        skipped_rows: 0,
    })
}

/// Creates a batch, or answers its replay, returning the body to send.
fn create(
    muster: &Muster,
    req: BatchRequest,
    key: Option<IdempotencyKey>,
) -> Result<BatchCreated, ApiError> {
    muster.answer_idempotent(
        key.as_ref(),
        || muster.create_batch_keyed(req, key.as_ref()),
        |created| {
            let body = created_body(created, muster);
            let kept = body.to_json().map(|v| v.to_string()).unwrap_or_default();
            (body, kept)
        },
        |state| replayed(muster, state),
    )
}

fn key_for(principal: &Principal, key: Option<String>, hash: String) -> Option<IdempotencyKey> {
    key.map(|key| IdempotencyKey::new(principal.key(), key, hash))
}

#[OpenApi(tag = "Tag::Invites")]
impl InvitesApi {
    /// Invite up to 100 recipients in one call.
    ///
    /// All or nothing: if any item is flagged (invalid address, duplicate,
    /// existing mailbox, pending invite, bad allocation, over the pool or the
    /// cap), the answer is 422 with every item's errors and nothing is created.
    /// `validate_only=true` returns the preview and creates nothing.
    #[oai(
        path = "/mailboxes/invites__bulk",
        method = "post",
        operation_id = "create_invites_bulk"
    )]
    async fn invites_bulk(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        body: Json<InvitesBulkRequest>,
        /// Return the preview only; create nothing.
        #[oai(default)]
        validate_only: Query<bool>,
        /// Repeat-safe key: the same key and body return the first response.
        #[oai(name = "Idempotency-Key")]
        idempotency: Header<Option<String>>,
    ) -> Result<BulkResponse, ApiError> {
        let key = idempotency_key(idempotency.0.as_deref())?;
        let hash = request_hash(&body.0);
        let state = state.0.clone();
        let req = body.0;
        blocking(&state, move |muster| {
            let rows: Vec<InviteRow> = req.items.iter().map(InviteItem::to_row).collect();
            let expires_in = expiry(req.expires_in.as_deref())?;
            if validate_only.0 {
                let window = muster.batch_expiry(expires_in)?;
                muster.reminder_plan(req.reminders.as_deref(), window)?;
                let (_, preview) = muster.preview(req.domain.as_deref(), &rows, RowLimit::Call)?;
                return Ok(BulkResponse::Preview(Json(PreviewBody::of(
                    &preview, &rows,
                ))));
            }
            let key = key_for(&auth.0, key, hash);
            let batch = BatchRequest {
                domain: req.domain,
                expires_in,
                reminders: req.reminders,
                limit: RowLimit::Call,
                ..BatchRequest::new(rows, auth.0.actor())
            };
            create(muster, batch, key).map(|b| BulkResponse::Created(Json(b)))
        })
        .await
    }

    /// Preview a pasted list, a CSV, or rows (up to 500): what each row
    /// becomes, every problem, and the capacity left. Creates nothing.
    #[oai(
        path = "/previews/invites",
        method = "post",
        operation_id = "preview_invites"
    )]
    async fn preview(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        body: Json<InvitePreviewRequest>,
    ) -> Result<Json<PreviewBody>, ApiError> {
        let state = state.0.clone();
        let req = body.0;
        blocking(&state, move |muster| {
            let limit = RowLimit::Batch;
            let rows = match (&req.text, &req.rows) {
                (Some(text), None) => {
                    if text.len() > muster.config.invites.upload_limit_bytes {
                        return Err(ApiError::PayloadTooLarge(Json(ErrorBody {
                            code: "payload_too_large".into(),
                            message: format!(
                                "the list is larger than {} bytes (invites.upload_limit_bytes)",
                                muster.config.invites.upload_limit_bytes
                            ),
                            errors: None,
                        })));
                    }
                    let format = match req.format {
                        Some(RosterFormatBody::Lines) => RosterFormat::Lines,
                        _ => RosterFormat::Csv,
                    };
                    muster.roster(
                        RosterInput::Upload {
                            bytes: text.as_bytes().to_vec(),
                            format,
                        },
                        limit,
                    )?
                }
                (None, Some(rows)) => muster.roster(
                    RosterInput::Rows(rows.iter().map(RosterRowBody::to_row).collect()),
                    limit,
                )?,
                _ => {
                    return Err(ApiError::unprocessable(
                        "text_or_rows",
                        "send either `text` (a list or CSV) or `rows`",
                        None,
                    ));
                }
            };
            let (_, preview) = muster.preview(req.domain.as_deref(), &rows, limit)?;
            Ok(Json(PreviewBody::of(&preview, &rows)))
        })
        .await
    }

    /// Send a batch from the web wizard (up to 500 rows; admin session).
    #[oai(path = "/batches", method = "post", operation_id = "create_batch")]
    async fn create_batch(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<HttpState>>,
        body: Json<BatchRequestBody>,
        #[oai(name = "Idempotency-Key")] idempotency: Header<Option<String>>,
    ) -> Result<CreatedResponse, ApiError> {
        let key = idempotency_key(idempotency.0.as_deref())?;
        let hash = request_hash(&body.0);
        let state = state.0.clone();
        let req = body.0;
        blocking(&state, move |muster| {
            let rows = muster.roster(
                RosterInput::Rows(req.rows.iter().map(RosterRowBody::to_row).collect()),
                RowLimit::Batch,
            )?;
            let expires_in = expiry(req.expires_in.as_deref())?;
            let key = key_for(&auth.0, key, hash);
            let batch = BatchRequest {
                domain: req.domain,
                expires_in,
                reminders: req.reminders,
                only_clean: req.only_clean,
                ..BatchRequest::new(rows, auth.0.actor())
            };
            create(muster, batch, key).map(|b| CreatedResponse::Created(Json(b)))
        })
        .await
    }

    /// Recent batches, newest first.
    #[oai(path = "/batches", method = "get", operation_id = "list_batches")]
    async fn batches(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
    ) -> Result<Json<Vec<BatchSummary>>, ApiError> {
        let state = state.0.clone();
        blocking(&state, |muster| {
            let batches = muster.view()?.batches().map_err(ServiceError::from)?;
            Ok(Json(batches.iter().take(200).map(batch_summary).collect()))
        })
        .await
    }

    /// A batch's status: counts by delivery and link state, and its invites.
    #[oai(
        path = "/batches/:id",
        method = "get",
        operation_id = "get_batch_status"
    )]
    async fn batch(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        id: Path<String>,
    ) -> Result<Json<BatchStatus>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            let (batch, invites) = muster.batch_invites(&id.0)?;
            Ok(Json(batch_status(&batch, &invites)))
        })
        .await
    }

    /// The pending list: filter by batch, state and text; newest first.
    #[oai(path = "/invites", method = "get", operation_id = "list_invites")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        batch_id: Query<Option<String>>,
        /// A link state, a delivery state, `pending`, `expiring` (live and
        /// expiring within a week), `new_link_requested` or `setup_failed`
        /// (the link works; the mailbox could not be made).
        #[oai(name = "state")]
        state_filter: Query<Option<String>>,
        /// Text to find in the recipient, mailbox or display name.
        q: Query<Option<String>>,
        /// From `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// 1 to 500 (default 100).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u32>,
    ) -> Result<Json<InvitePage>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            let filter = invite_filter(batch_id, state_filter, q);
            let (invites, next) =
                muster.list_invites(&filter, cursor.0.as_deref(), limit.0 as usize)?;
            Ok(Json(InvitePage {
                invites: invites.iter().map(InviteBody::from).collect(),
                next_cursor: next,
            }))
        })
        .await
    }

    /// The pending list as CSV, with the same filters as `GET /invites`:
    /// every matching invite, newest first.
    #[oai(path = "/invites.csv", method = "get", operation_id = "export_invites")]
    async fn export(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        batch_id: Query<Option<String>>,
        #[oai(name = "state")] state_filter: Query<Option<String>>,
        q: Query<Option<String>>,
    ) -> Result<CsvResponse, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            let filter = invite_filter(batch_id, state_filter, q);
            let mut out = String::from(
                "recipient_email,display_name,mailbox,link_state,delivery_state,delivery_detail,created_at,expires_at,redeemed_at,batch_id,id\n",
            );
            let mut cursor = None;
            loop {
                let (invites, next) = muster.list_invites(&filter, cursor.as_deref(), 500)?;
                for i in &invites {
                    let cells = [
                        i.recipient_email.clone(),
                        i.display_name.clone().unwrap_or_default(),
                        i.mailbox.clone(),
                        i.link_state.to_string(),
                        i.delivery_state.to_string(),
                        i.delivery_detail.clone().unwrap_or_default(),
                        rfc3339(i.created_at),
                        rfc3339(i.expires_at),
                        i.redeemed_at.map(rfc3339).unwrap_or_default(),
                        i.batch_id.clone(),
                        i.id.clone(),
                    ];
                    let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
                    out.push_str(&line.join(","));
                    out.push('\n');
                }
                match next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            Ok(CsvResponse::attachment("muster-invites.csv", out))
        })
        .await
    }

    #[oai(path = "/invites/:id", method = "get", operation_id = "get_invite")]
    async fn get(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        id: Path<String>,
    ) -> Result<Json<InviteBody>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            Ok(Json((&muster.get_invite(&id.0)?).into()))
        })
        .await
    }

    /// Which invites `POST /invites/resend-pending` would send a fresh link
    /// to: those still waiting (link live or expired, not used, revoked or
    /// blocked) whose link went out at least `older_than` ago. Changes
    /// nothing.
    #[oai(
        path = "/invites/resend-pending",
        method = "get",
        operation_id = "preview_resend_pending"
    )]
    async fn resend_pending_preview(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        /// Such as `7d`; at least `1h`.
        older_than: Query<String>,
        batch_id: Query<Option<String>>,
    ) -> Result<Json<ResendPendingPreview>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            let wait = older_than_of(&older_than.0)?;
            let candidates = muster.resend_candidates(wait, batch_id.0.as_deref())?;
            Ok(Json(ResendPendingPreview {
                older_than: wait.to_string(),
                batch_id: batch_id.0.filter(|b| !b.is_empty()),
                count: candidates.len() as u32,
                invites: candidates
                    .iter()
                    .map(|c| ResendCandidateBody {
                        invite: (&c.invite).into(),
                        link_sent_at: rfc3339(c.link_sent_at),
                    })
                    .collect(),
            }))
        })
        .await
    }

    /// Resend every invite still waiting after `older_than` (or of them
    /// only `invite_ids`, as a preview showed them): each gets a fresh link
    /// and expiry, and its old link dies at once.
    #[oai(
        path = "/invites/resend-pending",
        method = "post",
        operation_id = "resend_pending_invites"
    )]
    async fn resend_pending(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        body: Json<ResendPendingRequest>,
    ) -> Result<Json<ResendPendingResult>, ApiError> {
        let state = state.0.clone();
        let req = body.0;
        blocking(&state, move |muster| {
            let wait = older_than_of(&req.older_than)?;
            let done = muster.resend_pending(
                wait,
                req.batch_id.as_deref(),
                req.invite_ids.as_deref(),
                &auth.0.actor(),
            )?;
            Ok(Json(ResendPendingResult {
                resent: done.resent.iter().map(InviteBody::from).collect(),
                skipped: done
                    .skipped
                    .into_iter()
                    .map(|(invite_id, reason)| SkippedInvite { invite_id, reason })
                    .collect(),
            }))
        })
        .await
    }

    /// A fresh link and expiry; the old link dies at once.
    #[oai(
        path = "/invites/:id/resend",
        method = "post",
        operation_id = "resend_invite"
    )]
    async fn resend(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        id: Path<String>,
    ) -> Result<Json<InviteBody>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            Ok(Json((&muster.resend(&id.0, &auth.0.actor())?).into()))
        })
        .await
    }

    /// The link dies and the invite's place under the cap frees up.
    #[oai(
        path = "/invites/:id/revoke",
        method = "post",
        operation_id = "revoke_invite"
    )]
    async fn revoke(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        id: Path<String>,
    ) -> Result<Json<InviteBody>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            Ok(Json((&muster.revoke(&id.0, &auth.0.actor())?).into()))
        })
        .await
    }

    /// The invite's current link, for when the email is lost (admin session).
    #[oai(
        path = "/invites/:id/link",
        method = "post",
        operation_id = "copy_invite_link"
    )]
    async fn link(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<HttpState>>,
        id: Path<String>,
    ) -> Result<Json<LinkBody>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            Ok(Json(LinkBody {
                url: muster.current_link(&id.0, &auth.0.actor())?,
            }))
        })
        .await
    }
}

/// The `older_than` of a bulk resend.
fn older_than_of(raw: &str) -> Result<HumanDuration, ApiError> {
    HumanDuration::parse(raw).map_err(|e| {
        ApiError::unprocessable("invalid_older_than", format!("older_than: {e}"), None)
    })
}

fn default_limit() -> u32 {
    100
}

pub fn batch_summary(b: &crate::store::Batch) -> BatchSummary {
    BatchSummary {
        id: b.id.clone(),
        domain: b.domain.clone(),
        created_at: rfc3339(b.created_at),
        created_by: b.created_by.to_string(),
        expires_in: HumanDuration::from_secs(b.expires_in_secs).to_string(),
        invite_count: b.invite_count as u32,
        reminders: b.reminders.clone(),
    }
}

/// The pending list's filters, as `GET /invites` and its CSV export take them.
fn invite_filter(
    batch_id: Query<Option<String>>,
    state: Query<Option<String>>,
    q: Query<Option<String>>,
) -> InviteFilter {
    InviteFilter {
        batch_id: batch_id.0,
        state: state.0,
        text: q.0,
    }
}

pub fn batch_status(
    batch: &crate::store::Batch,
    invites: &[crate::service::InviteView],
) -> BatchStatus {
    let count = |pick: &dyn Fn(&crate::service::InviteView) -> &str, states: &[&str]| {
        states
            .iter()
            .map(|s| StateCount {
                state: s.to_string(),
                count: invites.iter().filter(|i| pick(i) == *s).count() as u32,
            })
            .collect()
    };
    BatchStatus {
        batch: batch_summary(batch),
        delivery: count(
            &|i| i.delivery_state,
            &crate::domain::invite::Delivery::NAMES,
        ),
        links: count(
            &|i| i.link_state,
            &[
                "live",
                "redeeming",
                "redeemed",
                "revoked",
                "expired",
                "blocked",
            ],
        ),
        invites: invites.iter().map(InviteBody::from).collect(),
    }
}
