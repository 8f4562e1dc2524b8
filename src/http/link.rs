//! The setup link: `GET /invite/{token}` shows a page and changes nothing
//! (mail scanners follow links); `POST` with a valid password redeems it;
//! `POST /invite/{token}/check` answers the page's script with the password
//! policy's verdict; `POST /invite/{token}/new-link` records a request from
//! the expired page.
//!
//! The pages send no referrer, so browsers post their forms with
//! `Origin: null`. Each form carries a proof Muster made for this link
//! (`domain::form_proof`), taken once; a post from another site (by
//! `Origin` or `Sec-Fetch-Site`) is refused before anything else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Request, Response, handler};
use serde::Deserialize;
use time::OffsetDateTime;

use super::pages::FormNotice;
use super::{HttpState, html, pages};
use crate::config::Config;
use crate::domain::client_setup::Device;
use crate::domain::form_proof::{ProofNonce, ValidProof};
use crate::service::{LinkStatus, RedeemError};

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirmation: String,
    #[serde(default)]
    form_token: String,
}

/// Form proofs already taken, kept until they expire: each works once.
#[derive(Default)]
pub struct UsedProofs {
    taken: Mutex<HashMap<ProofNonce, Taken>>,
}

#[derive(Debug, Clone, Copy)]
struct Taken {
    expires: OffsetDateTime,
    at: OffsetDateTime,
    /// The post that took it has its answer.
    done: bool,
}

/// What taking a proof found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taking {
    /// Taken now: the post goes on.
    Taken,
    /// Taken before, at this time.
    TakenAt(OffsetDateTime),
    /// Too many live proofs are held: refused.
    Full,
}

impl UsedProofs {
    /// More than this many live proofs taken at once means something is
    /// wrong; refuse rather than grow.
    const MAX: usize = 200_000;

    /// Takes the proof, unless it was taken before.
    pub fn take(&self, proof: &ValidProof, now: OffsetDateTime) -> Taking {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = taken.get(&proof.nonce) {
            return Taking::TakenAt(t.at);
        }
        if taken.len() >= Self::MAX {
            taken.retain(|_, t| t.expires > now);
            if taken.len() >= Self::MAX {
                return Taking::Full;
            }
        }
        taken.insert(
            proof.nonce,
            Taken {
                expires: proof.expires,
                at: now,
                done: false,
            },
        );
        Taking::Taken
    }

    /// The post that took `nonce` has its answer.
    pub fn finish(&self, nonce: &ProofNonce) {
        if let Some(t) = self
            .taken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(nonce)
        {
            t.done = true;
        }
    }

    fn is_done(&self, nonce: &ProofNonce) -> bool {
        self.taken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(nonce)
            .is_none_or(|t| t.done)
    }

    pub fn forget_expired(&self, now: OffsetDateTime) {
        self.taken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, t| t.expires > now);
    }
}

/// Whether the browser says this post comes from another site: a real
/// `Origin` that is not Muster's, or `Sec-Fetch-Site` other than
/// same-origin. `Origin: null` says nothing either way; the form proof
/// decides then.
fn from_another_site(req: &Request, config: &Config) -> bool {
    let fetch_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return true;
    }
    match req.headers().get("origin").and_then(|v| v.to_str().ok()) {
        None | Some("null") => false,
        Some(_) => !super::same_origin(req, config),
    }
}

fn too_many(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut resp = html(StatusCode::TOO_MANY_REQUESTS, pages::too_many(secs));
    resp.headers_mut().insert("retry-after", secs.into());
    resp
}

/// Guessing (unknown, withdrawn or malformed tokens) is limited per client
/// address, and once an address has used its allowance every link request
/// from it waits, so a guess that hits cannot be told from one that
/// misses. A real link is limited per link instead, so a whole office
/// behind one address can set up its mailboxes at once.
async fn admit(state: &HttpState, req: &Request, token: &str) -> Result<LinkStatus, Response> {
    let ip = super::ratelimit::client_limit_key(req, state.muster.config.http.behind_proxy);
    if let Some(wait) = state.link_guesses.waiting(&ip) {
        return Err(too_many(wait));
    }
    let status = status_of(state, token).await?;
    let checked = match (&status, crate::domain::token::LinkToken::parse(token)) {
        (LinkStatus::Invalid, _) | (_, None) => state.link_guesses.guess(&ip),
        (_, Some(t)) => state
            .link_limiter
            .check(&crate::store::hex_hash(&t.hash().0)),
    };
    checked.map_err(too_many)?;
    Ok(status)
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "setup link request failed");
    html(StatusCode::INTERNAL_SERVER_ERROR, pages::error())
}

/// A service failure as a page: a store that takes no writes (a full disk)
/// is said plainly with 503; anything else is the generic page.
fn service_failed(e: crate::service::ServiceError) -> Response {
    match &e {
        crate::service::ServiceError::Store(s) if s.is_unavailable() => {
            tracing::error!(error = %e, "setup link request: the store takes no writes");
            html(StatusCode::SERVICE_UNAVAILABLE, pages::unavailable())
        }
        _ => internal(e),
    }
}

