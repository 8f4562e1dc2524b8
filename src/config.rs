//! Configuration: a TOML file, then `MUSTER_*` environment overrides for
//! every key, validated at load so a bad value stops the start with a
//! message naming the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
        "environment variable {0} is not a Muster setting; see config/muster.example.toml for the keys"
    )]
    UnknownEnv(String),
    #[error("setting `{key}` (env {env}): {message}")]
    Invalid {
        key: &'static str,
        env: String,
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: String,
    pub public_url: String,
    pub data_dir: PathBuf,
    pub organisation: String,
    pub storage_pool_mb: u64,
    pub domains: Vec<DomainConfig>,
    pub invites: InviteSettings,
    pub password_policy: PasswordPolicy,
    pub mail_host: MailHostSettings,
    pub smtp: SmtpSettings,
    pub client: ClientSettings,
    pub http: HttpSettings,
    pub hashing: HashingSettings,
    pub log: LogSettings,
}

/// The bounded pool every password hash goes through (sign-in, setup,
/// reset, redemption, bulk creation): 19 MiB and tens of ms each.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingSettings {
    /// Hashes at once; 0 = one per CPU core.
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
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    pub name: String,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailHostBackend {
    PasswdFile,
    Command,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    Starttls,
    Implicit,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// The relay; with none, invites are written to `<data_dir>/outbox`.
    pub host: Option<String>,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    pub helo_name: Option<String>,
    pub timeout_secs: u64,
    /// Default `noreply@<first domain>`.
    pub from_address: Option<String>,
    /// Default: the organisation.
    pub from_name: Option<String>,
    pub reply_to: Option<String>,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSettings {
    pub webmail_url: Option<String>,
    pub imap_host: Option<String>,
    pub imap_port: u16,
    pub imap_security: String,
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    pub smtp_security: String,
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
            listen: "127.0.0.1:8080".into(),
            public_url: "http://localhost:8080".into(),
            data_dir: PathBuf::from("data"),
            organisation: "Muster".into(),
            storage_pool_mb: 102_400,
            domains: vec![DomainConfig {
                name: "example.org".into(),
                mailbox_cap: 50,
            }],
            invites: InviteSettings::default(),
            password_policy: PasswordPolicy::default(),
            mail_host: MailHostSettings::default(),
            smtp: SmtpSettings::default(),
            client: ClientSettings::default(),
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
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
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
            connections: 1,
            give_up_after: HumanDuration::from_secs(24 * 3_600),
            retry_initial_secs: 60,
            retry_max_secs: 3_600,
            allow_invalid_certs: false,
        }
    }
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            webmail_url: None,
            imap_host: None,
            imap_port: 993,
            imap_security: "SSL/TLS".into(),
            smtp_host: None,
            smtp_port: 587,
            smtp_security: "STARTTLS".into(),
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
            max_connections: 2048,
            max_connections_per_client: 256,
            link_rate_per_minute: 30,
            link_guesses_per_minute: 30,
            signin_rate_per_minute: 10,
            api_rate_per_minute: 600,
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

/// How an environment value is turned into TOML.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    /// `example.org=100,example.net=20`
    Domains,
    /// `a,b,c`
    List,
}

