//! Checks every value at load; each error names the setting, its
//! environment variable, and what to do.

use std::net::SocketAddr;

use super::env::env_name;
use super::{Config, ConfigError, HttpUrl, MAX_EXPIRY, MIN_EXPIRY, MailHostBackend, SmtpMode};
use crate::domain::address::{DomainName, RecipientEmail};

impl Config {
    pub(super) fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key,
            env: env_name(key),
            message: message.into(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
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
            let name = d.name.clone();
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
        if inv.reminders.len() > crate::domain::reminders::MAX_REMINDERS {
            return Err(Self::invalid(
                "invites.reminders",
                format!(
                    "at most {} reminders per link",
                    crate::domain::reminders::MAX_REMINDERS
                ),
            ));
        }
        for (i, raw) in inv.reminders.iter().enumerate() {
            if let Err(e) = crate::domain::reminders::ReminderOffset::parse(raw) {
                return Err(Self::invalid(
                    "invites.reminders",
                    format!("item {} {raw:?}: {e}", i + 1),
                ));
            }
        }
        if self.notifications.digest_hour > 23 {
            return Err(Self::invalid(
                "notifications.digest_hour",
                "an hour of the day in UTC, 0 to 23",
            ));
        }
        let w = &self.webhooks;
        if !(1..=120).contains(&w.timeout_secs) {
            return Err(Self::invalid("webhooks.timeout_secs", "must be 1 to 120"));
        }
        if w.retry_initial_secs == 0 || w.retry_max_secs < w.retry_initial_secs {
            return Err(Self::invalid(
                "webhooks.retry_initial_secs",
                "must be at least 1 and at most webhooks.retry_max_secs",
            ));
        }
        if w.give_up_after < crate::domain::duration::HumanDuration::from_secs(60) {
            return Err(Self::invalid(
                "webhooks.give_up_after",
                "must be at least 1m",
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
        if mh.backend == MailHostBackend::Sql {
            let Some(url) = &mh.sql.url else {
                return Err(Self::invalid(
                    "mail_host.sql.url",
                    "the sql backend needs the database, like postgres://muster:PASSWORD@127.0.0.1:5432/mail or mysql://muster:PASSWORD@127.0.0.1:3306/mail",
                ));
            };
            crate::provision::sql::check_url(url.expose())
                .map_err(|m| Self::invalid("mail_host.sql.url", m))?;
            if mh.sql.ca_file.is_some() && mh.sql.tls != Some(super::SqlTls::Verify) {
                return Err(Self::invalid(
                    "mail_host.sql.ca_file",
                    "is used only to verify the database's certificate: set mail_host.sql.tls = \"verify\" too",
                ));
            }
            if !(1..=64).contains(&mh.sql.pool_size) {
                return Err(Self::invalid("mail_host.sql.pool_size", "must be 1 to 64"));
            }
            if mh.sql.quota_multiplier == 0 {
                return Err(Self::invalid(
                    "mail_host.sql.quota_multiplier",
                    "give Postfix Admin's $CONF['quota_multiplier'] (bytes per MB, 1024000 unless changed)",
                ));
            }
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
        match (smtp.mode, &smtp.host) {
            (Some(SmtpMode::Relay), None) => {
                return Err(Self::invalid(
                    "smtp.mode",
                    "\"relay\" needs smtp.host; set it, or choose \"direct\" or \"outbox\"",
                ));
            }
            (Some(mode @ (SmtpMode::Direct | SmtpMode::Outbox)), Some(_)) => {
                return Err(Self::invalid(
                    "smtp.host",
                    format!(
                        "a relay is set but smtp.mode is \"{}\"; remove smtp.host or set smtp.mode = \"relay\"",
                        mode.name()
                    ),
                ));
            }
            _ => {}
        }
        if self.smtp_mode() == SmtpMode::Direct {
            let helo = smtp.helo_name.clone().unwrap_or_else(|| self.public_host());
            if helo
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok()
            {
                return Err(Self::invalid(
                    "smtp.helo_name",
                    format!(
                        "direct delivery greets mail servers by name, and {helo:?} (the public URL's host when unset) is an address, which receivers refuse; set smtp.helo_name to this server's DNS name"
                    ),
                ));
            }
        }
        let direct = &smtp.direct;
        if direct.port == 0 {
            return Err(Self::invalid("smtp.direct.port", "must be 1 to 65535"));
        }
        if !(1..=16).contains(&direct.connections_per_domain) {
            return Err(Self::invalid(
                "smtp.direct.connections_per_domain",
                "must be 1 to 16",
            ));
        }
        if direct.rate_per_domain_per_minute > 0 && direct.burst_per_domain == 0 {
            return Err(Self::invalid(
                "smtp.direct.burst_per_domain",
                "must be at least 1",
            ));
        }
        if let Some(ca) = &direct.ca_file
            && !ca.is_file()
        {
            return Err(Self::invalid(
                "smtp.direct.ca_file",
                format!("{} is not a readable file", ca.display()),
            ));
        }
        for r in &self.dns.resolvers {
            if crate::dns::parse_resolver(r).is_none() {
                return Err(Self::invalid(
                    "dns.resolvers",
                    format!("{r:?} is not an address or address:port (e.g. 127.0.0.1 or [::1]:53)"),
                ));
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
        if let Some(name) = &smtp.from_name
            && name.chars().any(char::is_control)
        {
            return Err(Self::invalid("smtp.from_name", "must be one line"));
        }
        if let Some(t) = &self.http.metrics_token
            && (t.expose().len() < 16 || !t.expose().bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(Self::invalid(
                "http.metrics_token",
                "must be at least 16 characters, ASCII letters, digits or punctuation with no spaces: use a long random value, for example from `openssl rand -hex 32`",
            ));
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
        if self.http.body_timeout_secs == 0 || self.http.body_timeout_secs > 3600 {
            return Err(Self::invalid("http.body_timeout_secs", "must be 1 to 3600"));
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
}

/// The settings held as checked types, checked here first from their text
/// so a bad value names its setting and variable like any other.
pub(super) fn check_typed_values(table: &toml::Table) -> Result<(), ConfigError> {
    let text = |key: &str| -> Option<String> {
        let mut v = table.get(key.split('.').next()?)?;
        for part in key.split('.').skip(1) {
            v = v.as_table()?.get(part)?;
        }
        v.as_str().map(str::to_string)
    };
    if let Some(v) = text("listen")
        && v.parse::<SocketAddr>().is_err()
    {
        return Err(Config::invalid(
            "listen",
            format!("{v:?} is not an address:port like 127.0.0.1:8080"),
        ));
    }
    for key in ["public_url", "client.webmail_url"] {
        if let Some(v) = text(key) {
            HttpUrl::parse(&v).map_err(|m| Config::invalid(key, m))?;
        }
    }
    for key in ["smtp.from_address", "smtp.reply_to", "notifications.to"] {
        if let Some(v) = text(key) {
            RecipientEmail::parse(&v).map_err(|e| Config::invalid(key, format!("{v:?}: {e}")))?;
        }
    }
    for d in table
        .get("domains")
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(name) = d.get("name").and_then(|n| n.as_str()) {
            DomainName::parse(name)
                .map_err(|e| Config::invalid("domains", format!("{name:?}: {e}")))?;
        }
    }
    Ok(())
}
