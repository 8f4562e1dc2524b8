//! The JSON API under `/api/v1` (poem-openapi), its OpenAPI document at
//! `/api/v1/openapi.json`, and Swagger UI at `/api/docs`.
//!
//! poem reads `:name` inside a path segment as a parameter, so the literal
//! paths `mailboxes/invites:bulk` and `mailboxes:bulk` are routed by hand:
//! exactly those raw paths are rewritten to internal names, the internal
//! names answer 404 from outside, and the OpenAPI document shows the
//! literal paths.

mod account;
mod audit;
pub mod auth;
mod body_problem;
mod deliverability;
mod invites;
mod mailbox_care;
mod mailboxes;
mod samples;
pub mod types;
mod webhooks;

use std::sync::Arc;

use poem::http::{StatusCode, Uri};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApiService};

use super::HttpState;
use crate::service::{AdminError, ServiceError};
use types::{ErrorBody, ItemError};

/// The literal paths and the internal names they are served under.
pub const LITERAL_PATHS: &[(&str, &str)] = &[
    (
        "/api/v1/mailboxes/invites:bulk",
        "/api/v1/mailboxes/invites__bulk",
    ),
    ("/api/v1/mailboxes:bulk", "/api/v1/mailboxes__bulk"),
];

/// Every API error: one JSON shape with a stable code.
#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The request could not be read.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No session and no API token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// A revoked or unknown token, a missing CSRF token, or not allowed.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The invite's state does not allow this.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Flagged items or invalid values; nothing was created.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The mail server could not be updated, or the server is busy.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] Option<u64>),
}

fn body(code: &str, message: impl Into<String>, errors: Option<Vec<ItemError>>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: code.to_string(),
        message: message.into(),
        errors,
    })
}

impl ApiError {
    pub fn bad_request(code: &str, m: impl Into<String>) -> Self {
        Self::BadRequest(body(code, m, None))
    }
    pub fn not_found(code: &str, m: impl Into<String>) -> Self {
        Self::NotFound(body(code, m, None))
    }
    pub fn conflict(code: &str, m: impl Into<String>) -> Self {
        Self::Conflict(body(code, m, None))
    }
    pub fn unprocessable(code: &str, m: impl Into<String>, errors: Option<Vec<ItemError>>) -> Self {
        Self::Unprocessable(body(code, m, errors))
    }
    pub fn forbidden(code: &str, m: impl Into<String>) -> Self {
        Self::Forbidden(body(code, m, None))
    }
    pub fn too_many(m: impl Into<String>, retry_after: u64) -> Self {
        Self::TooManyRequests(body("rate_limited", m, None), retry_after)
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "API request failed");
        Self::Internal(body(
            "internal",
            "internal error; the server log has the details",
            None,
        ))
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use crate::service::codes::ErrorKind;
        let kind = e.kind();
        if matches!(e, ServiceError::Busy(_)) {
            // Load, not a fault: a flood of sign-ins would write one error
            // line per request.
            tracing::debug!(
                code = e.code(),
                "API request turned away: hashing is at capacity"
            );
        } else if matches!(kind, ErrorKind::Internal | ErrorKind::Unavailable { .. }) {
            tracing::error!(error = %e, code = e.code(), "API request failed");
        } else if e.is_host_refusal() {
            tracing::warn!(error = %e, code = e.code(), "the mail host refused an API request");
        }
        let errors = e
            .item_problems()
            .map(|ps| ps.iter().map(ItemError::from).collect());
        let b = body(e.code(), e.public_message(), errors);
        match kind {
            ErrorKind::Invalid => ApiError::Unprocessable(b),
            ErrorKind::NotFound => ApiError::NotFound(b),
            ErrorKind::Conflict => ApiError::Conflict(b),
            ErrorKind::Unavailable { retry_after_secs } => {
                ApiError::Unavailable(b, retry_after_secs)
            }
            ErrorKind::Internal => ApiError::Internal(b),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        use AdminError as A;
        match e {
            A::BadEmail(..) => ApiError::unprocessable("invalid_email", e.to_string(), None),
            A::Policy(_) => ApiError::unprocessable("weak_password", e.to_string(), None),
            A::Exists(_) => ApiError::conflict("admin_exists", e.to_string()),
            A::NoSuchAdmin(_) => ApiError::not_found("no_such_admin", e.to_string()),
            A::WrongCredentials => {
                ApiError::Unauthorized(body("wrong_credentials", e.to_string(), None))
            }
            A::LinkInvalid => ApiError::unprocessable("link_invalid", e.to_string(), None),
            A::NoSuchToken(_) => ApiError::not_found("no_such_token", e.to_string()),
            A::BadTokenName => ApiError::unprocessable("invalid_name", e.to_string(), None),
            A::Service(s) => s.into(),
        }
    }
}

