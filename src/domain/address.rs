//! Addresses: the recipient's existing email, the hosted domain, and the
//! local part of the mailbox Muster will create. Each validates on
//! construction, so code holding one never re-checks it.

use std::fmt;

/// RFC 5321 limits: 64 octets of local part, 254 for the whole path.
const MAX_LOCAL_LEN: usize = 64;
const MAX_ADDRESS_LEN: usize = 254;
const MAX_DOMAIN_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("the address is longer than {MAX_ADDRESS_LEN} characters")]
    TooLong,
    #[error("the address has no @")]
    MissingAt,
    #[error("the address has more than one @ (quoted local parts are not supported)")]
    SeveralAt,
    #[error("the part before @ is empty")]
    EmptyLocal,
    #[error("the part before @ is longer than {MAX_LOCAL_LEN} characters")]
    LocalTooLong,
    #[error("the part before @ contains {0:?}, which is not allowed in an address")]
    LocalBadChar(char),
    #[error("the part before @ has a leading, trailing or doubled dot")]
    LocalBadDot,
    #[error("address literals such as [192.0.2.1] are not accepted; use a domain name")]
    DomainLiteral,
    #[error(transparent)]
    Domain(#[from] DomainError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the domain is empty")]
    Empty,
    #[error("the domain {0:?} is not a valid internationalised domain name")]
    Idna(String),
    #[error("the domain {0:?} needs at least one dot (like example.org)")]
    NoDot(String),
    #[error("the domain {0:?} is longer than {MAX_DOMAIN_LEN} characters")]
    TooLong(String),
    #[error("the domain {0:?} has an empty label or one longer than {MAX_LABEL_LEN} characters")]
    BadLabel(String),
    #[error("the domain {0:?} has a label that starts or ends with a hyphen")]
    Hyphen(String),
    #[error("the domain {0:?} contains characters not allowed in a domain name")]
    BadChar(String),
    #[error("the domain {0:?} looks like an IP address; use a domain name")]
    NumericTld(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalPartError {
    #[error("the mailbox name is empty")]
    Empty,
    #[error("the mailbox name is longer than {MAX_LOCAL_LEN} characters")]
    TooLong,
    #[error(
        "the mailbox name contains {0:?}; use only letters a-z, digits, dot, hyphen and underscore"
    )]
    BadChar(char),
    #[error("the mailbox name contains '+', which the mail server reserves for address extensions")]
    Plus,
    #[error("the mailbox name must start and end with a letter or digit")]
    BadEdge,
    #[error("the mailbox name has two dots in a row")]
    DoubleDot,
}

/// A hosted or recipient domain in its ASCII (IDNA) form, lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim().trim_end_matches('.');
        if raw.is_empty() {
            return Err(DomainError::Empty);
        }
        let ascii = if raw.is_ascii() {
            raw.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_strict(raw).map_err(|_| DomainError::Idna(raw.to_string()))?
        };
        if ascii.len() > MAX_DOMAIN_LEN {
            return Err(DomainError::TooLong(raw.to_string()));
        }
        if !ascii.contains('.') {
            return Err(DomainError::NoDot(raw.to_string()));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        for label in &labels {
            if label.is_empty() || label.len() > MAX_LABEL_LEN {
                return Err(DomainError::BadLabel(raw.to_string()));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(DomainError::BadChar(raw.to_string()));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(DomainError::Hyphen(raw.to_string()));
            }
        }
        let tld = labels.last().copied().unwrap_or_default();
        if tld.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::NumericTld(raw.to_string()));
        }
        Ok(Self(ascii))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The address an invite is sent to: an existing mailbox elsewhere.
/// The local part keeps its case (it is the remote server's business);
/// the domain is stored in ASCII, lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecipientEmail {
    local: String,
    domain: DomainName,
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c)
}

impl RecipientEmail {
    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(AddressError::Empty);
        }
        if raw.chars().count() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong);
        }
        let (local, domain) = match raw.split_once('@') {
            None => return Err(AddressError::MissingAt),
            Some((_, d)) if d.contains('@') => return Err(AddressError::SeveralAt),
            Some(parts) => parts,
        };
        if local.is_empty() {
            return Err(AddressError::EmptyLocal);
        }
        if local.len() > MAX_LOCAL_LEN {
            return Err(AddressError::LocalTooLong);
        }
        if let Some(bad) = local.chars().find(|c| *c != '.' && !is_atext(*c)) {
            return Err(AddressError::LocalBadChar(bad));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(AddressError::LocalBadDot);
        }
        if domain.starts_with('[') {
            return Err(AddressError::DomainLiteral);
        }
        let domain = DomainName::parse(domain)?;
        if local.len() + 1 + domain.as_str().len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong);
        }
        Ok(Self {
            local: local.to_string(),
            domain,
        })
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &DomainName {
        &self.domain
    }

    /// The key under which two recipients count as the same person:
    /// mail systems treat local parts case-insensitively in practice.
    pub fn dedup_key(&self) -> String {
        format!("{}@{}", self.local.to_lowercase(), self.domain)
    }
}

