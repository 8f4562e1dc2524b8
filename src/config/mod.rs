//! Configuration: a TOML file, then `MUSTER_*` environment overrides for
//! every key ([`env`]), validated at load ([`validate`]) so a bad value
//! stops the start with a message naming the setting. This module is the
//! model: the settings, their defaults, and what is derived from them.

mod delivery;
mod env;
mod validate;
mod values;

pub use delivery::{DirectSettings, DkimSettings, DnsSettings, SmtpMode};
pub use env::{env_name, keys};
pub use values::{HttpUrl, Secret};

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::address::{DomainName, RecipientEmail};
use crate::domain::duration::HumanDuration;
use crate::domain::password::PasswordPolicy;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_PATH: &str = "config/muster.toml";
/// The most a link may live (R8).
pub const MAX_EXPIRY: HumanDuration = HumanDuration::days(30);
pub const MIN_EXPIRY: HumanDuration = HumanDuration::from_secs(3_600);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error(
        "environment variable {0} is not a Muster setting; `muster example-config` prints every key"
    )]
    UnknownEnv(String),
    #[error("setting `{key}` (in the config file or {env}): {message}")]
    Invalid {
        key: &'static str,
        env: String,
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where people reach Muster; setup links start with it.
    pub public_url: HttpUrl,
    pub data_dir: PathBuf,
    pub organisation: String,
    pub storage_pool_mb: u64,
    pub domains: Vec<DomainConfig>,
    pub invites: InviteSettings,
    pub password_policy: PasswordPolicy,
    pub mail_host: MailHostSettings,
    pub smtp: SmtpSettings,
    pub dns: DnsSettings,
    pub dkim: DkimSettings,
    pub client: ClientSettings,
    pub notifications: NotificationSettings,
    pub webhooks: WebhookSettings,
    pub http: HttpSettings,
    pub hashing: HashingSettings,
    pub log: LogSettings,
}

/// The bounded pool every password hash goes through (sign-in, setup,
/// reset, redemption, bulk creation): 19 MiB and tens of ms each.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingSettings {
    /// Hashes at once; 0 = one per two CPU cores (at least one).
    pub workers: usize,
    /// Hashes that may wait for a worker; beyond that, 503 at once.
    pub queue: usize,
    /// The longest a hash waits for a worker before 503.
    pub wait_secs: u64,
}

impl Default for HashingSettings {
    fn default() -> Self {
        Self {
            workers: 0,
            queue: 64,
            wait_secs: 10,
        }
    }
}

