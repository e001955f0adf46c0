//! Anchors: `(position, hash, recorded_at)` of the log signed as a compact JWS with
//! EdDSA (Ed25519), so the chain can be checked against something nobody with only the
//! database can forge (API.md, "Audit beyond the database"; ADR 0017).
//!
//! - [`AnchorPayload`]: what is signed, `{"position": N, "hash": "<hex>", "recorded_at":
//!   "<RFC 3339>"}`.
//! - [`SigningKey`]: an Ed25519 key pair with its `kid` (the RFC 7638 thumbprint), PEM
//!   (PKCS#8) on disk; signs payloads.
//! - [`Jwks`]: the public keys that sign anchors; verifies an anchor by its `kid`.
//! - [`SignedAnchor`]: an anchor as listed and published, `{position, hash, recorded_at,
//!   anchor}`; [`SignedAnchor::verify`] checks the signature and that the plain fields
//!   say what the signed payload says.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::canonical::Hash;

/// The JWS `typ` of an anchor, so an anchor is never mistaken for another signed thing.
pub const ANCHOR_JWS_TYPE: &str = "ledger-anchor+jws";
/// The CloudEvents type anchors are published with.
pub const ANCHOR_EVENT_TYPE: &str = "ledger.anchor.signed";

const PEM_LABEL: &str = "PRIVATE KEY";