async fn status_of(state: &HttpState, token: &str) -> Result<LinkStatus, Response> {
    let muster = state.muster.clone();
    let t = token.to_string();
    match tokio::task::spawn_blocking(move || muster.link_status(&t)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(service_failed(e)),
        Err(e) => Err(internal(e)),
    }
}

/// How long a form sent twice waits for the first submission's outcome.
const SENT_TWICE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Checks where a post came from and takes its form proof (whose nonce
/// it returns, for [`UsedProofs::finish`]). On refusal, the answer: what
/// the link shows now when the form was simply sent twice (a double
/// click), else a page that says to open the link again.
async fn accept_post(
    state: &HttpState,
    req: &Request,
    token: &str,
    posted_proof: &str,
) -> Result<ProofNonce, Response> {
    let muster = &state.muster;
    let mut sent_twice = None;
    let reason = if from_another_site(req, &muster.config) {
        "another site".to_string()
    } else {
        match muster.check_form_proof(token, posted_proof) {
            Ok(proof) => match state.used_proofs.take(&proof, muster.now()) {
                Taking::Taken => return Ok(proof.nonce),
                Taking::TakenAt(at) => {
                    // Only a second post right behind the first is a
                    // double click; an old form sent again starts over.
                    if muster.now() - at < SENT_TWICE_WAIT {
                        sent_twice = Some(proof.nonce);
                    }
                    "a form proof used before".into()
                }
                Taking::Full => "too many form proofs held".into(),
            },
            Err(e) => e.to_string(),
        }
    };
    tracing::info!(reason = %reason, "refused a setup-link form post");
    let config = &muster.config;
    let mut status = status_of(state, token).await?;
    // The same form sent twice at once (a double click without script):
    // the first submission may not have begun when this one looks. What
    // the person sees is this answer, so it waits for the first one's
    // outcome, a few seconds at most, rather than saying to start over.
    let deadline = tokio::time::Instant::now() + SENT_TWICE_WAIT;
    while let Some(nonce) = &sent_twice
        && !state.used_proofs.is_done(nonce)
        && matches!(status, LinkStatus::Live(_) | LinkStatus::Busy(_))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = status_of(state, token).await?;
    }
    if sent_twice.is_some() {
        // As the first post left it.
        status = status_of(state, token).await?;
    }
    Err(match status {
        LinkStatus::Redeemed(i) => html(StatusCode::OK, pages::already_redeemed(config, &i)),
        LinkStatus::Busy(i) => html(StatusCode::CONFLICT, pages::busy(&i)),
        LinkStatus::Live(i) | LinkStatus::Blocked(i) | LinkStatus::Expired(i) => html(
            StatusCode::FORBIDDEN,
            pages::form_refused(pages::Lang::of(Some(&i)), token),
        ),
        LinkStatus::Invalid => html(StatusCode::NOT_FOUND, pages::invalid()),
    })
}

#[handler]
pub async fn show(
    Path(token): Path<String>,
    req: &Request,
    state: Data<&Arc<HttpState>>,
) -> Response {
    let status = match admit(&state, req, &token).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let muster = &state.muster;
    let config = &muster.config;
    match status {
        LinkStatus::Invalid => html(StatusCode::NOT_FOUND, pages::invalid()),
        LinkStatus::Live(i) => html(
            StatusCode::OK,
            pages::password_form(
                config,
                &i,
                &token,
                &muster.form_proof(&token),
                &[],
                FormNotice::None,
            ),
        ),
        LinkStatus::Blocked(i) => html(
            StatusCode::OK,
            pages::password_form(
                config,
                &i,
                &token,
                &muster.form_proof(&token),
                &[],
                FormNotice::Blocked,
            ),
        ),
        LinkStatus::Redeemed(i) => html(StatusCode::OK, pages::already_redeemed(config, &i)),
        LinkStatus::Expired(i) => html(
            StatusCode::GONE,
            pages::expired(&i, &token, &muster.form_proof(&token)),
        ),
        LinkStatus::Busy(i) => html(StatusCode::CONFLICT, pages::busy(&i)),
    }
}

