//! Webhooks: the events an endpoint may ask for, which URLs and addresses
//! Muster posts to, and the Standard Webhooks signature
//! (<https://www.standardwebhooks.com/>), so receivers verify deliveries
//! with the existing libraries. Pure: no I/O.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a webhook tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    InviteCreated,
    InviteSent,
    InviteDeferred,
    InviteFailed,
    InviteRedeemed,
    InviteBlocked,
    InviteExpired,
    InviteRevoked,
    InviteNewLinkRequested,
    MailboxCreated,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        Self::InviteCreated,
        Self::InviteSent,
        Self::InviteDeferred,
        Self::InviteFailed,
        Self::InviteRedeemed,
        Self::InviteBlocked,
        Self::InviteExpired,
        Self::InviteRevoked,
        Self::InviteNewLinkRequested,
        Self::MailboxCreated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::InviteCreated => "invite.created",
            Self::InviteSent => "invite.sent",
            Self::InviteDeferred => "invite.deferred",
            Self::InviteFailed => "invite.failed",
            Self::InviteRedeemed => "invite.redeemed",
            Self::InviteBlocked => "invite.blocked",
            Self::InviteExpired => "invite.expired",
            Self::InviteRevoked => "invite.revoked",
            Self::InviteNewLinkRequested => "invite.new_link_requested",
            Self::MailboxCreated => "mailbox.created",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("url {0:?}: {1}")]
    Url(String, String),
    #[error(
        "url {url:?}: {host} is {why}; webhooks do not go there unless webhooks.allow_addresses names it"
    )]
    Refused {
        url: String,
        host: String,
        why: &'static str,
    },
    #[error(
        "events[{index}] {name:?} is not an event; the events are {}",
        all_names()
    )]
    UnknownEvent { index: usize, name: String },
    #[error("events: name at least one; the events are {}", all_names())]
    NoEvents,
}

fn all_names() -> String {
    EventKind::ALL
        .iter()
        .map(|e| e.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The events an endpoint asks for: known names, each once, at least one.
pub fn parse_events(names: &[String]) -> Result<Vec<EventKind>, WebhookError> {
    let mut out = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let e = EventKind::parse(name.trim()).ok_or_else(|| WebhookError::UnknownEvent {
            index,
            name: name.clone(),
        })?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    if out.is_empty() {
        return Err(WebhookError::NoEvents);
    }
    Ok(out)
}

/// An http(s) URL a webhook may be posted to: a host, no user name or
/// password in it, and no host refused by name or address. Read the way
/// the HTTP client reads it (the `url` crate, WHATWG rules), so
/// `http://2852039166/`, `0xa9fea9fe` or a trailing dot name the address
/// they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: url::Url,
    /// The host name, lower case, without a trailing dot; or the address.
    host: String,
    ip: Option<IpAddr>,
}

/// Names of cloud metadata services, refused like their addresses.
const METADATA_NAMES: [&str; 3] = ["metadata.google.internal", "metadata", "instance-data"];

impl WebhookUrl {
    /// `allowed` names hosts or addresses allowed on purpose.
    pub fn parse(raw: &str, allowed: &[String]) -> Result<Self, WebhookError> {
        let raw = raw.trim();
        let bad = |why: &str| WebhookError::Url(raw.to_string(), why.to_string());
        if raw.len() > 2048 {
            return Err(bad("longer than 2048 characters"));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("a URL has no spaces"));
        }
        let lower = raw.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(bad("only http:// and https:// URLs take webhooks"));
        }
        let url = url::Url::parse(raw).map_err(|e| bad(&format!("not a URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "leave the user name and password out; deliveries are signed instead",
            ));
        }
        let (host, ip) = match url.host() {
            None => return Err(bad("there is no host")),
            Some(url::Host::Ipv4(a)) => (a.to_string(), Some(IpAddr::V4(a))),
            Some(url::Host::Ipv6(a)) => (a.to_string(), Some(IpAddr::V6(a))),
            Some(url::Host::Domain(d)) => (d.trim_end_matches('.').to_ascii_lowercase(), None),
        };
        if host.is_empty() {
            return Err(bad("there is no host"));
        }
        let url = Self { url, host, ip };
        let refused = url.ip.and_then(address_refused).or_else(|| {
            METADATA_NAMES
                .contains(&url.host.as_str())
                .then_some("a cloud metadata service")
        });
        if let Some(why) = refused
            && !url.is_allowed(allowed)
        {
            return Err(WebhookError::Refused {
                url: raw.to_string(),
                host: url.host.clone(),
                why,
            });
        }
        Ok(url)
    }

    /// The URL as the client will request it.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The address the URL names itself, when it names one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    fn is_allowed(&self, allowed: &[String]) -> bool {
        allowed.iter().any(|a| {
            a.trim_end_matches('.').eq_ignore_ascii_case(&self.host)
                || (self.ip.is_some() && a.parse::<IpAddr>().ok() == self.ip)
        })
    }

    /// Whether `addr`, which the host resolved to, may be posted to.
    pub fn address_ok(&self, addr: IpAddr, allowed: &[String]) -> Result<(), &'static str> {
        if self.is_allowed(allowed) || allowed.iter().any(|a| a.parse() == Ok(addr)) {
            return Ok(());
        }
        match address_refused(addr) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

