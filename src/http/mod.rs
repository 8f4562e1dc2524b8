//! HTTP: the JSON API, the setup-link pages, the admin web app and MCP.

use std::sync::Arc;

use poem::{EndpointExt, Route, get, handler};

use crate::service::Muster;

#[handler]
fn healthz() -> &'static str {
    "ok\n"
}

pub fn routes(_muster: Arc<Muster>) -> impl poem::Endpoint {
    Route::new().at("/healthz", get(healthz)).boxed()
}
