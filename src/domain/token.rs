//! Link tokens: 32 bytes, URL-safe base64 in links, SHA-256 in the store.
//!
//! A token is derived as HMAC-SHA256(link key, purpose, id, generation):
//! with a random 256-bit key kept in its own file (not in the store) the
//! output is as unguessable as 32 random bytes, the store holds only its
//! SHA-256, and the worker can rebuild the link to send or re-send an email
//! after a restart without the store ever holding the token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const TOKEN_BYTES: usize = 32;
/// 32 bytes in unpadded base64.
pub const TOKEN_CHARS: usize = 43;

/// The secret key tokens are derived from.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl LinkKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// HMAC-SHA256 over `parts`, each followed by a zero byte so no two
    /// lists of parts give the same input.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            mac.update(p);
            mac.update(&[0]);
        }
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// What a token is for; part of the derivation so tokens never cross uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    Invite,
    PasswordReset,
    AdminSetup,
}

impl TokenPurpose {
    fn label(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::PasswordReset => "password-reset",
            Self::AdminSetup => "admin-setup",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct LinkToken(String);

impl std::fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkToken(..)")
    }
}

/// The SHA-256 of a token, the only form the store keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

impl TokenHash {
    /// Lower-case hex, as the store keeps it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }

    /// Compares in constant time.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl serde::Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::from_hex(&raw)
            .ok_or_else(|| serde::de::Error::custom("a token hash is 64 hex digits"))
    }
}

impl LinkToken {
    pub fn derive(key: &LinkKey, purpose: TokenPurpose, id: &str, generation: u32) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes any key length");
        mac.update(purpose.label().as_bytes());
        mac.update(&[0]);
        mac.update(id.as_bytes());
        mac.update(&[0]);
        mac.update(&generation.to_be_bytes());
        Self(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// Random bytes, for tokens nothing needs to rebuild (API tokens, sessions).
    pub fn random() -> Self {
        let bytes: [u8; TOKEN_BYTES] = rand::random();
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts exactly what [`LinkToken::derive`] produces: 43 URL-safe
    /// base64 characters that decode to 32 bytes.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != TOKEN_CHARS
            || !raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        (bytes.len() == TOKEN_BYTES).then(|| Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn derived_tokens_parse_and_differ_by_generation_and_purpose() {
        let key = LinkKey::from_bytes([7; 32]);
        let a = LinkToken::derive(&key, TokenPurpose::Invite, "01J", 0);
        let b = LinkToken::derive(&key, TokenPurpose::Invite, "01J", 1);
        let c = LinkToken::derive(&key, TokenPurpose::PasswordReset, "01J", 0);
        assert_eq!(a.as_str().len(), TOKEN_CHARS);
        assert_eq!(LinkToken::parse(a.as_str()), Some(a.clone()));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, LinkToken::derive(&key, TokenPurpose::Invite, "01J", 0));
        assert!(a.hash().matches(&a.hash()));
        assert!(!a.hash().matches(&b.hash()));
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn parse_refuses_anything_else() {
        let ok = LinkToken::random();
        assert!(LinkToken::parse(ok.as_str()).is_some());
        for bad in [
            "",
            "abc",
            &format!("{}=", ok.as_str()),
            &"!".repeat(43),
            "../../etc/passwd",
        ] {
            assert!(LinkToken::parse(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            if let Some(t) = LinkToken::parse(&s) {
                prop_assert_eq!(t.as_str(), s.as_str());
            }
        }
    }
}
