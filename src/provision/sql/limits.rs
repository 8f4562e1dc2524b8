//! Postfix Admin's per-domain limits, checked before a mailbox is added.

/// A Postfix Admin domain's limits, and its mailboxes now. Postfix Admin
/// reads 0 as no limit and -1 as none allowed.
pub(super) struct DomainLimits {
    pub active: bool,
    pub mailboxes: i64,
    pub max_quota_mb: i64,
    pub has: i64,
}

impl DomainLimits {
    /// Why Postfix Admin's limits leave no room for one more mailbox with
    /// this quota, in words; None when they do.
    pub fn refusal(&self, domain: &str, quota_mb: Option<u64>) -> Option<String> {
        if !self.active {
            return Some(format!(
                "the domain {domain} is inactive in Postfix Admin; activate it there first"
            ));
        }
        if self.mailboxes < 0 {
            return Some(format!(
                "Postfix Admin allows no mailboxes in {domain}; change the domain's mailbox limit there"
            ));
        }
        if self.mailboxes > 0 && self.has >= self.mailboxes {
            return Some(format!(
                "{domain} has {} mailboxes, Postfix Admin's limit for it; raise the limit there or remove a mailbox",
                self.has
            ));
        }
        let over = match (self.max_quota_mb, quota_mb) {
            (0, _) => false,
            (max, _) if max < 0 => false,
            (_, None) => true,
            (max, Some(mb)) => mb > max as u64,
        };
        if over {
            let quota = quota_mb.map_or("no quota".to_string(), |mb| format!("{mb} MB"));
            return Some(format!(
                "the mailbox's quota ({quota}) is above Postfix Admin's largest for {domain} ({} MB); give it a smaller allocation, set mail_host.default_quota_mb, or raise the domain's limit there",
                self.max_quota_mb
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::DomainLimits;

    fn limits(active: bool, mailboxes: i64, max_quota_mb: i64, has: i64) -> DomainLimits {
        DomainLimits {
            active,
            mailboxes,
            max_quota_mb,
            has,
        }
    }

    #[test]
    fn postfix_admin_limits_refuse_in_words() {
        let d = "team.example";
        assert_eq!(
            limits(true, 0, 0, 500).refusal(d, None),
            None,
            "0 is no limit"
        );
        assert_eq!(limits(true, 3, 100, 2).refusal(d, Some(100)), None);
        assert_eq!(limits(true, 0, -1, 0).refusal(d, None), None);
        let said = |l: DomainLimits, q| l.refusal(d, q).unwrap();
        assert!(said(limits(false, 0, 0, 0), None).contains("inactive in Postfix Admin"));
        assert!(said(limits(true, -1, 0, 0), None).contains("allows no mailboxes"));
        assert!(said(limits(true, 3, 0, 3), None).contains("has 3 mailboxes"));
        let over = said(limits(true, 0, 100, 0), Some(300));
        assert!(
            over.contains("(300 MB)") && over.contains("(100 MB)"),
            "{over}"
        );
        assert!(said(limits(true, 0, 100, 0), None).contains("(no quota)"));
    }
}
