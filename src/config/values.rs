//! Setting values that validate on construction: a web address and a
//! secret that never prints.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An `http://` or `https://` address with a host and no query or
/// fragment, kept as written.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl(String);

impl HttpUrl {
    /// Why `raw` is not such an address, in words.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"))
            .ok_or_else(|| format!("{raw:?} must start with http:// or https://"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{raw:?} is not a URL with a host"));
        }
        if rest.contains(['?', '#']) {
            return Err(format!("{raw:?} must not carry a query or fragment"));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Without a trailing slash: a base to append paths to.
    pub fn base(&self) -> &str {
        self.0.trim_end_matches('/')
    }

    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }

    /// `scheme://host[:port]`.
    pub fn origin(&self) -> &str {
        let after = self.0.find("://").map_or(0, |i| i + 3);
        let end = self.0[after..]
            .find('/')
            .map_or(self.0.len(), |i| after + i);
        &self.0[..end]
    }

    /// Whether the host names this machine only (localhost, a loopback
    /// or unspecified address): a link to it opens nowhere else.
    pub fn is_local(&self) -> bool {
        let host = self.host().to_ascii_lowercase();
        host == "localhost"
            || host.ends_with(".localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
    }

    /// The port, written or the scheme's own.
    pub fn port(&self) -> u16 {
        let authority = &self.origin()[self.0.find("://").map_or(0, |i| i + 3)..];
        let after_host = match authority.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map_or("", |(_, rest)| rest),
            None => authority.split_once(':').map_or("", |(_, p)| p),
        };
        after_host
            .trim_start_matches(':')
            .parse()
            .unwrap_or(if self.is_https() { 443 } else { 80 })
    }

    /// The host name, without port or brackets.
    pub fn host(&self) -> &str {
        let authority = &self.origin()[self.0.find("://").map_or(0, |i| i + 3)..];
        if let Some(v6) = authority.strip_prefix('[') {
            return v6.split(']').next().unwrap_or(v6);
        }
        authority.split(':').next().unwrap_or(authority)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpUrl({})", self.0)
    }
}

impl Serialize for HttpUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        HttpUrl::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A secret setting (the relay's password): its Debug and Display say
/// nothing, so it cannot reach a log by accident. It is written back only
/// where configuration is written, by serialisation.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("…")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("https://muster.example.org:8443/base/").unwrap();
        assert_eq!(u.as_str(), "https://muster.example.org:8443/base/");
        assert_eq!(u.base(), "https://muster.example.org:8443/base");
        assert_eq!(u.origin(), "https://muster.example.org:8443");
        assert_eq!(u.host(), "muster.example.org");
        assert!(u.is_https());
        assert_eq!(HttpUrl::parse("http://[::1]:8080").unwrap().host(), "::1");
        assert!(!u.is_local());
        for local in [
            "http://localhost:8080",
            "http://LocalHost",
            "http://muster.localhost/",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080",
            "http://0.0.0.0:8080",
        ] {
            assert!(HttpUrl::parse(local).unwrap().is_local(), "{local}");
        }
        assert!(
            !HttpUrl::parse("http://192.168.1.5:8080")
                .unwrap()
                .is_local()
        );
        assert_eq!(u.port(), 8443);
        assert_eq!(HttpUrl::parse("http://[::1]:8080").unwrap().port(), 8080);
        assert_eq!(HttpUrl::parse("http://x.example/").unwrap().port(), 80);
        assert_eq!(HttpUrl::parse("https://x.example").unwrap().port(), 443);
        for bad in [
            "ftp://x.example",
            "http://",
            "http://x?y=1",
            "webmail",
            "http://a b",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
