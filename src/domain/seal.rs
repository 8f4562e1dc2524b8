//! A value Muster signs for a browser to hand back: when it was made and a
//! nonce, with `HMAC(link key, label, subject, issued, nonce)`, in URL-safe
//! base64. Used by setup-form proofs and known-device marks; each names
//! its own label, so one never passes for the other.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::token::LinkKey;

pub const NONCE_BYTES: usize = 16;
const RAW_BYTES: usize = 8 + NONCE_BYTES + 32;

fn mac(
    key: &LinkKey,
    label: &[u8],
    subject: &[u8],
    issued: i64,
    nonce: &[u8; NONCE_BYTES],
) -> [u8; 32] {
    key.mac(&[label, subject, &issued.to_be_bytes(), nonce])
}

/// Seals `issued` and `nonce` for `label` and `subject`.
pub fn seal(
    key: &LinkKey,
    label: &[u8],
    subject: &[u8],
    issued: OffsetDateTime,
    nonce: [u8; NONCE_BYTES],
) -> String {
    let issued = issued.unix_timestamp();
    let mut raw = Vec::with_capacity(RAW_BYTES);
    raw.extend_from_slice(&issued.to_be_bytes());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&mac(key, label, subject, issued, &nonce));
    URL_SAFE_NO_PAD.encode(raw)
}

/// When a value sealed with this key for `label` and `subject` was made,
/// and its nonce; None for anything else (compared in constant time).
pub fn unseal(
    key: &LinkKey,
    label: &[u8],
    subject: &[u8],
    sealed: &str,
) -> Option<(OffsetDateTime, [u8; NONCE_BYTES])> {
    let raw = URL_SAFE_NO_PAD
        .decode(sealed.trim())
        .ok()
        .filter(|r| r.len() == RAW_BYTES)?;
    let issued = i64::from_be_bytes(raw[..8].try_into().ok()?);
    let nonce: [u8; NONCE_BYTES] = raw[8..8 + NONCE_BYTES].try_into().ok()?;
    let expected = mac(key, label, subject, issued, &nonce);
    if !bool::from(expected.ct_eq(&raw[8 + NONCE_BYTES..])) {
        return None;
    }
    Some((OffsetDateTime::from_unix_timestamp(issued).ok()?, nonce))
}