/// An address as people read it: an internationalised domain in its own
/// letters (`zoë@exämple.de`), not the ASCII form mail carries (`xn--`).
pub fn readable(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) if domain.contains("xn--") => {
            let (unicode, result) = idna::domain_to_unicode(domain);
            if result.is_ok() {
                format!("{local}@{unicode}")
            } else {
                address.to_string()
            }
        }
        _ => address.to_string(),
    }
}

impl fmt::Display for RecipientEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// The local part of a mailbox Muster creates on the host: lower case and
/// limited to characters Dovecot's passwd-file and Postfix maps take safely.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalPart(String);

impl LocalPart {
    pub fn parse(raw: &str) -> Result<Self, LocalPartError> {
        let lowered = raw.trim().to_lowercase();
        if lowered.is_empty() {
            return Err(LocalPartError::Empty);
        }
        if lowered.chars().count() > MAX_LOCAL_LEN {
            return Err(LocalPartError::TooLong);
        }
        if lowered.contains('+') {
            return Err(LocalPartError::Plus);
        }
        if let Some(bad) = lowered
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c)))
        {
            return Err(LocalPartError::BadChar(bad));
        }
        let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if !edge_ok(lowered.chars().next()) || !edge_ok(lowered.chars().last()) {
            return Err(LocalPartError::BadEdge);
        }
        if lowered.contains("..") {
            return Err(LocalPartError::DoubleDot);
        }
        Ok(Self(lowered))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LocalPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mailbox on a hosted domain: `local@domain`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxAddress {
    local: LocalPart,
    domain: DomainName,
}

impl MailboxAddress {
    pub fn new(local: LocalPart, domain: DomainName) -> Self {
        Self { local, domain }
    }

    /// Parses `local@domain` as written in a passwd-file or a map.
    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        let (local, domain) = raw.trim().rsplit_once('@').ok_or(AddressError::MissingAt)?;
        let local = LocalPart::parse(local).map_err(|e| match e {
            LocalPartError::Empty => AddressError::EmptyLocal,
            LocalPartError::TooLong => AddressError::LocalTooLong,
            LocalPartError::BadChar(c) => AddressError::LocalBadChar(c),
            LocalPartError::Plus => AddressError::LocalBadChar('+'),
            LocalPartError::BadEdge | LocalPartError::DoubleDot => AddressError::LocalBadDot,
        })?;
        Ok(Self::new(local, DomainName::parse(domain)?))
    }

    pub fn local(&self) -> &LocalPart {
        &self.local
    }

    pub fn domain(&self) -> &DomainName {
        &self.domain
    }
}

impl fmt::Display for MailboxAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Stored and sent as the address written out; read back through `parse`,
/// so a value that no longer parses is refused rather than trusted.
macro_rules! as_text {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                <$t>::parse(&raw).map_err(|e| serde::de::Error::custom(format!("{raw:?}: {e}")))
            }
        }
    )*};
}
as_text!(DomainName, RecipientEmail, LocalPart, MailboxAddress);

