//! The setup link: `GET /invite/{token}` shows a page and changes nothing
//! (mail scanners follow links); `POST` with a valid password redeems it;
//! `POST /invite/{token}/new-link` records a request from the expired page.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Request, Response, handler};
use serde::Deserialize;

use super::{HttpState, html, pages, same_origin};
use crate::service::{LinkStatus, RedeemError};

#[derive(Deserialize)]
pub struct RedeemForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirmation: String,
}

/// Rate limit per client address on every link request (against guessing).
fn limited(state: &HttpState, req: &Request) -> Option<Response> {
    let ip = super::ratelimit::client_ip(req, state.muster.config.http.behind_proxy);
    match state.link_limiter.check(&ip) {
        Ok(()) => None,
        Err(wait) => {
            let secs = wait.as_secs().max(1);
            let mut resp = html(StatusCode::TOO_MANY_REQUESTS, pages::too_many(secs));
            resp.headers_mut().insert("retry-after", secs.into());
            Some(resp)
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "setup link request failed");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::layout(
            pages::Lang::En,
            "Something went wrong",
            "<h1>Something went wrong</h1><p>Please try again in a minute. Nothing was changed.</p>",
            "",
        ),
    )
}

#[handler]
pub async fn show(
    Path(token): Path<String>,
    req: &Request,
    state: Data<&Arc<HttpState>>,
) -> Response {
    if let Some(r) = limited(&state, req) {
        return r;
    }
    let muster = state.muster.clone();
    let t = token.clone();
    let status = match tokio::task::spawn_blocking(move || muster.link_status(&t)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(e),
    };
    let config = &state.muster.config;
    match status {
        LinkStatus::Invalid => html(StatusCode::NOT_FOUND, pages::invalid()),
        LinkStatus::Live(i) => html(
            StatusCode::OK,
            pages::password_form(config, &i, &token, &[], false),
        ),
        LinkStatus::Blocked(i) => html(
            StatusCode::OK,
            pages::password_form(config, &i, &token, &[], true),
        ),
        LinkStatus::Redeemed(i) => html(StatusCode::OK, pages::already_redeemed(config, &i)),
        LinkStatus::Expired(i) => html(StatusCode::GONE, pages::expired(&i, &token)),
        LinkStatus::Busy(i) => html(StatusCode::CONFLICT, pages::busy(&i)),
    }
}

#[handler]
pub async fn submit(
    Path(token): Path<String>,
    req: &Request,
    form: Option<Form<RedeemForm>>,
    state: Data<&Arc<HttpState>>,
) -> Response {
    if let Some(r) = limited(&state, req) {
        return r;
    }
    if !same_origin(req, &state.muster.config) {
        return html(StatusCode::FORBIDDEN, pages::invalid());
    }
    let Some(Form(form)) = form else {
        return html(StatusCode::BAD_REQUEST, pages::invalid());
    };
    let muster = state.muster.clone();
    let t = token.clone();
    let result = tokio::task::spawn_blocking(move || {
        let outcome = muster.redeem(&t, &form.password, &form.confirmation);
        // The page needs the invite as it is now, whatever happened.
        let status = muster.link_status(&t);
        (outcome, status)
    })
    .await;
    let (outcome, status) = match result {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let config = &state.muster.config;
    let invite = match status {
        Ok(
            LinkStatus::Live(i)
            | LinkStatus::Blocked(i)
            | LinkStatus::Redeemed(i)
            | LinkStatus::Expired(i)
            | LinkStatus::Busy(i),
        ) => Some(i),
        _ => None,
    };
    match (outcome, invite) {
        (Ok(redeemed), _) => html(StatusCode::OK, pages::ready(config, &redeemed)),
        (Err(RedeemError::Policy(problems)), Some(i)) => {
            let errors: Vec<String> = problems
                .iter()
                .map(|p| crate::http::pages::policy_message(p, pages::Lang::of(Some(&i))))
                .collect();
            html(
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::password_form(config, &i, &token, &errors, false),
            )
        }
        (Err(RedeemError::PoolFull), Some(i)) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::password_form(config, &i, &token, &[], true),
        ),
        (Err(RedeemError::Provision(_)), Some(i)) => {
            html(StatusCode::SERVICE_UNAVAILABLE, pages::provision_failed(&i))
        }
        (Err(RedeemError::AlreadyRedeemed), Some(i)) => {
            html(StatusCode::OK, pages::already_redeemed(config, &i))
        }
        (Err(RedeemError::Busy), Some(i)) => html(StatusCode::CONFLICT, pages::busy(&i)),
        (Err(RedeemError::Expired), Some(i)) => html(StatusCode::GONE, pages::expired(&i, &token)),
        (Err(RedeemError::Service(e)), _) => internal(e),
        (Err(_), _) => html(StatusCode::NOT_FOUND, pages::invalid()),
    }
}

#[handler]
pub async fn new_link(
    Path(token): Path<String>,
    req: &Request,
    state: Data<&Arc<HttpState>>,
) -> Response {
    if let Some(r) = limited(&state, req) {
        return r;
    }
    if !same_origin(req, &state.muster.config) {
        return html(StatusCode::FORBIDDEN, pages::invalid());
    }
    let muster = state.muster.clone();
    let t = token.clone();
    let result = tokio::task::spawn_blocking(move || {
        let recorded = muster.request_new_link(&t)?;
        Ok::<_, crate::service::ServiceError>((recorded, muster.link_status(&t)?))
    })
    .await;
    match result {
        Ok(Ok((true, LinkStatus::Expired(i)))) => {
            html(StatusCode::OK, pages::new_link_requested(&i))
        }
        Ok(Ok((_, LinkStatus::Invalid))) => html(StatusCode::NOT_FOUND, pages::invalid()),
        // Not expired (any more): show the link as it is.
        Ok(Ok(_)) => Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(
                "location",
                format!(
                    "/invite/{}",
                    token.replace(
                        |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                        ""
                    )
                ),
            )
            .finish(),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}
