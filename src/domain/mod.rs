//! Pure rules: no I/O, and the current time is always a parameter.

pub mod address;
pub mod capacity;
pub mod client_setup;
pub mod deliverability;
pub mod delivery;
pub mod duration;
pub mod form_proof;
pub mod invite;
pub mod known_device;
pub mod mta_sts;
pub mod password;
pub mod preview;
pub mod reminders;
pub mod reserved;
pub mod roster;
pub mod route;
pub mod seal;
pub mod table;
pub mod template;
pub mod token;
pub mod webhook;

/// A time as RFC 3339 (`2026-12-06T08:00:00Z`), as the API, webhooks and
/// CSV exports write it.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
