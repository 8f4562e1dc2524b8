//! Delivery rules: what an attempt to hand an email over came to, and what
//! happens next: sent, tried again later (a 4xx reply or a lost connection,
//! doubling delays with jitter until the give-up age), or failed for good
//! (a 5xx reply). Pure: the time and the jitter are parameters.

use std::fmt;

use time::{Duration, OffsetDateTime};

/// An SMTP reply as the relay gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The enhanced status code (RFC 3463), e.g. `[5, 1, 1]`.
    pub enhanced: Option<[u8; 3]>,
    pub text: String,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some([a, b, c]) = self.enhanced {
            write!(f, " {a}.{b}.{c}")?;
        }
        write!(f, " {}", self.text.trim())
    }
}

impl Reply {
    /// What a refusal means, in words an admin can act on, from the
    /// enhanced status code (RFC 3463) or, without one, the reply's words.
    pub fn meaning(&self) -> Option<&'static str> {
        const UNKNOWN: &str = "unknown recipient: the destination has no mailbox by this address (check it for a typo)";
        const FULL: &str = "mailbox full: the recipient's mailbox has no room";
        const DISABLED: &str = "mailbox disabled: the destination does not take mail for it now";
        const POLICY: &str = "refused by policy: the destination does not take mail from this sender (reputation, SPF, DKIM or DMARC; see the deliverability check)";
        const NO_MAIL: &str = "the destination domain takes no email";
        const GREYLISTED: &str =
            "greylisted: the destination asks for a later try, which happens by itself";
        const HELD: &str = "held back by policy: the destination defers mail from this sender for now (too much at once, its reputation, or SPF, DKIM or DMARC; see the deliverability check); it is tried again by itself";
        if self.code < 400 {
            return None;
        }
        let text = self.text.to_ascii_lowercase();
        let says = |words: &[&str]| words.iter().any(|w| text.contains(w));
        if self.code < 500 {
            return says(&["greylist", "graylist", "try again later", "please retry"])
                .then_some(GREYLISTED)
                .or(match self.enhanced {
                    Some([4, 2, 2]) => Some(FULL),
                    Some([4, 7, _]) => Some(HELD),
                    _ => None,
                });
        }
        match self.enhanced {
            Some([5, 1, 1]) | Some([5, 1, 0]) | Some([5, 1, 6]) => return Some(UNKNOWN),
            Some([5, 1, 10]) => return Some(NO_MAIL),
            Some([5, 2, 2]) => return Some(FULL),
            Some([5, 2, 1]) => return Some(DISABLED),
            Some([5, 7, _]) => return Some(POLICY),
            _ => {}
        }
        if self.code == 552 || says(&["quota", "mailbox full", "mailbox is full", "over quota"]) {
            Some(FULL)
        } else if says(&[
            "user unknown",
            "unknown user",
            "no such user",
            "unknown recipient",
            "recipient unknown",
            "invalid recipient",
            "does not exist",
            "not found",
            "no mailbox",
        ]) {
            Some(UNKNOWN)
        } else if says(&[
            "spam",
            "blocked",
            "policy",
            "blacklist",
            "blocklist",
            "reputation",
            "spf",
            "dkim",
            "dmarc",
            "denied",
        ]) || self.code == 554
        {
            Some(POLICY)
        } else {
            None
        }
    }
}

/// Trouble with no reply to go by: always worth another try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// The relay could not be reached, or TLS or AUTH failed on the way.
    Connect(String),
    /// The relay did not answer, or stopped taking data, in time.
    Timeout(&'static str),
    /// The connection broke, or the relay answered out of turn.
    Connection(String),
    /// A file could not be written (the outbox).
    Write(String),
}

impl fmt::Display for Trouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trouble::Connect(m) | Trouble::Connection(m) | Trouble::Write(m) => f.write_str(m),
            Trouble::Timeout(m) => f.write_str(m),
        }
    }
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken: the relay's reply.
    Accepted(String),
    /// Written to the outbox (no relay): where the file went.
    Written(String),
    /// The relay answered with a refusal: 4xx temporary, 5xx permanent.
    Refused(Reply),
    /// No verdict: try again.
    Trouble(Trouble),
    /// It cannot be sent at all (the email could not be made, the invite
    /// is gone): do not try again.
    Unsendable(String),
    /// No longer wanted when its turn came (a reminder for a link used,
    /// revoked or replaced since): nothing was sent, nothing is owed.
    Skipped(String),
}

impl Outcome {
    /// A relay's reply, as the message's verdict.
    pub fn of_reply(reply: Reply) -> Self {
        match reply.code {
            200..=399 => Outcome::Accepted(reply.to_string()),
            _ => Outcome::Refused(reply),
        }
    }