/// A JSON error response outside poem-openapi (auth, limits, routing).
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    errors: Option<Vec<ItemError>>,
) -> Response {
    let body = serde_json::json!({
        "code": code,
        "message": message,
        "errors": errors.map(|es| es.iter().map(|e| serde_json::json!({
            "index": e.index, "field": e.field, "code": e.code, "message": e.message,
        })).collect::<Vec<_>>()),
    });
    let mut body = body;
    if body["errors"].is_null() {
        body.as_object_mut().map(|o| o.remove("errors"));
    }
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "rate_limited",
        _ => "internal",
    }
}

/// Turns errors that are not JSON yet (poem's own: unparsable bodies,
/// wrong content types, unknown routes) into the API's error shape, and
/// keeps internals out of 5xx bodies. A body the document does not take
/// is named where it breaks (`items[1].storage_allocation_mb`).
async fn json_errors<E: Endpoint>(
    next: E,
    mut req: Request,
    schemas: Arc<body_problem::BodySchemas>,
) -> poem::Result<Response> {
    let method = req.method().as_str().to_string();
    let path = req.original_uri().path().to_string();
    // A JSON body was read whole (within the body limit) and checked by
    // the JSON guard: kept for a refusal's words. Other bodies pass as sent.
    let body = if crate::http::json_guard::is_json(&req) {
        let Ok(bytes) = req.take_body().into_bytes().await else {
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the body could not be read",
                None,
            ));
        };
        req.set_body(bytes.clone());
        bytes
    } else {
        Default::default()
    };
    let resp = match next.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    };
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return Ok(resp);
    }
    let retry_after = resp.headers().get("retry-after").cloned();
    let message = if status.is_server_error() {
        "internal error; the server log has the details".to_string()
    } else {
        let text = resp.into_body().into_string().await.unwrap_or_default();
        if text.trim().is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            text.trim().chars().take(500).collect()
        }
    };
    if status == StatusCode::BAD_REQUEST
        && message.starts_with("parse request payload error")
        && let Some(p) = schemas.locate(&method, &path, &body)
    {
        let words = format!("{}: {}", p.at, p.words);
        let errors = p.index.map(|index| {
            vec![ItemError {
                index: index as u32,
                line: None,
                field: p.field.clone(),
                code: p.code.to_string(),
                message: words.clone(),
            }]
        });
        return Ok(error_response(status, "bad_request", &words, errors));
    }
    let message = match status {
        StatusCode::BAD_REQUEST => body_problem::parameter_words(&message).unwrap_or(message),
        _ => message,
    };
    let mut out = error_response(status, code_for(status), &message, None);
    if let Some(r) = retry_after {
        out.headers_mut().insert("retry-after", r);
    }
    Ok(out)
}

pub type Apis = (
    invites::InvitesApi,
    mailboxes::MailboxesApi,
    mailbox_care::MailboxCareApi,
    account::AccountApi,
    audit::AuditApi,
    samples::SamplesApi,
    webhooks::WebhooksApi,
    deliverability::DeliverabilityApi,
);

pub fn service(public_url: &str) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            invites::InvitesApi,
            mailboxes::MailboxesApi,
            mailbox_care::MailboxCareApi,
            account::AccountApi,
            audit::AuditApi,
            samples::SamplesApi,
            webhooks::WebhooksApi,
            deliverability::DeliverabilityApi,
        ),
        "Muster API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Bulk mailbox invites for Dovecot and Postfix. Authenticate with `Authorization: Bearer <API token>` \
(tokens come from the web app or `muster token create`), or with the web app's session cookie plus the \
X-CSRF-Token header. Errors are `{code, message, errors?}` with stable codes. Creating calls accept an \
Idempotency-Key header: the same key and body return the first response; another body is refused with 422.",
    )
    .server(format!("{}/api/v1", public_url.trim_end_matches('/')))
}

/// Request objects refuse unknown fields (a misspelt `storage_allocation_mb`
/// must not silently mean the shared pool); the document says so.
const CLOSED_OBJECTS: &[&str] = &[
    "InviteItem",
    "InvitesBulkRequest",
    "RosterRowBody",
    "InvitePreviewRequest",
    "BatchRequestBody",
    "CreationItem",
    "MailboxesBulkRequest",
    "CreationRowBody",
    "CreationPreviewRequest",
    "CreationRequestBody",
    "SignInBody",
    "SetupBody",
    "ForgotBody",
    "ResetBody",
    "NewToken",
    "ResendPendingRequest",
    "NewWebhookBody",
];

