//! Admin accounts: sign-in, sessions, first-run setup, password reset,
//! API tokens, and the audit trail.

use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};

use super::ApiError;
use super::auth::{AdminAuth, Auth, Principal, session_cookie, session_cookie_value};
use super::invites::blocking;
use super::types::*;
use crate::http::HttpState;
use crate::http::ratelimit::{client_ip, client_limit_key};
use crate::service::{SESSION_HOURS, ServiceError, SignedIn};
use crate::store::AuditEvent;

/// What the forgot-password form always answers, whether or not the account exists.
pub const RESET_ANSWER: &str =
    "If an account exists for this email, we've sent password reset instructions.";

#[derive(Tags)]
enum Tag {
    /// Sign-in, sessions and password resets for admins.
    Session,
    /// API tokens (admin session only).
    Tokens,
    /// Who did what, when.
    Audit,
}

pub struct AccountApi;

#[derive(ApiResponse)]
pub enum SignedInResponse {
    /// Signed in; the session cookie is set.
    #[oai(status = 200)]
    Ok(Json<SessionBody>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
pub enum SignedOutResponse {
    #[oai(status = 200)]
    Ok(Json<MessageBody>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
pub enum AcceptedResponse {
    #[oai(status = 202)]
    Accepted(Json<MessageBody>),
}

#[derive(ApiResponse)]
pub enum TokenCreated {
    /// The secret is in this response only.
    #[oai(status = 201)]
    Created(Json<TokenBody>),
}

fn signed_in(state: &HttpState, s: SignedIn) -> SignedInResponse {
    let cookie = session_cookie(
        &s.cookie,
        state.muster.config.is_https(),
        SESSION_HOURS * 3600,
    );
    SignedInResponse::Ok(
        Json(SessionBody {
            email: s.email,
            csrf_token: s.csrf,
        }),
        cookie,
    )
}

fn limit(limiter: &crate::http::Limiter, key: &str) -> Result<(), ApiError> {
    limiter.check(key).map_err(|wait| {
        let secs = wait.as_secs().max(1);
        ApiError::too_many(format!("too many attempts; try again in {secs} s"), secs)
    })
}

fn same_origin(req: &Request, state: &HttpState) -> Result<(), ApiError> {
    if crate::http::same_origin(req, &state.muster.config) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "cross_origin",
            "this request came from another site",
        ))
    }
}

fn audit_body(e: &AuditEvent) -> AuditBody {
    AuditBody {
        id: e.id.clone(),
        at: rfc3339(e.at),
        actor: e.actor.to_string(),
        action: e.action.clone(),
        subject: e.subject.clone(),
        detail: e.detail.clone(),
    }
}

/// `before` cursor: "<ms>.<id>" of the last event of the previous page.
fn parse_cursor(c: Option<&str>) -> Result<Option<(u64, String)>, ApiError> {
    match c {
        None => Ok(None),
        Some(c) => c
            .split_once('.')
            .and_then(|(ms, id)| ms.parse().ok().map(|ms| Some((ms, id.to_string()))))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_cursor", "use next_cursor from the previous page")
            }),
    }
}

