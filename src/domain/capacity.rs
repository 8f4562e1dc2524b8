//! The mailbox cap per domain (R5) and the storage pool (R6): what is used
//! and what is left. The previews, the capacity views of every surface and
//! the redemption's re-check (R7) all ask this type.

use serde::Serialize;

use super::address::DomainName;

/// What the store and the mail host know about one domain and the pool,
/// gathered by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capacity {
    pub domain: DomainName,
    pub cap: u64,
    /// Mailboxes on the host in this domain (made by Muster or not).
    pub existing: u64,
    /// Invites for this domain holding a place (see
    /// [`super::invite::LinkState::holds_place`]) and not expired.
    pub pending: u64,
    pub pool_mb: u64,
    /// Dedicated allocations of existing mailboxes (all domains).
    pub pool_allocated_mb: u64,
    /// A limit the mail host keeps on the domain itself, when it keeps one.
    pub host_limit: Option<HostLimit>,
}

/// A mail host's own limit on a domain's mailboxes (Postfix Admin's), which
/// a new mailbox must fit as well as the cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HostLimit {
    /// At most `allowed` mailboxes; `set_in` says where to change it.
    Mailboxes { allowed: u64, set_in: String },
    /// No new mailbox at all, and why (in words, with what to do).
    Closed(String),
}

impl HostLimit {
    /// The mailboxes the host allows in the domain.
    pub fn allowed(&self) -> u64 {
        match self {
            HostLimit::Mailboxes { allowed, .. } => *allowed,
            HostLimit::Closed(_) => 0,
        }
    }
}

impl Capacity {
    /// The pool's allocated part: the quotas on the host, less the default
    /// quotas Muster wrote for shared-pool mailboxes (they are quotas to
    /// the host, but no dedicated allocation, R6).
    pub fn allocated_mb(host_quotas_mb: u64, shared_default_quotas_mb: u64) -> u64 {
        host_quotas_mb.saturating_sub(shared_default_quotas_mb)
    }

    /// Places left under the cap, and under the host's own limit when it
    /// keeps one; negative when over.
    pub fn left(&self) -> i64 {
        let used = self.existing as i64 + self.pending as i64;
        let under_cap = self.cap as i64 - used;
        match &self.host_limit {
            Some(limit) => under_cap.min(limit.allowed() as i64 - used),
            None => under_cap,
        }
    }

    /// Why no place is left: the cap, or the mail host's own limit when
    /// that is the one reached.
    pub fn over_words(&self, taken_above: u64) -> String {
        let (limit, what, fix) = match &self.host_limit {
            Some(HostLimit::Closed(why)) => return why.clone(),
            Some(HostLimit::Mailboxes { allowed, set_in }) if self.host_limit_binds() => (
                *allowed,
                format!("the {allowed} mailboxes {set_in} allows {}", self.domain),
                "raise the limit there".to_string(),
            ),
            _ => (
                self.cap,
                format!("the cap of {} mailboxes for {}", self.cap, self.domain),
                format!("raise mailbox_cap for {} in muster.toml", self.domain),
            ),
        };
        let pending = match self.pending {
            1 => "1 invite is pending".to_string(),
            n => format!("{n} invites are pending"),
        };
        let above = match taken_above {
            0 => String::new(),
            n => {
                let rest = limit.saturating_sub(self.existing + self.pending);
                if n >= rest {
                    format!(" and the rows above take the other {rest}")
                } else {
                    format!(" and the rows above take {n}")
                }
            }
        };
        let (existing, pending) = (self.existing, pending);
        let exist = if existing == 1 { "exists" } else { "exist" };
        let rows_fix = if taken_above > 0 {
            ", or leave rows out"
        } else {
            ""
        };
        format!("past {what}: {existing} {exist}, {pending}{above}; {fix}{rows_fix}")
    }

    /// Whether the host's limit, not the cap, is the one reached first.
    pub fn host_limit_binds(&self) -> bool {
        self.host_limit
            .as_ref()
            .is_some_and(|l| l.allowed() < self.cap)
    }

    /// MB of the pool not yet allocated; negative when over.
    pub fn pool_available_mb(&self) -> i64 {
        self.pool_mb as i64 - self.pool_allocated_mb as i64
    }

    /// Whether a dedicated allocation of `mb` still fits the pool.
    pub fn fits(&self, mb: u64) -> bool {
        self.pool_allocated_mb.saturating_add(mb) <= self.pool_mb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_left() {
        let c = Capacity {
            domain: DomainName::parse("team.example").unwrap(),
            cap: 10,
            existing: 7,
            pending: 4,
            pool_mb: 1000,
            pool_allocated_mb: Capacity::allocated_mb(700, 100),
            host_limit: None,
        };
        assert_eq!(c.left(), -1);
        assert_eq!(c.pool_available_mb(), 400);
        assert!(c.fits(400));
        assert!(!c.fits(401));
        assert_eq!(Capacity::allocated_mb(50, 100), 0);
        let limited = |limit| Capacity {
            cap: 100,
            host_limit: Some(limit),
            ..c.clone()
        };
        let pfa = |allowed| HostLimit::Mailboxes {
            allowed,
            set_in: "Postfix Admin".into(),
        };
        assert_eq!(limited(pfa(20)).left(), 9);
        assert!(limited(pfa(20)).host_limit_binds());
        assert_eq!(limited(pfa(500)).left(), 89, "the cap is lower");
        assert!(!limited(pfa(500)).host_limit_binds());
        assert_eq!(limited(HostLimit::Closed("inactive".into())).left(), -11);
    }
}