/// Every key, by its path. The environment variable is `MUSTER_` and the
/// path joined with `_`, upper case: `smtp.port` → `MUSTER_SMTP_PORT`.
const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Str),
    ("public_url", Kind::Str),
    ("data_dir", Kind::Str),
    ("organisation", Kind::Str),
    ("storage_pool_mb", Kind::Int),
    ("domains", Kind::Domains),
    ("invites.default_expiry", Kind::Str),
    ("invites.max_expiry", Kind::Str),
    ("invites.batch_limit", Kind::Int),
    ("invites.api_call_limit", Kind::Int),
    ("invites.upload_limit_bytes", Kind::Int),
    ("invites.templates_dir", Kind::Str),
    ("invites.allow_reserved_local_parts", Kind::List),
    ("password_policy.min_length", Kind::Int),
    ("password_policy.min_score", Kind::Int),
    ("mail_host.backend", Kind::Str),
    ("mail_host.passwd_file", Kind::Str),
    ("mail_host.postfix_map", Kind::Str),
    ("mail_host.reload_command", Kind::Str),
    ("mail_host.hash_scheme", Kind::Str),
    ("mail_host.uid", Kind::Int),
    ("mail_host.gid", Kind::Int),
    ("mail_host.home", Kind::Str),
    ("mail_host.default_quota_mb", Kind::Int),
    ("mail_host.command", Kind::Str),
    ("smtp.host", Kind::Str),
    ("smtp.port", Kind::Int),
    ("smtp.tls", Kind::Str),
    ("smtp.username", Kind::Str),
    ("smtp.password", Kind::Str),
    ("smtp.helo_name", Kind::Str),
    ("smtp.timeout_secs", Kind::Int),
    ("smtp.from_address", Kind::Str),
    ("smtp.from_name", Kind::Str),
    ("smtp.reply_to", Kind::Str),
    ("smtp.rate_per_minute", Kind::Int),
    ("smtp.burst", Kind::Int),
    ("smtp.connections", Kind::Int),
    ("smtp.give_up_after", Kind::Str),
    ("smtp.retry_initial_secs", Kind::Int),
    ("smtp.retry_max_secs", Kind::Int),
    ("smtp.allow_invalid_certs", Kind::Bool),
    ("client.webmail_url", Kind::Str),
    ("client.imap_host", Kind::Str),
    ("client.imap_port", Kind::Int),
    ("client.imap_security", Kind::Str),
    ("client.smtp_host", Kind::Str),
    ("client.smtp_port", Kind::Int),
    ("client.smtp_security", Kind::Str),
    ("http.body_limit_bytes", Kind::Int),
    ("http.behind_proxy", Kind::Bool),
    ("http.idle_timeout_secs", Kind::Int),
    ("http.header_timeout_secs", Kind::Int),
    ("http.max_connections", Kind::Int),
    ("http.max_connections_per_client", Kind::Int),
    ("http.link_rate_per_minute", Kind::Int),
    ("http.link_guesses_per_minute", Kind::Int),
    ("http.signin_rate_per_minute", Kind::Int),
    ("http.api_rate_per_minute", Kind::Int),
    ("hashing.workers", Kind::Int),
    ("hashing.queue", Kind::Int),
    ("hashing.wait_secs", Kind::Int),
    ("log.format", Kind::Str),
    ("log.level", Kind::Str),
];

/// Variables with the prefix that are not settings.
const NON_KEY_VARS: &[&str] = &["MUSTER_CONFIG", "MUSTER_API_TOKEN"];

pub fn env_name(key: &str) -> String {
    format!("MUSTER_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// All setting keys, for documentation checks.
pub fn keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter().map(|(k, _)| *k)
}

fn env_value(var: &str, raw: &str, kind: Kind) -> Result<toml::Value, ConfigError> {
    let bad = |message: String| ConfigError::Env {
        var: var.to_string(),
        message,
    };
    Ok(match kind {
        Kind::Str => toml::Value::String(raw.to_string()),
        Kind::Int => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| bad(format!("{raw:?} is not a whole number")))?,
        ),
        Kind::Bool => toml::Value::Boolean(match raw.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(bad(format!("{raw:?} is not true or false"))),
        }),
        Kind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        Kind::Domains => {
            let mut list = Vec::new();
            for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, cap) = item.split_once('=').ok_or_else(|| {
                    bad(format!("{item:?} should be name=cap, like example.org=50"))
                })?;
                let cap: i64 = cap
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("the cap {cap:?} is not a whole number")))?;
                let mut t = toml::Table::new();
                t.insert("name".into(), toml::Value::String(name.trim().into()));
                t.insert("mailbox_cap".into(), toml::Value::Integer(cap));
                list.push(toml::Value::Table(t));
            }
            toml::Value::Array(list)
        }
    })
}

fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let leaf = parts.pop().unwrap_or(key);
    let mut cur = table;
    for p in parts {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        cur = entry.as_table_mut().expect("made a table above");
    }
    cur.insert(leaf.to_string(), value);
}

