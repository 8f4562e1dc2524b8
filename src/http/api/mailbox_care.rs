//! Care for one mailbox Muster made: its allocation, suspension and
//! restoration, and removal.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::ApiError;
use super::auth::Auth;
use super::invites::blocking;
use super::types::{InviteBody, rfc3339};
use crate::http::HttpState;
use crate::provision::MailFolder;
use crate::service::ManagedMailbox;

#[derive(Tags)]
enum Tag {
    /// Mailboxes, capacity and bulk creation.
    Mailboxes,
}

pub struct MailboxCareApi;

/// A new allocation: MB, or `null` for the shared pool.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct AllocationBody {
    pub storage_allocation_mb: Option<u64>,
}

/// Where a password-reset link goes, and in which language.
#[derive(Object, Debug, Clone, Default)]
#[oai(deny_unknown_fields)]
pub struct PasswordResetBody {
    /// The owner's address for the link; when absent, the address the
    /// mailbox was invited at.
    #[oai(validator(max_length = 320))]
    pub to: Option<String>,
    /// `en` or `de`; when absent, the invite's language.
    #[oai(validator(max_length = 35))]
    pub locale: Option<String>,
}

/// One mailbox Muster made, as it is now.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct ManagedBody {
    pub address: String,
    /// The dedicated allocation; absent on the shared pool.
    pub storage_allocation_mb: Option<u64>,
    /// The quota the mail server enforces, in MB.
    pub quota_mb: Option<u64>,
    pub suspended: bool,
    pub created_at: String,
    pub display_name: Option<String>,
}

impl From<ManagedMailbox> for ManagedBody {
    fn from(m: ManagedMailbox) -> Self {
        Self {
            address: m.record.address,
            storage_allocation_mb: m.record.storage_allocation_mb,
            quota_mb: m.host.quota_mb,
            suspended: m.host.suspended,
            created_at: rfc3339(m.record.created_at),
            display_name: m.record.display_name,
        }
    }
}

/// A removed mailbox and what became of its mail.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct RemovedBody {
    pub address: String,
    /// `kept`, `deleted`, `absent` (asked for, but there was no folder:
    /// no mail had arrived), `not_deleted` (asked for, but it could not be
    /// deleted: see `detail`) or `unknown`.
    pub mail_folder: String,
    pub path: Option<String>,
    pub detail: Option<String>,
}

/// Suspends (true) or restores (false), for both endpoints.
async fn suspension(
    state: &Arc<HttpState>,
    auth: Auth,
    address: String,
    suspended: bool,
) -> Result<Json<ManagedBody>, ApiError> {
    blocking(state, move |m| {
        Ok(Json(
            m.set_suspended(&address, suspended, &auth.0.actor())?
                .into(),
        ))
    })
    .await
}

#[OpenApi(tag = "Tag::Mailboxes")]
impl MailboxCareApi {
    /// One mailbox Muster made.
    #[oai(
        path = "/mailboxes/:address",
        method = "get",
        operation_id = "get_mailbox"
    )]
    async fn get(
        &self,
        _auth: Auth,
        state: Data<&Arc<HttpState>>,
        address: Path<String>,
    ) -> Result<Json<ManagedBody>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |m| {
            Ok(Json(m.managed_mailbox(&address.0)?.into()))
        })
        .await
    }

    /// Changes the mailbox's allocation (MB, or `null` for the shared
    /// pool); a bigger one must fit what the storage pool has left.
    #[oai(
        path = "/mailboxes/:address/allocation",
        method = "put",
        operation_id = "set_mailbox_allocation"
    )]
    async fn allocation(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        address: Path<String>,
        body: Json<AllocationBody>,
    ) -> Result<Json<ManagedBody>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |m| {
            let changed =
                m.set_allocation(&address.0, body.0.storage_allocation_mb, &auth.0.actor())?;
            Ok(Json(changed.into()))
        })
        .await
    }

    /// Suspends the mailbox: its logins are refused, its mail still arrives.
    #[oai(
        path = "/mailboxes/:address/suspend",
        method = "post",
        operation_id = "suspend_mailbox"
    )]
    async fn suspend(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        address: Path<String>,
    ) -> Result<Json<ManagedBody>, ApiError> {
        suspension(&state, auth, address.0, true).await
    }

    /// Restores a suspended mailbox: its logins work again.
    #[oai(
        path = "/mailboxes/:address/restore",
        method = "post",
        operation_id = "restore_mailbox"
    )]
    async fn restore(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        address: Path<String>,
    ) -> Result<Json<ManagedBody>, ApiError> {
        suspension(&state, auth, address.0, false).await
    }

    /// Sends the mailbox's owner a single-use link (valid 24 hours) to choose
    /// a new password; the old one works until then. The link is an
    /// invite of purpose `password_reset` in the pending list: resend and
    /// revoke work on it as on any invite.
    #[oai(
        path = "/mailboxes/:address/password-reset",
        method = "post",
        operation_id = "send_mailbox_password_reset"
    )]
    async fn password_reset(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        address: Path<String>,
        body: Json<PasswordResetBody>,
    ) -> Result<Json<InviteBody>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |m| {
            let sent = m.send_password_reset(
                &address.0,
                body.0.to.as_deref(),
                body.0.locale.as_deref(),
                &auth.0.actor(),
            )?;
            Ok(Json(InviteBody::from(&sent)))
        })
        .await
    }

    /// Removes the mailbox: its login and address go from the mail server.
    /// Its mail folder stays unless `delete_mail=true`.
    #[oai(
        path = "/mailboxes/:address",
        method = "delete",
        operation_id = "remove_mailbox"
    )]
    async fn remove(
        &self,
        auth: Auth,
        state: Data<&Arc<HttpState>>,
        address: Path<String>,
        #[oai(default)] delete_mail: Query<bool>,
    ) -> Result<Json<RemovedBody>, ApiError> {
        let state = state.0.clone();
        blocking(&state, move |m| {
            let folder = m.remove_mailbox(&address.0, delete_mail.0, &auth.0.actor())?;
            let (state, path, detail) = match folder {
                MailFolder::Kept(p) => ("kept", Some(p), None),
                MailFolder::Deleted(p) => ("deleted", Some(p), None),
                MailFolder::Absent(p) => ("absent", Some(p), None),
                MailFolder::NotDeleted { path, why } => ("not_deleted", Some(path), Some(why)),
                MailFolder::Unknown => ("unknown", None, None),
            };
            Ok(Json(RemovedBody {
                address: address.0.trim().to_lowercase(),
                mail_folder: state.into(),
                path,
                detail,
            }))
        })
        .await
    }
}