/// The part of an address after its last `@` (the whole when it has
/// none), for addresses already taken in.
pub fn domain_part(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(_, d)| d)
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_internationalised_domain_reads_in_its_own_letters() {
        assert_eq!(readable("user@xn--exmple-cua.de"), "user@exämple.de");
        assert_eq!(readable("ann@elsewhere.org"), "ann@elsewhere.org");
        // Not a valid A-label: left as it is.
        assert_eq!(readable("x@xn--.de"), "x@xn--.de");
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_addresses() {
        let e = RecipientEmail::parse("  Jane.Doe+team@Example.ORG ").unwrap();
        assert_eq!(e.to_string(), "Jane.Doe+team@example.org");
        assert_eq!(e.dedup_key(), "jane.doe+team@example.org");
    }

    #[test]
    fn converts_internationalised_domains() {
        let e = RecipientEmail::parse("anna@bücher.de").unwrap();
        assert_eq!(e.domain().as_str(), "xn--bcher-kva.de");
    }

    #[test]
    fn refuses_what_the_policy_refuses() {
        use AddressError::*;
        let cases = [
            ("", Empty),
            ("jane", MissingAt),
            ("a@b@c.org", SeveralAt),
            ("@example.org", EmptyLocal),
            ("jane@[192.0.2.1]", DomainLiteral),
            ("jane..doe@example.org", LocalBadDot),
            (".jane@example.org", LocalBadDot),
            ("ja ne@example.org", LocalBadChar(' ')),
            (
                "jane@localhost",
                Domain(DomainError::NoDot("localhost".into())),
            ),
            (
                "jane@192.0.2.1",
                Domain(DomainError::NumericTld("192.0.2.1".into())),
            ),
            (
                "jane@-bad.org",
                Domain(DomainError::Hyphen("-bad.org".into())),
            ),
            (
                "jane@ex_ample.org",
                Domain(DomainError::BadChar("ex_ample.org".into())),
            ),
            (
                "jane@example..org",
                Domain(DomainError::BadLabel("example..org".into())),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(RecipientEmail::parse(raw), Err(want), "{raw}");
        }
        let long_local = format!("{}@example.org", "a".repeat(65));
        assert_eq!(RecipientEmail::parse(&long_local), Err(LocalTooLong));
        let long = format!("a@{}.org", "b.".repeat(130));
        assert!(RecipientEmail::parse(&long).is_err());
    }

    #[test]
    fn local_part_rules() {
        assert_eq!(LocalPart::parse("Jane.Doe").unwrap().as_str(), "jane.doe");
        assert_eq!(LocalPart::parse("a_b-c9").unwrap().as_str(), "a_b-c9");
        assert_eq!(LocalPart::parse("jane+team"), Err(LocalPartError::Plus));
        assert_eq!(LocalPart::parse(".jane"), Err(LocalPartError::BadEdge));
        assert_eq!(LocalPart::parse("jane-"), Err(LocalPartError::BadEdge));
        assert_eq!(LocalPart::parse("ja..ne"), Err(LocalPartError::DoubleDot));
        assert_eq!(LocalPart::parse("jäne"), Err(LocalPartError::BadChar('ä')));
        assert_eq!(LocalPart::parse("a:b"), Err(LocalPartError::BadChar(':')));
        assert_eq!(LocalPart::parse(""), Err(LocalPartError::Empty));
        assert_eq!(
            LocalPart::parse(&"a".repeat(65)),
            Err(LocalPartError::TooLong)
        );
        assert!(LocalPart::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn stored_forms_round_trip() {
        let r = RecipientEmail::parse("Jane.Doe@Bücher.example").unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<RecipientEmail>(&json).unwrap(), r);
        let m = MailboxAddress::parse("jane@team.example").unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"jane@team.example\"");
        assert!(serde_json::from_str::<MailboxAddress>("\"no at sign\"").is_err());
    }

    #[test]
    fn mailbox_address_round_trips() {
        let m = MailboxAddress::parse("Jane@Example.org").unwrap();
        assert_eq!(m.to_string(), "jane@example.org");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = RecipientEmail::parse(&s);
            let _ = LocalPart::parse(&s);
            let _ = MailboxAddress::parse(&s);
        }

        #[test]
        fn accepted_addresses_are_normalised(
            local in "[A-Za-z0-9][A-Za-z0-9_+-]{0,20}",
            label in "[a-z][a-z0-9]{0,10}",
            tld in "[a-z]{2,6}",
        ) {
            let raw = format!(" {local}@{label}.{tld} ");
            let e = RecipientEmail::parse(&raw).unwrap();
            prop_assert_eq!(e.to_string(), raw.trim());
            // Parsing the display form again gives the same value.
            prop_assert_eq!(RecipientEmail::parse(&e.to_string()).unwrap(), e);
        }

        #[test]
        fn accepted_values_satisfy_the_invariants(s in "[ -~]{0,80}") {
            if let Ok(e) = RecipientEmail::parse(&s) {
                prop_assert!(e.to_string().len() <= MAX_ADDRESS_LEN);
                prop_assert!(e.domain().as_str().contains('.'));
                prop_assert!(!e.to_string().contains(' '));
            }
            if let Ok(l) = LocalPart::parse(&s) {
                prop_assert!(!l.as_str().is_empty() && l.as_str().len() <= MAX_LOCAL_LEN);
                prop_assert_eq!(l.as_str().to_lowercase(), l.as_str());
                prop_assert!(!l.as_str().contains(':') && !l.as_str().contains('+'));
            }
        }
    }
}
