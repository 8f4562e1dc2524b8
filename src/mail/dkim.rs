//! DKIM signing (RFC 6376, Ed25519 per RFC 8463). `muster dkim generate`
//! makes a key per domain and selector in `<dkim dir>/<domain>/<selector>.pem`
//! (PKCS#8, mode 0600) and prints the TXT record to publish; the worker
//! signs every message with each key of the sender's domain, so an RSA and
//! an Ed25519 key sign side by side.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::compose::Outgoing;
use crate::config::Config;

/// The headers signed: what a receiver shows and what a replay would
/// change.
const SIGNED_HEADERS: [&str; 8] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
];

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("DKIM key {path}: {error}")]
    Io { path: PathBuf, error: String },
    #[error("DKIM key {path} cannot be read as an RSA or Ed25519 PKCS#8 key: {error}")]
    Key { path: PathBuf, error: String },
    #[error(
        "a DKIM key for selector {selector} of {domain} exists already ({path}); choose another --selector, or delete the file and its DNS record first"
    )]
    Exists {
        domain: String,
        selector: String,
        path: PathBuf,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("DKIM signing failed: {0}")]
    Sign(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    Rsa,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" => Some(Self::Ed25519),
            "rsa" => Some(Self::Rsa),
            _ => None,
        }
    }

    /// The `k=` tag of the TXT record.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Rsa => "rsa",
        }
    }
}

/// A selector name: letters, digits and hyphens (a DNS label).
fn check_label(what: &str, s: &str) -> Result<(), DkimError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(DkimError::Invalid(format!(
            "{what} {s:?} must be letters, digits and hyphens (at most 63)"
        )))
    }
}

/// A key made by `generate`: where it is and the record to publish.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub path: PathBuf,
    /// `<selector>._domainkey.<domain>`
    pub name: String,
    /// `v=DKIM1; k=…; p=…`
    pub txt: String,
}

/// Makes a key for `domain` under `selector` in `dir`; never overwrites one.
pub fn generate(
    dir: &Path,
    domain: &str,
    selector: &str,
    algorithm: Algorithm,
) -> Result<NewKey, DkimError> {
    check_label("the selector", selector)?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() || domain.contains('/') || domain.starts_with('.') {
        return Err(DkimError::Invalid(format!("{domain:?} is not a domain")));
    }
    let folder = dir.join(&domain);
    let io = |path: &Path, e: std::io::Error| DkimError::Io {
        path: path.to_path_buf(),
        error: e.to_string(),
    };
    std::fs::create_dir_all(&folder).map_err(|e| io(&folder, e))?;
    let _ = std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700));
    let path = folder.join(format!("{selector}.pem"));
    let (pkcs8, public) = match algorithm {
        Algorithm::Ed25519 => {
            let der = Ed25519Key::generate_pkcs8().map_err(|e| DkimError::Sign(e.to_string()))?;
            let key =
                Ed25519Key::from_pkcs8_der(&der).map_err(|e| DkimError::Sign(e.to_string()))?;
            (der, key.public_key())
        }
        Algorithm::Rsa => {
            use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
            let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .map_err(|e| DkimError::Sign(e.to_string()))?;
            let der = private
                .to_pkcs8_der()
                .map_err(|e| DkimError::Sign(e.to_string()))?
                .as_bytes()
                .to_vec();
            let public = rsa::RsaPublicKey::from(&private)
                .to_public_key_der()
                .map_err(|e| DkimError::Sign(e.to_string()))?
                .as_bytes()
                .to_vec();
            (der, public)
        }
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.encode(&pkcs8).as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                DkimError::Exists {
                    domain: domain.clone(),
                    selector: selector.to_string(),
                    path: path.clone(),
                }
            } else {
                io(&path, e)
            }
        })?;
    file.write_all(pem.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| io(&path, e))?;
    Ok(NewKey {
        path,
        name: format!("{selector}._domainkey.{domain}"),
        txt: format!("v=DKIM1; k={}; p={}", algorithm.tag(), b64.encode(public)),
    })
}

/// A TXT record as a zone file line: the value cut into quoted strings of
/// at most 255 bytes (a longer one is not valid DNS).
pub fn zone_line(name: &str, value: &str) -> String {
    let parts: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("{name}. 3600 IN TXT ( {} )", parts.join(" "))
}

/// One key found in the folder of a domain.
pub struct KeyOnDisk {
    pub selector: String,
    pub algorithm: Algorithm,
    /// The `p=` value its TXT record must carry.
    pub public_b64: String,
    key: DkimKey,
}

/// The keys of `domain` in `dir`, by selector; none when the folder is not
/// there.
pub fn keys_of(dir: &Path, domain: &str) -> Result<Vec<KeyOnDisk>, DkimError> {
    let folder = dir.join(domain.to_ascii_lowercase());
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(DkimError::Io {
                path: folder,
                error: e.to_string(),
            });
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    paths.sort();
    paths.iter().map(|p| read_key(p)).collect()
}

fn read_key(path: &Path) -> Result<KeyOnDisk, DkimError> {
    let bad = |error: String| DkimError::Key {
        path: path.to_path_buf(),
        error,
    };
    let selector = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let der = PrivatePkcs8KeyDer::from_pem_file(path).map_err(|e| bad(e.to_string()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Ok(key) = Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der()) {
        return Ok(KeyOnDisk {
            selector,
            algorithm: Algorithm::Ed25519,
            public_b64: b64.encode(key.public_key()),
            key: DkimKey::Ed25519(key),
        });
    }
    let public = {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
        rsa::RsaPrivateKey::from_pkcs8_der(der.secret_pkcs8_der())
            .map_err(|e| bad(e.to_string()))?
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| bad(e.to_string()))?
            .as_bytes()
            .to_vec()
    };
    let key = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(der))
        .map_err(|e| bad(e.to_string()))?;
    Ok(KeyOnDisk {
        selector,
        algorithm: Algorithm::Rsa,
        public_b64: b64.encode(public),
        key: DkimKey::Rsa(key),
    })
}

/// Signs outgoing messages with every key of the sender's domain.
pub struct Signer {
    domain: String,
    keys: Vec<(String, Algorithm, DkimSigner<DkimKey, Done>)>,
}

impl Signer {
    /// The signer for this configuration: none when signing is off or the
    /// sender's domain has no key.
    pub fn load(config: &Config) -> Result<Option<Self>, DkimError> {
        if !config.dkim.sign {
            return Ok(None);
        }
        let domain = config.sender_domain();
        let keys: Vec<_> = keys_of(&config.dkim_dir(), &domain)?
            .into_iter()
            .map(|k| {
                let signer = DkimSigner::from_key(k.key)
                    .domain(domain.clone())
                    .selector(k.selector.clone())
                    .headers(SIGNED_HEADERS);
                (k.selector, k.algorithm, signer)
            })
            .collect();
        Ok((!keys.is_empty()).then_some(Self { domain, keys }))
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn selectors(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|(selector, algorithm, _)| format!("{selector} ({})", algorithm.tag()))
            .collect()
    }

    /// Puts a DKIM-Signature header per key in front of the message.
    pub fn sign(&self, msg: &mut Outgoing) -> Result<(), DkimError> {
        let mut headers = String::new();
        for (_, _, signer) in &self.keys {
            let signature = signer
                .sign(&msg.bytes)
                .map_err(|e| DkimError::Sign(e.to_string()))?;
            headers.push_str(&signature.to_header());
        }
        let mut signed = headers.into_bytes();
        signed.extend_from_slice(&msg.bytes);
        msg.bytes = signed;
        Ok(())
    }
}
