//! Who is calling: an admin's session (cookie plus the CSRF header on
//! state-changing requests) or an API token (bearer). 401 without either,
//! 403 for a revoked or unknown token or a missing CSRF token, 429 over a
//! token's rate limit.

use std::sync::Arc;

use poem::http::{Method, StatusCode};
use poem::web::cookie::{Cookie, SameSite};
use poem::{Request, RequestBody};
use poem_openapi::auth::{ApiKey, Bearer};
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme};
use subtle::ConstantTimeEq;

use super::super::HttpState;
use super::error_response;
use crate::domain::known_device::KNOWN_DEVICE_LIFETIME;
use crate::service::TokenCheck;
use crate::store::{Actor, ApiToken};

pub const SESSION_COOKIE: &str = "muster_session";
pub const DEVICE_COOKIE: &str = "muster_device";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Bearer API tokens (`mst_…`), created in the web app or with `muster token create`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "bearer")]
#[allow(dead_code)]
struct BearerScheme(Bearer);

/// The web app's session cookie; state-changing requests also need the X-CSRF-Token header.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "muster_session",
    key_in = "cookie",
    rename = "session"
)]
#[allow(dead_code)]
struct SessionScheme(ApiKey);

#[derive(Debug, Clone)]
pub enum Principal {
    Admin { email: String, csrf: String },
    Token { id: String, name: String },
}

impl Principal {
    pub fn actor(&self) -> Actor {
        match self {
            Principal::Admin { email, .. } => Actor::admin(email),
            Principal::Token { id, name } => Actor::token(name, id),
        }
    }

    /// Scope of idempotency keys: each caller has its own.
    pub fn key(&self) -> String {
        match self {
            Principal::Admin { email, .. } => format!("admin:{email}"),
            Principal::Token { id, .. } => format!("token:{id}"),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin { .. })
    }
}

fn deny(status: StatusCode, code: &str, message: &str) -> poem::Error {
    poem::Error::from_response(error_response(status, code, message, None))
}

fn cookie_value(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn session_principal(
    req: &Request,
    state: &Arc<HttpState>,
) -> poem::Result<Option<Principal>> {
    let Some(cookie) = cookie_value(req, SESSION_COOKIE) else {
        return Ok(None);
    };
    let muster = state.muster.clone();
    let session = match tokio::task::spawn_blocking(move || muster.session(&cookie)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(poem::Error::from_response(
                poem::IntoResponse::into_response(super::ApiError::from(e)),
            ));
        }
        Err(e) => {
            return Err(poem::Error::from_response(
                poem::IntoResponse::into_response(super::ApiError::internal(e)),
            ));
        }
    };
    let Some(session) = session else {
        return Ok(None);
    };
    if unsafe_method(req.method()) {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ok: bool = sent.as_bytes().ct_eq(session.csrf_token.as_bytes()).into();
        if !ok || !super::super::same_origin(req, &state.muster.config) {
            return Err(deny(
                StatusCode::FORBIDDEN,
                "csrf",
                "this request needs the X-CSRF-Token header of your session; reload the page",
            ));
        }
    }
    Ok(Some(Principal::Admin {
        email: session.admin_email,
        csrf: session.csrf_token,
    }))
}

async fn token_principal(req: &Request, state: &Arc<HttpState>) -> poem::Result<Option<Principal>> {
    let Some(header) = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let Some(secret) = bearer_secret(header) else {
        return Err(deny(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "use `Authorization: Bearer <API token>`",
        ));
    };
    let token = verify_api_token(state, req, secret)
        .await
        .map_err(poem::Error::from_response)?;
    Ok(Some(Principal::Token {
        id: token.id,
        name: token.name,
    }))
}