#[handler]
pub async fn submit(
    Path(token): Path<String>,
    req: &Request,
    form: Option<Form<LinkForm>>,
    state: Data<&Arc<HttpState>>,
) -> Response {
    if let Err(r) = admit(&state, req, &token).await {
        return r;
    }
    let Some(Form(form)) = form else {
        return html(StatusCode::BAD_REQUEST, pages::invalid());
    };
    let nonce = match accept_post(&state, req, &token, &form.form_token).await {
        Ok(nonce) => nonce,
        Err(r) => return r,
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
    // A second post of this form waits no longer.
    state.used_proofs.finish(&nonce);
    let (outcome, status) = match result {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let muster = &state.muster;
    let config = &muster.config;
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
    let form_again = |i: &crate::domain::invite::Invite, problems, notice| {
        pages::password_form(
            config,
            i,
            &token,
            &muster.form_proof(&token),
            problems,
            notice,
        )
    };
    match (outcome, invite) {
        (Ok(redeemed), _) => {
            let agent = req
                .headers()
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            html(
                StatusCode::OK,
                pages::ready(config, &redeemed, Device::of(agent)),
            )
        }
        (Err(RedeemError::Policy(problems)), Some(i)) => html(
            StatusCode::UNPROCESSABLE_ENTITY,
            form_again(&i, &problems, FormNotice::None),
        ),
        (Err(RedeemError::PoolFull), Some(i)) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            form_again(&i, &[], FormNotice::Blocked),
        ),
        (Err(RedeemError::Overloaded(busy)), Some(i)) => {
            let mut resp = html(
                StatusCode::SERVICE_UNAVAILABLE,
                form_again(&i, &[], FormNotice::Busy),
            );
            resp.headers_mut()
                .insert("retry-after", busy.retry_after_secs.into());
            resp
        }
        (
            Err(RedeemError::Provision(_) | RedeemError::HostDamaged(_) | RedeemError::Hash(_)),
            Some(i),
        ) => html(StatusCode::SERVICE_UNAVAILABLE, pages::provision_failed(&i)),
        (Err(RedeemError::AlreadyOnHost(_)), Some(i)) => {
            html(StatusCode::CONFLICT, pages::address_taken(&i))
        }
        (Err(RedeemError::AlreadyRedeemed), Some(i)) => {
            html(StatusCode::OK, pages::already_redeemed(config, &i))
        }
        (Err(RedeemError::Busy), Some(i)) => html(StatusCode::CONFLICT, pages::busy(&i)),
        (Err(RedeemError::Expired), Some(i)) => html(
            StatusCode::GONE,
            pages::expired(&i, &token, &muster.form_proof(&token)),
        ),
        (Err(RedeemError::Service(e)), _) => service_failed(e),
        (Err(_), _) => html(StatusCode::NOT_FOUND, pages::invalid()),
    }
}

/// The setup page's script asks before it submits, so a weak password is
/// explained next to its field without the page reloading and losing what
/// was typed. Takes no proof (the submission does) and changes nothing.
#[handler]
pub async fn check(
    Path(token): Path<String>,
    req: &Request,
    form: Option<Form<LinkForm>>,
    state: Data<&Arc<HttpState>>,
) -> Response {
    let json = |status: StatusCode, body: serde_json::Value| {
        Response::builder()
            .status(status)
            .content_type("application/json")
            .body(body.to_string())
    };
    if let Err(r) = admit(&state, req, &token).await {
        return r;
    }
    let muster = state.muster.clone();
    // Anything but a policy verdict is left to the submission to answer.
    let pass = json(StatusCode::OK, serde_json::json!({"ok": true}));
    let Some(Form(form)) = form else {
        return pass;
    };
    if from_another_site(req, &muster.config)
        || muster.check_form_proof(&token, &form.form_token).is_err()
    {
        return json(StatusCode::FORBIDDEN, serde_json::json!({"ok": true}));
    }
    let t = token.clone();
    let verdict = tokio::task::spawn_blocking(move || {
        muster.password_problems(&t, &form.password, &form.confirmation)
    })
    .await;
    let crate::service::PasswordVerdict { invite, problems } = match verdict {
        Ok(Ok(Some(v))) => v,
        Ok(Ok(None)) => return pass,
        Ok(Err(e)) => return service_failed(e),
        Err(e) => return internal(e),
    };
    let lang = pages::Lang::of(Some(&invite));
    let messages = |field: &str| -> Vec<String> {
        problems
            .iter()
            .filter(|p| pages::problem_field(p) == field)
            .map(|p| pages::policy_message(p, lang))
            .collect()
    };
    json(
        StatusCode::OK,
        serde_json::json!({
            "ok": problems.is_empty(),
            "password": messages("password"),
            "confirmation": messages("confirmation"),
        }),
    )
}

#[handler]
pub async fn new_link(
    Path(token): Path<String>,
    req: &Request,
    form: Option<Form<LinkForm>>,
    state: Data<&Arc<HttpState>>,
) -> Response {
    if let Err(r) = admit(&state, req, &token).await {
        return r;
    }
    let proof = form.map(|Form(f)| f.form_token).unwrap_or_default();
    let nonce = match accept_post(&state, req, &token, &proof).await {
        Ok(nonce) => nonce,
        Err(r) => return r,
    };
    let muster = state.muster.clone();
    let t = token.clone();
    let result = tokio::task::spawn_blocking(move || {
        let recorded = muster.request_new_link(&t)?;
        Ok::<_, crate::service::ServiceError>((recorded, muster.link_status(&t)?))
    })
    .await;
    state.used_proofs.finish(&nonce);
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
        Ok(Err(e)) => service_failed(e),
        Err(e) => internal(e),
    }
}
