//! The dev stack's own token issuer: an Ed25519 key made on first use, its JWKS, and
//! minting of tokens the services accept. Used by tests and `cargo xtask token`; in
//! compose a real identity provider issues tokens instead.
//!
//! On disk (the caller passes the directory, `.dev/` in the repository):
//! `dev-signing-key.pem` (PKCS#8 v1 as RFC 8410 defines it for Ed25519, the form
//! `openssl pkey` and Python's `cryptography` read; mode 0600 on Unix) and `jwks.json` (the
//! public key, `kid` = its RFC 7638 thumbprint). The key file is the source of truth;
//! `jwks.json` is rewritten from it when missing or stale. A key an older version wrote as
//! ring's PKCS#8 v2 document (which those tools refuse: "extra data") is read and rewritten
//! in the v1 form, the same key.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::{AuthSetupError, Authenticator, TokenPolicy};
use crate::principal::Role;

/// File name of the private key inside the dev key directory.
pub const DEV_SIGNING_KEY_FILE: &str = "dev-signing-key.pem";
/// File name of the public JWKS inside the dev key directory.
pub const DEV_JWKS_FILE: &str = "jwks.json";
/// `iss` of dev tokens; services default to it.
pub const DEV_ISSUER: &str = "urn:example:dev-issuer";
/// `aud` of dev tokens; services default to it.
pub const DEV_AUDIENCE: &str = "example-ledger";

const PEM_LABEL: &str = "PRIVATE KEY";

/// RFC 8410 §7: `OneAsymmetricKey` version 0 (v1), algorithm id-Ed25519, and the
/// `CurvePrivateKey` OCTET STRING header; the 32-byte seed follows. PKCS#8 v2 (ring's)
/// differs in the outer length and the version, then appends the public key.
const V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The part of the prefix both versions share (after the outer length and version).
const ALGORITHM_AND_KEY_HEADER: [u8; 11] = [
    0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The v1 document of a 32-byte seed.
fn pkcs8_v1(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = V1_PREFIX.to_vec();
    der.extend_from_slice(seed);
    der
}

/// The seed of a v1 or v2 Ed25519 document (both put it at the same offset).
fn seed_of(der: &[u8]) -> Option<[u8; 32]> {
    if der.get(5..16)? != ALGORITHM_AND_KEY_HEADER {
        return None;
    }
    der.get(16..48)?.try_into().ok()
}

/// Why dev keys could not be made, loaded, stored or used.
#[derive(Debug, thiserror::Error)]
pub enum DevKeyError {
    #[error("generating an Ed25519 key failed")]
    Generate,
    #[error("{path} is not a PEM-encoded PKCS#8 Ed25519 private key")]
    InvalidKey { path: PathBuf },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signing a dev token failed")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// An Ed25519 signing key with its key id.
#[derive(Clone)]
pub struct DevKeys {
    kid: String,
    pkcs8: Vec<u8>,
    public_key: Vec<u8>,
}

impl fmt::Debug for DevKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKeys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl DevKeys {
    /// A fresh key pair, in memory only.
    pub fn generate() -> Result<Self, DevKeyError> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| DevKeyError::Generate)?;
        Self::from_pkcs8(pkcs8_v1(&seed), Path::new("<generated>"))
    }

    /// Reads a key from PEM (`-----BEGIN PRIVATE KEY-----`, PKCS#8 v1 or v2).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, DevKeyError> {
        Self::from_pem_at(pem, Path::new("<pem>"))
    }

    fn from_pem_at(pem: &str, path: &Path) -> Result<Self, DevKeyError> {
        let invalid = || DevKeyError::InvalidKey {
            path: path.to_owned(),
        };
        let body = pem
            .trim()
            .strip_prefix(&format!("-----BEGIN {PEM_LABEL}-----"))
            .and_then(|rest| rest.strip_suffix(&format!("-----END {PEM_LABEL}-----")))
            .ok_or_else(invalid)?;
        let base64: String = body.split_whitespace().collect();
        let der = STANDARD.decode(base64).map_err(|_| invalid())?;
        Self::from_pkcs8(der, path)
    }

    /// Reads a v1 or v2 document (ring checks it, and a v2's public key against the
    /// seed) and keeps the key as v1.
    fn from_pkcs8(pkcs8: Vec<u8>, path: &Path) -> Result<Self, DevKeyError> {
        let invalid = || DevKeyError::InvalidKey {
            path: path.to_owned(),
        };
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(|_| invalid())?;
        let seed = seed_of(&pkcs8).ok_or_else(invalid)?;
        let public_key = pair.public_key().as_ref().to_vec();
        Ok(Self {
            kid: thumbprint(&public_key),
            pkcs8: pkcs8_v1(&seed),
            public_key,
        })
    }

    /// Loads `dev-signing-key.pem` from `dir`, or generates and stores it, and makes sure
    /// `jwks.json` beside it matches. Safe to race with another process doing the same.
    pub fn load_or_create(dir: &Path) -> Result<Self, DevKeyError> {
        std::fs::create_dir_all(dir).map_err(|source| DevKeyError::Io {
            action: "creating",
            path: dir.to_owned(),
            source,
        })?;
        let key_path = dir.join(DEV_SIGNING_KEY_FILE);
        let keys = match std::fs::read_to_string(&key_path) {
            Ok(pem) => {
                let keys = Self::from_pem_at(&pem, &key_path)?;
                if keys.private_key_pem() != pem {
                    // An older (v2) document: the same key in the standard form.
                    keys.rewrite_key(&key_path)?;
                }
                keys
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Self::create(&key_path)?,
            Err(source) => {
                return Err(DevKeyError::Io {
                    action: "reading",
                    path: key_path,
                    source,
                })
            }
        };
        keys.store_jwks(&dir.join(DEV_JWKS_FILE))?;
        Ok(keys)
    }

    fn create(key_path: &Path) -> Result<Self, DevKeyError> {
        let keys = Self::generate()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let io = |action, source| DevKeyError::Io {
            action,
            path: key_path.to_owned(),
            source,
        };
        match options.open(key_path) {
            Ok(mut file) => {
                file.write_all(keys.private_key_pem().as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|source| io("writing", source))?;
                Ok(keys)
            }
            // Another process won the race; its key is the one.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                let pem =
                    std::fs::read_to_string(key_path).map_err(|source| io("reading", source))?;
                Self::from_pem_at(&pem, key_path)
            }
            Err(source) => Err(io("creating", source)),
        }
    }

    /// Replaces the key file with this key's v1 PEM (write-then-rename, mode 0600).
    fn rewrite_key(&self, key_path: &Path) -> Result<(), DevKeyError> {
        let temp = key_path.with_extension(format!("pem.{}.tmp", Uuid::new_v4().simple()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&temp)
            .and_then(|mut file| {
                file.write_all(self.private_key_pem().as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temp, key_path))
            .map_err(|source| DevKeyError::Io {
                action: "rewriting",
                path: key_path.to_owned(),
                source,
            })
    }

    fn store_jwks(&self, path: &Path) -> Result<(), DevKeyError> {
        let wanted = self.jwks_json();
        if std::fs::read_to_string(path).is_ok_and(|current| current == wanted) {
            return Ok(());
        }
        // Write-then-rename so a service never reads half a file.
        let temp = path.with_extension(format!("json.{}.tmp", Uuid::new_v4().simple()));
        std::fs::write(&temp, &wanted)
            .and_then(|()| std::fs::rename(&temp, path))
            .map_err(|source| DevKeyError::Io {
                action: "writing",
                path: path.to_owned(),
                source,
            })
    }

    /// The key id: the RFC 7638 thumbprint of the public JWK.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key as PEM (PKCS#8 v1, RFC 8410).
    pub fn private_key_pem(&self) -> String {
        let base64 = STANDARD.encode(&self.pkcs8);
        let mut pem = format!("-----BEGIN {PEM_LABEL}-----\n");
        for line in base64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
        pem
    }

    /// The public key as one JWK.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(&self.public_key),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        })
    }

    /// The JWKS document services verify with.
    pub fn jwks_json(&self) -> String {
        let document = serde_json::json!({ "keys": [self.jwk()] });
        format!("{document:#}\n")
    }

    /// An authenticator that trusts exactly this key.
    pub fn authenticator(&self, policy: TokenPolicy) -> Result<Authenticator, AuthSetupError> {
        Authenticator::from_jwks_json(&self.jwks_json(), policy)
    }

    /// A token for `sub` with `roles`, valid from now for `ttl`.
    pub fn mint(
        &self,
        sub: Uuid,
        roles: &[Role],
        ttl: Duration,
        iss: &str,
        aud: &str,
    ) -> Result<String, DevKeyError> {
        let now = unix_now();
        self.sign(&DevClaims {
            iss,
            aud,
            sub: sub.to_string(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl.as_secs()),
            jti: Uuid::now_v7().to_string(),
            roles: roles.iter().map(|r| r.as_str()).collect(),
        })
    }

    /// Signs arbitrary claims with this key (EdDSA, with `kid`); tests use it for expired
    /// or otherwise odd tokens.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, DevKeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8))
            .map_err(DevKeyError::Sign)
    }
}

