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
use crate::service::{TestDelivery, Verdict};

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

/// Where the test went, and how receivers will judge it.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct TestSentBody {
    pub to: String,
    /// `sent` (a server took it) or `in_outbox` (no relay: a file).
    pub delivery_state: String,
    /// The server's reply, or the outbox file.
    pub detail: String,
    /// In direct mode: the recipient's mail server that took it.
    pub via: Option<String>,
    /// The DKIM keys it was signed with (`selector (algorithm)`).
    pub signed_with: Vec<String>,
    /// SPF, DKIM and DMARC as a receiver checks them, against the DNS
    /// published now (Muster cannot read the recipient's mailbox: this is
    /// the same check on the same bytes, made before they left).
    pub authentication: AuthenticationBody,
}

#[derive(Object, Debug, Clone)]
pub struct VerdictBody {
    /// `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`,
    /// `permerror` or `not_checked`.
    pub result: String,
    pub words: String,
}

#[derive(Object, Debug, Clone)]
pub struct AuthenticationBody {
    pub dkim: VerdictBody,
    pub spf: VerdictBody,
    pub dmarc: VerdictBody,
}

impl From<&Verdict> for VerdictBody {
    fn from(v: &Verdict) -> Self {
        Self {
            result: v.result.clone(),
            words: v.words.clone(),
        }
    }
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
    /// link that leads nowhere) the way invites go: through the relay,
    /// straight to the address's mail servers (direct mode), or into the
    /// outbox; DKIM-signed when keys exist. Says whether it was taken and
    /// how SPF, DKIM and DMARC judge it against the DNS published now.
    /// Audited as `invite.test_sent`.
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
        let auth = &delivery.authentication;
        let authentication = AuthenticationBody {
            dkim: (&auth.dkim).into(),
            spf: (&auth.spf).into(),
            dmarc: (&auth.dmarc).into(),
        };
        let (delivery_state, detail, via) = match delivery.delivery {
            TestDelivery::Sent { reply, via } => ("sent", reply, via),
            TestDelivery::InOutbox(file) => ("in_outbox", file, None),
        };
        Ok(Json(TestSentBody {
            to: to.to_string(),
            delivery_state: delivery_state.into(),
            detail,
            via,
            signed_with: delivery.signed_with,
            authentication,
        }))
    }
}
