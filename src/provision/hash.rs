//! Password hashes in the schemes Dovecot reads, with the `{SCHEME}`
//! prefix Dovecot needs to pick the right verifier, and the argon2id
//! hashes of admin passwords.
//!
//! Argon2id needs 19 MiB per hash (m=19456). The memory is passed in
//! ([`Argon2Memory`]), so the bounded hashing pool decides how much exists
//! at once and when it is given back, instead of each hash allocating its own.

use argon2::password_hash::PasswordHasher as _;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use subtle::ConstantTimeEq;

use crate::config::HashScheme;

#[derive(Debug, thiserror::Error)]
#[error("the password could not be hashed: {0}")]
pub struct HashError(String);

/// Working memory for argon2id, reused from one hash to the next.
#[derive(Default)]
pub struct Argon2Memory(Vec<Block>);

impl Argon2Memory {
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let n = params.block_count();
        if self.0.len() < n {
            self.0 = vec![Block::default(); n];
        }
        &mut self.0[..n]
    }
}

/// The crate's defaults (m=19456, t=2, p=1, 32-byte output), which Dovecot
/// verifies as `{ARGON2ID}`.
fn default_params() -> Params {
    Params::default()
}

/// An argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
pub fn argon2id(memory: &mut Argon2Memory, password: &str) -> Result<String, HashError> {
    let params = default_params();
    let salt: [u8; 16] = rand::random();
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            memory.blocks(&params),
        )
        .map_err(|e| HashError(e.to_string()))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// Checks `password` against an argon2id PHC string, in constant time.
pub fn verify_argon2id(memory: &mut Argon2Memory, password: &str, phc: &str) -> bool {
    let Ok(hash) = argon2::password_hash::phc::PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    if hash.algorithm.as_str() != "argon2id" || hash.version.is_some_and(|v| v != 0x13) {
        return false;
    }
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    // The stored cost decides the work; refuse costs far past what Muster
    // writes (m=19456, t=2, p=1) rather than spend them.
    if params.m_cost() > 64 * 1024 || params.t_cost() > 10 || params.p_cost() > 4 {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    let ok = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt.as_ref(),
            &mut out,
            memory.blocks(&params),
        )
        .is_ok();
    ok && bool::from(out.ct_eq(expected.as_bytes()))
}

/// Hashes `password` for Dovecot.
pub fn dovecot_hash(
    memory: &mut Argon2Memory,
    scheme: HashScheme,
    password: &str,
) -> Result<String, HashError> {
    match scheme {
        HashScheme::Argon2id => Ok(format!("{{ARGON2ID}}{}", argon2id(memory, password)?)),
        HashScheme::BlfCrypt => {
            let hash = bcrypt::hash(password, bcrypt::DEFAULT_COST)
                .map_err(|e| HashError(e.to_string()))?;
            Ok(format!("{{BLF-CRYPT}}{hash}"))
        }
        HashScheme::Sha512Crypt => {
            let hash = sha_crypt::ShaCrypt::SHA512
                .hash_password(password.as_bytes())
                .map_err(|e| HashError(e.to_string()))?;
            Ok(format!("{{SHA512-CRYPT}}{hash}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier as _;

    #[test]
    fn prefixes_and_formats() {
        let mut m = Argon2Memory::default();
        let a = dovecot_hash(&mut m, HashScheme::Argon2id, "correct horse").unwrap();
        assert!(
            a.starts_with("{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$"),
            "{a}"
        );
        let b = dovecot_hash(&mut m, HashScheme::BlfCrypt, "correct horse").unwrap();
        assert!(b.starts_with("{BLF-CRYPT}$2"), "{b}");
        let s = dovecot_hash(&mut m, HashScheme::Sha512Crypt, "correct horse").unwrap();
        assert!(s.starts_with("{SHA512-CRYPT}$6$"), "{s}");
        let phc = argon2id(&mut m, "admin pass").unwrap();
        assert!(verify_argon2id(&mut m, "admin pass", &phc));
        assert!(!verify_argon2id(&mut m, "other", &phc));
        assert!(!verify_argon2id(&mut m, "admin pass", "garbage"));
    }

    #[test]
    fn the_reused_memory_gives_what_the_crate_gives() {
        let mut m = Argon2Memory::default();
        // Ours verifies with the crate's own verifier, and the crate's with ours.
        let ours = argon2id(&mut m, "plinth ferry").unwrap();
        let parsed = argon2::password_hash::phc::PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"plinth ferry", &parsed)
                .is_ok()
        );
        let theirs = Argon2::default()
            .hash_password(b"quartz sable")
            .unwrap()
            .to_string();
        assert!(verify_argon2id(&mut m, "quartz sable", &theirs));
        assert!(!verify_argon2id(&mut m, "quartz sablE", &theirs));
    }
}
