//! MTA-STS (RFC 8461): a recipient domain's published promise that its
//! mail servers take mail only over TLS with a certificate that verifies.
//! The DNS record says a policy exists and which version; the policy,
//! fetched over HTTPS, names the MX hosts and the mode.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::address::DomainName;

/// The one `_mta-sts` TXT record's policy id, when exactly one record
/// starts with `v=STSv1;` and it is well formed (section 3.1); otherwise the
/// domain has no policy to use.
pub fn record_id(records: &[String]) -> Option<String> {
    let mut sts = records.iter().filter(|r| {
        r.strip_prefix("v=STSv1")
            .is_some_and(|rest| rest.trim_start().starts_with(';'))
    });
    let record = sts.next()?;
    if sts.next().is_some() {
        return None;
    }
    let mut id = None;
    for field in record.split(';').skip(1) {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        let (key, value) = field.split_once('=')?;
        if key.trim() == "id" {
            let value = value.trim();
            if value.is_empty()
                || value.len() > 32
                || !value.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return None;
            }
            id = Some(value.to_string());
        }
    }
    id
}

/// What a policy asks of senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only to listed MX hosts, over TLS that verifies; else not at all.
    Enforce,
    /// Report failures, deliver anyway.
    Testing,
    /// The domain has withdrawn its policy.
    None,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub mode: Mode,
    /// MX host patterns: a name, or `*.` and a name (one label more).
    pub mx: Vec<String>,
    /// How long the policy may be kept, in seconds.
    pub max_age: u64,
}

/// Why a fetched policy cannot be used (section 3.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("its version is not STSv1")]
    Version,
    #[error("its mode {0:?} is none of enforce, testing, none")]
    Mode(String),
    #[error("it has no mode")]
    NoMode,
    #[error("its max_age {0:?} is not a number of seconds")]
    MaxAge(String),
    #[error("it has no max_age")]
    NoMaxAge,
    #[error("it names no mx host")]
    NoMx,
}

/// The longest max_age a policy may give (one year); a longer one is cut
/// to it rather than losing the policy.
const MOST_AGE: u64 = 31_557_600;

/// The most MX patterns read from one policy (real ones list a handful).
const MOST_MX: usize = 100;

/// How long a kept policy is used before it is fetched again even though
/// its record's id has not changed (section 3.3 asks for about a day), so
/// that a fetch blocked around its expiry finds a fresh copy kept.
pub const REFRESH_AFTER: time::Duration = time::Duration::days(1);

impl Policy {
    /// Parses the policy body: `key: value` lines, unknown keys ignored.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "version" => version = Some(value == "STSv1"),
                "mode" => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(PolicyError::Mode(other.to_string())),
                    })
                }
                "max_age" => {
                    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(PolicyError::MaxAge(value.to_string()));
                    }
                    max_age = Some(value.parse::<u64>().unwrap_or(u64::MAX).min(MOST_AGE));
                }
                // Only what can be a host name (or `*.` and one): anything
                // else could never match, and would only fill the messages.
                "mx" if mx.len() < MOST_MX => mx.extend(pattern(value)),
                _ => {}
            }
        }
        if version != Some(true) {
            return Err(PolicyError::Version);
        }
        let mode = mode.ok_or(PolicyError::NoMode)?;
        let max_age = max_age.ok_or(PolicyError::NoMaxAge)?;
        if mx.is_empty() && mode != Mode::None {
            return Err(PolicyError::NoMx);
        }
        Ok(Self { mode, mx, max_age })
    }

    /// Whether `host` is one of the policy's MX hosts (section 4.1): the
    /// same name, or one label under a `*.` pattern's name.
    pub fn lists(&self, host: &str) -> bool {
        let host = normal(host);
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => *pattern == host,
            })
    }
}

/// A policy as fetched, with the id of the record that announced it: kept
/// (across restarts too) until its max_age runs out, so that a record
/// removed or a fetch blocked by someone on the path cannot switch the
/// protection off (section 10.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptPolicy {
    pub id: String,
    pub policy: Policy,
    #[serde(with = "time::serde::rfc3339")]
    pub fetched_at: OffsetDateTime,
}