    /// Never worth trying again: a 5xx refusal, or nothing to send.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Outcome::Unsendable(_))
            || matches!(self, Outcome::Refused(r) if r.code >= 500)
    }

    pub fn is_temporary(&self) -> bool {
        match self {
            Outcome::Refused(r) => r.code < 500,
            Outcome::Trouble(_) => true,
            Outcome::Accepted(_)
            | Outcome::Written(_)
            | Outcome::Unsendable(_)
            | Outcome::Skipped(_) => false,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Accepted(m) | Outcome::Unsendable(m) | Outcome::Skipped(m) => f.write_str(m),
            Outcome::Written(file) => write!(f, "written to {file}"),
            Outcome::Refused(r) => match r.meaning() {
                Some(words) => write!(f, "{words} ({r})"),
                None => r.fmt(f),
            },
            Outcome::Trouble(t) => t.fmt(f),
        }
    }
}

/// When to try again and when to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// From when the message was queued.
    pub give_up_after: Duration,
}

impl RetryPolicy {
    /// The delay before retry `attempt` (1-based): doubling from the initial
    /// delay up to the maximum, times `jitter` (0.75 to 1.25 spreads the
    /// retries out).
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let doubled = self
            .initial
            .saturating_mul(1i32 << attempt.saturating_sub(1).min(20));
        doubled.min(self.max) * jitter.clamp(0.5, 1.5)
    }
}

/// What to record for a finished attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Sent {
        reply: String,
    },
    /// In the outbox folder; nothing more to do.
    Written {
        file: String,
    },
    /// Keep the task, due at `at`.
    Retry {
        at: OffsetDateTime,
        error: String,
    },
    Failed {
        reply: String,
    },
    /// Not sent, and not owed any more.
    Skipped {
        reason: String,
    },
}

/// Decides what follows `outcome`, the `attempts`th attempt (1-based) of a
/// message queued at `queued_at`. A withdrawn invite is not tried again.
pub fn next(
    outcome: &Outcome,
    attempts: u32,
    queued_at: OffsetDateTime,
    now: OffsetDateTime,
    jitter: f64,
    policy: &RetryPolicy,
    withdrawn: bool,
) -> Next {
    let too_old = now - queued_at >= policy.give_up_after;
    match outcome {
        Outcome::Accepted(reply) => Next::Sent {
            reply: reply.clone(),
        },
        Outcome::Written(file) => Next::Written { file: file.clone() },
        Outcome::Skipped(reason) => Next::Skipped {
            reason: reason.clone(),
        },
        o if o.is_temporary() && !too_old && !withdrawn => Next::Retry {
            at: now + policy.backoff(attempts, jitter),
            error: o.to_string(),
        },
        o if o.is_temporary() && too_old => Next::Failed {
            reply: format!(
                "gave up after {} of temporary failures: {o}",
                super::duration::HumanDuration::from_secs(
                    policy.give_up_after.whole_seconds().max(0) as u64
                )
            ),
        },
        o => Next::Failed {
            reply: o.to_string(),
        },
    }
}

/// How long after a mailbox is created its own mail server may still not
/// know it: a Postfix map is reloaded and read again by new processes only
/// (seconds, measured at about 2).
pub const NEW_MAILBOX_GRACE: Duration = Duration::minutes(10);

