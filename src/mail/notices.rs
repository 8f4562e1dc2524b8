//! The words of what Muster tells admins: a notice about one invite (set
//! up, undeliverable, a new link asked for, a mailbox that could not be
//! made) and the daily digest. Each links to the pending list filtered to
//! what it names.

use time::OffsetDateTime;

use super::compose::plain_date;
use crate::domain::client_setup::query_value;
use crate::domain::invite::{Delivery, Invite};
use crate::service::notify::{DIGEST_LIST, Digest};
use crate::store::NoticeEvent;

/// A notice, ready for its template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeWords {
    pub headline: String,
    pub details: String,
    pub link: String,
    pub link_label: &'static str,
}

/// The pending list at `public_url`, filtered.
pub fn pending_list(public_url: &str, filters: &[(&str, &str)]) -> String {
    let query: Vec<String> = filters
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", query_value(v)))
        .collect();
    format!("{public_url}/invites?{}", query.join("&"))
}

fn who(i: &Invite) -> String {
    match &i.display_name {
        Some(name) => format!("{name} ({})", i.recipient_email),
        None => i.recipient_email.to_string(),
    }
}

/// The words of a notice about `i`; for a failure, `failed` holds every
/// undeliverable invite of its batch (the notice names them all).
pub fn notice_words(
    event: NoticeEvent,
    i: &Invite,
    failed: &[Invite],
    public_url: &str,
) -> NoticeWords {
    let mailbox = i.mailbox.to_string();
    let recipient = i.recipient_email.to_string();
    let list = |state: &str, q: &str| {
        pending_list(
            public_url,
            &[("batch", &i.batch_id), ("state", state), ("q", q)],
        )
    };
    match event {
        NoticeEvent::Redeemed => NoticeWords {
            headline: format!("{recipient} set up {mailbox}"),
            details: format!(
                "{} chose a password, and the mailbox {mailbox} was created on {}.",
                who(i),
                plain_date(i.redeemed_at.unwrap_or(i.created_at), "en")
            ),
            link: list("redeemed", &mailbox),
            link_label: "See it in the pending list",
        },
        NoticeEvent::Failed if failed.len() > 1 => NoticeWords {
            headline: format!("{} invites could not be delivered", failed.len()),
            details: format!(
                "These invites were refused for good. A wrong address: revoke the invite and invite the right one. Another reason (a full mailbox, a policy): the pending list can resend it once that is mended.\n{}",
                lines(failed, |f| format!(
                    "{} → {}: {}",
                    who(f),
                    f.mailbox,
                    refusal(f)
                ))
            ),
            link: pending_list(public_url, &[("batch", &i.batch_id), ("state", "failed")]),
            link_label: "Open the failed invites",
        },
        NoticeEvent::Failed => NoticeWords {
            headline: format!("The invite to {recipient} could not be delivered"),
            details: format!(
                "The invite for {mailbox} to {} was refused for good: {}. If the address is wrong, revoke this invite and invite the right address (a resend goes to the same one); otherwise the pending list can resend it once the reason is mended.",
                who(i),
                refusal(i)
            ),
            link: list("failed", &recipient),
            link_label: "Open the failed invite",
        },
        NoticeEvent::NewLinkRequested => NoticeWords {
            headline: format!("{recipient} asked for a new setup link"),
            details: format!(
                "The link for {mailbox} sent to {} expired on {}. Resend the invite from the pending list to send a fresh link.",
                who(i),
                plain_date(i.expires_at, "en")
            ),
            link: list("new_link_requested", &recipient),
            link_label: "Resend it from the pending list",
        },
        NoticeEvent::SetupFailed => NoticeWords {
            headline: format!("{recipient} could not set up {mailbox}"),
            details: format!(
                "{} chose a password, but {mailbox} was not made.\n\nWhy: {}.\n\nNothing was created, and their link works until {}: once this is put right, they can use it again.",
                who(i),
                i.last_error
                    .as_deref()
                    .unwrap_or("no reason given")
                    .trim_end_matches('.'),
                plain_date(i.expires_at, "en")
            ),
            link: list("setup_failed", &recipient),
            link_label: "Open it in the pending list",
        },
    }
}

/// What the relay said when it refused an invite for good.
fn refusal(i: &Invite) -> &str {
    match &i.delivery {
        Delivery::Failed { reply, .. } => reply,
        _ => "no reason given",
    }
}

/// One line per invite (at most [`DIGEST_LIST`]), and how many more.
fn lines(invites: &[Invite], line: impl Fn(&Invite) -> String) -> String {
    let mut out: Vec<String> = invites
        .iter()
        .take(DIGEST_LIST)
        .map(|i| format!("- {}", line(i)))
        .collect();
    if invites.len() > DIGEST_LIST {
        out.push(format!("… and {} more", invites.len() - DIGEST_LIST));
    }
    out.join("\n")
}

fn short_date(t: OffsetDateTime) -> String {
    format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute())
}

/// The digest's placeholder values, by name.
pub fn digest_values(
    d: &Digest,
    public_url: &str,
    until: OffsetDateTime,
) -> Vec<(&'static str, String)> {
    let count = |v: &[Invite]| v.len().to_string();
    // A section shows only when its list has something.
    let list = |v: &[Invite], line: &dyn Fn(&Invite) -> String| {
        if v.is_empty() {
            String::new()
        } else {
            lines(v, line)
        }
    };
    let arrow = |i: &Invite| format!("{} → {}", who(i), i.mailbox);
    vec![
        ("until", plain_date(until, "en")),
        ("redeemed_count", count(&d.redeemed)),
        (
            "redeemed_list",
            list(&d.redeemed, &|i| {
                format!(
                    "{}, {}",
                    arrow(i),
                    i.redeemed_at.map(short_date).unwrap_or_default()
                )
            }),
        ),
        ("pending_count", count(&d.pending)),
        (
            "pending_list",
            list(&d.pending, &|i| {
                format!("{}, until {}", arrow(i), short_date(i.expires_at))
            }),
        ),
        ("expiring_count", count(&d.expiring)),
        (
            "expiring_list",
            list(&d.expiring, &|i| {
                format!("{}, expires {}", arrow(i), short_date(i.expires_at))
            }),
        ),
        ("setup_failed_count", count(&d.setup_failed)),
        (
            "setup_failed_list",
            list(&d.setup_failed, &|i| {
                format!(
                    "{}: {}",
                    arrow(i),
                    i.last_error.as_deref().unwrap_or("no reason given")
                )
            }),
        ),
        ("failed_count", count(&d.failed)),
        (
            "failed_list",
            list(&d.failed, &|i| format!("{}: {}", arrow(i), refusal(i))),
        ),
        (
            "link_redeemed",
            pending_list(public_url, &[("state", "redeemed")]),
        ),
        (
            "link_pending",
            pending_list(public_url, &[("state", "pending")]),
        ),
        (
            "link_expiring",
            pending_list(public_url, &[("state", "expiring")]),
        ),
        (
            "link_failed",
            pending_list(public_url, &[("state", "failed")]),
        ),
        (
            "link_setup_failed",
            pending_list(public_url, &[("state", "setup_failed")]),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_filtered_and_escaped() {
        assert_eq!(
            pending_list(
                "https://m.example",
                &[("batch", "B1"), ("state", "redeemed"), ("q", "a b&c@x.org")]
            ),
            "https://m.example/invites?batch=B1&state=redeemed&q=a%20b%26c@x.org"
        );
        assert_eq!(
            pending_list("https://m.example", &[("batch", ""), ("state", "failed")]),
            "https://m.example/invites?state=failed"
        );
    }
}
