//! The settings of direct delivery, DNS and DKIM signing.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How email leaves Muster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpMode {
    /// Through `smtp.host` (the default when it is set).
    Relay,
    /// Straight to each recipient domain's mail servers (MX records).
    Direct,
    /// As `.eml` files in `<data_dir>/outbox` (the default with no relay).
    Outbox,
}

impl SmtpMode {
    pub fn name(self) -> &'static str {
        match self {
            SmtpMode::Relay => "relay",
            SmtpMode::Direct => "direct",
            SmtpMode::Outbox => "outbox",
        }
    }
}

/// Direct delivery (`smtp.mode = "direct"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectSettings {
    /// The port destination mail servers take mail on: 25. Another only
    /// for a network that redirects it, or for tests.
    pub port: u16,
    /// STARTTLS is used whenever a server offers it. With this set, a
    /// server that does not offer it, or whose certificate does not verify
    /// (system CAs, or `ca_file`), is not sent to (tried again later).
    pub require_tls: bool,
    /// Extra CA certificates (PEM) trusted when verifying servers (and
    /// the servers of MTA-STS policies).
    pub ca_file: Option<PathBuf>,
    /// Honour destination domains' MTA-STS policies (RFC 8461): where one
    /// says enforce, mail goes only to the MX hosts it lists, over TLS
    /// whose certificate verifies; otherwise it waits and is tried again.
    pub mta_sts: bool,
    /// Connections open at once to one destination domain.
    pub connections_per_domain: usize,
    /// Messages a minute to one destination domain; 0 = unthrottled.
    pub rate_per_domain_per_minute: u32,
    pub burst_per_domain: u32,
}

impl Default for DirectSettings {
    fn default() -> Self {
        // Big providers defer bursts from a sender they do not know yet
        // (Outlook's 4.7.650, Gmail's 4.7.28): two connections and a
        // message a second per provider stay under their first limits
        // while 500 invites to one provider still go out in about ten
        // minutes.
        Self {
            port: 25,
            require_tls: false,
            ca_file: None,
            mta_sts: true,
            connections_per_domain: 2,
            rate_per_domain_per_minute: 60,
            burst_per_domain: 10,
        }
    }
}

/// Where Muster asks DNS questions (MX for direct delivery, the records the
/// deliverability check reads, DKIM keys when it verifies a test send).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSettings {
    /// Resolvers as `address` or `address:port`; none = the system's
    /// (`/etc/resolv.conf`).
    pub resolvers: Vec<String>,
}

/// DKIM signing of everything Muster sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimSettings {
    /// Sign with every key `muster dkim generate` made for the sender's
    /// domain. Off: keys are kept but nothing is signed.
    pub sign: bool,
    /// Where the keys are; default `<data_dir>/dkim`.
    pub keys_dir: Option<PathBuf>,
}

impl Default for DkimSettings {
    fn default() -> Self {
        Self {
            sign: true,
            keys_dir: None,
        }
    }
}
