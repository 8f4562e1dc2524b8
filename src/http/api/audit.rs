//! The audit trail: who did what, when, filtered by kind, actor and date,
//! with ids named in words.

use std::collections::HashMap;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{OpenApi, Tags};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::ApiError;
use super::auth::Auth;
use super::invites::blocking;
use super::types::*;
use crate::http::HttpState;
use crate::service::ServiceError;
use crate::store::view::AuditFilter;
use crate::store::{AuditEvent, View, millis};

#[derive(Tags)]
enum Tag {
    /// Who did what, when.
    Audit,
}

pub struct AuditApi;

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

/// A `from` or `until` bound: a day (`2026-12-03`, UTC; `until` takes the
/// whole day) or an RFC 3339 time.
fn parse_bound(field: &str, raw: Option<&str>, end_of_day: bool) -> Result<Option<u64>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let day = time::macros::format_description!("[year]-[month]-[day]");
    let at = if let Ok(d) = time::Date::parse(raw, &day) {
        let day = if end_of_day { d.next_day() } else { Some(d) };
        match day {
            Some(day) => day.midnight().assume_utc(),
            // The last day there is: open-ended.
            None => return Ok(None),
        }
    } else {
        OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| {
            ApiError::unprocessable(
                "invalid_date",
                format!("`{field}`: {raw:?} is not a date (2026-12-03) or an RFC 3339 time"),
                None,
            )
        })?
    };
    Ok(Some(millis(at)))
}

fn filter(
    kind: Option<String>,
    actor: Option<String>,
    from: Option<&str>,
    until: Option<&str>,
) -> Result<AuditFilter, ApiError> {
    Ok(AuditFilter {
        kind,
        actor,
        from_ms: parse_bound("from", from, false)?,
        until_ms: parse_bound("until", until, true)?,
    })
}

/// Names the ids events carry, looking each up once.
struct Names<'a> {
    view: &'a View,
    known: HashMap<String, Option<String>>,
}

impl<'a> Names<'a> {
    fn new(view: &'a View) -> Self {
        Self {
            view,
            known: HashMap::new(),
        }
    }

    fn of(&mut self, e: &AuditEvent) -> Option<String> {
        let kind = e.action.split('.').next().unwrap_or("");
        if !matches!(kind, "invite" | "batch" | "token" | "webhook") {
            return None;
        }
        let key = format!("{kind}/{}", e.subject);
        if let Some(name) = self.known.get(&key) {
            return name.clone();
        }
        let name = match kind {
            "invite" => self
                .view
                .invite(&e.subject)
                .ok()
                .flatten()
                .map(|i| format!("{} (invited at {})", i.mailbox, i.recipient_email)),
            "batch" => self.view.batch(&e.subject).ok().flatten().map(|b| {
                let n = b.invite_count;
                format!(
                    "{n} invite{} for {}",
                    if n == 1 { "" } else { "s" },
                    b.domain
                )
            }),
            // A removed endpoint is gone; its removal's detail has the URL.
            "webhook" => self
                .view
                .webhook(&e.subject)
                .ok()
                .flatten()
                .map(|w| format!("webhook endpoint {}", w.url)),
            _ => self
                .view
                .api_token(&e.subject)
                .ok()
                .flatten()
                .map(|t| format!("token {:?}", t.name)),
        };
        self.known.insert(key, name.clone());
        name
    }

    fn body(&mut self, e: &AuditEvent) -> AuditBody {
        AuditBody {
            id: e.id.clone(),
            at: rfc3339(e.at),
            actor: e.actor.to_string(),
            actor_name: e.actor.words(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            subject_name: self.of(e),
            detail: e.detail.clone(),
        }
    }
}

#[OpenApi(tag = "Tag::Audit")]
impl AuditApi {
    /// The audit trail, newest first. `kind` is an action's first word
    /// (`invite`, `batch`, `admin`, `token`, `mailbox`) or one action
    /// (`admin.sign_in_failed`); `actor` matches part of the actor; `from`
    /// and `until` are days (`until` inclusive) or RFC 3339 times.
    #[oai(path = "/audit", method = "get", operation_id = "list_audit")]
    #[allow(clippy::too_many_arguments)]
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
        #[oai(validator(max_length = 64))] kind: Query<Option<String>>,
        #[oai(validator(max_length = 320))] actor: Query<Option<String>>,
        #[oai(validator(max_length = 40))] from: Query<Option<String>>,
        #[oai(validator(max_length = 40))] until: Query<Option<String>>,
    ) -> Result<Json<AuditPage>, ApiError> {
        let state = state.0.clone();
        let filter = filter(kind.0, actor.0, from.0.as_deref(), until.0.as_deref())?;
        blocking(&state, move |muster| {
            let before = parse_cursor(cursor.0.as_deref())?;
            let n = limit.0 as usize;
            let view = muster.view()?;
            let events = view
                .audit_matching(
                    before.as_ref().map(|(ms, id)| (*ms, id.as_str())),
                    n + 1,
                    &filter,
                )
                .map_err(ServiceError::from)?;
            let next = (events.len() > n).then(|| {
                let last = &events[n - 1];
                format!("{}.{}", millis(last.at), last.id)
            });
            let mut names = Names::new(&view);
            Ok(Json(AuditPage {
                events: events.iter().take(n).map(|e| names.body(e)).collect(),
                next_cursor: next,
            }))
        })
        .await
    }

    /// The audit trail as CSV, with the same filters.
    #[oai(path = "/audit.csv", method = "get", operation_id = "export_audit")]
    async fn audit_csv(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        #[oai(validator(max_length = 64))] kind: Query<Option<String>>,
        #[oai(validator(max_length = 320))] actor: Query<Option<String>>,
        #[oai(validator(max_length = 40))] from: Query<Option<String>>,
        #[oai(validator(max_length = 40))] until: Query<Option<String>>,
    ) -> Result<CsvResponse, ApiError> {
        let state = state.0.clone();
        let filter = filter(kind.0, actor.0, from.0.as_deref(), until.0.as_deref())?;
        blocking(&state, move |muster| {
            let view = muster.view()?;
            let events = view
                .audit_matching(None, usize::MAX, &filter)
                .map_err(ServiceError::from)?;
            let mut names = Names::new(&view);
            let mut out = String::from("at,actor,action,subject,subject_name,detail\n");
            for e in &events {
                let b = names.body(e);
                out.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    csv_cell(&b.at),
                    csv_cell(&b.actor),
                    csv_cell(&b.action),
                    csv_cell(&b.subject),
                    csv_cell(b.subject_name.as_deref().unwrap_or("")),
                    csv_cell(&b.detail)
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