/// Why an address takes no webhooks, if it does not: link-local (where
/// cloud metadata services answer), unspecified, broadcast or multicast.
pub fn address_refused(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(a) => {
            if a.octets() == [169, 254, 169, 254] {
                Some("a cloud metadata address")
            } else if a.is_link_local() {
                Some("a link-local address")
            } else if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
                Some("not an address a server listens on")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return address_refused(IpAddr::V4(v4));
            }
            let s = a.segments();
            if s == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
                Some("a cloud metadata address")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if a.is_unspecified() || a.is_multicast() {
                Some("not an address a server listens on")
            } else {
                None
            }
        }
    }
}

/// An endpoint's signing secret: shown once as `whsec_<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret([u8; 32]);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// As the endpoint's owner configures their receiver with it.
    pub fn reveal(&self) -> String {
        format!("whsec_{}", STANDARD.encode(self.0))
    }

    /// The `webhook-signature` header for a delivery: `v1,` and the
    /// base64 HMAC-SHA256 of `{id}.{timestamp}.{payload}`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
        signature(&self.0, msg_id, timestamp, payload)
    }
}

fn signature(secret: &[u8], msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_and_not_link_local_or_metadata() {
        let none: Vec<String> = Vec::new();
        assert!(WebhookUrl::parse("https://hooks.example.org/muster", &none).is_ok());
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/in", &none).is_ok());
        assert!(WebhookUrl::parse("http://10.0.0.5/in", &none).is_ok());
        for (bad, words) in [
            ("ftp://x.example/", "only http"),
            ("hooks.example.org", "only http"),
            ("https://", "empty host"),
            ("https://user:pw@x.example/", "user name"),
            ("http://169.254.169.254/latest/meta-data", "metadata"),
            ("http://169.254.10.1/", "link-local"),
            ("http://[fe80::1]/", "link-local"),
            ("http://[fd00:ec2::254]/", "metadata"),
            ("http://metadata.google.internal/", "metadata"),
            ("http://0.0.0.0:80/", "not an address"),
            ("https://x.example/a b", "spaces"),
            // Spellings the HTTP client reads as the metadata address.
            ("http://2852039166/", "metadata"),
            ("http://0xa9fea9fe/", "metadata"),
            ("http://0251.0376.0251.0376/", "metadata"),
            ("http://169.254.169.254./", "metadata"),
            ("http://169.254.169.254\\latest", "metadata"),
            ("http://169.254.169.%32%35%34/", "metadata"),
            ("http://[::ffff:169.254.169.254]/", "metadata"),
            ("http://METADATA.google.internal./", "metadata"),
        ] {
            let e = WebhookUrl::parse(bad, &none).unwrap_err().to_string();
            assert!(e.contains(words), "{bad}: {e}");
            assert!(e.starts_with("url "), "{bad}: {e}");
        }
        let allowed = vec!["169.254.169.254".to_string()];
        assert!(WebhookUrl::parse("http://169.254.169.254/", &allowed).is_ok());
        let u = WebhookUrl::parse("https://Hooks.Example.org:8443/x", &none).unwrap();
        assert_eq!(u.host(), "hooks.example.org");
        assert!(
            u.address_ok("169.254.169.254".parse().unwrap(), &none)
                .is_err()
        );
        assert!(u.address_ok("203.0.113.9".parse().unwrap(), &none).is_ok());
        assert!(
            u.address_ok("::ffff:169.254.1.1".parse().unwrap(), &none)
                .is_err()
        );
    }

    #[test]
    fn events_are_named_once_each() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_events(&names(&["invite.sent", "mailbox.created", "invite.sent"])).unwrap(),
            [EventKind::InviteSent, EventKind::MailboxCreated]
        );
        let e = parse_events(&names(&["invite.sent", "invite.opened"])).unwrap_err();
        assert!(
            e.to_string().starts_with("events[1] \"invite.opened\""),
            "{e}"
        );
        assert_eq!(parse_events(&[]).unwrap_err(), WebhookError::NoEvents);
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The Standard Webhooks specification's example: secret
        // whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, its id and timestamp.
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            signature(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                b"{\"test\": 2432232314}"
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let ours = WebhookSecret::from_bytes([7; 32]);
        assert_eq!(
            ours.sign("msg_1", 1, b"{}"),
            signature(&[7; 32], "msg_1", 1, b"{}")
        );
        assert!(ours.reveal().starts_with("whsec_"));
        assert!(!format!("{ours:?}").contains(&ours.reveal()[6..]));
    }
}
