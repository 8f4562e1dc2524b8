//! Operations endpoints: `/healthz` (alive), `/readyz` (store open and the
//! delivery worker running) and `/metrics` (Prometheus text format).

use std::fmt::Write as _;
use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{Request, Response, handler};
use subtle::ConstantTimeEq;

use super::HttpState;
use crate::service::Muster;
use crate::service::metrics::LATENCY_BUCKETS;

#[handler]
pub fn healthz() -> &'static str {
    "ok\n"
}

#[handler]
pub async fn readyz(state: Data<&Arc<HttpState>>) -> Response {
    let muster = state.muster.clone();
    let (store, host) = tokio::task::spawn_blocking(move || {
        let store = match muster.store.read() {
            Err(e) => Some(format!("the store cannot be read: {e}")),
            Ok(_) => muster.store.problem(),
        };
        let host = match muster.host_damage() {
            Ok(None) => None,
            Ok(Some(damage)) => Some(damage.to_string()),
            Err(e) => Some(format!("the mail host cannot be read: {e}")),
        }
        .or_else(|| muster.host.write_problem().map(|p| p.to_string()));
        (store, host)
    })
    .await
    .unwrap_or_else(|_| (Some("the store check did not finish".to_string()), None));
    let worker_ok = state.muster.metrics.worker_alive();
    let mut problems = Vec::new();
    problems.extend(store);
    if !worker_ok {
        problems.push("the delivery worker is not running".to_string());
    }
    problems.extend(host);
    let (status, body) = if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
    };
    Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The metrics in Prometheus text format.
