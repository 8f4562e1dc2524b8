//! The audit trail's share for what people without an account cause:
//! failed sign-ins at unknown accounts and password-reset requests that
//! send nothing (a failed sign-in at a real account is always written). Each is
//! worth a line, but a flood from many addresses would grow the store
//! without end (measured: about 4 MB a minute from 250 addresses). Past
//! [`PER_MINUTE`] in a minute they are counted instead, and the count is
//! written as one line with the next one written.

use std::sync::Mutex;

use time::OffsetDateTime;

use super::Muster;
use crate::store::{Actor, StoreError, WriteView};

/// Lines a minute written one by one.
pub const PER_MINUTE: u32 = 30;

#[derive(Default)]
pub(super) struct OutsiderAudit(Mutex<Window>);

#[derive(Default)]
struct Window {
    minute: i64,
    written: u32,
    /// Not written one by one, in this and earlier minutes, not yet said.
    counted: u64,
}

/// Whether to write this line, and how many earlier ones to say were only
/// counted.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Share {
    pub write: bool,
    pub counted_before: u64,
}

impl Share {
    /// Written whatever the minute's share.
    pub(super) fn always() -> Self {
        Share {
            write: true,
            counted_before: 0,
        }
    }
}

impl OutsiderAudit {
    pub(super) fn share(&self, now: OffsetDateTime) -> Share {
        let mut w = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let minute = now.unix_timestamp().div_euclid(60);
        if minute != w.minute {
            w.minute = minute;
            w.written = 0;
        }
        if w.written >= PER_MINUTE {
            w.counted += 1;
            return Share {
                write: false,
                counted_before: 0,
            };
        }
        w.written += 1;
        Share {
            write: true,
            counted_before: std::mem::take(&mut w.counted),
        }
    }
}

impl Muster {
    /// Writes an outsider's audit line within its share (see the module).
    pub(super) fn audit_outsider(
        &self,
        w: &WriteView,
        share: &Share,
        actor: &Actor,
        action: &str,
        subject: &str,
        detail: impl Into<String>,
    ) -> Result<(), StoreError> {
        if share.counted_before > 0 {
            self.audit(
                w,
                &Actor::system(),
                "audit.outsiders_counted",
                "",
                format!(
                    "{} more failed sign-ins or reset requests were counted, not written one by one (over {PER_MINUTE} a minute)",
                    share.counted_before
                ),
            )?;
        }
        if share.write {
            self.audit(w, actor, action, subject, detail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn past_the_share_lines_are_counted_and_said_with_the_next_written() {
        let a = OutsiderAudit::default();
        let t0 = datetime!(2026-12-07 10:00:00 UTC);
        for _ in 0..PER_MINUTE {
            assert!(a.share(t0).write);
        }
        for _ in 0..5 {
            assert_eq!(
                a.share(t0 + time::Duration::seconds(30)),
                Share {
                    write: false,
                    counted_before: 0
                }
            );
        }
        let next = a.share(t0 + time::Duration::minutes(1));
        assert_eq!(
            next,
            Share {
                write: true,
                counted_before: 5
            }
        );
        assert_eq!(a.share(t0 + time::Duration::minutes(1)).counted_before, 0);
    }
}