/// The OpenAPI document with the literal paths.
pub fn spec_json(public_url: &str) -> String {
    let mut spec = service(public_url).spec();
    for (literal, internal) in LITERAL_PATHS {
        let (l, i) = (
            literal.trim_start_matches("/api/v1"),
            internal.trim_start_matches("/api/v1"),
        );
        spec = spec.replace(&format!("\"{i}\""), &format!("\"{l}\""));
    }
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&spec) else {
        return spec;
    };
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for name in CLOSED_OBJECTS {
            if let Some(s) = schemas.get_mut(*name).and_then(|s| s.as_object_mut()) {
                s.insert(
                    "additionalProperties".into(),
                    serde_json::Value::Bool(false),
                );
            }
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or(spec)
}

/// The methods each path answers, from the document, for `Allow` on 405.
fn allowed_methods(spec: &str) -> Vec<(Vec<String>, String)> {
    let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
    doc["paths"]
        .as_object()
        .map(|paths| {
            paths
                .iter()
                .map(|(path, ops)| {
                    let segments = format!("/api/v1{path}")
                        .split('/')
                        .map(str::to_string)
                        .collect();
                    let methods = ops
                        .as_object()
                        .map(|o| {
                            o.keys()
                                .map(|m| m.to_uppercase())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default();
                    (segments, methods)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn allow_for(table: &[(Vec<String>, String)], path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    table
        .iter()
        .find(|(segs, _)| {
            segs.len() == parts.len()
                && segs
                    .iter()
                    .zip(&parts)
                    .all(|(s, p)| s == p || (s.starts_with('{') && s.ends_with('}')))
        })
        .map(|(_, m)| m.clone())
}

/// `/api/v1/*`: the API with its literal paths and JSON errors.
pub fn endpoint(state: Arc<HttpState>) -> impl Endpoint {
    let public_url = state.muster.config.public_url().to_string();
    let spec = Arc::new(spec_json(&public_url));
    let allow = Arc::new(allowed_methods(&spec));
    let schemas = Arc::new(body_problem::BodySchemas::new(&spec));
    let api = service(&public_url);
    poem::Route::new()
        .at(
            "/openapi.json",
            poem::endpoint::make_sync(move |_| {
                Response::builder()
                    .content_type("application/json")
                    .body(spec.as_str().to_string())
            }),
        )
        .nest("/", api)
        // Sign-in sets two cookies; the jar adds the second.
        .with(poem::middleware::CookieJarManager::new())
        .around(move |next, req| json_errors(next, req, schemas.clone()))
        .around(move |next, req| {
            let allow = allow.clone();
            async move {
                // The path as the client wrote it (literal paths were renamed inside).
                let path = req.original_uri().path().to_string();
                let mut resp = next.call(req).await?;
                if resp.status() == StatusCode::METHOD_NOT_ALLOWED
                    && let Some(methods) = allow_for(&allow, &path)
                    && let Ok(v) = methods.parse()
                {
                    resp.headers_mut().insert(poem::http::header::ALLOW, v);
                }
                Ok(resp)
            }
        })
}

/// Rewrites the literal paths to their internal names; the internal names
/// themselves are not reachable from outside.
pub fn route_literal_paths(req: &mut Request) -> Option<Response> {
    let path = req.uri().path();
    if LITERAL_PATHS.iter().any(|(_, internal)| path == *internal) {
        return Some(error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
            None,
        ));
    }
    if let Some((_, internal)) = LITERAL_PATHS.iter().find(|(literal, _)| path == *literal) {
        let pq = match req.uri().query() {
            Some(q) => format!("{internal}?{q}"),
            None => internal.to_string(),
        };
        if let Ok(uri) = pq.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    None
}

/// Swagger UI, served from embedded files under a CSP that allows no
/// inline script (its inline styles are allowed on this page only).
pub fn docs_page() -> Response {
    let html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Muster API</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<link rel=\"icon\" href=\"/assets/favicon.svg\" type=\"image/svg+xml\">\
<link rel=\"stylesheet\" href=\"/assets/swagger/swagger-ui.css\"></head>\
<body><p style=\"margin:1rem 1.25rem;font-family:system-ui,sans-serif\"><a href=\"/\">&larr; Back to Muster</a> \
&middot; <a href=\"/tokens\">API tokens</a></p><div id=\"ui\"></div><script src=\"/assets/swagger/swagger-ui-bundle.js\"></script>\
<script src=\"/assets/swagger/init.js\"></script></body></html>\n";
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        .body(html)
}

/// Parses an Idempotency-Key header value: 1–200 visible ASCII characters.
pub fn idempotency_key(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw {
        None => Ok(None),
        Some(k)
            if !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
        {
            Ok(Some(k.to_string()))
        }
        Some(_) => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 200 visible ASCII characters",
        )),
    }
}

/// Hex SHA-256 of a request body as parsed (same JSON, same hash).
pub fn request_hash(value: &impl poem_openapi::types::ToJSON) -> String {
    use sha2::{Digest, Sha256};
    let json = value.to_json().map(|v| v.to_string()).unwrap_or_default();
    crate::store::hex_hash(&Sha256::digest(json.as_bytes()).into())
}