impl HashingSettings {
    pub fn workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            // argon2id keeps a core busy for the whole hash: half the cores
            // leaves the rest to pages, batches and sending, and halves
            // the memory a crowd of sign-ins holds (benches/load: peak 51
            // MiB instead of 69 on 2 cores, redemptions 30/s instead of 39).
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            (cores / 2).max(1)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    pub name: DomainName,
    pub mailbox_cap: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InviteSettings {
    /// Unset: the same as `max_expiry`.
    pub default_expiry: Option<HumanDuration>,
    pub max_expiry: HumanDuration,
    pub batch_limit: usize,
    pub api_call_limit: usize,
    pub upload_limit_bytes: usize,
    pub templates_dir: Option<PathBuf>,
    /// Reserved mailbox names (R15) allowed on purpose, e.g. `["abuse"]`.
    pub allow_reserved_local_parts: Vec<String>,
    /// When a batch's links are recalled to recipients who have not used
    /// them (R16), unless the batch says otherwise: a share of the link's
    /// life (`50%`) or a time before expiry (`48h`). Empty: none.
    pub reminders: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailHostBackend {
    PasswdFile,
    Command,
    /// A PostgreSQL or MariaDB/MySQL database that Dovecot and Postfix read.
    Sql,
}

/// Postfix Admin's default `quota_multiplier`: bytes per MB in `mailbox.quota`.
pub const POSTFIX_ADMIN_QUOTA_MULTIPLIER: u64 = 1_024_000;

/// How the SQL backend's tables are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlLayout {
    /// Muster's own table (`muster sql init` makes it).
    Muster,
    /// Postfix Admin's `mailbox`, `alias` and `domain` tables.
    Postfixadmin,
}

/// TLS to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlTls {
    /// TLS when the server offers it.
    Prefer,
    /// TLS or no connection (the certificate is not checked).
    Require,
    /// TLS with the certificate checked against `ca_file` (or the system's).
    Verify,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlSettings {
    /// `postgres://user:password@host:5432/mail` or
    /// `mysql://user:password@host:3306/mail` (MariaDB too).
    pub url: Option<Secret>,
    pub layout: SqlLayout,
    /// Connections kept open.
    pub pool_size: u32,
    /// Unset: what the URL says (`sslmode=` / `ssl-mode=`), else prefer.
    /// Set: this, whatever the URL says.
    pub tls: Option<SqlTls>,
    /// The CA certificate (PEM) that signed the database's, for `verify`.
    pub ca_file: Option<PathBuf>,
    /// Postfix Admin layout: bytes per MB in its `quota` column, as its
    /// `$CONF['quota_multiplier']` says (1024000 unless changed there), so
    /// that its pages show the MB Muster gave.
    pub quota_multiplier: u64,
}

impl Default for SqlSettings {
    fn default() -> Self {
        Self {
            url: None,
            layout: SqlLayout::Muster,
            pool_size: 4,
            tls: None,
            ca_file: None,
            quota_multiplier: POSTFIX_ADMIN_QUOTA_MULTIPLIER,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HashScheme {
    #[serde(rename = "ARGON2ID")]
    Argon2id,
    #[serde(rename = "BLF-CRYPT")]
    BlfCrypt,
    #[serde(rename = "SHA512-CRYPT")]
    Sha512Crypt,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailHostSettings {
    pub backend: MailHostBackend,
    /// Dovecot passwd-file (passdb and userdb); default `<data_dir>/dovecot/passwd`.
    pub passwd_file: Option<PathBuf>,
    /// Postfix virtual mailbox map; default `<data_dir>/postfix/virtual_mailboxes`.
    pub postfix_map: Option<PathBuf>,
    /// Run with `sh -c` after the map changes, e.g. `postmap hash:/etc/postfix/vmailbox`.
    pub reload_command: Option<String>,
    pub hash_scheme: HashScheme,
    pub uid: u32,
    pub gid: u32,
    /// `%d` is the domain, `%n` the local part.
    pub home: String,
    /// Quota for mailboxes without a dedicated allocation; none when unset.
    pub default_quota_mb: Option<u64>,
    /// For the `command` backend: a program run with `sh -c`.
    pub command: Option<String>,
    /// For the `sql` backend.
    pub sql: SqlSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    Starttls,
    Implicit,
    None,
}

impl SmtpTls {
    /// As it is written in muster.toml.
    pub fn name(self) -> &'static str {
        match self {
            SmtpTls::Starttls => "starttls",
            SmtpTls::Implicit => "implicit",
            SmtpTls::None => "none",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// Relay, direct or outbox; unset = relay when `host` is set, else
    /// outbox.
    pub mode: Option<SmtpMode>,
    /// The relay; with none, invites are written to `<data_dir>/outbox`.
    pub host: Option<String>,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub helo_name: Option<String>,
    pub timeout_secs: u64,
    /// Default `noreply@<first domain>`.
    pub from_address: Option<RecipientEmail>,
    /// Default: the organisation.
    pub from_name: Option<String>,
    pub reply_to: Option<RecipientEmail>,
    /// 0 = unthrottled.
    pub rate_per_minute: u32,
    pub burst: u32,
    pub connections: usize,
    pub give_up_after: HumanDuration,
    /// First retry delay after a temporary failure; doubles up to `retry_max_secs`.
    pub retry_initial_secs: u64,
    pub retry_max_secs: u64,
    /// Accept self-signed relay certificates (a relay on a private network).
    pub allow_invalid_certs: bool,
    pub direct: DirectSettings,
}

pub use crate::domain::client_setup::ClientSecurity;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSettings {
    pub webmail_url: Option<HttpUrl>,
    pub imap_host: Option<String>,
    pub imap_port: u16,
    /// `tls`, `starttls` or `none`.
    pub imap_security: ClientSecurity,
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    /// `tls`, `starttls` or `none`.
    pub smtp_security: ClientSecurity,
    /// A welcome message in each new mailbox, right after it is set up.
    pub welcome: bool,
}

/// How the admin who sent a batch hears what became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationMode {
    /// A message for each redemption, failure and request for a new link.
    Each,
    /// One message a day: redeemed, still pending, expiring, failed.
    Digest,
    Off,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// Where every notification goes instead of to the admin who made the
    /// batch (or the API token it came through).
    pub to: Option<RecipientEmail>,
    pub mode: NotificationMode,
    /// The hour (UTC, 0 to 23) the daily digest goes out.
    pub digest_hour: u8,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            to: None,
            mode: NotificationMode::Each,
            digest_hour: 8,
        }
    }
}

/// How Muster posts events to webhook endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Hosts or addresses refused by default (link-local, cloud metadata)
    /// that endpoints may use on purpose.
    pub allow_addresses: Vec<String>,
    /// The longest a delivery waits for an answer.
    pub timeout_secs: u64,
    /// First retry delay after a failed delivery; doubles up to `retry_max_secs`.
    pub retry_initial_secs: u64,
    pub retry_max_secs: u64,
    /// A delivery not taken by then is given up (and shown as failed).
    pub give_up_after: HumanDuration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_addresses: Vec::new(),
            timeout_secs: 10,
            retry_initial_secs: 5,
            retry_max_secs: 3_600,
            give_up_after: HumanDuration::from_secs(24 * 3_600),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub body_limit_bytes: usize,
    /// Muster sits behind a reverse proxy: take the client address from the
    /// last X-Forwarded-For entry (for rate limits and the audit trail).
    pub behind_proxy: bool,
    /// Connections with no activity for this long are closed (stalled or
    /// slow clients).
    pub idle_timeout_secs: u64,
    /// A request head must arrive completely within this long of its first
    /// byte, however slowly it trickles in.
    pub header_timeout_secs: u64,
    /// A request body must arrive whole within this long, however slowly
    /// it trickles in.
    pub body_timeout_secs: u64,
    /// Open connections at most; at the limit the one idle longest goes.
    pub max_connections: usize,
    /// Open connections one client address may hold (not applied behind a
    /// proxy, where every connection comes from the proxy).
    pub max_connections_per_client: usize,
    /// Requests per minute to one setup link (a real one).
    pub link_rate_per_minute: u32,
    /// Unknown or invalid setup links per minute per client address
    /// (against guessing).
    pub link_guesses_per_minute: u32,
    pub signin_rate_per_minute: u32,
    pub api_rate_per_minute: u32,
    /// When set, `/metrics` answers only `Authorization: Bearer` with it.
    pub metrics_token: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: HttpUrl::parse("http://localhost:8080").expect("a valid default"),
            data_dir: PathBuf::from("data"),
            organisation: "Muster".into(),
            storage_pool_mb: 102_400,
            domains: vec![DomainConfig {
                name: DomainName::parse("example.org").expect("a valid default"),
                mailbox_cap: 50,
            }],
            invites: InviteSettings::default(),
            password_policy: PasswordPolicy::default(),
            mail_host: MailHostSettings::default(),
            smtp: SmtpSettings::default(),
            dns: DnsSettings::default(),
            dkim: DkimSettings::default(),
            client: ClientSettings::default(),
            notifications: NotificationSettings::default(),
            webhooks: WebhookSettings::default(),
            http: HttpSettings::default(),
            hashing: HashingSettings::default(),
            log: LogSettings::default(),
        }
    }
}

