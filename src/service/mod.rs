//! Muster's operations: the rules of `domain` applied to the store and the
//! mail host. The HTTP API, MCP, the web app and the CLI all call these,
//! so every surface gets the same checks and the same errors.

mod admins;
pub mod authentication;
mod batches;
mod bulk_resend;
mod clock;
pub mod codes;
mod creation;
pub mod deliverability;
pub mod hashing;
mod host_check;
mod idempotency;
mod lifecycle;
mod mailboxes;
pub mod metrics;
pub mod notify;
mod outsiders;
pub mod queue;
mod redeem;
mod sample;
pub mod webhooks;

use std::path::Path;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tokio::sync::Notify;

pub use admins::{AdminError, SESSION_HOURS, SignedIn, TokenCheck};
pub use authentication::{Authentication, Verdict};
pub use batches::{BatchRequest, CreatedBatch, RosterInput};
pub use bulk_resend::{BulkResend, MIN_WAIT, ResendCandidate};
pub use sample::{SampleInvite, TestDelivery, TestSent};

pub use clock::{Clock, ManualClock, SystemClock};
pub use creation::{CreatedMailbox, CreatedMailboxes, CreationRequest, generate_password};
pub use host_check::HostDamage;
pub use idempotency::{IdempotencyKey, Idempotent};
pub use lifecycle::InviteView;
pub use mailboxes::{ManagedMailbox, size_words};
pub use redeem::{LinkStatus, PasswordVerdict, RedeemError};