impl KeptPolicy {
    /// Whether it still holds at `now`.
    pub fn holds_at(&self, now: OffsetDateTime) -> bool {
        let age = time::Duration::seconds(self.policy.max_age.min(MOST_AGE) as i64);
        self.fetched_at
            .checked_add(age)
            .is_some_and(|until| now < until)
    }
}

/// What to do about a domain's policy, given the id its `_mta-sts` record
/// gives now and the policy kept for it (section 5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The kept policy holds: no record now (removing it must not switch
    /// protection off), or the same id and fetched within a day.
    Keep(KeptPolicy),
    /// Fetch it; should that fail, `fallback` (still in force) holds.
    Fetch {
        id: String,
        fallback: Option<KeptPolicy>,
    },
    /// Neither a record nor a policy in force: send as usual.
    None,
}

pub fn step(record: Option<String>, kept: Option<KeptPolicy>, now: OffsetDateTime) -> Step {
    let kept = kept.filter(|k| k.holds_at(now));
    match (record, kept) {
        (None, Some(k)) => Step::Keep(k),
        (None, None) => Step::None,
        (Some(id), Some(k)) if id == k.id && now - k.fetched_at < REFRESH_AFTER => Step::Keep(k),
        (Some(id), fallback) => Step::Fetch { id, fallback },
    }
}

/// A host name (ASCII, as [`DomainName`] takes one), or `*.` and one, in
/// lower case without a trailing dot.
fn pattern(value: &str) -> Option<String> {
    let (wild, name) = match value.strip_prefix("*.") {
        Some(name) => ("*.", name),
        None => ("", value),
    };
    let name = DomainName::parse(name).ok().filter(|_| name.is_ascii())?;
    Some(format!("{wild}{}", name.as_str()))
}

