//! MCP tools for the mailboxes Muster made: allocation, suspension,
//! restoration and removal, with the REST API's rules and codes.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, schemars, tool, tool_router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{MusterMcp, failure, result};
use crate::provision::MailFolder;
use crate::service::{ManagedMailbox, size_words};

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MailboxArgs {
    /// The mailbox address, e.g. `jane.doe@example.org`.
    #[schemars(length(min = 3, max = 320))]
    pub address: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationArgs {
    /// The mailbox address.
    #[schemars(length(min = 3, max = 320))]
    pub address: String,
    /// Dedicated storage in MB (a positive whole number); leave out for the shared pool.
    #[schemars(range(min = 1))]
    pub storage_allocation_mb: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveArgs {
    /// The mailbox address.
    #[schemars(length(min = 3, max = 320))]
    pub address: String,
    /// Also delete the mailbox's mail folder (default: keep it).
    #[serde(default)]
    pub delete_mail: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetArgs {
    /// The mailbox address.
    #[schemars(length(min = 3, max = 320))]
    pub address: String,
    /// Where the link goes; leave out for the address the mailbox was invited at.
    pub to: Option<String>,
    /// `en` or `de`; leave out for the invite's language.
    pub locale: Option<String>,
}

fn mailbox_json(m: &ManagedMailbox) -> serde_json::Value {
    json!({
        "address": m.record.address,
        "storage_allocation_mb": m.record.storage_allocation_mb,
        "quota_mb": m.host.quota_mb,
        "suspended": m.host.suspended,
    })
}

impl MusterMcp {
    /// Suspends (true) or restores (false) a mailbox, for both tools.
    async fn suspension(
        &self,
        address: String,
        suspended: bool,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let actor = self.caller(ctx).actor;
        match self
            .blocking(move |m| m.set_suspended(&address, suspended, &actor))
            .await
        {
            Ok(v) => result(
                if suspended {
                    format!(
                        "Suspended {}: logins refused, mail still accepted.",
                        v.record.address
                    )
                } else {
                    format!("Restored {}.", v.record.address)
                },
                mailbox_json(&v),
                false,
            ),
            Err(e) => failure(e),
        }
    }
}

#[tool_router(router = mailbox_tools, vis = "pub(super)")]
impl MusterMcp {
    #[tool(
        description = "Change the storage allocation of a mailbox Muster made: MB, or leave storage_allocation_mb out for the shared pool. A bigger allocation must fit what the storage pool has left.",
        annotations(
            title = "Change a mailbox's allocation",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn set_mailbox_allocation(
        &self,
        Parameters(args): Parameters<AllocationArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let actor = self.caller(&ctx).actor;
        let Ok(mb) = args.storage_allocation_mb.map(u64::try_from).transpose() else {
            return failure(crate::service::ServiceError::Allocation(
                "storage_allocation_mb is a positive number of MB".into(),
            ));
        };
        match self
            .blocking(move |m| m.set_allocation(&args.address, mb, &actor))
            .await
        {
            Ok(v) => result(
                format!(
                    "{} now has {}.",
                    v.record.address,
                    v.record
                        .storage_allocation_mb
                        .map(size_words)
                        .unwrap_or_else(|| "the shared pool".into())
                ),
                mailbox_json(&v),
                false,
            ),
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "Suspend a mailbox Muster made: its logins are refused, its mail still arrives. Undo with restore_mailbox.",
        annotations(
            title = "Suspend a mailbox",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn suspend_mailbox(
        &self,
        Parameters(args): Parameters<MailboxArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.suspension(args.address, true, &ctx).await
    }

    #[tool(
        description = "Restore a suspended mailbox: its logins work again.",
        annotations(
            title = "Restore a mailbox",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn restore_mailbox(
        &self,
        Parameters(args): Parameters<MailboxArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.suspension(args.address, false, &ctx).await
    }

    #[tool(
        description = "Send the owner of a mailbox Muster made a single-use link (valid 24 hours) to choose a new password; the old one works until then. It shows in the pending list with purpose password_reset.",
        annotations(
            title = "Send a password-reset link",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn send_mailbox_password_reset(
        &self,
        Parameters(args): Parameters<PasswordResetArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let actor = self.caller(&ctx).actor;
        match self
            .blocking(move |m| {
                m.send_password_reset(
                    &args.address,
                    args.to.as_deref(),
                    args.locale.as_deref(),
                    &actor,
                )
            })
            .await
        {
            Ok(v) => result(
                format!(
                    "A link to choose a new password for {} goes to {}; it expires {}.",
                    v.mailbox,
                    v.recipient_email,
                    crate::mail::compose::plain_date(v.expires_at, "en")
                ),
                serde_json::to_value(&v).unwrap_or_default(),
                false,
            ),
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "Remove a mailbox Muster made from the mail server: its login and address go. Its mail folder stays unless delete_mail is true. Cannot be undone.",
        annotations(
            title = "Remove a mailbox",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn remove_mailbox(
        &self,
        Parameters(args): Parameters<RemoveArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let actor = self.caller(&ctx).actor;
        let address = args.address.trim().to_lowercase();
        match self
            .blocking(move |m| m.remove_mailbox(&args.address, args.delete_mail, &actor))
            .await
        {
            Ok(folder) => {
                let (state, text) = match &folder {
                    MailFolder::Kept(p) => (
                        "kept",
                        format!("Removed {address}; its mail folder {p} is kept."),
                    ),
                    MailFolder::Deleted(p) => (
                        "deleted",
                        format!("Removed {address} with its mail folder {p}."),
                    ),
                    MailFolder::Absent(p) => (
                        "absent",
                        format!("Removed {address}; it had no mail folder at {p}."),
                    ),
                    MailFolder::NotDeleted { path, why } => (
                        "not_deleted",
                        format!(
                            "Removed {address}; its mail folder {path} could not be deleted: {why}."
                        ),
                    ),
                    MailFolder::Unknown => ("unknown", format!("Removed {address}.")),
                };
                result(
                    text,
                    json!({"address": address, "mail_folder": state}),
                    false,
                )
            }
            Err(e) => failure(e),
        }
    }
}