#[OpenApi]
impl AccountApi {
    /// Sign in with email and password; sets the session cookie.
    #[oai(
        path = "/session",
        method = "post",
        tag = "Tag::Session",
        operation_id = "sign_in"
    )]
    async fn sign_in(
        &self,
        req: &Request,
        state: Data<&Arc<HttpState>>,
        body: Json<SignInBody>,
    ) -> Result<SignedInResponse, ApiError> {
        let state = state.0.clone();
        same_origin(req, &state)?;
        let ip = client_ip(req, state.muster.config.http.behind_proxy);
        limit(
            &state.signin_ip_limiter,
            &client_limit_key(req, state.muster.config.http.behind_proxy),
        )?;
        limit(
            &state.signin_account_limiter,
            &body.email.trim().to_lowercase(),
        )?;
        let st = state.clone();
        let signed = blocking(&state, move |muster| {
            Ok(muster.sign_in(&body.email, &body.password, &ip)?)
        })
        .await?;
        Ok(signed_in(&st, signed))
    }

    /// Who is signed in, and the CSRF token for this session.
    #[oai(
        path = "/session",
        method = "get",
        tag = "Tag::Session",
        operation_id = "get_session"
    )]
    async fn session(&self, auth: AdminAuth) -> Result<Json<SessionBody>, ApiError> {
        match auth.0 {
            Principal::Admin { email, csrf } => Ok(Json(SessionBody {
                email,
                csrf_token: csrf,
            })),
            Principal::Token { .. } => Err(ApiError::forbidden(
                "admin_session_required",
                "this endpoint is for signed-in admins only",
            )),
        }
    }

    /// Sign out; the session ends on the server.
    #[oai(
        path = "/session",
        method = "delete",
        tag = "Tag::Session",
        operation_id = "sign_out"
    )]
    async fn sign_out(
        &self,
        _auth: AdminAuth,
        req: &Request,
        state: Data<&Arc<HttpState>>,
    ) -> Result<SignedOutResponse, ApiError> {
        let state = state.0.clone();
        let cookie = session_cookie_value(req).unwrap_or_default();
        let secure = state.muster.config.is_https();
        blocking(&state, move |muster| Ok(muster.sign_out(&cookie)?)).await?;
        Ok(SignedOutResponse::Ok(
            Json(MessageBody {
                message: "signed out".into(),
            }),
            session_cookie("", secure, 0),
        ))
    }

    /// Create the first admin with the one-time setup link printed at first start.
    #[oai(
        path = "/setup",
        method = "post",
        tag = "Tag::Session",
        operation_id = "complete_setup"
    )]
    async fn setup(
        &self,
        req: &Request,
        state: Data<&Arc<HttpState>>,
        body: Json<SetupBody>,
    ) -> Result<SignedInResponse, ApiError> {
        let state = state.0.clone();
        same_origin(req, &state)?;
        limit(
            &state.signin_ip_limiter,
            &client_limit_key(req, state.muster.config.http.behind_proxy),
        )?;
        let st = state.clone();
        let signed = blocking(&state, move |muster| {
            Ok(muster.complete_setup(&body.token, &body.email, &body.password)?)
        })
        .await?;
        Ok(signed_in(&st, signed))
    }

    /// Forgot password: emails a single-use reset link (valid 1 hour) if the
    /// account exists; the answer is the same either way.
    #[oai(
        path = "/password-reset",
        method = "post",
        tag = "Tag::Session",
        operation_id = "request_password_reset"
    )]
    async fn forgot(
        &self,
        req: &Request,
        state: Data<&Arc<HttpState>>,
        body: Json<ForgotBody>,
    ) -> Result<AcceptedResponse, ApiError> {
        let state = state.0.clone();
        same_origin(req, &state)?;
        limit(
            &state.signin_ip_limiter,
            &client_limit_key(req, state.muster.config.http.behind_proxy),
        )?;
        blocking(&state, move |muster| {
            Ok(muster.request_password_reset(&body.email)?)
        })
        .await?;
        Ok(AcceptedResponse::Accepted(Json(MessageBody {
            message: RESET_ANSWER.into(),
        })))
    }

    /// Set a new password with the emailed link; every session of the account ends.
    #[oai(
        path = "/password-reset/confirm",
        method = "post",
        tag = "Tag::Session",
        operation_id = "confirm_password_reset"
    )]
    async fn reset(
        &self,
        req: &Request,
        state: Data<&Arc<HttpState>>,
        body: Json<ResetBody>,
    ) -> Result<Json<MessageBody>, ApiError> {
        let state = state.0.clone();
        same_origin(req, &state)?;
        limit(
            &state.signin_ip_limiter,
            &client_limit_key(req, state.muster.config.http.behind_proxy),
        )?;
        let email = blocking(&state, move |muster| {
            Ok(muster.reset_password(&body.token, &body.password)?)
        })
        .await?;
        Ok(Json(MessageBody {
            message: format!("The password of {email} was changed; sign in with it."),
        }))
    }

    #[oai(
        path = "/tokens",
        method = "get",
        tag = "Tag::Tokens",
        operation_id = "list_tokens"
    )]
    async fn tokens(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<HttpState>>,
    ) -> Result<Json<Vec<TokenBody>>, ApiError> {
        let state = state.0.clone();
        blocking(&state, |muster| {
            Ok(Json(
                muster
                    .api_tokens()?
                    .iter()
                    .map(|t| TokenBody::of(t, None))
                    .collect(),
            ))
        })
        .await
    }

    /// Create an API token; its secret is shown in this response only.
    #[oai(
        path = "/tokens",
        method = "post",
        tag = "Tag::Tokens",
        operation_id = "create_token"
    )]
    async fn create_token(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<HttpState>>,
        body: Json<NewToken>,
    ) -> Result<TokenCreated, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            let (token, secret) = muster.create_api_token(&body.name, &auth.0.actor())?;
            Ok(TokenCreated::Created(Json(TokenBody::of(
                &token,
                Some(secret),
            ))))
        })
        .await
    }

    /// Revoke an API token; it answers 403 from then on.
    #[oai(
        path = "/tokens/:id",
        method = "delete",
        tag = "Tag::Tokens",
        operation_id = "revoke_token"
    )]
    async fn revoke_token(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<HttpState>>,
        id: Path<String>,
    ) -> Result<Json<TokenBody>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            Ok(Json(TokenBody::of(
                &muster.revoke_api_token(&id.0, &auth.0.actor())?,
                None,
            )))
        })
        .await
    }

    /// The audit trail, newest first.
    #[oai(
        path = "/audit",
        method = "get",
        tag = "Tag::Audit",
        operation_id = "list_audit"
    )]
    async fn audit(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        /// From `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        #[oai(
            default = "default_audit_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
    ) -> Result<Json<AuditPage>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |muster| {
            let before = parse_cursor(cursor.0.as_deref())?;
            let n = limit.0 as usize;
            let events = muster
                .view()?
                .audit(before.as_ref().map(|(ms, id)| (*ms, id.as_str())), n + 1)
                .map_err(ServiceError::from)?;
            let next = (events.len() > n).then(|| {
                let last = &events[n - 1];
                format!("{}.{}", crate::store::millis(last.at), last.id)
            });
            Ok(Json(AuditPage {
                events: events.iter().take(n).map(audit_body).collect(),
                next_cursor: next,
            }))
        })
        .await
    }

    /// The whole audit trail as CSV.
    #[oai(
        path = "/audit.csv",
        method = "get",
        tag = "Tag::Audit",
        operation_id = "export_audit"
    )]
    async fn audit_csv(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
    ) -> Result<CsvResponse, ApiError> {
        let state = state.0.clone();
        blocking(&state, |muster| {
            let events = muster
                .view()?
                .audit(None, usize::MAX)
                .map_err(ServiceError::from)?;
            let mut out = String::from("at,actor,action,subject,detail\n");
            for e in &events {
                out.push_str(&format!(
                    "{},{},{},{},{}\n",
                    csv_cell(&rfc3339(e.at)),
                    csv_cell(&e.actor.to_string()),
                    csv_cell(&e.action),
                    csv_cell(&e.subject),
                    csv_cell(&e.detail)
                ));
            }
            Ok(CsvResponse::attachment("muster-audit.csv", out))
        })
        .await
    }
}

fn default_audit_limit() -> u32 {
    100
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