/// For mail to a mailbox just created: "unknown recipient" (5.1.1, or a
/// bare 550) within [`NEW_MAILBOX_GRACE`] is the mail server catching up,
/// so it is tried again instead of given up.
pub fn for_new_mailbox(
    next: Next,
    outcome: &Outcome,
    attempts: u32,
    queued_at: OffsetDateTime,
    now: OffsetDateTime,
    jitter: f64,
    policy: &RetryPolicy,
) -> Next {
    let unknown = match outcome {
        Outcome::Refused(r) => match r.enhanced {
            Some(e) => e == [5, 1, 1],
            None => r.code == 550,
        },
        _ => false,
    };
    if unknown && matches!(next, Next::Failed { .. }) && now - queued_at < NEW_MAILBOX_GRACE {
        return Next::Retry {
            at: now + policy.backoff(attempts, jitter),
            error: format!("{outcome} (a mailbox just created; trying again)"),
        };
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::seconds(60),
            max: Duration::hours(1),
            give_up_after: Duration::hours(24),
        }
    }

    fn reply(code: u16) -> Reply {
        Reply {
            code,
            enhanced: Some([(code / 100) as u8, 1, 1]),
            text: "no".into(),
        }
    }

    #[test]
    fn a_new_mailbox_unknown_at_first_is_tried_again_for_a_while() {
        let p = policy();
        let unknown = Outcome::Refused(reply(550));
        let soon = T0 + Duration::seconds(3);
        let failed = next(&unknown, 1, T0, soon, 1.0, &p, false);
        assert!(matches!(
            for_new_mailbox(failed.clone(), &unknown, 1, T0, soon, 1.0, &p),
            Next::Retry { .. }
        ));
        let late = T0 + NEW_MAILBOX_GRACE;
        let failed_late = next(&unknown, 9, T0, late, 1.0, &p, false);
        assert_eq!(
            for_new_mailbox(failed_late.clone(), &unknown, 9, T0, late, 1.0, &p),
            failed_late
        );
        // Another refusal is final at once.
        let policy_refusal = Outcome::Refused(Reply {
            code: 554,
            enhanced: Some([5, 7, 1]),
            text: "no".into(),
        });
        let n = next(&policy_refusal, 1, T0, soon, 1.0, &p, false);
        assert_eq!(
            for_new_mailbox(n.clone(), &policy_refusal, 1, T0, soon, 1.0, &p),
            n
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter() {
        let p = policy();
        assert_eq!(p.backoff(1, 1.0), Duration::seconds(60));
        assert_eq!(p.backoff(2, 1.0), Duration::seconds(120));
        assert_eq!(p.backoff(4, 1.0), Duration::seconds(480));
        assert_eq!(p.backoff(30, 1.0), Duration::hours(1));
        assert_eq!(p.backoff(1, 0.75), Duration::seconds(45));
    }

    #[test]
    fn each_outcome_leads_where_it_should() {
        let p = policy();
        let now = T0 + Duration::minutes(5);
        assert_eq!(
            next(
                &Outcome::Accepted("250 ok".into()),
                1,
                T0,
                now,
                1.0,
                &p,
                false
            ),
            Next::Sent {
                reply: "250 ok".into()
            }
        );
        assert_eq!(
            next(&Outcome::Refused(reply(451)), 2, T0, now, 1.0, &p, false),
            Next::Retry {
                at: now + Duration::seconds(120),
                error: "451 4.1.1 no".into()
            }
        );
        assert_eq!(
            next(&Outcome::Refused(reply(550)), 1, T0, now, 1.0, &p, false),
            Next::Failed {
                reply: "unknown recipient: the destination has no mailbox by this address (check it for a typo) (550 5.1.1 no)".into()
            }
        );
        let lost = Outcome::Trouble(Trouble::Timeout("the relay did not answer in time"));
        assert!(matches!(
            next(&lost, 1, T0, now, 1.0, &p, false),
            Next::Retry { .. }
        ));
        // Withdrawn meanwhile: no more tries.
        assert!(matches!(
            next(&lost, 1, T0, now, 1.0, &p, true),
            Next::Failed { .. }
        ));
        // Past the give-up age: failed, saying why.
        let Next::Failed { reply } = next(&lost, 9, T0, T0 + Duration::hours(25), 1.0, &p, false)
        else {
            panic!("not failed")
        };
        assert!(
            reply.starts_with("gave up after 1d of temporary failures"),
            "{reply}"
        );
        assert!(matches!(
            next(
                &Outcome::Unsendable("gone".into()),
                1,
                T0,
                now,
                1.0,
                &p,
                false
            ),
            Next::Failed { .. }
        ));
    }

    #[test]
    fn refusals_are_said_in_words() {
        let r = |code, enhanced, text: &str| Reply {
            code,
            enhanced,
            text: text.into(),
        };
        let words = |reply: Reply| Outcome::Refused(reply).to_string();
        assert!(
            words(r(550, Some([5, 1, 1]), "no such user here")).starts_with("unknown recipient: ")
        );
        assert!(
            words(r(550, None, "User unknown in virtual mailbox table"))
                .starts_with("unknown recipient")
        );
        assert!(words(r(552, Some([5, 2, 2]), "over quota")).starts_with("mailbox full"));
        assert!(
            words(r(
                554,
                Some([5, 7, 1]),
                "Service unavailable; client host blocked"
            ))
            .starts_with("refused by policy")
        );
        assert!(
            words(r(
                450,
                Some([4, 7, 1]),
                "Recipient address rejected: Greylisted"
            ))
            .starts_with("greylisted")
        );
        // Gmail's rate and authentication deferrals are no greylisting.
        assert!(
            words(r(
                421,
                Some([4, 7, 28]),
                "Our system has detected an unusual rate of unsolicited mail"
            ))
            .starts_with("held back by policy")
        );
        assert!(
            words(r(556, Some([5, 1, 10]), "null MX"))
                .starts_with("the destination domain takes no email")
        );
        // The reply stays whole behind the words.
        assert!(
            words(r(550, Some([5, 1, 1]), "no such user here"))
                .ends_with("(550 5.1.1 no such user here)")
        );
        // Nothing guessed for a reply that says nothing known.
        assert_eq!(
            words(r(451, Some([4, 3, 0]), "local error")),
            "451 4.3.0 local error"
        );
    }
}