impl Config {
    /// Loads `path` (or [`DEFAULT_CONFIG_PATH`] when present, or the
    /// built-in defaults), applies `env`, and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (text, source) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?,
                p.display().to_string(),
            ),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => (
                std::fs::read_to_string(DEFAULT_CONFIG_PATH).map_err(|source| {
                    ConfigError::Read {
                        path: DEFAULT_CONFIG_PATH.into(),
                        source,
                    }
                })?,
                DEFAULT_CONFIG_PATH.to_string(),
            ),
            None => (String::new(), "built-in defaults".to_string()),
        };
        Self::from_toml(&text, &source, env)
    }

    pub fn from_toml(
        text: &str,
        source: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file_error = |e: toml::de::Error| ConfigError::File {
            path: source.to_string(),
            message: e.to_string().trim().to_string(),
        };
        // First pass: the file alone, so its errors carry its line numbers.
        toml::from_str::<Config>(text).map_err(file_error)?;
        let mut table: toml::Table = toml::from_str(text).map_err(file_error)?;
        for (var, raw) in env {
            if !var.starts_with("MUSTER_") || NON_KEY_VARS.contains(&var.as_str()) {
                continue;
            }
            let Some((key, kind)) = KEYS.iter().find(|(k, _)| env_name(k) == var) else {
                return Err(ConfigError::UnknownEnv(var));
            };
            set_path(&mut table, key, env_value(&var, &raw, *kind)?);
        }
        let config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Env {
                    var: "MUSTER_*".into(),
                    message: e.to_string().trim().to_string(),
                })?;
        config.validate()?;
        Ok(config)
    }

    fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key,
            env: env_name(key),
            message: message.into(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen.parse::<SocketAddr>().map_err(|_| {
            Self::invalid(
                "listen",
                format!(
                    "{:?} is not an address:port like 127.0.0.1:8080",
                    self.listen
                ),
            )
        })?;
        check_url("public_url", &self.public_url)?;
        if self.organisation.trim().is_empty() || self.organisation.chars().any(char::is_control) {
            return Err(Self::invalid(
                "organisation",
                "give the organisation's name on one line",
            ));
        }
        if self.domains.is_empty() {
            return Err(Self::invalid("domains", "host at least one domain"));
        }
        let mut seen = Vec::new();
        for d in &self.domains {
            let name = DomainName::parse(&d.name)
                .map_err(|e| Self::invalid("domains", format!("{:?}: {e}", d.name)))?;
            if d.mailbox_cap == 0 {
                return Err(Self::invalid(
                    "domains",
                    format!("{}: mailbox_cap must be at least 1", d.name),
                ));
            }
            if seen.contains(&name) {
                return Err(Self::invalid("domains", format!("{name} is listed twice")));
            }
            seen.push(name);
        }
        let inv = &self.invites;
        if inv.max_expiry > MAX_EXPIRY || inv.max_expiry < MIN_EXPIRY {
            return Err(Self::invalid(
                "invites.max_expiry",
                format!(
                    "{} is outside 1h to 30d; links may live at most 30 days",
                    inv.max_expiry
                ),
            ));
        }
        if let Some(default) = inv.default_expiry
            && (default > inv.max_expiry || default < MIN_EXPIRY)
        {
            return Err(Self::invalid(
                "invites.default_expiry",
                format!(
                    "{default} must be between 1h and invites.max_expiry ({})",
                    inv.max_expiry
                ),
            ));
        }
        if !(1..=500).contains(&inv.batch_limit) {
            return Err(Self::invalid("invites.batch_limit", "must be 1 to 500"));
        }
        if !(1..=100).contains(&inv.api_call_limit) {
            return Err(Self::invalid("invites.api_call_limit", "must be 1 to 100"));
        }
        if inv.upload_limit_bytes < 1024 {
            return Err(Self::invalid(
                "invites.upload_limit_bytes",
                "must be at least 1024",
            ));
        }
        for name in &inv.allow_reserved_local_parts {
            let name = name.trim().to_lowercase();
            if !crate::domain::reserved::built_in().any(|r| r == name) {
                return Err(Self::invalid(
                    "invites.allow_reserved_local_parts",
                    format!(
                        "{name:?} is not a reserved name; the reserved names are {}",
                        crate::domain::reserved::built_in()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        let pp = &self.password_policy;
        if !(8..=128).contains(&pp.min_length) {
            return Err(Self::invalid(
                "password_policy.min_length",
                "must be 8 to 128",
            ));
        }
        if pp.min_score > 4 {
            return Err(Self::invalid(
                "password_policy.min_score",
                "zxcvbn scores run 0 to 4",
            ));
        }
        let mh = &self.mail_host;
        if mh.uid < 500 || mh.gid < 500 {
            return Err(Self::invalid(
                "mail_host.uid",
                "uid and gid must be 500 or more (Dovecot's first_valid_uid)",
            ));
        }
        if mh.home.contains(':') || mh.home.chars().any(char::is_control) {
            return Err(Self::invalid(
                "mail_host.home",
                "a passwd-file field cannot hold ':' or line breaks",
            ));
        }
        if mh.backend == MailHostBackend::Command && mh.command.is_none() {
            return Err(Self::invalid(
                "mail_host.command",
                "the command backend needs a command",
            ));
        }
        if mh.default_quota_mb == Some(0) {
            return Err(Self::invalid(
                "mail_host.default_quota_mb",
                "leave it unset for no quota",
            ));
        }
        let smtp = &self.smtp;
        if let Some(host) = &smtp.host {
            if host.trim().is_empty() || host.contains(char::is_whitespace) {
                return Err(Self::invalid("smtp.host", "give a host name or address"));
            }
            if smtp.port == 0 {
                return Err(Self::invalid("smtp.port", "must be 1 to 65535"));
            }
        }
        if smtp.username.is_some() != smtp.password.is_some() {
            return Err(Self::invalid(
                "smtp.username",
                "set both smtp.username and smtp.password, or neither",
            ));
        }
        if smtp.timeout_secs == 0 {
            return Err(Self::invalid("smtp.timeout_secs", "must be at least 1"));
        }
        if !(1..=64).contains(&smtp.connections) {
            return Err(Self::invalid("smtp.connections", "must be 1 to 64"));
        }
        if smtp.retry_initial_secs == 0 || smtp.retry_max_secs < smtp.retry_initial_secs {
            return Err(Self::invalid(
                "smtp.retry_initial_secs",
                "must be at least 1 and at most smtp.retry_max_secs",
            ));
        }
        if smtp.rate_per_minute > 0 && smtp.burst == 0 {
            return Err(Self::invalid("smtp.burst", "must be at least 1"));
        }
        for (key, value) in [
            ("smtp.from_address", &smtp.from_address),
            ("smtp.reply_to", &smtp.reply_to),
        ] {
            if let Some(v) = value {
                RecipientEmail::parse(v).map_err(|e| Self::invalid(key, format!("{v:?}: {e}")))?;
            }
        }
        if let Some(name) = &smtp.from_name
            && name.chars().any(char::is_control)
        {
            return Err(Self::invalid("smtp.from_name", "must be one line"));
        }
        if let Some(url) = &self.client.webmail_url {
            check_url("client.webmail_url", url)?;
        }
        if self.http.body_limit_bytes < 1024 {
            return Err(Self::invalid(
                "http.body_limit_bytes",
                "must be at least 1024",
            ));
        }
        if self.http.idle_timeout_secs == 0 {
            return Err(Self::invalid(
                "http.idle_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.http.header_timeout_secs == 0 || self.http.header_timeout_secs > 300 {
            return Err(Self::invalid(
                "http.header_timeout_secs",
                "must be 1 to 300",
            ));
        }
        if self.http.max_connections < 16 {
            return Err(Self::invalid("http.max_connections", "must be at least 16"));
        }
        if self.http.max_connections_per_client == 0
            || self.http.max_connections_per_client > self.http.max_connections
        {
            return Err(Self::invalid(
                "http.max_connections_per_client",
                "must be 1 to http.max_connections",
            ));
        }
        for (key, value) in [
            ("http.link_rate_per_minute", self.http.link_rate_per_minute),
            (
                "http.link_guesses_per_minute",
                self.http.link_guesses_per_minute,
            ),
            (
                "http.signin_rate_per_minute",
                self.http.signin_rate_per_minute,
            ),
        ] {
            if value == 0 {
                return Err(Self::invalid(key, "must be at least 1 per minute"));
            }
        }
        if self.hashing.workers > 256 {
            return Err(Self::invalid(
                "hashing.workers",
                "at most 256; each running hash holds 19 MiB",
            ));
        }
        if self.hashing.wait_secs == 0 || self.hashing.wait_secs > 120 {
            return Err(Self::invalid("hashing.wait_secs", "must be 1 to 120"));
        }
        Ok(())
    }

    /// The validated hosted domains with their caps.
    pub fn hosted_domains(&self) -> Vec<(DomainName, u64)> {
        self.domains
            .iter()
            .filter_map(|d| DomainName::parse(&d.name).ok().map(|n| (n, d.mailbox_cap)))
            .collect()
    }

    pub fn domain_cap(&self, domain: &DomainName) -> Option<u64> {
        self.hosted_domains()
            .into_iter()
            .find(|(d, _)| d == domain)
            .map(|(_, cap)| cap)
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

    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("muster.redb")
    }

    /// The link lifetime a batch gets unless it asks for less.
    pub fn default_expiry(&self) -> HumanDuration {
        self.invites
            .default_expiry
            .unwrap_or(self.invites.max_expiry)
    }

    pub fn public_url(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// The sender address: configured, or `noreply@` the first domain.
    pub fn from_address(&self) -> String {
        self.smtp.from_address.clone().unwrap_or_else(|| {
            let domain = self
                .hosted_domains()
                .first()
                .map(|(d, _)| d.to_string())
                .unwrap_or_else(|| "localhost.localdomain".into());
            format!("noreply@{domain}")
        })
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
        let rest = self
            .public_url
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&self.public_url);
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = if authority.starts_with('[') {
            authority
                .split(']')
                .next()
                .unwrap_or(authority)
                .trim_start_matches('[')
        } else {
            authority.split(':').next().unwrap_or(authority)
        };
        host.to_string()
    }

    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

fn check_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            Config::invalid(key, format!("{url:?} must start with http:// or https://"))
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Config::invalid(
            key,
            format!("{url:?} is not a URL with a host"),
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(Config::invalid(
            key,
            format!("{url:?} must not carry a query or fragment"),
        ));
    }
    Ok(())
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
