//! Admin accounts: sign-in, sessions, first-run setup, password reset,
//! API tokens, and the audit trail.

use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};

use super::ApiError;
use super::auth::{
    AdminAuth, Principal, device_cookie, device_mark_value, session_cookie, session_cookie_value,
};
use super::invites::blocking;
use super::types::*;
use crate::http::HttpState;
use crate::http::ratelimit::{client_ip, client_limit_key};
use crate::service::{SESSION_HOURS, SignedIn};

/// What the forgot-password form always answers, whether or not the account exists.
pub const RESET_ANSWER: &str =
    "If an account exists for this email, we've sent password reset instructions.";

#[derive(Tags)]
enum Tag {
    /// Sign-in, sessions and password resets for admins.
    Session,
    /// API tokens (admin session only).
    Tokens,
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

/// The session cookie in the response's own header; the browser's mark as
/// a known device beside it (through the cookie jar, as a second
/// Set-Cookie).
fn signed_in(req: &Request, state: &HttpState, s: SignedIn) -> SignedInResponse {
    let secure = state.muster.config.is_https();
    req.cookie().add(device_cookie(&s.device_mark, secure));
    let cookie = session_cookie(&s.cookie, secure, SESSION_HOURS * 3600);
    SignedInResponse::Ok(
        Json(SessionBody {
            email: s.email,
            csrf_token: s.csrf,
        }),
        cookie,
    )
}

fn limit(limiter: &crate::http::Limiter, key: &str) -> Result<(), ApiError> {
    limit_saying(limiter, key, "too many attempts")
}

fn limit_saying(limiter: &crate::http::Limiter, key: &str, what: &str) -> Result<(), ApiError> {
    limiter.check(key).map_err(|wait| {
        let secs = wait.as_secs().max(1);
        ApiError::too_many(format!("{what}; try again in {secs} s"), secs)
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
        // Attempts are counted per client address and per account, so that
        // many addresses cannot guess together. A browser that signed in to
        // the account before is counted on its own instead: strangers, even
        // behind the same address, cannot keep it out.
        let email = body.email.trim().to_lowercase();
        let device = device_mark_value(req).and_then(|m| state.muster.known_device(&email, &m));
        match &device {
            Some(d) => limit_saying(
                &state.signin_account_limiter,
                &format!("{email} {}", d.id),
                "too many sign-in attempts from this browser",
            )?,
            None => {
                limit_saying(
                    &state.signin_ip_limiter,
                    &client_limit_key(req, state.muster.config.http.behind_proxy),
                    "too many sign-in attempts from this address",
                )?;
                limit_saying(
                    &state.signin_account_limiter,
                    &email,
                    "too many sign-in attempts for this account (a browser that signed in to it before can still sign in)",
                )?;
            }
        }
        let st = state.clone();
        let signed = blocking(&state, move |muster| {
            Ok(muster.sign_in(&body.email, &body.password, &ip, device.as_ref())?)
        })
        .await?;
        Ok(signed_in(req, &st, signed))
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
        Ok(signed_in(req, &st, signed))
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
