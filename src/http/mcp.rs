//! MCP: `create_invites_bulk` and its companion tools, over streamable HTTP
//! at `/mcp` (behind the API's bearer tokens) and over stdio (`muster mcp`).
//! The same rules and per-item errors as the REST API.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, Request, Response};
use rmcp::RoleServer;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod mailbox_tools;
mod resend_tools;

use crate::domain::duration::HumanDuration;
use crate::domain::roster::InviteRow;
use crate::service::{BatchRequest, IdempotencyKey, Muster, RowLimit, ServiceError};
use crate::store::Actor;
use crate::store::KeyState;
use crate::store::view::InviteFilter;

/// Who called, set by the HTTP layer after checking the bearer token.
#[derive(Debug, Clone)]
pub struct McpCaller {
    pub actor: Actor,
    pub principal: String,
}

impl From<&super::api::auth::Principal> for McpCaller {
    /// As the REST API names the same caller, so both share its keys.
    fn from(p: &super::api::auth::Principal) -> Self {
        Self {
            actor: p.actor(),
            principal: p.key(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteItemArg {
    /// The mailbox name on the domain, e.g. `jane.doe`: lower case letters, digits, dot, hyphen, underscore.
    #[schemars(length(min = 1, max = 64))]
    pub local_part: String,
    /// The recipient's current email address, where the invite is sent.
    #[schemars(length(min = 3, max = 254))]
    pub recipient_email: String,
    /// Dedicated storage: MB as a positive whole number, or a size such as
    /// "2GB" or "500MB"; leave out for the shared pool.
    pub storage_allocation_mb: Option<AllocationArg>,
    /// The recipient's name, for the greeting.
    #[schemars(length(max = 100))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The email's language, such as `en` or `de`; left out, the configured default.
    #[schemars(length(max = 35))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// A storage allocation as an agent may well write it: a number of MB,
/// or a size in words that the preview reads as a CSV cell is read (and
/// flags, with the item's index, when it cannot).
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum AllocationArg {
    /// MB, a positive whole number.
    Mb(i64),
    /// MB with a fraction: read like a cell (and flagged when not whole).
    Decimal(f64),
    /// A size such as "2GB" or "500MB".
    Size(String),
}

impl AllocationArg {
    fn as_cell(&self) -> String {
        match self {
            AllocationArg::Mb(n) => n.to_string(),
            AllocationArg::Decimal(x) => x.to_string(),
            AllocationArg::Size(s) => s.clone(),
        }
    }
}

impl InviteItemArg {
    fn row(&self) -> InviteRow {
        use super::api::types::given;
        InviteRow {
            recipient_email: self.recipient_email.clone(),
            local_part: Some(self.local_part.clone()),
            storage_allocation_mb: self
                .storage_allocation_mb
                .as_ref()
                .map(AllocationArg::as_cell),
            display_name: given(&self.display_name),
            locale: given(&self.locale),
            ..InviteRow::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitesArgs {
    /// 1 to 100 invites; chunk longer lists into several calls.
    #[schemars(length(min = 1, max = 100))]
    pub items: Vec<InviteItemArg>,
    /// A hosted domain; may be left out when only one is hosted.
    pub domain: Option<String>,
    /// Link lifetime such as `7d` or `48h`: at least 1h, at most 30d (the default).
    pub expires_in: Option<String>,
    /// When recipients who have not used their link are reminded: a share of the link's life (`50%`) or a time before it expires (`48h`), at most 5. `[]` sends none; left out, the configured defaults.
    #[schemars(length(max = 5))]
    pub reminders: Option<Vec<String>>,
    /// Repeat-safe key: calling again with the same key and items returns the first result and creates nothing.
    #[schemars(length(min = 1, max = 200))]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewArgs {
    /// 1 to 100 items to check.
    #[schemars(length(min = 1, max = 100))]
    pub items: Vec<InviteItemArg>,
    /// A hosted domain; may be left out when only one is hosted.
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Only this batch.
    pub batch_id: Option<String>,
    /// A link state (live, redeemed, revoked, expired, blocked), a delivery state
    /// (queued, sent, deferred, failed, withdrawn), `pending`, `expiring` (live, expiring within a
    /// week), `new_link_requested` or `setup_failed` (the link works; the mailbox
    /// could not be made).
    pub state: Option<String>,
    /// Text to find in the recipient, mailbox or display name.
    pub query: Option<String>,
    /// `next_cursor` from the previous call.
    pub cursor: Option<String>,
    /// 1 to 200 (default 50).
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchArgs {
    /// The batch id returned by create_invites_bulk.
    pub batch_id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteArgs {
    /// The invite id.
    pub invite_id: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Clone)]
pub struct MusterMcp {
    muster: Arc<Muster>,
    /// Used when no HTTP caller is known (stdio).
    default_caller: McpCaller,
    tool_router: ToolRouter<Self>,
}

/// A readable line plus the same facts as structured content.
fn result(text: impl Into<String>, value: Value, is_error: bool) -> CallToolResult {
    let mut r = if is_error {
        CallToolResult::structured_error(value)
    } else {
        CallToolResult::structured(value)
    };
    r.content = vec![ContentBlock::text(text.into())];
    r
}

/// A service error as a tool error, with the same code and per-item
/// errors as the REST API.
fn failure(e: ServiceError) -> CallToolResult {
    use crate::service::codes::ErrorKind;
    let code = e.code();
    if matches!(
        e.kind(),
        ErrorKind::Internal | ErrorKind::Unavailable { .. }
    ) {
        tracing::error!(error = %e, code, "MCP tool failed");
    } else if e.is_host_refusal() {
        tracing::warn!(error = %e, code, "the mail host refused an MCP call");
    }
    let message = e.public_message();
    let mut value = json!({"code": code, "message": message});
    let mut text = format!("Refused ({code}): {message}");
    if let ErrorKind::Unavailable {
        retry_after_secs: Some(secs),
    } = e.kind()
    {
        value["retry_after_secs"] = json!(secs);
    }
    if let Some(problems) = e.item_problems() {
        for p in problems.iter().take(20) {
            text.push_str(&format!("\n- item {}: {} ({})", p.index, p.message, p.code));
        }
        value["errors"] = problems
            .iter()
            .map(|p| json!({"index": p.index, "field": p.field, "code": p.code, "message": p.message}))
            .collect();
    }
    result(text, value, true)
}

fn invite_json(v: &crate::service::InviteView) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl MusterMcp {
    pub fn new(muster: Arc<Muster>, default_caller: McpCaller) -> Self {
        Self {
            muster,
            default_caller,
            tool_router: Self::tool_router() + Self::mailbox_tools() + Self::resend_tools(),
        }
    }

    /// The HTTP caller checked by `/mcp`, or the stdio default.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> McpCaller {
        ctx.extensions
            .get::<poem::http::request::Parts>()
            .and_then(|p| p.extensions.get::<McpCaller>().cloned())
            .unwrap_or_else(|| self.default_caller.clone())
    }

    /// Runs blocking service work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Muster) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let muster = self.muster.clone();
        tokio::task::spawn_blocking(move || f(&muster))
            .await
            .map_err(|_| ServiceError::Stopped)?
    }
}

#[tool_router]
impl MusterMcp {
    /// Invite up to 100 people to new mailboxes in one call, all or nothing.
    #[tool(
        description = "Invite up to 100 recipients to new mailboxes. Each gets one email with a single-use setup link and chooses their own password; the mailbox is created only then. All or nothing: if any item is flagged (invalid address, duplicate, existing mailbox, pending invite, bad allocation, over the storage pool or the mailbox cap), nothing is created and every item's errors are returned. Use preview_invites first to check.",
        annotations(
            title = "Create invites in bulk",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn create_invites_bulk(
        &self,
        Parameters(args): Parameters<CreateInvitesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let caller = self.caller(&ctx);
        let expires_in = match args
            .expires_in
            .as_deref()
            .map(HumanDuration::parse)
            .transpose()
        {
            Ok(e) => e,
            Err(e) => {
                return result(
                    format!("Refused (invalid_expiry): {e}"),
                    json!({"code": "invalid_expiry", "message": e.to_string()}),
                    true,
                );
            }
        };
        let rows: Vec<InviteRow> = args.items.iter().map(InviteItemArg::row).collect();
        let key = args.idempotency_key.clone().map(|key| {
            use sha2::{Digest, Sha256};
            let body = serde_json::to_string(&(
                &args.items,
                &args.domain,
                &args.expires_in,
                &args.reminders,
            ))
            .unwrap_or_default();
            IdempotencyKey::new(
                format!("mcp:{}", caller.principal),
                key,
                crate::store::hex_hash(&Sha256::digest(body.as_bytes()).into()),
            )
        });
        let req = BatchRequest {
            domain: args.domain.clone(),
            expires_in,
            reminders: args.reminders.clone(),
            limit: RowLimit::Call,
            ..BatchRequest::new(rows, caller.actor.clone())
        };
        let outcome = self
            .blocking(move |m| {
                m.answer_idempotent(
                    key.as_ref(),
                    || m.create_batch_keyed(req, key.as_ref()),
                    |created| {
                        let invites: Vec<Value> = created
                            .invites
                            .iter()
                            .enumerate()
                            .map(|(index, i)| {
                                let v = m.invite_view(i);
                                json!({"index": index, "invite_id": v.id, "mailbox": v.mailbox,
                                       "recipient_email": v.recipient_email, "link_state": v.link_state,
                                       "delivery_state": v.delivery_state})
                            })
                            .collect();
                        let value = json!({"batch_id": created.batch.id, "expires_in": HumanDuration::from_secs(created.batch.expires_in_secs).to_string(), "reminders": created.batch.reminders, "invites": invites});
                        let kept = value.to_string();
                        (value, kept)
                    },
                    |state| match state {
                        KeyState::Answered { body } => {
                            Ok(serde_json::from_str(body).unwrap_or(Value::Null))
                        }
                        KeyState::Claimed { subject } => {
                            let (batch, invites) = m.batch_invites(subject)?;
                            Ok(json!({"batch_id": batch.id, "invites": invites.iter().map(invite_json).collect::<Vec<_>>()}))
                        }
                    },
                )
            })
            .await;
        match outcome {
            Ok(value) => {
                let n = value["invites"].as_array().map(Vec::len).unwrap_or(0);
                let text = format!(
                    "Created batch {} with {n} invites; each recipient gets an email with their setup link.",
                    value["batch_id"].as_str().unwrap_or("")
                );
                result(text, value, false)
            }
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "Check up to 100 invite items without creating anything: what each becomes (recipient -> mailbox, allocation), every problem with a stable code, and the capacity left (domain cap, existing, pending, this batch; storage pool).",
        annotations(
            title = "Preview invites",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn preview_invites(&self, Parameters(args): Parameters<PreviewArgs>) -> CallToolResult {
        let rows: Vec<InviteRow> = args.items.iter().map(InviteItemArg::row).collect();
        let domain = args.domain.clone();
        match self
            .blocking(move |m| m.preview(domain.as_deref(), &rows, RowLimit::Call))
            .await
        {
            Ok((_, p)) => {
                let text = format!(
                    "{} items: {} clean, {} flagged. {} left under the cap of {} on {} after this batch; {} MB left in the pool.",
                    p.rows.len(),
                    p.clean_rows,
                    p.flagged_rows,
                    p.capacity.left_after,
                    p.capacity.cap,
                    p.capacity.domain,
                    p.capacity.pool_left_after_mb
                );
                result(text, serde_json::to_value(&p).unwrap_or(Value::Null), false)
            }
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "List invites, newest first: recipient, mailbox, link state, delivery state with the last error, expiry. Filter by batch, state or text; page with the returned next_cursor.",
        annotations(
            title = "List pending invites",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_pending_invites(&self, Parameters(args): Parameters<ListArgs>) -> CallToolResult {
        let filter = InviteFilter {
            batch_id: args.batch_id,
            state: args.state,
            text: args.query,
        };
        let limit = args.limit.unwrap_or(50).clamp(1, 200) as usize;
        let cursor = args.cursor;
        match self
            .blocking(move |m| m.list_invites(&filter, cursor.as_deref(), limit))
            .await
        {
            Ok((invites, next)) => {
                let mut text = format!("{} invites", invites.len());
                for i in invites.iter().take(50) {
                    text.push_str(&format!(
                        "\n- {} -> {}: link {}, delivery {}",
                        i.recipient_email, i.mailbox, i.link_state, i.delivery_state
                    ));
                }
                if next.is_some() {
                    text.push_str("\n(more: pass next_cursor)");
                }
                result(
                    text,
                    json!({"invites": invites.iter().map(invite_json).collect::<Vec<_>>(), "next_cursor": next}),
                    false,
                )
            }
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "A batch's status: how many invites are queued, sent, deferred, failed or withdrawn (revoked before sending), how many links are live or redeemed, and each invite.",
        annotations(title = "Batch status", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_batch_status(&self, Parameters(args): Parameters<BatchArgs>) -> CallToolResult {
        match self
            .blocking(move |m| m.batch_invites(&args.batch_id))
            .await
        {
            Ok((batch, invites)) => {
                let count = |f: &dyn Fn(&crate::service::InviteView) -> bool| {
                    invites.iter().filter(|i| f(i)).count()
                };
                let delivery: Value = crate::domain::invite::Delivery::NAMES
                    .iter()
                    .map(|s| (s.to_string(), json!(count(&|i| i.delivery_state == *s))))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
                let links: Value = [
                    "live",
                    "redeeming",
                    "redeemed",
                    "revoked",
                    "expired",
                    "blocked",
                ]
                .iter()
                .map(|s| (s.to_string(), json!(count(&|i| i.link_state == *s))))
                .collect::<serde_json::Map<_, _>>()
                .into();
                let text = format!(
                    "Batch {} on {}: {} invites; sent {}, in the outbox (no relay: not on their way) {}, failed {}, withdrawn (revoked before sending) {}, deferred {}, sending {}, queued {}; redeemed {}.",
                    batch.id,
                    batch.domain,
                    invites.len(),
                    delivery["sent"],
                    delivery["in_outbox"],
                    delivery["failed"],
                    delivery["withdrawn"],
                    delivery["deferred"],
                    delivery["sending"],
                    delivery["queued"],
                    links["redeemed"]
                );
                result(
                    text,
                    json!({"batch_id": batch.id, "domain": batch.domain, "delivery": delivery, "links": links,
                           "invites": invites.iter().map(invite_json).collect::<Vec<_>>()}),
                    false,
                )
            }
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "Send an unredeemed invite again with a fresh link and a fresh expiry; the old link stops working at once.",
        annotations(
            title = "Resend an invite",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn resend_invite(
        &self,
        Parameters(args): Parameters<InviteArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let actor = self.caller(&ctx).actor;
        match self
            .blocking(move |m| m.resend(&args.invite_id, &actor))
            .await
        {
            Ok(v) => result(
                format!(
                    "Sent a new link to {} for {}; it expires {}.",
                    v.recipient_email,
                    v.mailbox,
                    crate::mail::compose::plain_date(v.expires_at, "en")
                ),
                invite_json(&v),
                false,
            ),
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "Withdraw an invite: its link stops working and its place under the mailbox cap is freed. Cannot be undone; send a new invite instead.",
        annotations(
            title = "Revoke an invite",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn revoke_invite(
        &self,
        Parameters(args): Parameters<InviteArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let actor = self.caller(&ctx).actor;
        match self
            .blocking(move |m| m.revoke(&args.invite_id, &actor))
            .await
        {
            Ok(v) => result(
                format!("Revoked the invite for {}.", v.mailbox),
                invite_json(&v),
                false,
            ),
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "Mailbox caps per domain (cap, existing, pending invites, left) and the storage pool (size, allocated, available).",
        annotations(title = "Capacity", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_capacity(&self, Parameters(_): Parameters<NoArgs>) -> CallToolResult {
        let outcome = self
            .blocking(|m| {
                let overview = crate::http::api::types::CapacityOverview::of(
                    &m.capacities()?,
                    m.config.storage_pool_mb,
                );
                Ok(poem_openapi::types::ToJSON::to_json(&overview).unwrap_or(Value::Null))
            })
            .await;
        match outcome {
            Ok(v) => {
                let mut text = String::new();
                for d in v["domains"].as_array().into_iter().flatten() {
                    text.push_str(&format!(
                        "{}: {} of {} places left ({} mailboxes, {} pending invites).\n",
                        d["domain"].as_str().unwrap_or(""),
                        d["left"],
                        d["cap"],
                        d["existing"],
                        d["pending"]
                    ));
                }
                text.push_str(&format!(
                    "Storage pool: {} MB available of {} MB.",
                    v["pool"]["available_mb"], v["pool"]["pool_mb"]
                ));
                result(text, v, false)
            }
            Err(e) => failure(e),
        }
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "muster",
    instructions = "Muster invites people to new mailboxes on this organisation's mail server. Use preview_invites to check a list, create_invites_bulk to send up to 100 invites per call (chunk longer lists), then get_batch_status, list_pending_invites, resend_invite and revoke_invite to follow up; preview_resend_pending and resend_pending_invites resend every invite still waiting after some days. get_capacity shows caps and the storage pool. For mailboxes Muster made: set_mailbox_allocation, suspend_mailbox, restore_mailbox and remove_mailbox."
)]
impl ServerHandler for MusterMcp {}

/// `/mcp`: streamable HTTP behind the API's bearer tokens (401 without,
/// 403 for a revoked or unknown token), with the allowed Host headers from
/// the public URL.
pub fn endpoint(state: Arc<super::HttpState>) -> impl Endpoint {
    use poem::endpoint::TowerCompatExt;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let muster = state.muster.clone();
    let public = muster.config.public_host();
    let port = muster
        .config
        .public_url()
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.rsplit_once(':').map(|(_, p)| p.to_string()));
    let mut hosts = vec![
        public.clone(),
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ];
    if let Some(p) = &port {
        hosts.push(format!("{public}:{p}"));
    }
    let listen_port = Some(muster.config.listen.port());
    if let Some(p) = listen_port {
        hosts.push(format!("localhost:{p}"));
        hosts.push(format!("127.0.0.1:{p}"));
    }
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    let m = muster.clone();
    let service = StreamableHttpService::new(
        move || {
            Ok(MusterMcp::new(
                m.clone(),
                McpCaller {
                    actor: Actor("mcp".into()),
                    principal: "mcp".into(),
                },
            ))
        },
        Arc::new(LocalSessionManager::default()),
        config,
    )
    .compat();
    McpEndpoint {
        state,
        inner: service.boxed(),
    }
}

struct McpEndpoint {
    state: Arc<super::HttpState>,
    inner: poem::endpoint::BoxEndpoint<'static>,
}

impl Endpoint for McpEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        use super::api::auth::{Principal, Verified};
        // A request with a body was verified before it was read.
        let verified = match req.extensions().get::<Verified>() {
            Some(Verified(p @ Principal::Token { .. })) => Some(McpCaller::from(p)),
            _ => None,
        };
        let caller = match verified {
            Some(caller) => Ok(caller),
            None => authenticate(&self.state, &req).await,
        };
        match caller {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Ok(match self.inner.call(req).await {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                })
            }
            Err(resp) => Ok(resp),
        }
    }
}

async fn authenticate(state: &super::HttpState, req: &Request) -> Result<McpCaller, Response> {
    let secret = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(super::api::auth::bearer_secret)
        .ok_or_else(|| {
            let mut r = super::api::error_response(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send an API token as `Authorization: Bearer <token>`",
                None,
            );
            r.headers_mut().insert(
                "www-authenticate",
                poem::http::HeaderValue::from_static("Bearer"),
            );
            r
        })?;
    let t = super::api::auth::verify_api_token(state, req, secret).await?;
    Ok(McpCaller::from(&super::api::auth::Principal::Token {
        id: t.id,
        name: t.name,
    }))
}

/// `muster mcp`: the same tools over stdio, against the local store.
pub async fn serve_stdio(muster: Arc<Muster>) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    let server = MusterMcp::new(
        muster,
        McpCaller {
            actor: Actor("mcp:stdio".into()),
            principal: "stdio".into(),
        },
    );
    let running = server.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
