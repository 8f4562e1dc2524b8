//! Password hashes in the schemes Dovecot reads, with the `{SCHEME}`
//! prefix Dovecot needs to pick the right verifier.

use argon2::password_hash::PasswordHasher as _;

use crate::config::HashScheme;

#[derive(Debug, thiserror::Error)]
#[error("the password could not be hashed: {0}")]
pub struct HashError(String);

/// Hashes `password` for Dovecot. Argon2id uses the argon2 crate's
/// defaults (m=19456, t=2, p=1), which Dovecot verifies as `{ARGON2ID}`.
pub fn dovecot_hash(scheme: HashScheme, password: &str) -> Result<String, HashError> {
    match scheme {
        HashScheme::Argon2id => {
            let hash = argon2::Argon2::default()
                .hash_password(password.as_bytes())
                .map_err(|e| HashError(e.to_string()))?;
            Ok(format!("{{ARGON2ID}}{hash}"))
        }
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

/// An argon2id PHC string without a scheme prefix, for admin accounts.
pub fn argon2id(password: &str) -> Result<String, HashError> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Checks `password` against an argon2id PHC string, in constant time.
pub fn verify_argon2id(password: &str, phc: &str) -> bool {
    use argon2::password_hash::PasswordVerifier as _;
    let Ok(hash) = argon2::password_hash::phc::PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_formats() {
        let a = dovecot_hash(HashScheme::Argon2id, "correct horse").unwrap();
        assert!(
            a.starts_with("{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$"),
            "{a}"
        );
        let b = dovecot_hash(HashScheme::BlfCrypt, "correct horse").unwrap();
        assert!(b.starts_with("{BLF-CRYPT}$2"), "{b}");
        let s = dovecot_hash(HashScheme::Sha512Crypt, "correct horse").unwrap();
        assert!(s.starts_with("{SHA512-CRYPT}$6$"), "{s}");
        let phc = argon2id("admin pass").unwrap();
        assert!(verify_argon2id("admin pass", &phc));
        assert!(!verify_argon2id("other", &phc));
        assert!(!verify_argon2id("admin pass", "garbage"));
    }
}
