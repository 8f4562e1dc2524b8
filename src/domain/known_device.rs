//! The mark a browser keeps once an admin has signed in on it.
//!
//! Sign-in attempts are limited per account as well as per client address,
//! so that many addresses cannot guess one password together. Without more,
//! anyone could use up an admin's allowance with wrong passwords and keep
//! the admin out. A browser that signed in to the account before shows its
//! mark and gets an allowance of its own, and its attempts are hashed ahead
//! of strangers' when the server is busy: the admin's own browser keeps
//! working while the account is under attack.
//!
//! The mark is sealed (see [`super::seal`]) for the account's email: nothing
//! is stored, it names one account, and it lasts [`KNOWN_DEVICE_LIFETIME`]
//! from its last sign-in.
//! It grants no access: the password is still checked.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::{Duration, OffsetDateTime};

use super::seal::{self, NONCE_BYTES};
use super::token::LinkKey;

/// Renewed at each sign-in on the browser.
pub const KNOWN_DEVICE_LIFETIME: Duration = Duration::days(90);

/// A browser that signed in to the account before: `id` tells it from the
/// account's other browsers (its attempts are counted apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownDevice {
    pub id: String,
}

const LABEL: &[u8] = b"known-device";

/// A fresh mark for a browser that has just signed in as `email` (trimmed
/// and in lower case, as the caller passes it).
pub fn issue(key: &LinkKey, email: &str, now: OffsetDateTime, nonce: [u8; NONCE_BYTES]) -> String {
    seal::seal(key, LABEL, email.as_bytes(), now, nonce)
}

/// The browser behind `mark`, when Muster made the mark for `email` and it
/// is still current at `now`.
pub fn recognise(
    key: &LinkKey,
    email: &str,
    mark: &str,
    now: OffsetDateTime,
) -> Option<KnownDevice> {
    let (issued, nonce) = seal::unseal(key, LABEL, email.as_bytes(), mark)?;
    // A mark from the future was not made by this clock: a minute of skew
    // between servers is allowed.
    if issued > now + Duration::minutes(1) || now >= issued + KNOWN_DEVICE_LIFETIME {
        return None;
    }
    Some(KnownDevice {
        id: URL_SAFE_NO_PAD.encode(nonce),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn key() -> LinkKey {
        LinkKey::from_bytes([7; 32])
    }

    #[test]
    fn a_mark_names_its_browser_for_its_account_within_its_life() {
        let now = datetime!(2026-12-07 10:00 UTC);
        let mark = issue(&key(), "admin@team.example", now, [3; 16]);
        let later = now + Duration::days(89);
        let known = recognise(&key(), "admin@team.example", &mark, later).unwrap();
        assert_eq!(
            Some(known.clone()),
            recognise(&key(), "admin@team.example", &mark, now)
        );
        let other = issue(&key(), "admin@team.example", now, [4; 16]);
        assert_ne!(
            recognise(&key(), "admin@team.example", &other, now).unwrap(),
            known,
            "each browser is counted apart"
        );
        assert_eq!(
            recognise(
                &key(),
                "admin@team.example",
                &mark,
                now + Duration::days(90)
            ),
            None
        );
        assert_eq!(
            recognise(
                &key(),
                "admin@team.example",
                &mark,
                now - Duration::hours(1)
            ),
            None
        );
    }

    #[test]
    fn another_accounts_a_forged_or_a_garbled_mark_is_no_one() {
        let now = datetime!(2026-12-07 10:00 UTC);
        let mark = issue(&key(), "admin@team.example", now, [3; 16]);
        assert_eq!(recognise(&key(), "other@team.example", &mark, now), None);
        assert_eq!(
            recognise(
                &LinkKey::from_bytes([8; 32]),
                "admin@team.example",
                &mark,
                now
            ),
            None
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&mark).unwrap();
        raw[0] ^= 1;
        let moved = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(recognise(&key(), "admin@team.example", &moved, now), None);
        for garbled in ["", "x", "!!!", &mark[..20], &format!("{mark}AA")] {
            assert_eq!(
                recognise(&key(), "admin@team.example", garbled, now),
                None,
                "{garbled}"
            );
        }
    }
}