pub fn render(muster: &Muster) -> Result<String, crate::store::StoreError> {
    let view = muster.store.read()?;
    let now = muster.now();
    let (links, deliveries) = view.invite_state_counts(now)?;
    let mut out = String::new();
    family(
        &mut out,
        "muster_invites",
        "gauge",
        "Invites by link state.",
    );
    for s in [
        "live",
        "redeeming",
        "redeemed",
        "revoked",
        "expired",
        "blocked",
    ] {
        let _ = writeln!(
            out,
            "muster_invites{{link_state=\"{s}\"}} {}",
            links.get(s).copied().unwrap_or(0)
        );
    }
    family(
        &mut out,
        "muster_invite_deliveries",
        "gauge",
        "Invites by delivery state.",
    );
    for s in crate::domain::invite::Delivery::NAMES {
        let _ = writeln!(
            out,
            "muster_invite_deliveries{{state=\"{s}\"}} {}",
            deliveries.get(s).copied().unwrap_or(0)
        );
    }
    for (name, counter, help) in [
        (
            "muster_invites_created_total",
            "invites_created",
            "Invites created in batches.",
        ),
        (
            "muster_sends_total",
            "sends",
            "Emails accepted by the relay or written to the outbox.",
        ),
        (
            "muster_send_failures_total",
            "send_failures",
            "Emails that failed for good.",
        ),
        (
            "muster_send_deferrals_total",
            "send_deferrals",
            "Temporary failures, retried later.",
        ),
        (
            "muster_redemptions_total",
            "redemptions",
            "Setup links redeemed: mailboxes created by invite.",
        ),
        (
            "muster_mailboxes_created_total",
            "mailboxes_created",
            "Mailboxes created by bulk creation.",
        ),
    ] {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", view.counter(counter)?);
    }
    family(
        &mut out,
        "muster_queue_depth",
        "gauge",
        "Delivery tasks due now, waiting to be sent.",
    );
    let _ = writeln!(
        out,
        "muster_queue_depth {}",
        view.due_task_count(muster.now())?
    );
    family(
        &mut out,
        "muster_queue_scheduled",
        "gauge",
        "Every delivery task queued: due now, deferred retries and reminders ahead.",
    );
    let _ = writeln!(out, "muster_queue_scheduled {}", view.task_count()?);
    let h = muster
        .metrics
        .delivery_latency
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    family(
        &mut out,
        "muster_delivery_latency_seconds",
        "histogram",
        "From queued to accepted, since this process started.",
    );
    let mut cumulative = 0;
    for (bound, n) in LATENCY_BUCKETS.iter().zip(h.counts) {
        cumulative += n;
        let _ = writeln!(
            out,
            "muster_delivery_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "muster_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {}",
        cumulative + h.over
    );
    let _ = writeln!(out, "muster_delivery_latency_seconds_sum {}", h.sum);
    let _ = writeln!(out, "muster_delivery_latency_seconds_count {}", h.count);
    family(
        &mut out,
        "muster_worker_up",
        "gauge",
        "1 when the delivery worker passed over the queue in the last 30 s.",
    );
    let _ = writeln!(
        out,
        "muster_worker_up {}",
        u8::from(muster.metrics.worker_alive())
    );
    let hashing = muster.hasher.stats();
    for (name, kind, help, value) in [
        (
            "muster_password_hashes_running",
            "gauge",
            "Password hashes running now (at most muster_password_hash_workers).",
            hashing.running as u64,
        ),
        (
            "muster_password_hashes_waiting",
            "gauge",
            "Password hashes waiting for a worker.",
            hashing.waiting as u64,
        ),
        (
            "muster_password_hash_workers",
            "gauge",
            "Password hashes that may run at once.",
            hashing.workers as u64,
        ),
        (
            "muster_password_hashes_refused_total",
            "counter",
            "Password hashes refused with 503 because the pool was full.",
            hashing.refused,
        ),
    ] {
        figure(&mut out, name, kind, help, value);
    }
    family(
        &mut out,
        "muster_build_info",
        "gauge",
        "The running version.",
    );
    let _ = writeln!(
        out,
        "muster_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    Ok(out)
}

/// One metric family with a single unlabelled value.
fn figure(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The HTTP server's own figures: open connections and the caps at work.
fn render_connections(state: &HttpState, out: &mut String) {
    let c = state.connections.stats();
    for (name, kind, help, value) in [
        (
            "muster_http_connections_open",
            "gauge",
            "Open HTTP connections.",
            c.open as u64,
        ),
        (
            "muster_http_connections_refused_total",
            "counter",
            "Connections closed at once: over a client's share, or all busy at the cap.",
            c.refused,
        ),
        (
            "muster_http_connections_evicted_total",
            "counter",
            "Idle connections closed to make room at the cap.",
            c.evicted,
        ),
    ] {
        figure(out, name, kind, help, value);
    }
}

/// Whether the request may read the metrics: with `http.metrics_token`
/// set, only a bearer of it (compared in constant time).
fn may_read_metrics(token: Option<&str>, authorization: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    // The scheme's name is case-insensitive (RFC 9110).
    authorization
        .and_then(|h| h.trim_start().split_once([' ', '\t']))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, sent)| bool::from(sent.trim().as_bytes().ct_eq(token.as_bytes())))
}

#[handler]
pub async fn metrics(req: &Request, state: Data<&Arc<HttpState>>) -> Response {
    let token = state.muster.config.http.metrics_token.as_ref();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !may_read_metrics(token.map(|t| t.expose()), authorization) {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")
            .content_type("text/plain; charset=utf-8")
            .body("send the metrics token (http.metrics_token) as Authorization: Bearer\n");
    }
    let muster = state.muster.clone();
    let rendered = tokio::task::spawn_blocking(move || render(&muster))
        .await
        .map(|r| {
            r.map(|mut text| {
                render_connections(&state, &mut text);
                text
            })
        });
    match rendered {
        Ok(Ok(text)) => Response::builder()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        other => {
            tracing::error!(?other, "cannot render metrics");
            Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .body("metrics unavailable\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::may_read_metrics;

    #[test]
    fn metrics_need_the_token_only_when_one_is_set() {
        assert!(may_read_metrics(None, None));
        let t = Some("0123456789abcdef0123");
        assert!(!may_read_metrics(t, None));
        assert!(!may_read_metrics(t, Some("Bearer 0123456789abcdef012")));
        assert!(!may_read_metrics(t, Some("Basic 0123456789abcdef0123")));
        assert!(!may_read_metrics(t, Some("Bearer 0123456789abcdef01234")));
        assert!(may_read_metrics(t, Some("Bearer 0123456789abcdef0123")));
        assert!(may_read_metrics(t, Some("bearer  0123456789abcdef0123")));
    }
}
