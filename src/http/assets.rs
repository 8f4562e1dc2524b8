//! The admin web app and shared assets, embedded from `web/` so Muster
//! works air-gapped: no CDN, no outside fonts.

use poem::http::{StatusCode, header};
use poem::{Response, handler, web::Path};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "web/"]
pub struct Web;

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "csv" => "text/csv; charset=utf-8",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// Serves an embedded file with an ETag; assets revalidate after an hour.
pub fn file(path: &str, if_none_match: Option<&str>) -> Response {
    // A release build looks names up in a map; a debug build reads the
    // folder, so `asset` refuses `..` before a name gets here.
    let Some(f) = Web::get(path) else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("text/plain; charset=utf-8")
            .body("not found\n");
    };
    let etag = format!(
        "\"{}\"",
        f.metadata
            .sha256_hash()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    if if_none_match == Some(etag.as_str()) {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, etag)
            .finish();
    }
    let cache = if path.starts_with("assets/") {
        "public, max-age=3600"
    } else {
        "no-cache"
    };
    Response::builder()
        .content_type(content_type(path))
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, cache)
        .body(f.data.into_owned())
}

#[handler]
pub fn asset(Path(path): Path<String>, req: &poem::Request) -> Response {
    let inm = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    // Only names inside assets/: a debug build reads them from disk, where
    // `..` would reach the admin pages past their sign-in check.
    if path.split(['/', '\\']).any(|s| s == ".." || s == ".") || path.starts_with('/') {
        return Response::builder()
            .status(poem::http::StatusCode::NOT_FOUND)
            .finish();
    }
    file(&format!("assets/{path}"), inm)
}

/// Browsers ask for `/favicon.ico` on their own: the same icon.
#[handler]
pub fn favicon(req: &poem::Request) -> Response {
    let inm = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    file("assets/favicon.svg", inm)
}

/// Who may see a page of the web app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Anyone: sign-in, first setup, password reset.
    Anyone,
    /// A signed-in admin; anyone else is sent to `/login?next=…`.
    Admin,
}

/// An endpoint serving one page of the web app.
pub fn page(name: &'static str, audience: Audience) -> impl poem::Endpoint {
    poem::endpoint::make(move |req: poem::Request| async move {
        let state = req
            .data::<std::sync::Arc<super::HttpState>>()
            .cloned()
            .expect("routes carry the state");
        if let Some(there) = local_alias(&req, &state.muster.config, audience, name) {
            return there;
        }
        if audience == Audience::Admin && !signed_in(&req, &state).await {
            return sign_in_first(&req);
        }
        if name == "setup.html" && !no_admin_yet(&state).await {
            return setup_done_page();
        }
        if name == "login.html" {
            if no_admin_yet(&state).await {
                return login_page(true, false);
            }
            if !may_hold_a_session(&req, &state).await {
                return login_page(false, false);
            }
        }
        let inm = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok());
        file(name, inm)
    })
}

async fn signed_in(req: &poem::Request, state: &std::sync::Arc<super::HttpState>) -> bool {
    let Some(cookie) = super::api::auth::session_cookie_value(req) else {
        return false;
    };
    let muster = state.muster.clone();
    // A store that cannot be read counts as signed in: the page's own
    // requests then say what is wrong instead of a loop through /login.
    tokio::task::spawn_blocking(move || muster.session(&cookie).map_or(true, |s| s.is_some()))
        .await
        .unwrap_or(true)
}

async fn no_admin_yet(state: &std::sync::Arc<super::HttpState>) -> bool {
    let muster = state.muster.clone();
    tokio::task::spawn_blocking(move || muster.admin_count().is_ok_and(|n| n == 0))
        .await
        .unwrap_or(false)
}

/// 303 to the sign-in page, which comes back here afterwards.
fn sign_in_first(req: &poem::Request) -> Response {
    // Firefox tells the sign-in page's own request "none" after this
    // redirect from another site, so the redirect says it instead.
    see_other(
        login_path(req, !cookie_would_show(req)),
        StatusCode::SEE_OTHER,
    )
}

/// The sign-in page's path that comes back to this request's page, and
/// says when the visit came from elsewhere (so the page asks for the
/// session its own request may carry).
fn login_path(req: &poem::Request, from_elsewhere: bool) -> String {
    let here = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let next: String = here
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let from = if from_elsewhere {
        "&from=elsewhere"
    } else {
        ""
    };
    format!("/login?next={next}{from}")
}

