//! The proof a recipient page's form carries that Muster served it, for
//! this link, recently.
//!
//! The setup-link pages send no referrer, so the token in their URL never
//! leaves in a `Referer`; under that policy browsers post their forms with
//! `Origin: null`, which cannot tell Muster's own page from another site.
//! The page therefore carries this proof in a hidden field:
//! `HMAC(link key, "form-proof", link token hash, issued, nonce)`. Only a
//! page fetched with the link's token can hold a valid one; each is taken
//! once (the caller remembers used nonces until they expire).

use time::{Duration, OffsetDateTime};

use super::seal::{self, NONCE_BYTES};
use super::token::{LinkKey, TokenHash};

/// How long a served form stays good: a recipient may leave the page open
/// for a while before typing a password.
pub const FORM_PROOF_LIFETIME: Duration = Duration::hours(24);
/// Clock skew tolerated for a proof issued "in the future" (several servers).
const SKEW: Duration = Duration::minutes(5);

/// The single-use part of a proof: remember it until `expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProofNonce(pub [u8; NONCE_BYTES]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the form carries no proof that it came from this page")]
    Missing,
    #[error("the form's proof is not one Muster made for this link")]
    Foreign,
    #[error("the form was served too long ago")]
    Expired,
}

/// A checked proof.
#[derive(Debug, Clone, Copy)]
pub struct ValidProof {
    pub nonce: ProofNonce,
    pub expires: OffsetDateTime,
}

const LABEL: &[u8] = b"form-proof";

/// A fresh proof for a page served now for `link`.
pub fn issue(
    key: &LinkKey,
    link: &TokenHash,
    now: OffsetDateTime,
    nonce: [u8; NONCE_BYTES],
) -> String {
    seal::seal(key, LABEL, &link.0, now, nonce)
}

/// Checks a proof posted for `link` at `now`. Replays are the caller's to
/// refuse, by the nonce.
pub fn verify(
    key: &LinkKey,
    link: &TokenHash,
    posted: &str,
    now: OffsetDateTime,
) -> Result<ValidProof, ProofError> {
    if posted.is_empty() {
        return Err(ProofError::Missing);
    }
    let (issued, nonce) = seal::unseal(key, LABEL, &link.0, posted).ok_or(ProofError::Foreign)?;
    let expires = issued + FORM_PROOF_LIFETIME;
    if issued > now + SKEW || now >= expires {
        return Err(ProofError::Expired);
    }
    Ok(ValidProof {
        nonce: ProofNonce(nonce),
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::token::{LinkToken, TokenPurpose};
    use time::macros::datetime;

    fn key() -> LinkKey {
        LinkKey::from_bytes([9; 32])
    }

    fn link(id: &str) -> TokenHash {
        LinkToken::derive(&key(), TokenPurpose::Invite, id, 0).hash()
    }

    #[test]
    fn a_proof_holds_for_its_link_within_its_life() {
        let now = datetime!(2026-12-01 10:00 UTC);
        let proof = issue(&key(), &link("a"), now, [1; 16]);
        let ok = verify(&key(), &link("a"), &proof, now + Duration::hours(23)).unwrap();
        assert_eq!(ok.nonce, ProofNonce([1; 16]));
        assert_eq!(ok.expires, now + FORM_PROOF_LIFETIME);
        assert_eq!(
            verify(&key(), &link("a"), &proof, now + Duration::hours(24)).unwrap_err(),
            ProofError::Expired
        );
        assert_eq!(
            verify(&key(), &link("a"), &proof, now - Duration::hours(1)).unwrap_err(),
            ProofError::Expired
        );
    }

    #[test]
    fn another_links_or_a_forged_proof_is_foreign() {
        let now = datetime!(2026-12-01 10:00 UTC);
        let proof = issue(&key(), &link("a"), now, [1; 16]);
        assert_eq!(
            verify(&key(), &link("b"), &proof, now).unwrap_err(),
            ProofError::Foreign
        );
        let other_key = LinkKey::from_bytes([8; 32]);
        assert_eq!(
            verify(&other_key, &link("a"), &proof, now).unwrap_err(),
            ProofError::Foreign
        );
        for bad in [
            "x",
            "!!!!",
            &proof[..proof.len() - 1],
            &format!("{proof}AA"),
        ] {
            assert_eq!(
                verify(&key(), &link("a"), bad, now).unwrap_err(),
                ProofError::Foreign,
                "{bad}"
            );
        }
        assert_eq!(
            verify(&key(), &link("a"), "", now).unwrap_err(),
            ProofError::Missing
        );
    }
}