use crate::config::Config;
use crate::domain::address::{DomainName, MailboxAddress};
use crate::domain::capacity::Capacity;
use crate::domain::invite::TransitionError;
use crate::domain::preview::{InvitePreview, Occupancy};
use crate::domain::table::TableError;
use crate::domain::token::{LinkKey, LinkToken, TokenPurpose};
use crate::provision::{HostIndex, MailHost, ProvisionError};
use crate::store::{Actor, AuditEvent, Store, StoreError, View, WriteView};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the mail host: {0}")]
    Host(#[from] ProvisionError),
    #[error(transparent)]
    Roster(#[from] TableError),
    #[error("{given:?} is not a domain Muster hosts; hosted: {hosted}")]
    UnknownDomain { given: String, hosted: String },
    #[error("choose a domain: Muster hosts {0}")]
    DomainRequired(String),
    #[error("{count} items in one call; at most {limit} are taken: send the rest in another call")]
    TooManyItems { count: usize, limit: usize },
    #[error("the list is empty")]
    NoItems,
    #[error("{flagged} of {total} rows are flagged; fix or drop them, or send only the clean rows")]
    Flagged {
        flagged: usize,
        total: usize,
        preview: Box<InvitePreview>,
    },
    #[error("{} of {} rows are flagged; fix or drop them, or create only the clean rows", .0.flagged_rows, .0.rows.len())]
    CreationFlagged(Box<crate::domain::preview::CreationPreview>),
    #[error("no row is clean, so nothing would be sent")]
    NothingClean { preview: Box<InvitePreview> },
    #[error("the expiry {asked} is outside what is allowed: at least 1h and at most {max}")]
    Expiry { asked: String, max: String },
    #[error(transparent)]
    Reminders(#[from] crate::domain::reminders::ReminderError),
    /// How long invites must have waited for a bulk resend.
    #[error("{0}")]
    Wait(String),
    #[error(transparent)]
    Webhook(#[from] crate::domain::webhook::WebhookError),
    #[error("no webhook endpoint {0}")]
    NoWebhook(String),
    #[error("no webhook delivery {0}")]
    NoDelivery(String),
    #[error("no invite {0}")]
    NoInvite(String),
    #[error("no batch {0}")]
    NoBatch(String),
    /// A list filter's state that names none.
    #[error("{0}")]
    UnknownState(String),
    #[error(
        "the cursor {0:?} is not one a page of this list gave (its next_cursor); leave it out to start from the newest"
    )]
    BadCursor(String),
    #[error("{0}")]
    Transition(#[from] TransitionError),
    /// An expired invite that cannot take a place again (its mailbox was
    /// made since, another invite holds it, or the cap is reached).
    #[error("{0}")]
    Reopen(String),
    #[error("the data folder: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "this Idempotency-Key was used with another request body; use a new key for a new request"
    )]
    IdempotencyMismatch,
    /// Too many passwords are being hashed at once.
    #[error(transparent)]
    Busy(#[from] hashing::Busy),
    #[error(transparent)]
    Hash(#[from] crate::provision::hash::HashError),
    /// Mailboxes Muster made are gone from the host: nothing is provisioned.
    #[error(transparent)]
    HostDamaged(#[from] HostDamage),
    /// The invite's token no longer derives from `data/link.key`.
    #[error("the link key changed since this invite was made; resend it for a new link")]
    LinkKeyChanged,
    /// Not a mailbox Muster made (or no longer on the host).
    #[error("{0} is not a mailbox Muster made; change mailboxes made elsewhere on the mail server")]
    NotManaged(String),
    /// Where or how a password-reset link cannot go.
    #[error("{0}")]
    ResetRecipient(String),
    /// An allocation the pool cannot give, or one that is not a size.
    #[error("{0}")]
    Allocation(String),
    /// The invite email could not be made (a template in invites.templates_dir).
    #[error("the invite email cannot be made: {0}")]
    Email(String),
    /// The relay did not take a test message.
    #[error("the test was not sent: {0}")]
    TestNotSent(String),
    /// The test's destination refused it for good, or does not exist.
    #[error("the test was not sent: {0}")]
    TestRefused(String),
    /// `dns.resolvers` cannot be used.
    #[error("{0}")]
    Dns(String),
    /// The store and the link key of the data folder do not belong
    /// together (one is missing): starting would lose or kill every link.
    #[error("{0}")]
    DataFolder(String),
    /// Work handed to a background thread did not come back (shutting down).
    #[error("Muster is stopping; try again once it is back")]
    Stopped,
}

impl From<hashing::HashFailure> for ServiceError {
    fn from(e: hashing::HashFailure) -> Self {
        match e {
            hashing::HashFailure::Busy(b) => ServiceError::Busy(b),
            hashing::HashFailure::Hash(h) => ServiceError::Hash(h),
        }
    }
}

/// How many rows one request may carry (R1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowLimit {
    /// A batch: `invites.batch_limit` (500).
    #[default]
    Batch,
    /// One API or MCP call: `invites.api_call_limit` (100); longer lists
    /// are chunked by the caller.
    Call,
}

/// Everything the operations need, shared by every surface.
pub struct Muster {
    pub config: Arc<Config>,
    pub store: Store,
    pub host: Arc<dyn MailHost>,
    pub clock: Arc<dyn Clock>,
    link_key: LinkKey,
    /// The delivery queue the worker and the operations share.
    pub queue: queue::DeliveryQueue,
    /// Wakes the work behind "forgot password" requests.
    pub reset_requested: Arc<Notify>,
    /// Wakes the webhook worker: deliveries were queued.
    pub webhooks_changed: Arc<Notify>,
    /// The webhook endpoints, kept between events (see `service::webhooks`).
    webhook_endpoints: Mutex<Option<Arc<Vec<crate::store::WebhookEndpoint>>>>,
    /// Serialises the pool check and the mailbox creation (R7).
    provision_lock: Mutex<()>,
    pub metrics: metrics::Metrics,
    /// Every password hash goes through this bounded pool.
    pub hasher: hashing::HashPool,
    host_check: Mutex<host_check::HostCheckCache>,
    /// Redemptions interrupted by a crash that could not be settled at
    /// start (the mail host unreadable): settled once it is back.
    unrecovered: Mutex<Vec<String>>,
    /// The DNS resolver, made on first use (see `crate::dns`).
    dns: std::sync::OnceLock<Arc<crate::dns::Dns>>,
    ids: Mutex<ulid::Generator>,
    /// Idempotency-Keys whose first call is still running.
    pub(crate) in_flight: idempotency::InFlight,
    /// The audit trail's share for people without an account.
    outsiders: outsiders::OutsiderAudit,
}

impl std::fmt::Debug for Muster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Muster")
            .field("store", &self.store)
            .finish()
    }
}

/// Loads the link key from `<data>/link.key`, creating it (mode 0600) on
/// first start. It never enters the store, so a copy of the store alone
/// cannot rebuild a single link.
pub fn load_link_key(data_dir: &Path) -> std::io::Result<LinkKey> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("link.key");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let key: [u8; 32] = bytes.try_into().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} must hold exactly 32 bytes", path.display()),
                )
            })?;
            Ok(LinkKey::from_bytes(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let key: [u8; 32] = rand::random();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            f.write_all(&key)?;
            f.sync_all()?;
            Ok(LinkKey::from_bytes(key))
        }
        Err(e) => Err(e),
    }
}

/// Whether the data folder has no store yet (its file missing, or empty:
/// redb takes an empty file as a new store). Refused when the folder's
/// link key is there from an earlier start: a new store beside it would
/// forget every invite, mailbox record and admin.
pub fn store_is_new(config: &Config) -> Result<bool, ServiceError> {
    let store_path = config.store_path();
    let key_path = config.data_dir.join("link.key");
    let new_store = std::fs::metadata(&store_path).map_or(true, |m| m.len() == 0);
    if new_store && key_path.exists() {
        return Err(ServiceError::DataFolder(format!(
            "the store {} is missing or empty, but {} from an earlier start is there: starting afresh would forget every invite, mailbox record and admin. Put the store back with `muster restore FILE` (from a `muster backup`); to start over on purpose, move {} away as well",
            store_path.display(),
            key_path.display(),
            key_path.display(),
        )));
    }
    Ok(new_store)
}