impl Default for InviteSettings {
    fn default() -> Self {
        Self {
            default_expiry: None,
            max_expiry: MAX_EXPIRY,
            batch_limit: 500,
            api_call_limit: 100,
            upload_limit_bytes: 2 * 1024 * 1024,
            templates_dir: None,
            allow_reserved_local_parts: Vec::new(),
            reminders: vec!["50%".into(), "48h".into()],
        }
    }
}

impl Default for MailHostSettings {
    fn default() -> Self {
        Self {
            backend: MailHostBackend::PasswdFile,
            passwd_file: None,
            postfix_map: None,
            reload_command: None,
            hash_scheme: HashScheme::Argon2id,
            uid: 5000,
            gid: 5000,
            home: "/var/vmail/%d/%n".into(),
            default_quota_mb: None,
            command: None,
            sql: SqlSettings::default(),
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            mode: None,
            host: None,
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            helo_name: None,
            timeout_secs: 30,
            from_address: None,
            from_name: None,
            reply_to: None,
            rate_per_minute: 60,
            burst: 10,
            connections: 4,
            give_up_after: HumanDuration::from_secs(24 * 3_600),
            retry_initial_secs: 60,
            retry_max_secs: 3_600,
            allow_invalid_certs: false,
            direct: DirectSettings::default(),
        }
    }
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            webmail_url: None,
            imap_host: None,
            imap_port: 993,
            imap_security: ClientSecurity::Tls,
            smtp_host: None,
            smtp_port: 587,
            smtp_security: ClientSecurity::Starttls,
            welcome: true,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            behind_proxy: false,
            idle_timeout_secs: 30,
            header_timeout_secs: 10,
            body_timeout_secs: 60,
            max_connections: 2048,
            max_connections_per_client: 256,
            link_rate_per_minute: 30,
            link_guesses_per_minute: 30,
            signin_rate_per_minute: 10,
            api_rate_per_minute: 600,
            metrics_token: None,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Config {
    /// The hosted domains with their caps.
    pub fn hosted_domains(&self) -> Vec<(DomainName, u64)> {
        self.domains
            .iter()
            .map(|d| (d.name.clone(), d.mailbox_cap))
            .collect()
    }

    pub fn domain_cap(&self, domain: &DomainName) -> Option<u64> {
        self.domains
            .iter()
            .find(|d| &d.name == domain)
            .map(|d| d.mailbox_cap)
    }

    pub fn passwd_file(&self) -> PathBuf {
        self.mail_host
            .passwd_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("dovecot/passwd"))
    }

