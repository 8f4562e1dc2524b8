//! The invite email before a batch is sent: how one row's email reads,
//! and a test of it sent to the admin (the wizard's confirm step).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::ApiError;
use super::auth::{Auth, Principal};
use super::invites::{blocking, expiry};
use super::types::{RosterRowBody, rfc3339};
use crate::domain::address::RecipientEmail;
use crate::http::HttpState;
use crate::service::TestDelivery;

#[derive(Tags)]
enum Tag {
    /// Bulk invites, the pending list and its actions.
    Invites,
}

pub struct SamplesApi;

/// One row of a batch not sent yet, and the link lifetime it will get.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct SampleRequest {
    #[oai(validator(max_length = 253))]
    pub domain: Option<String>,
    /// Like `expires_in` of the batch: `7d`, `48h`; the default when absent.
    #[oai(validator(max_length = 32))]
    pub expires_in: Option<String>,
    pub row: RosterRowBody,
    /// Where the test goes (API tokens must name it; a signed-in admin's
    /// test goes to their own address when absent).
    #[oai(validator(max_length = 320))]
    pub to: Option<String>,
}

/// The invite email as the row's recipient will read it.
#[derive(Object, Debug, Clone)]
pub struct SampleBody {
    pub recipient_email: String,
    pub mailbox: String,
    /// The template language chosen for the row (`en`, `de`).
    pub locale: String,
    pub from: String,
    pub subject: String,
    /// The text part; the HTML part carries the same words.
    pub text: String,
    /// When the link would expire if the batch were sent now.
    pub expires_at: String,
}

/// Where the test went.
#[derive(Object, Debug, Clone)]
pub struct TestSentBody {
    pub to: String,
    /// `sent` (the relay took it) or `in_outbox` (no relay: a file).
    pub delivery_state: String,
    /// The relay's reply, or the outbox file.
    pub detail: String,
}

#[OpenApi(tag = "Tag::Invites")]
impl SamplesApi {
    /// How one row's invite email will read: language, subject, words and
    /// expiry date, with a placeholder where the recipient's own link goes.
    /// Creates nothing.
    #[oai(
        path = "/previews/invite-email",
        method = "post",
        operation_id = "preview_invite_email"
    )]
    async fn preview(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        body: Json<SampleRequest>,
    ) -> Result<Json<SampleBody>, ApiError> {
        let state = state.0.clone();
        let req = body.0;
        blocking(&state, move |muster| {
            let s = muster.sample_invite(
                req.domain.as_deref(),
                &req.row.to_row(),
                expiry(req.expires_in.as_deref())?,
            )?;
            Ok(Json(SampleBody {
                recipient_email: s.recipient,
                mailbox: s.mailbox,
                locale: s.locale,
                from: s.from,
                subject: s.subject,
                text: s.text,
                expires_at: rfc3339(s.expires_at),
            }))
        })
        .await
    }

    /// Sends one row's invite email as a test ("[Test]" in the subject, a
    /// link that leads nowhere) through the relay, or into the outbox when
    /// none is configured. Audited as `invite.test_sent`.
    #[oai(
        path = "/previews/invite-email/test",
        method = "post",
        operation_id = "send_test_invite"
    )]
    async fn test(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        body: Json<SampleRequest>,
    ) -> Result<Json<TestSentBody>, ApiError> {
        let req = body.0;
        let to = match (&req.to, &auth.0) {
            (Some(to), _) => to.clone(),
            (None, Principal::Admin { email, .. }) => email.clone(),
            (None, Principal::Token { .. }) => {
                return Err(ApiError::unprocessable(
                    "to_required",
                    "name the address for the test in `to`",
                    None,
                ));
            }
        };
        let to = RecipientEmail::parse(&to)
            .map_err(|e| ApiError::unprocessable("invalid_to", format!("`to`: {e}"), None))?;
        let expires_in = expiry(req.expires_in.as_deref())?;
        let delivery = state
            .muster
            .send_test_invite(
                req.domain.as_deref(),
                &req.row.to_row(),
                expires_in,
                &to,
                &auth.0.actor(),
            )
            .await?;
        let (delivery_state, detail) = match delivery {
            TestDelivery::Sent(reply) => ("sent", reply),
            TestDelivery::InOutbox(file) => ("in_outbox", file),
        };
        Ok(Json(TestSentBody {
            to: to.to_string(),
            delivery_state: delivery_state.into(),
            detail,
        }))
    }
}
