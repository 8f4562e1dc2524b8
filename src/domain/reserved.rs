//! Reserved mailbox names (R15). Some local parts carry powers or duties
//! beyond an ordinary mailbox: a certificate authority may prove control
//! of a domain by mailing one of the first five (CA/Browser Forum Baseline
//! Requirements 3.2.2.4.4), RFC 2142 reserves role addresses, and Muster's
//! own sender address receives every invite's replies and bounces. They
//! are flagged like any other problem unless the configuration allows a
//! named one on purpose.

use super::address::MailboxAddress;

/// Whoever reads these can have TLS certificates issued for the domain.
const CERTIFICATE_NAMES: &[&str] = &[
    "admin",
    "administrator",
    "hostmaster",
    "postmaster",
    "webmaster",
];

/// Role addresses of RFC 2142 and the usual system names.
const ROLE_NAMES: &[&str] = &[
    "abuse",
    "root",
    "mailer-daemon",
    "noreply",
    "no-reply",
    "security",
];

/// Every name reserved unless allowed.
pub fn built_in() -> impl Iterator<Item = &'static str> {
    CERTIFICATE_NAMES.iter().chain(ROLE_NAMES).copied()
}

#[derive(Debug, Clone, Default)]
pub struct ReservedNames {
    /// Built-in names the configuration allows.
    allowed: Vec<String>,
    /// Muster's sender address, `local@domain`, lower-cased.
    sender: Option<String>,
}

impl ReservedNames {
    /// `allowed` lists built-in names an admin allows on purpose; `sender`
    /// is Muster's From address.
    pub fn new(allowed: &[String], sender: Option<&str>) -> Self {
        Self {
            allowed: allowed.iter().map(|a| a.trim().to_lowercase()).collect(),
            sender: sender.map(|s| s.trim().to_lowercase()),
        }
    }

    /// Why `mailbox` may not be created, in words; None when it may.
    pub fn refusal(&self, mailbox: &MailboxAddress) -> Option<String> {
        let local = mailbox.local().as_str();
        if self.sender.as_deref() == Some(mailbox.to_string().as_str()) {
            return Some(format!(
                "{mailbox} is Muster's sender address (smtp.from_address): it receives every invite's replies and bounces; choose another name"
            ));
        }
        if self.allowed.iter().any(|a| a == local) {
            return None;
        }
        if CERTIFICATE_NAMES.contains(&local) {
            return Some(format!(
                "{local} is a reserved name: whoever reads {mailbox} can have TLS certificates issued for the domain; choose another name, or allow it in invites.allow_reserved_local_parts"
            ));
        }
        if ROLE_NAMES.contains(&local) {
            return Some(format!(
                "{local} is a reserved role address (RFC 2142); choose another name, or allow it in invites.allow_reserved_local_parts"
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(s: &str) -> MailboxAddress {
        MailboxAddress::parse(s).unwrap()
    }

    #[test]
    fn built_in_names_are_refused_unless_allowed() {
        let none = ReservedNames::default();
        for name in built_in() {
            let why = none
                .refusal(&mailbox(&format!("{name}@team.example")))
                .unwrap();
            assert!(why.contains("invites.allow_reserved_local_parts"), "{why}");
        }
        assert!(none.refusal(&mailbox("jane@team.example")).is_none());
        assert!(
            none.refusal(&mailbox("postmaster@team.example"))
                .unwrap()
                .contains("TLS certificates")
        );
        let some = ReservedNames::new(&["Abuse".into()], None);
        assert!(some.refusal(&mailbox("abuse@team.example")).is_none());
        assert!(some.refusal(&mailbox("root@team.example")).is_some());
    }

    #[test]
    fn the_sender_address_is_refused_even_when_allowed() {
        let r = ReservedNames::new(&["noreply".into()], Some("Invites@Team.example"));
        let why = r.refusal(&mailbox("invites@team.example")).unwrap();
        assert!(why.contains("sender address"), "{why}");
        assert!(r.refusal(&mailbox("invites@other.example")).is_none());
        assert!(r.refusal(&mailbox("noreply@team.example")).is_none());
    }
}