fn see_other(location: String, status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

/// A trial on one machine reaches Muster as localhost or as 127.0.0.1, and
/// its links say one of them; the session cookie belongs to one host name.
/// A page opened under the other local name, on the same port, is sent to
/// the public URL's, where the session is. (A proxy in front listens on
/// another port than Muster, so this never loops behind one.)
fn local_alias(
    req: &poem::Request,
    config: &crate::config::Config,
    audience: Audience,
    name: &str,
) -> Option<Response> {
    let public = &config.public_url;
    if !public.is_local() {
        return None;
    }
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    let asked = crate::config::HttpUrl::parse(&format!("http://{host}")).ok()?;
    let other_name = !asked.host().eq_ignore_ascii_case(public.host());
    if !(asked.is_local() && other_name && asked.port() == public.port()) {
        return None;
    }
    // A browser may treat this hop as one from another site and hold the
    // (SameSite=Strict) session cookie back: an admin page goes by the
    // sign-in page, which asks for the session with a request of its own.
    let here = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let path = match (audience, name) {
        (Audience::Admin, _) => login_path(req, true),
        (_, "login.html") if here.contains('?') => format!("{here}&from=elsewhere"),
        (_, "login.html") => format!("{here}?from=elsewhere"),
        _ => here.to_string(),
    };
    Some(see_other(
        format!("{}{path}", public.base()),
        StatusCode::TEMPORARY_REDIRECT,
    ))
}

/// The first-admin page once an admin exists: its link has done its work,
/// so the page says so at once instead of offering a form that can only
/// be refused.
fn setup_done_page() -> Response {
    edited_page(
        "setup.html",
        &[
            (
                "<div id=\"status\" hidden></div>",
                "<div id=\"status\" class=\"alert ok\" role=\"status\">An admin account exists already, so this setup link has done its work. <a href=\"/login\">Sign in</a>, or ask an admin for an account.</div>",
            ),
            ("<form id=\"setup\">", "<form id=\"setup\" hidden>"),
            (
                "<p class=\"muted\">This link works once. Choose the account you will sign in with.</p>",
                "",
            ),
        ],
    )
}

/// An embedded page with each (`from`, `to`) edit made once, for one visit
/// only (no-store).
fn edited_page(name: &str, edits: &[(&str, &str)]) -> Response {
    let page = Web::get(name).unwrap_or_else(|| panic!("{name} is embedded"));
    let body = edits.iter().fold(
        String::from_utf8_lossy(&page.data).into_owned(),
        |body, (from, to)| body.replacen(from, to, 1),
    );
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
}

/// Whether the browser may hold a session this request does not show: its
/// session cookie is SameSite=Strict, so a visit from another site arrives
/// without it, and the sign-in page then asks with a request of its own.
/// Asking when there is nothing to find would only put a 401 in the
/// browser's console.
async fn may_hold_a_session(req: &poem::Request, state: &std::sync::Arc<super::HttpState>) -> bool {
    let redirected_from_elsewhere = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "from=elsewhere"));
    redirected_from_elsewhere || !cookie_would_show(req) || signed_in(req, state).await
}

/// Whether this request would carry the SameSite=Strict session cookie if
/// the browser had one: a visit from this origin, or typed or bookmarked,
/// as `Sec-Fetch-Site` says (browsers without it may hold one unseen).
fn cookie_would_show(req: &poem::Request) -> bool {
    matches!(
        req.headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok()),
        Some("same-origin" | "none")
    )
}

/// The sign-in page, edited for this visit: the first-start help shown when
/// there is no admin to sign in as yet, and marked so that its script does
/// not look for a session when there is none to find.
fn login_page(first_start: bool, may_hold_a_session: bool) -> Response {
    let mut edits = Vec::new();
    if !may_hold_a_session {
        edits.push(("<body>", "<body data-session=\"none\">"));
    }
    if first_start {
        edits.push((
            "<section id=\"first-start\" class=\"alert warn\" hidden>",
            "<section id=\"first-start\" class=\"alert warn\">",
        ));
    }
    edited_page("login.html", &edits)
}
