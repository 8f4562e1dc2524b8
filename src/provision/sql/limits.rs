//! Postfix Admin's per-domain mailbox count, and the domain's active flag,
//! checked before a mailbox is added. Its quota limits (`maxquota`, the
//! domain's total) are left alone: Postfix Admin applies them only when
//! its own `$CONF['quota']` is on (off by default), which Muster cannot see.

use crate::domain::capacity::HostLimit;

/// Why a domain Postfix Admin does not list takes no mailbox (`{domain}`
/// is its name).
pub(super) const UNLISTED: &str =
    "the domain {domain} is not in Postfix Admin's domain table; add it there first";

/// A Postfix Admin domain's limits, and its mailboxes now.
pub(super) struct DomainLimits {
    pub active: bool,
    /// 0: no limit; -1: none allowed (as Postfix Admin reads it).
    pub mailboxes: i64,
    /// Mailboxes in the table when the transaction read them.
    pub has: i64,
    /// Rows this transaction added before the one being checked.
    pub adding: i64,
}

impl DomainLimits {
    /// The limit as a preview counts it; None when there is none.
    pub fn host_limit(&self, domain: &str) -> Option<HostLimit> {
        if !self.active || self.mailboxes < 0 {
            return self.refusal(domain).map(HostLimit::Closed);
        }
        (self.mailboxes > 0).then(|| HostLimit::Mailboxes {
            allowed: self.mailboxes as u64,
            set_in: "Postfix Admin".into(),
        })
    }

    /// Why the domain takes no more mailboxes, in words; None when it does.
    pub fn refusal(&self, domain: &str) -> Option<String> {
        if !self.active {
            // Postfix's domain map skips inactive domains: no mail would
            // reach the mailbox.
            return Some(format!(
                "the domain {domain} is inactive in Postfix Admin, so Postfix would not deliver to it; activate it there first"
            ));
        }
        if self.mailboxes < 0 {
            return Some(format!(
                "Postfix Admin allows no mailboxes in {domain}; change the domain's mailbox limit there"
            ));
        }
        if self.mailboxes > 0 && self.has + self.adding >= self.mailboxes {
            let earlier = match self.adding {
                0 => String::new(),
                1 => " (and 1 more earlier in this request)".to_string(),
                n => format!(" (and {n} more earlier in this request)"),
            };
            return Some(format!(
                "{domain} has {} mailboxes{earlier} and Postfix Admin allows it {}; raise the limit there or remove a mailbox",
                self.has, self.mailboxes
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::DomainLimits;

    fn limits(active: bool, mailboxes: i64, has: i64) -> DomainLimits {
        DomainLimits {
            active,
            mailboxes,
            has,
            adding: 0,
        }
    }

    #[test]
    fn postfix_admin_limits_refuse_in_words() {
        let d = "team.example";
        assert_eq!(limits(true, 0, 500).refusal(d), None, "0 is no limit");
        assert_eq!(limits(true, 3, 2).refusal(d), None);
        let said = |l: DomainLimits| l.refusal(d).unwrap();
        assert!(said(limits(false, 0, 0)).contains("inactive in Postfix Admin"));
        assert!(said(limits(true, -1, 0)).contains("allows no mailboxes"));
        assert!(said(limits(true, 3, 3)).contains("has 3 mailboxes and Postfix Admin allows it 3"));
        assert!(said(limits(true, 1, 2)).contains("has 2 mailboxes and Postfix Admin allows it 1"));
        use crate::domain::capacity::HostLimit;
        assert_eq!(limits(true, 0, 0).host_limit(d), None);
        assert_eq!(
            limits(true, 5, 9).host_limit(d),
            Some(HostLimit::Mailboxes {
                allowed: 5,
                set_in: "Postfix Admin".into()
            }),
            "the preview counts the mailboxes itself"
        );
        assert!(
            matches!(limits(false, 5, 0).host_limit(d), Some(HostLimit::Closed(w)) if w.contains("inactive"))
        );
        assert!(
            matches!(limits(true, -1, 0).host_limit(d), Some(HostLimit::Closed(w)) if w.contains("allows no mailboxes"))
        );
        let batch = |adding| DomainLimits {
            adding,
            ..limits(true, 5, 3)
        };
        assert_eq!(batch(1).refusal(d), None);
        assert!(said(batch(2)).contains(
            "has 3 mailboxes (and 2 more earlier in this request) and Postfix Admin allows it 5"
        ));
    }
}