fn normal(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_record_gives_its_id_only_when_it_is_the_one_sts_record() {
        assert_eq!(
            record_id(&strings(&["v=STSv1; id=20261206T01;"])),
            Some("20261206T01".into())
        );
        assert_eq!(
            record_id(&strings(&["v=spf1 -all", "v=STSv1;id=abc"])),
            Some("abc".into())
        );
        // Two, none, a bad id, another version: no policy.
        assert_eq!(
            record_id(&strings(&["v=STSv1; id=a;", "v=STSv1; id=b;"])),
            None
        );
        assert_eq!(record_id(&strings(&["v=spf1 -all"])), None);
        assert_eq!(record_id(&strings(&["v=STSv1; id=not-alnum;"])), None);
        assert_eq!(record_id(&strings(&["v=STSv1;"])), None);
        assert_eq!(record_id(&strings(&[" v=STSv1; id=a;"])), None);
        assert_eq!(record_id(&strings(&["v=STSv1 ; id=a"])), Some("a".into()));
        assert_eq!(record_id(&strings(&["v=STSv10; id=a;"])), None);
        assert_eq!(
            record_id(&strings(&[&format!("v=STSv1; id={};", "a".repeat(33))])),
            None
        );
    }

    #[test]
    fn a_policy_is_read_with_crlf_or_lf_and_unknown_keys_ignored() {
        let p = Policy::parse(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\nextension: x\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604_800);
        assert_eq!(p.mx, strings(&["mail.example.com", "*.example.net"]));
        let none = Policy::parse("version: STSv1\nmode: none\nmax_age: 0\n").unwrap();
        assert_eq!(none.mode, Mode::None);
        // A max_age past a year is cut to one; names that cannot be hosts
        // are left out, and no more than 100 are read.
        let mut text =
            "version: STSv1\nmode: enforce\nmax_age: 99999999999999999999999\nmx: bad_name.test\n"
                .to_string();
        for i in 0..150 {
            text.push_str(&format!("mx: mx{i}.example.com\n"));
        }
        let p = Policy::parse(&text).unwrap();
        assert_eq!(p.max_age, 31_557_600);
        assert_eq!(p.mx.len(), 100);
        assert_eq!(p.mx[0], "mx0.example.com");
    }

    #[test]
    fn a_broken_policy_says_what_is_wrong() {
        let cases = [
            ("mode: enforce\nmx: a.b\nmax_age: 1\n", PolicyError::Version),
            (
                "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n",
                PolicyError::Version,
            ),
            (
                "version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n",
                PolicyError::Mode("strict".into()),
            ),
            ("version: STSv1\nmx: a.b\nmax_age: 1\n", PolicyError::NoMode),
            (
                "version: STSv1\nmode: enforce\nmx: a.b\n",
                PolicyError::NoMaxAge,
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: soon\n",
                PolicyError::MaxAge("soon".into()),
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n",
                PolicyError::MaxAge("-1".into()),
            ),
            // Nothing that can be a host name.
            (
                "version: STSv1\nmode: enforce\nmx: \u{202e}moc.elpmaxe\nmx: a b\nmax_age: 1\n",
                PolicyError::NoMx,
            ),
            (
                "version: STSv1\nmode: testing\nmax_age: 1\n",
                PolicyError::NoMx,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Policy::parse(text), Err(want), "{text}");
        }
    }

    #[test]
    fn mx_hosts_match_by_name_or_one_label_under_a_wildcard() {
        let p = Policy::parse(
            "version: STSv1\nmode: enforce\nmx: Mail.Example.com.\nmx: *.example.net\nmax_age: 60\n",
        )
        .unwrap();
        assert!(p.lists("mail.example.com"));
        assert!(p.lists("MAIL.example.com."));
        assert!(p.lists("mx1.example.net"));
        assert!(!p.lists("example.net"));
        assert!(!p.lists("a.mx1.example.net"));
        assert!(!p.lists("other.example.com"));
        assert!(!p.lists("mail.example.com.evil.test"));
    }

    const FETCHED_AT: OffsetDateTime = time::macros::datetime!(2026-12-06 08:00 UTC);

    /// Policy id "1", fetched at `FETCHED_AT`.
    fn kept_for(max_age: u64) -> KeptPolicy {
        let text = format!("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: {max_age}\n");
        KeptPolicy {
            id: "1".into(),
            policy: Policy::parse(&text).unwrap(),
            fetched_at: FETCHED_AT,
        }
    }

    #[test]
    fn a_kept_policy_holds_for_its_max_age() {
        let (fetched_at, kept) = (FETCHED_AT, kept_for(3600));
        assert!(kept.holds_at(fetched_at + time::Duration::seconds(3599)));
        assert!(!kept.holds_at(fetched_at + time::Duration::seconds(3600)));
        // Its end past the last time there is: no panic, and over.
        let last = KeptPolicy {
            fetched_at: time::macros::datetime!(9999-12-31 23:00 UTC),
            ..kept
        };
        assert!(!last.holds_at(last.fetched_at));
    }

    #[test]
    fn a_kept_policy_is_fetched_again_on_a_new_id_after_a_day_or_once_expired() {
        let (fetched_at, kept) = (FETCHED_AT, kept_for(604_800));
        let hour = time::Duration::hours(1);
        let k = || Some(kept.clone());
        let fetch = |id: &str, fallback: Option<KeptPolicy>| Step::Fetch {
            id: id.into(),
            fallback,
        };
        assert_eq!(
            step(Some("1".into()), k(), fetched_at + hour),
            Step::Keep(kept.clone())
        );
        assert_eq!(step(None, k(), fetched_at + hour), Step::Keep(kept.clone()));
        assert_eq!(
            step(Some("2".into()), k(), fetched_at + hour),
            fetch("2", k())
        );
        assert_eq!(
            step(Some("1".into()), k(), fetched_at + 25 * hour),
            fetch("1", k())
        );
        let expired = fetched_at + time::Duration::days(8);
        assert_eq!(step(Some("1".into()), k(), expired), fetch("1", None));
        assert_eq!(step(None, k(), expired), Step::None);
        assert_eq!(step(None, None, expired), Step::None);
    }
}