#[derive(Serialize)]
struct DevClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
    roles: Vec<&'static str>,
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, base64url.
fn thumbprint(public_key: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public_key)
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips() {
        let keys = DevKeys::generate().unwrap();
        let again = DevKeys::from_pkcs8_pem(&keys.private_key_pem()).unwrap();
        assert_eq!(again.kid(), keys.kid());
        assert_eq!(again.jwks_json(), keys.jwks_json());
        assert!(DevKeys::from_pkcs8_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
        )
        .is_err());
    }

    #[test]
    fn rfc_8037_example_thumbprint() {
        // RFC 8037 appendix A.3.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        assert_eq!(
            thumbprint(&x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn load_or_create_keeps_the_first_key() {
        let dir = std::env::temp_dir().join(format!("platform-dev-keys-{}", Uuid::new_v4()));
        let first = DevKeys::load_or_create(&dir).unwrap();
        std::fs::remove_file(dir.join(DEV_JWKS_FILE)).unwrap();
        let second = DevKeys::load_or_create(&dir).unwrap();
        assert_eq!(first.kid(), second.kid());
        let jwks = std::fs::read_to_string(dir.join(DEV_JWKS_FILE)).unwrap();
        assert_eq!(jwks, first.jwks_json());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(DEV_SIGNING_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn minted_tokens_validate() {
        let keys = DevKeys::generate().unwrap();
        let auth = keys
            .authenticator(TokenPolicy::new(DEV_ISSUER, DEV_AUDIENCE))
            .unwrap();
        let sub = Uuid::now_v7();
        let token = keys
            .mint(
                sub,
                &[Role::Auditor, Role::User],
                Duration::from_secs(60),
                DEV_ISSUER,
                DEV_AUDIENCE,
            )
            .unwrap();
        let principal = auth.validate(&token).unwrap();
        assert_eq!(principal.subject, sub);
        assert_eq!(principal.roles, vec![Role::User, Role::Auditor]);
        assert!(principal.token_id.is_some());
    }
}