    pub fn postfix_map(&self) -> PathBuf {
        self.mail_host
            .postfix_map
            .clone()
            .unwrap_or_else(|| self.data_dir.join("postfix/virtual_mailboxes"))
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    /// How email leaves: as configured, or relay when a relay is set and
    /// the outbox when not.
    pub fn smtp_mode(&self) -> SmtpMode {
        match (self.smtp.mode, &self.smtp.host) {
            (Some(mode), _) => mode,
            (None, Some(_)) => SmtpMode::Relay,
            (None, None) => SmtpMode::Outbox,
        }
    }

    /// Invites are written to the outbox folder, not sent.
    pub fn writes_outbox(&self) -> bool {
        self.smtp_mode() == SmtpMode::Outbox
    }

    /// Where the DKIM keys are.
    pub fn dkim_dir(&self) -> PathBuf {
        self.dkim
            .keys_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("dkim"))
    }

    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("muster.redb")
    }

    /// The link lifetime a batch gets unless it asks for less.
    pub fn default_expiry(&self) -> HumanDuration {
        self.invites
            .default_expiry
            .unwrap_or(self.invites.max_expiry)
    }

    /// The public URL without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.public_url.base()
    }

    /// The sender address: configured, or `noreply@` the first domain.
    pub fn from_address(&self) -> String {
        match &self.smtp.from_address {
            Some(a) => a.to_string(),
            None => {
                let domain = self
                    .domains
                    .first()
                    .map(|d| d.name.to_string())
                    .unwrap_or_else(|| "localhost.localdomain".into());
                format!("noreply@{domain}")
            }
        }
    }

    /// The sender address's domain, lower-cased: the one DKIM signs for and
    /// the deliverability report checks as the sender's.
    pub fn sender_domain(&self) -> String {
        crate::domain::address::domain_part(&self.from_address()).to_ascii_lowercase()
    }

    /// The reserved mailbox names (R15) as this configuration sets them.
    pub fn reserved_names(&self) -> crate::domain::reserved::ReservedNames {
        crate::domain::reserved::ReservedNames::new(
            &self.invites.allow_reserved_local_parts,
            Some(&self.from_address()),
        )
    }

    pub fn from_name(&self) -> String {
        self.smtp
            .from_name
            .clone()
            .unwrap_or_else(|| self.organisation.clone())
    }

    /// The public URL's host, for HELO and Message-ID defaults.
    pub fn public_host(&self) -> String {
        self.public_url.host().to_string()
    }

    /// The servers a mail client uses, as recipients are told them: the
    /// `client.*` hosts, or the public URL's host.
    pub fn mail_settings(&self) -> crate::domain::client_setup::MailSettings {
        use crate::domain::client_setup::{MailSettings, Server};
        let c = &self.client;
        let host = |h: &Option<String>| h.clone().unwrap_or_else(|| self.public_host());
        MailSettings {
            organisation: self.organisation.clone(),
            imap: Server {
                host: host(&c.imap_host),
                port: c.imap_port,
                security: c.imap_security,
            },
            smtp: Server {
                host: host(&c.smtp_host),
                port: c.smtp_port,
                security: c.smtp_security,
            },
        }
    }

    /// The Apple configuration profile's link for one address.
    pub fn apple_profile_url(&self, address: &str) -> String {
        format!(
            "{}/mail/apple.mobileconfig?emailaddress={}",
            self.public_url(),
            crate::domain::client_setup::query_value(address)
        )
    }

    pub fn is_https(&self) -> bool {
        self.public_url.is_https()
    }
}

impl HttpSettings {
    /// The connection limits the server applies.
    pub fn connection_limits(&self) -> crate::http::timeout::ConnectionLimits {
        crate::http::timeout::ConnectionLimits {
            idle: std::time::Duration::from_secs(self.idle_timeout_secs),
            header: std::time::Duration::from_secs(self.header_timeout_secs),
            max_connections: self.max_connections,
            max_per_client: (!self.behind_proxy).then_some(self.max_connections_per_client),
        }
    }
}

#[cfg(test)]
mod tests;
