//! The environment's part: every setting can be overridden by
//! `MUSTER_` and its key path in upper case (`smtp.port` →
//! `MUSTER_SMTP_PORT`), and loading puts the file and the environment
//! together.

use std::path::Path;

use super::{Config, ConfigError, DEFAULT_CONFIG_PATH};

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
    ("invites.reminders", Kind::List),
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
    ("mail_host.sql.url", Kind::Str),
    ("mail_host.sql.layout", Kind::Str),
    ("mail_host.sql.pool_size", Kind::Int),
    ("mail_host.sql.tls", Kind::Str),
    ("mail_host.sql.ca_file", Kind::Str),
    ("mail_host.sql.quota_multiplier", Kind::Int),
    ("smtp.mode", Kind::Str),
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
    ("smtp.direct.port", Kind::Int),
    ("smtp.direct.require_tls", Kind::Bool),
    ("smtp.direct.ca_file", Kind::Str),
    ("smtp.direct.mta_sts", Kind::Bool),
    ("smtp.direct.connections_per_domain", Kind::Int),
    ("smtp.direct.rate_per_domain_per_minute", Kind::Int),
    ("smtp.direct.burst_per_domain", Kind::Int),
    ("dns.resolvers", Kind::List),
    ("dkim.sign", Kind::Bool),
    ("dkim.keys_dir", Kind::Str),
    ("client.webmail_url", Kind::Str),
    ("client.imap_host", Kind::Str),
    ("client.imap_port", Kind::Int),
    ("client.imap_security", Kind::Str),
    ("client.smtp_host", Kind::Str),
    ("client.smtp_port", Kind::Int),
    ("client.smtp_security", Kind::Str),
    ("client.welcome", Kind::Bool),
    ("notifications.to", Kind::Str),
    ("notifications.mode", Kind::Str),
    ("notifications.digest_hour", Kind::Int),
    ("webhooks.allow_addresses", Kind::List),
    ("webhooks.timeout_secs", Kind::Int),
    ("webhooks.retry_initial_secs", Kind::Int),
    ("webhooks.retry_max_secs", Kind::Int),
    ("webhooks.give_up_after", Kind::Str),
    ("http.body_limit_bytes", Kind::Int),
    ("http.metrics_token", Kind::Str),
    ("http.behind_proxy", Kind::Bool),
    ("http.idle_timeout_secs", Kind::Int),
    ("http.header_timeout_secs", Kind::Int),
    ("http.body_timeout_secs", Kind::Int),
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
            message: in_words(e.to_string().trim()),
        };
        // First the file alone, so its errors carry its line numbers.
        let mut table: toml::Table = toml::from_str(text).map_err(file_error)?;
        super::validate::check_typed_values(&table)?;
        toml::from_str::<Config>(text).map_err(file_error)?;
        for (var, raw) in env {
            if !var.starts_with("MUSTER_") || NON_KEY_VARS.contains(&var.as_str()) {
                continue;
            }
            let Some((key, kind)) = KEYS.iter().find(|(k, _)| env_name(k) == var) else {
                return Err(ConfigError::UnknownEnv(var));
            };
            set_path(&mut table, key, env_value(&var, &raw, *kind)?);
        }
        super::validate::check_typed_values(&table)?;
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
}

/// A TOML error with the parser's names for number types in words.
fn in_words(message: &str) -> String {
    [
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected usize", "expected a whole number of 0 or more"),
    ]
    .iter()
    .fold(message.to_string(), |m, (from, to)| m.replace(from, to))
}