impl Muster {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        host: Arc<dyn MailHost>,
        clock: Arc<dyn Clock>,
        link_key: LinkKey,
    ) -> Self {
        let hasher = hashing::HashPool::new(
            config.hashing.workers(),
            config.hashing.queue,
            std::time::Duration::from_secs(config.hashing.wait_secs),
        );
        Self {
            hasher,
            config,
            store,
            host,
            clock,
            link_key,
            queue: Default::default(),
            reset_requested: Arc::new(Notify::new()),
            webhooks_changed: Arc::new(Notify::new()),
            webhook_endpoints: Mutex::new(None),
            provision_lock: Mutex::new(()),
            metrics: metrics::Metrics::default(),
            host_check: Mutex::new(None),
            unrecovered: Mutex::new(Vec::new()),
            dns: std::sync::OnceLock::new(),
            ids: Mutex::new(ulid::Generator::new()),
            in_flight: Default::default(),
            outsiders: Default::default(),
        }
    }

    /// The DNS resolver of `dns.resolvers` (or the system's).
    pub fn dns(&self) -> Result<Arc<crate::dns::Dns>, crate::dns::SetupError> {
        if let Some(dns) = self.dns.get() {
            return Ok(dns.clone());
        }
        let dns = Arc::new(crate::dns::Dns::from_config(&self.config.dns)?);
        Ok(self.dns.get_or_init(|| dns).clone())
    }

    /// Opens the store and the link key from the configuration, refusing
    /// a data folder where one of the two is missing: a new key or a new store
    /// beside an old one would lose or kill every link.
    pub fn open(config: Arc<Config>, clock: Arc<dyn Clock>) -> Result<Self, ServiceError> {
        let store_path = config.store_path();
        let key_path = config.data_dir.join("link.key");
        let new_store = store_is_new(&config)?;
        let store = Store::open(&store_path)?;
        if !new_store && !key_path.exists() {
            let view = store.read()?;
            let (invites, admins) = (view.invite_count()?, view.admin_count()?);
            // Webhook secrets come from the key too.
            let endpoints = view.webhooks()?.len() as u64;
            if invites + admins + endpoints > 0 {
                return Err(ServiceError::DataFolder(format!(
                    "{} is missing, but the store {} is not new (invites: {invites}, admins: {admins}, webhook endpoints: {endpoints}): their links, sign-ins and webhook secrets come from that key. Put it back from the backup you keep with the store; if it is lost for good, `head -c 32 /dev/urandom > {}` (then chmod 600) makes a new one: every pending invite then needs a resend, admins sign in again and webhook receivers need their new secrets",
                    key_path.display(),
                    store_path.display(),
                    key_path.display(),
                )));
            }
        }
        let key = load_link_key(&config.data_dir)?;
        let host = crate::provision::from_config(&config)?;
        Ok(Self::new(config, store, host, clock, key))
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The most rows `limit` allows.
    pub fn row_limit(&self, limit: RowLimit) -> usize {
        let inv = &self.config.invites;
        match limit {
            RowLimit::Batch => inv.batch_limit,
            RowLimit::Call => inv.api_call_limit.min(inv.batch_limit),
        }
    }

    /// Refuses more rows than `limit` allows, before anything else.
    pub fn check_rows(&self, count: usize, limit: RowLimit) -> Result<(), ServiceError> {
        let limit = self.row_limit(limit);
        if count > limit {
            return Err(ServiceError::TooManyItems { count, limit });
        }
        Ok(())
    }

    /// A new sortable id (ULID, monotonic within this process).
    pub fn new_id(&self) -> String {
        let mut generator = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        generator
            .generate()
            .unwrap_or_else(|_| ulid::Ulid::new())
            .to_string()
    }

    pub fn token(&self, purpose: TokenPurpose, id: &str, generation: u32) -> LinkToken {
        LinkToken::derive(&self.link_key, purpose, id, generation)
    }

    pub fn invite_link(&self, token: &LinkToken) -> String {
        format!("{}/invite/{}", self.config.public_url(), token.as_str())
    }

    /// The hosted domain asked for, or the only one when none is named.
    pub fn resolve_domain(&self, asked: Option<&str>) -> Result<DomainName, ServiceError> {
        let hosted = self.config.hosted_domains();
        let list = || {
            hosted
                .iter()
                .map(|(d, _)| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match asked.map(str::trim).filter(|s| !s.is_empty()) {
            Some(raw) => DomainName::parse(raw)
                .ok()
                .filter(|d| hosted.iter().any(|(h, _)| h == d))
                .ok_or_else(|| ServiceError::UnknownDomain {
                    given: raw.to_string(),
                    hosted: list(),
                }),
            None if hosted.len() == 1 => Ok(hosted[0].0.clone()),
            None => Err(ServiceError::DomainRequired(list())),
        }
    }

    pub fn host_index(&self) -> Result<Arc<HostIndex>, ServiceError> {
        Ok(self.host.list()?)
    }

    /// Cap, existing, pending and pool for `domain`, as seen by `view`.
    pub fn capacity(
        &self,
        view: &dyn Reads,
        host: &HostIndex,
        domain: &DomainName,
        now: OffsetDateTime,
    ) -> Result<Capacity, ServiceError> {
        let shared = view.counter(SHARED_QUOTA_COUNTER)?;
        Ok(Capacity {
            domain: domain.clone(),
            cap: self.config.domain_cap(domain).unwrap_or(0),
            existing: host.count_in(domain.as_str()),
            pending: view.pending_count(domain.as_str(), now)?,
            pool_mb: self.config.storage_pool_mb,
            pool_allocated_mb: Capacity::allocated_mb(host.allocated_mb(), shared),
            host_limit: host.limit(domain.as_str()),
        })
    }

    /// Every hosted domain's capacity now (the pool is the same in each).
    pub fn capacities(&self) -> Result<Vec<Capacity>, ServiceError> {
        let host = self.host_index()?;
        let view = self.store.read()?;
        let now = self.now();
        self.config
            .hosted_domains()
            .iter()
            .map(|(domain, _)| self.capacity(&view, &host, domain, now))
            .collect()
    }

    pub fn audit(
        &self,
        w: &WriteView,
        actor: &Actor,
        action: &str,
        subject: &str,
        detail: impl Into<String>,
    ) -> Result<(), StoreError> {
        w.audit_event(&AuditEvent {
            id: self.new_id(),
            at: self.now(),
            actor: actor.clone(),
            action: action.to_string(),
            subject: subject.to_string(),
            detail: detail.into(),
        })
    }
}

/// Default quotas Muster wrote for shared-pool mailboxes, in MB: the host
/// sees them as quotas, but they are not dedicated allocations (R6).
pub const SHARED_QUOTA_COUNTER: &str = "shared_default_quota_mb";

/// The reads capacity checks need, from a read or a write transaction.
pub trait Reads {
    fn pending_count(&self, domain: &str, now: OffsetDateTime) -> Result<u64, StoreError>;
    fn open_invite_for(&self, mailbox: &str) -> Result<Option<(String, u64)>, StoreError>;
    fn has_created_mailbox(&self, mailbox: &str) -> Result<bool, StoreError>;
    fn counter(&self, name: &str) -> Result<u64, StoreError>;
}

macro_rules! impl_reads {
    ($($t:ty),*) => {$(
        impl Reads for $t {
            fn pending_count(&self, domain: &str, now: OffsetDateTime) -> Result<u64, StoreError> {
                <$t>::pending_count(self, domain, now)
            }
            fn open_invite_for(&self, mailbox: &str) -> Result<Option<(String, u64)>, StoreError> {
                <$t>::open_invite_for(self, mailbox)
            }
            fn has_created_mailbox(&self, mailbox: &str) -> Result<bool, StoreError> {
                Ok(<$t>::created_mailbox(self, mailbox)?.is_some())
            }
            fn counter(&self, name: &str) -> Result<u64, StoreError> {
                <$t>::counter(self, name)
            }
        }
    )*};
}
impl_reads!(View, WriteView);

/// [`Occupancy`] over a store view and the host's mailboxes. Store errors
/// are kept and reported after the preview, since the rules cannot fail.
pub struct StoreOccupancy<'a> {
    view: &'a dyn Reads,
    host: &'a HostIndex,
    error: Mutex<Option<StoreError>>,
}

impl<'a> StoreOccupancy<'a> {
    pub fn new(view: &'a dyn Reads, host: &'a HostIndex) -> Self {
        Self {
            view,
            host,
            error: Mutex::new(None),
        }
    }

    fn keep<T: Default>(&self, r: Result<T, StoreError>) -> T {
        r.unwrap_or_else(|e| {
            *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            T::default()
        })
    }

    pub fn finish(self) -> Result<(), StoreError> {
        match self.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Occupancy for StoreOccupancy<'_> {
    fn mailbox_exists(&self, mailbox: &MailboxAddress) -> bool {
        let key = mailbox.to_string();
        self.host.contains(&key) || self.keep(self.view.has_created_mailbox(&key))
    }

    fn pending_invite_expiry(&self, mailbox: &MailboxAddress) -> Option<OffsetDateTime> {
        let found = self.keep(self.view.open_invite_for(&mailbox.to_string()));
        found.and_then(|(_, ms)| {
            OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok()
        })
    }
}

#[cfg(test)]
mod tests;
