//! MCP tools for "resend every invite still pending after N days": the
//! preview of which, and the resend itself, as the REST API does them.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, schemars, tool, tool_router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{MusterMcp, failure, invite_json, result};
use crate::domain::duration::HumanDuration;
use crate::service::ServiceError;

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingArgs {
    /// How long since the invites' link went out, such as `7d` (at least `1h`).
    #[schemars(length(min = 2, max = 32))]
    pub older_than: String,
    /// Only this batch.
    pub batch_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendPendingArgs {
    /// How long since the invites' link went out, such as `7d` (at least `1h`).
    #[schemars(length(min = 2, max = 32))]
    pub older_than: String,
    /// Only this batch.
    pub batch_id: Option<String>,
    /// Only these invites (as preview_resend_pending listed them); each must still be waiting.
    #[schemars(length(max = 5000))]
    pub invite_ids: Option<Vec<String>>,
}

fn wait(raw: &str) -> Result<HumanDuration, ServiceError> {
    HumanDuration::parse(raw).map_err(|e| ServiceError::Wait(format!("older_than: {e}")))
}

#[tool_router(router = resend_tools, vis = "pub(super)")]
impl MusterMcp {
    #[tool(
        description = "Which invites are still waiting (link live or expired, not used, revoked or blocked) with their link sent at least older_than ago: the ones resend_pending_invites would send a fresh link to. Changes nothing.",
        annotations(
            title = "Preview a bulk resend",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn preview_resend_pending(
        &self,
        Parameters(args): Parameters<PendingArgs>,
    ) -> CallToolResult {
        let batch = args.batch_id.clone();
        match self
            .blocking(move |m| m.resend_candidates(wait(&args.older_than)?, batch.as_deref()))
            .await
        {
            Ok(candidates) => {
                let mut text = format!(
                    "{} invites still waiting after their link went out:",
                    candidates.len()
                );
                for c in candidates.iter().take(50) {
                    text.push_str(&format!(
                        "\n- {} -> {} (link sent {}, {})",
                        c.invite.recipient_email,
                        c.invite.mailbox,
                        c.link_sent_at.date(),
                        c.invite.link_state
                    ));
                }
                let invites: Vec<Value> = candidates
                    .iter()
                    .map(|c| {
                        let mut v = invite_json(&c.invite);
                        v["link_sent_at"] = json!(crate::http::api::types::rfc3339(c.link_sent_at));
                        v
                    })
                    .collect();
                result(
                    text,
                    json!({"count": invites.len(), "invites": invites}),
                    false,
                )
            }
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "Resend every invite still waiting after older_than (optionally one batch, optionally only the invite_ids a preview listed): each gets a fresh link and expiry, and its old link stops working at once. Use preview_resend_pending first.",
        annotations(
            title = "Resend pending invites",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn resend_pending_invites(
        &self,
        Parameters(args): Parameters<ResendPendingArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let actor = self.caller(&ctx).actor;
        match self
            .blocking(move |m| {
                m.resend_pending(
                    wait(&args.older_than)?,
                    args.batch_id.as_deref(),
                    args.invite_ids.as_deref(),
                    &actor,
                )
            })
            .await
        {
            Ok(done) => {
                let mut text = format!("Sent fresh links to {} invites.", done.resent.len());
                for (id, why) in done.skipped.iter().take(20) {
                    text.push_str(&format!("\n- skipped {id}: {why}"));
                }
                result(
                    text,
                    json!({
                        "resent": done.resent.iter().map(invite_json).collect::<Vec<_>>(),
                        "skipped": done.skipped.iter().map(|(id, why)| json!({"invite_id": id, "reason": why})).collect::<Vec<_>>(),
                    }),
                    false,
                )
            }
            Err(e) => failure(e),
        }
    }
}