/// Why an anchor or a key could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("the anchor is not a compact JWS ({0})")]
    Malformed(&'static str),
    #[error("the anchor is signed with {alg}, not EdDSA")]
    Algorithm { alg: String },
    #[error("the anchor's type is {typ:?}, not {ANCHOR_JWS_TYPE}")]
    Type { typ: Option<String> },
    #[error("no key {kid:?} in the anchors' JWKS")]
    UnknownKey { kid: String },
    #[error("the signature does not verify with key {kid:?}")]
    BadSignature { kid: String },
    #[error("the anchor's payload is not an anchor ({0})")]
    Payload(String),
    #[error("the listed {field} is not what the anchor at {position} signs")]
    Mismatch { position: u64, field: &'static str },
    #[error("not a usable Ed25519 key: {0}")]
    Key(&'static str),
    #[error("the JWKS is not valid: {0}")]
    Jwks(String),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What an anchor signs: the hash of the log at `position` and when that event was
/// recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorPayload {
    pub position: u64,
    #[serde(with = "crate::hexhash")]
    pub hash: Hash,
    #[serde(with = "crate::wire_time")]
    pub recorded_at: OffsetDateTime,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// An Ed25519 key that signs anchors. Its `Debug` shows the `kid` only.
pub struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.pkcs8.fill(0);
    }
}

impl SigningKey {
    /// A fresh key pair from the operating system's randomness, in memory only.
    pub fn generate() -> Result<Self, AnchorError> {
        let rng = ring::rand::SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| AnchorError::Key("generating failed"))?;
        Self::from_pkcs8(document.as_ref().to_vec())
    }

    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<Self, AnchorError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|_| AnchorError::Key("not a PKCS#8 Ed25519 private key"))?;
        let kid = thumbprint(pair.public_key().as_ref());
        Ok(Self { kid, pkcs8, pair })
    }

    /// Reads `-----BEGIN PRIVATE KEY-----` (PKCS#8 v1 or v2).
    pub fn from_pem(pem: &str) -> Result<Self, AnchorError> {
        let body = pem
            .trim()
            .strip_prefix(&format!("-----BEGIN {PEM_LABEL}-----"))
            .and_then(|rest| rest.strip_suffix(&format!("-----END {PEM_LABEL}-----")))
            .ok_or(AnchorError::Key("not a PEM private key"))?;
        let base64: String = body.split_whitespace().collect();
        let der = STANDARD
            .decode(base64)
            .map_err(|_| AnchorError::Key("the PEM body is not base64"))?;
        Self::from_pkcs8(der)
    }

    /// The key as PEM (PKCS#8).
    pub fn to_pem(&self) -> String {
        let base64 = STANDARD.encode(&self.pkcs8);
        let mut pem = format!("-----BEGIN {PEM_LABEL}-----\n");
        for line in base64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
        pem
    }

    /// Reads the key at `path`.
    pub fn from_file(path: &Path) -> Result<Self, AnchorError> {
        let pem = std::fs::read_to_string(path).map_err(|source| AnchorError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&pem)
    }

    /// Reads the key at `path`, or makes one there (mode 0600) if there is none: the dev
    /// stack's anchor key, made on first use. Safe to race with another process doing
    /// the same: the first file written wins.
    pub fn load_or_create(path: &Path) -> Result<Self, AnchorError> {
        let io = |action, source| AnchorError::Io {
            action,
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => return Self::from_pem(&pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("reading", e)),
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        }
        let key = Self::generate()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(key.to_pem().as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io("writing", e))?;
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::from_file(path),
            Err(e) => Err(io("creating", e)),
        }
    }

    /// The key id: the RFC 7638 thumbprint of the public JWK.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, as a JWK.
    pub fn public_jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref()),
            kid: self.kid.clone(),
            use_: Some("sig".into()),
            alg: Some("EdDSA".into()),
        }
    }

    /// The compact JWS of `payload`: `base64url(header).base64url(payload).base64url(sig)`.
    pub fn sign(&self, payload: &AnchorPayload) -> String {
        let header = Header {
            alg: "EdDSA".into(),
            kid: Some(self.kid.clone()),
            typ: Some(ANCHOR_JWS_TYPE.into()),
        };
        // Both serialise infallibly: strings and integers only.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let payload = serde_json::to_vec(payload).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self.pair.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
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

/// One public key (RFC 8037: `kty` OKP, `crv` Ed25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

/// The public keys that sign anchors. Rotation adds a key; a key stays as long as
/// anchors signed with it are to be checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    pub fn parse(json: &str) -> Result<Self, AnchorError> {
        serde_json::from_str(json).map_err(|e| AnchorError::Jwks(e.to_string()))
    }

    /// Reads the JWKS at `path`.
    pub fn from_file(path: &Path) -> Result<Self, AnchorError> {
        let text = std::fs::read_to_string(path).map_err(|source| AnchorError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// The JWKS at `path` with `key` added if its `kid` is not there yet, written back
    /// (write-then-rename, so a reader never sees half a file) when it changed. A missing
    /// file counts as an empty set. Returns the set as it now is.
    pub fn add_to_file(path: &Path, key: Jwk) -> Result<Self, AnchorError> {
        let mut jwks = match Self::from_file(path) {
            Ok(jwks) => jwks,
            Err(AnchorError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Self::default()
            }
            Err(e) => return Err(e),
        };
        if jwks.key(&key.kid).is_some() {
            return Ok(jwks);
        }
        jwks.keys.push(key);
        let io = |action, source| AnchorError::Io {
            action,
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        }
        let temp = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
        std::fs::write(&temp, jwks.to_json())
            .and_then(|()| std::fs::rename(&temp, path))
            .map_err(|e| io("writing", e))?;
        Ok(jwks)
    }

    /// The document, pretty-printed.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    pub fn key(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Verifies the compact JWS `anchor` with the key its header names and returns the
    /// signed payload and that `kid`.
    pub fn verify(&self, anchor: &str) -> Result<(AnchorPayload, String), AnchorError> {
        let mut parts = anchor.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AnchorError::Malformed("three dot-separated parts expected"));
        };
        let decode = |part: &str, what| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| AnchorError::Malformed(what))
        };
        let header: Header =
            serde_json::from_slice(&decode(header_b64, "header is not base64url")?)
                .map_err(|_| AnchorError::Malformed("header is not JSON"))?;
        if header.alg != "EdDSA" {
            return Err(AnchorError::Algorithm { alg: header.alg });
        }
        if header.typ.as_deref() != Some(ANCHOR_JWS_TYPE) {
            return Err(AnchorError::Type { typ: header.typ });
        }
        let kid = header
            .kid
            .ok_or(AnchorError::Malformed("no kid in the header"))?;
        let jwk = self
            .key(&kid)
            .ok_or_else(|| AnchorError::UnknownKey { kid: kid.clone() })?;
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
            return Err(AnchorError::Key("the JWKS key is not an Ed25519 key"));
        }
        let public = URL_SAFE_NO_PAD
            .decode(&jwk.x)
            .map_err(|_| AnchorError::Key("the JWKS key's x is not base64url"))?;
        let signature = decode(signature_b64, "signature is not base64url")?;
        let signing_input = &anchor[..header_b64.len() + 1 + payload_b64.len()];
        UnparsedPublicKey::new(&ED25519, &public)
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| AnchorError::BadSignature { kid: kid.clone() })?;
        let payload = decode(payload_b64, "payload is not base64url")?;
        let payload: AnchorPayload =
            serde_json::from_slice(&payload).map_err(|e| AnchorError::Payload(e.to_string()))?;
        Ok((payload, kid))
    }
}