/// The secret of an `Authorization: Bearer <secret>` header value. The
/// scheme is case-insensitive (RFC 9110 11.1).
pub(crate) fn bearer_secret(header: &str) -> Option<String> {
    let (scheme, secret) = header.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| secret.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Checks an API token for the REST API and MCP alike: a live token within
/// its rate limit, or the response to send (403 for an unknown or revoked
/// token, 429 with Retry-After when the token or the client's address made
/// too many requests).
pub(crate) async fn verify_api_token(
    state: &HttpState,
    req: &Request,
    secret: String,
) -> Result<ApiToken, poem::Response> {
    let answer = |status: StatusCode, code: &str, message: &str, retry_after: Option<u64>| {
        let mut resp = error_response(status, code, message, None);
        if let Some(secs) = retry_after {
            resp.headers_mut().insert("retry-after", secs.into());
        }
        resp
    };
    let muster = state.muster.clone();
    let check = match tokio::task::spawn_blocking(move || muster.check_api_token(&secret)).await {
        Ok(Ok(check)) => check,
        // A full disk is said as such (503), like everywhere else.
        Ok(Err(e)) => return Err(poem::IntoResponse::into_response(super::ApiError::from(e))),
        Err(e) => {
            return Err(poem::IntoResponse::into_response(
                super::ApiError::internal(e),
            ));
        }
    };
    match check {
        TokenCheck::Valid(t) => match state.api_limiter.check(&t.id) {
            Ok(()) => Ok(t),
            Err(wait) => {
                let secs = wait.as_secs().max(1);
                Err(answer(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    &format!("this token made too many requests; try again in {secs} s"),
                    Some(secs),
                ))
            }
        },
        TokenCheck::Revoked | TokenCheck::Unknown if state.wrong_token(req).is_some() => {
            Err(answer(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many wrong API tokens from this address; try again later",
                Some(60),
            ))
        }
        TokenCheck::Revoked => Err(answer(
            StatusCode::FORBIDDEN,
            "token_revoked",
            "this API token was revoked",
            None,
        )),
        TokenCheck::Unknown => Err(answer(
            StatusCode::FORBIDDEN,
            "token_unknown",
            "this API token is not known",
            None,
        )),
    }
}

fn state_of(req: &Request) -> poem::Result<Arc<HttpState>> {
    req.data::<Arc<HttpState>>().cloned().ok_or_else(|| {
        deny(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })
}

/// An admin session or an API token.
pub struct Auth(pub Principal);

/// An admin session only (token management, the web wizard's endpoints).
pub struct AdminAuth(pub Principal);

/// A caller verified before its request body was read (see
/// `body::BodyLimit`): the extractors take it instead of checking, and
/// counting against the token's rate limit, a second time.
#[derive(Debug, Clone)]
pub struct Verified(pub Principal);

/// Who sends a request with a body to a route that needs a caller: its
/// API token, else (`sessions`) an admin session with its CSRF token, or
/// the refusal to answer before reading a byte of the body.
pub(crate) async fn verify_before_body(
    state: &Arc<HttpState>,
    req: &Request,
    sessions: bool,
) -> Result<Principal, poem::Response> {
    let refused = |e: poem::Error| e.into_response();
    if let Some(p) = token_principal(req, state).await.map_err(refused)? {
        return Ok(p);
    }
    if sessions && let Some(p) = session_principal(req, state).await.map_err(refused)? {
        return Ok(p);
    }
    Err(refused(deny(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        if sessions {
            "sign in, or send an API token as `Authorization: Bearer <token>`"
        } else {
            "send an API token as `Authorization: Bearer <token>`"
        },
    )))
}

impl<'a> ApiExtractor<'a> for Auth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <BearerScheme as ApiExtractor>::register(registry);
        <SessionScheme as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        let mut s = <BearerScheme as ApiExtractor>::security_schemes();
        s.extend(<SessionScheme as ApiExtractor>::security_schemes());
        s
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        if let Some(Verified(p)) = req.extensions().get::<Verified>() {
            return Ok(Auth(p.clone()));
        }
        let state = state_of(req)?;
        if let Some(p) = token_principal(req, &state).await? {
            return Ok(Auth(p));
        }
        if let Some(p) = session_principal(req, &state).await? {
            return Ok(Auth(p));
        }
        Err(deny(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in, or send an API token as `Authorization: Bearer <token>`",
        ))
    }
}

impl<'a> ApiExtractor<'a> for AdminAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <SessionScheme as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        <SessionScheme as ApiExtractor>::security_schemes()
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        if let Some(Verified(p @ Principal::Admin { .. })) = req.extensions().get::<Verified>() {
            return Ok(AdminAuth(p.clone()));
        }
        let state = state_of(req)?;
        if let Some(p) = session_principal(req, &state).await? {
            return Ok(AdminAuth(p));
        }
        if req
            .headers()
            .contains_key(poem::http::header::AUTHORIZATION)
        {
            return Err(deny(
                StatusCode::FORBIDDEN,
                "admin_session_required",
                "this endpoint is for signed-in admins only, not API tokens",
            ));
        }
        Err(deny(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in first",
        ))
    }
}

/// The Set-Cookie value for a new session.
pub fn session_cookie(value: &str, secure: bool, max_age_secs: i64) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The browser's mark as a known device (see `domain::known_device`): sent
/// back only to the sign-in endpoint, never readable by scripts.
pub fn device_cookie(mark: &str, secure: bool) -> Cookie {
    let mut cookie = Cookie::new_with_str(DEVICE_COOKIE, mark);
    cookie.set_path("/api/v1/session");
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_max_age(
        KNOWN_DEVICE_LIFETIME
            .try_into()
            .unwrap_or(std::time::Duration::ZERO),
    );
    cookie.set_secure(secure);
    cookie
}

pub fn device_mark_value(req: &Request) -> Option<String> {
    cookie_value(req, DEVICE_COOKIE)
}

pub fn session_cookie_value(req: &Request) -> Option<String> {
    cookie_value(req, SESSION_COOKIE)
}
