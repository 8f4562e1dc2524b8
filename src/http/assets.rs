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
    // rust-embed looks names up in a map: "..", "//" or absolute paths
    // simply do not match.
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
    file(&format!("assets/{path}"), inm)
}

/// An endpoint serving one page of the web app.
pub fn page(name: &'static str) -> impl poem::Endpoint {
    poem::endpoint::make_sync(move |req: poem::Request| {
        let inm = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        file(name, inm.as_deref())
    })
}