/// An anchor as `GET /api/v1/audit/anchors` lists it and as the `data` of a
/// `ledger.anchor.signed` CloudEvent: the signed fields in plain, and the JWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAnchor {
    pub position: u64,
    /// Lowercase hex SHA-256, the log's hash at `position`.
    #[serde(with = "crate::hexhash")]
    pub hash: Hash,
    #[serde(with = "crate::wire_time")]
    pub recorded_at: OffsetDateTime,
    /// The compact JWS whose payload signs the three fields above.
    pub anchor: String,
}

impl SignedAnchor {
    /// Signs `payload` with `key`.
    pub fn sign(payload: AnchorPayload, key: &SigningKey) -> Self {
        let anchor = key.sign(&payload);
        Self {
            position: payload.position,
            hash: payload.hash,
            recorded_at: payload.recorded_at,
            anchor,
        }
    }

    /// Verifies the JWS with `jwks` and that the plain fields are the signed ones;
    /// returns the key id that signed it.
    pub fn verify(&self, jwks: &Jwks) -> Result<String, AnchorError> {
        let (payload, kid) = jwks.verify(&self.anchor)?;
        let position = payload.position;
        let mismatch = |field| AnchorError::Mismatch { position, field };
        if payload.position != self.position {
            return Err(mismatch("position"));
        }
        if payload.hash != self.hash {
            return Err(mismatch("hash"));
        }
        if payload.recorded_at != self.recorded_at {
            return Err(mismatch("recorded_at"));
        }
        Ok(kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(position: u64) -> AnchorPayload {
        AnchorPayload {
            position,
            hash: [position as u8; 32],
            recorded_at: time::macros::datetime!(2026-12-07 10:00:00.000042 UTC),
        }
    }

    fn jwks_of(keys: &[&SigningKey]) -> Jwks {
        Jwks {
            keys: keys.iter().map(|k| k.public_jwk()).collect(),
        }
    }

    #[test]
    fn a_signed_anchor_verifies_with_its_key_and_says_what_was_signed() {
        let key = SigningKey::generate().unwrap();
        let anchor = SignedAnchor::sign(payload(1000), &key);
        let jwks = jwks_of(&[&key]);
        assert_eq!(anchor.verify(&jwks).unwrap(), key.kid());
        let (signed, _) = jwks.verify(&anchor.anchor).unwrap();
        assert_eq!(signed, payload(1000));
        // The payload as the contract spells it.
        let body = anchor.anchor.split('.').nth(1).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "position": 1000,
                "hash": hex::encode([0xe8u8; 32]),
                "recorded_at": "2026-12-07T10:00:00.000042Z",
            })
        );
    }

    #[test]
    fn rotation_adds_a_key_and_old_anchors_still_verify() {
        let old = SigningKey::generate().unwrap();
        let new = SigningKey::generate().unwrap();
        let before = SignedAnchor::sign(payload(1), &old);
        let after = SignedAnchor::sign(payload(2), &new);
        let jwks = jwks_of(&[&old, &new]);
        assert_eq!(before.verify(&jwks).unwrap(), old.kid());
        assert_eq!(after.verify(&jwks).unwrap(), new.kid());
        assert!(matches!(
            after.verify(&jwks_of(&[&old])),
            Err(AnchorError::UnknownKey { .. })
        ));
    }

    #[test]
    fn a_changed_field_or_signature_or_a_foreign_key_is_refused() {
        let key = SigningKey::generate().unwrap();
        let jwks = jwks_of(&[&key]);
        let anchor = SignedAnchor::sign(payload(7), &key);

        let mut listed = anchor.clone();
        listed.hash = [0; 32];
        assert!(matches!(
            listed.verify(&jwks),
            Err(AnchorError::Mismatch { field: "hash", .. })
        ));

        // A payload swapped under the same signature.
        let mut parts: Vec<String> = anchor.anchor.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload(8)).unwrap());
        assert!(matches!(
            jwks.verify(&parts.join(".")),
            Err(AnchorError::BadSignature { .. })
        ));

        // The same kid, another key: an attacker's key published under our kid.
        let forger = SigningKey::generate().unwrap();
        let mut forged_jwks = jwks_of(&[&forger]);
        forged_jwks.keys[0].kid = key.kid().to_owned();
        assert!(matches!(
            anchor.verify(&forged_jwks),
            Err(AnchorError::BadSignature { .. })
        ));
        assert!(jwks.verify("not.a-jws").is_err());
    }

    #[test]
    fn an_anchor_of_another_type_or_algorithm_is_refused() {
        let key = SigningKey::generate().unwrap();
        let jwks = jwks_of(&[&key]);
        let sign_with_header = |header: serde_json::Value| {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload(1)).unwrap())
            );
            let sig = key.pair.sign(input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        };
        let jwt =
            sign_with_header(serde_json::json!({"alg": "EdDSA", "kid": key.kid(), "typ": "JWT"}));
        assert!(matches!(jwks.verify(&jwt), Err(AnchorError::Type { .. })));
        let none = sign_with_header(
            serde_json::json!({"alg": "none", "kid": key.kid(), "typ": ANCHOR_JWS_TYPE}),
        );
        assert!(matches!(
            jwks.verify(&none),
            Err(AnchorError::Algorithm { .. })
        ));
    }

    #[test]
    fn the_dev_key_is_made_once_and_its_jwks_gathers_keys() {
        let dir = std::env::temp_dir().join(format!("anchor-keys-{}", uuid::Uuid::new_v4()));
        let path = dir.join("anchor-signing-key.pem");
        let first = SigningKey::load_or_create(&path).unwrap();
        let again = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(first.kid(), again.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
        let jwks_path = dir.join("anchor-jwks.json");
        Jwks::add_to_file(&jwks_path, first.public_jwk()).unwrap();
        Jwks::add_to_file(&jwks_path, first.public_jwk()).unwrap();
        let rotated = SigningKey::generate().unwrap();
        let jwks = Jwks::add_to_file(&jwks_path, rotated.public_jwk()).unwrap();
        assert_eq!(jwks.keys.len(), 2);
        assert_eq!(Jwks::from_file(&jwks_path).unwrap(), jwks);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_and_jwks_made_by_openssl_as_compose_makes_them_are_read_alike() {
        // compose/gen-secrets.sh: `openssl genpkey -algorithm ed25519`, and the JWKS its
        // shell lines compute from the public key (a test key, used nowhere else).
        const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIABcu9ZnRizYLEo5v1t95w1Sz/V4ORPNGBTzMvvece3L\n-----END PRIVATE KEY-----";
        const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"QBMU0XAtrbQbAhuMZR1_hBqE9VmxdUa5iA_-uBlIfMc","kid":"y98GWBHLS0T2jfVsJE1nPs4vXnBRJ_MbAVLZ4cFM5gQ","use":"sig","alg":"EdDSA"}]}"#;
        let key = SigningKey::from_pem(PEM).unwrap();
        let jwks = Jwks::parse(JWKS).unwrap();
        assert_eq!(jwks.keys[0], key.public_jwk());
        let anchor = SignedAnchor::sign(payload(1), &key);
        assert_eq!(anchor.verify(&jwks).unwrap(), key.kid());
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
}
