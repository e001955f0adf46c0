//! Bearer JWT validation against a JWKS: the [`Authenticator`] behind the
//! [`Principal`](crate::Principal) extractor.
//!
//! One algorithm is pinned per deployment ([`TokenPolicy::algorithm`], EdDSA by default, the
//! one dev tokens use); a token whose header names any other algorithm, `none` and the HMAC
//! family included, is refused before a key is even looked up. Keys are picked by `kid`.
//! `iss`, `aud`, `exp` and `sub` are required; `nbf` is checked when present; both time
//! claims get [`TokenPolicy::leeway`].
//!
//! Where keys come from is a [`JwksSource`]: a file (dev: `.dev/jwks.json`) or inline JSON.
//! Fetching from an identity provider's URL is the seam left open: a caller with an HTTP
//! client fetches the document and hands it to [`Authenticator::replace_jwks`], which swaps
//! the keys in place for every clone of the authenticator (rotation without a restart).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;

use crate::principal::{Principal, Role};

/// Signature algorithms a deployment may pin. Only asymmetric ones: services verify, they
/// never hold a signing secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigningAlgorithm {
    /// Ed25519; what dev tokens are signed with.
    #[default]
    EdDSA,
    /// RSA PKCS#1 v1.5 with SHA-256; Keycloak's default.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
        }
    }

    fn jwt_algorithm(self) -> Algorithm {
        match self {
            Self::EdDSA => Algorithm::EdDSA,
            Self::RS256 => Algorithm::RS256,
            Self::ES256 => Algorithm::ES256,
        }
    }

    fn key_algorithm(self) -> KeyAlgorithm {
        match self {
            Self::EdDSA => KeyAlgorithm::EdDSA,
            Self::RS256 => KeyAlgorithm::RS256,
            Self::ES256 => KeyAlgorithm::ES256,
        }
    }

    /// Whether a JWK's key type and curve can verify this algorithm.
    fn fits(self, params: &AlgorithmParameters) -> bool {
        match (self, params) {
            (Self::EdDSA, AlgorithmParameters::OctetKeyPair(p)) => {
                p.curve == EllipticCurve::Ed25519
            }
            (Self::RS256, AlgorithmParameters::RSA(_)) => true,
            (Self::ES256, AlgorithmParameters::EllipticCurve(p)) => p.curve == EllipticCurve::P256,
            _ => false,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name outside [`SigningAlgorithm`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported JWT signing algorithm {0:?} (expected EdDSA, RS256 or ES256)")]
pub struct UnsupportedAlgorithm(pub String);

impl FromStr for SigningAlgorithm {
    type Err = UnsupportedAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EdDSA" => Ok(Self::EdDSA),
            "RS256" => Ok(Self::RS256),
            "ES256" => Ok(Self::ES256),
            other => Err(UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

/// What a token must say to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Exact `iss`.
    pub issuer: String,
    /// A value `aud` must contain.
    pub audience: String,
    pub algorithm: SigningAlgorithm,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

impl TokenPolicy {
    /// EdDSA with 5 s leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithm: SigningAlgorithm::EdDSA,
            leeway: Duration::from_secs(5),
        }
    }

    pub fn with_algorithm(mut self, algorithm: SigningAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    fn validation(&self) -> Validation {
        let mut validation = Validation::new(self.algorithm.jwt_algorithm());
        validation.leeway = self.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation
    }
}

/// Where the JWKS document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JSON file, e.g. `.dev/jwks.json` or a mounted secret.
    File(PathBuf),
    /// The document itself, e.g. from an environment variable or a test.
    Inline(String),
    // A `Url` variant belongs here once a service needs one; it needs an HTTP client this
    // crate does not have. Until then fetch it outside and pass `Inline`.
}

impl JwksSource {
    /// Reads the document.
    pub fn load(&self) -> Result<String, AuthSetupError> {
        match self {
            Self::File(path) => {
                std::fs::read_to_string(path).map_err(|source| AuthSetupError::ReadJwks {
                    path: path.clone(),
                    source,
                })
            }
            Self::Inline(json) => Ok(json.clone()),
        }
    }
}

/// Why an [`Authenticator`] could not be built or its keys replaced.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("reading the JWKS file {path}")]
    ReadJwks {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the JWKS is not a JSON object with a `keys` array")]
    ParseJwks {
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the JWKS has no signing key with a kid usable for {algorithm} ({skipped} keys skipped)"
    )]
    NoUsableKey {
        algorithm: SigningAlgorithm,
        skipped: usize,
    },
}

/// Why a bearer token was refused. Logged, never sent: every variant answers the same 401.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWT with a readable header")]
    Header(#[source] jsonwebtoken::errors::Error),
    #[error("the token is signed with {found}, only {pinned} is accepted")]
    AlgorithmNotAllowed {
        found: String,
        pinned: SigningAlgorithm,
    },
    #[error("the token header has no kid")]
    MissingKid,
    #[error("no key with kid {kid:?} in the JWKS")]
    UnknownKid { kid: String },
    #[error("the token failed validation")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    #[error("the token's sub is not a UUID")]
    SubjectNotUuid,
}

/// Validates bearer tokens. Cheap to clone; clones share the key set.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    policy: TokenPolicy,
    validation: Validation,
    keys: RwLock<HashMap<String, DecodingKey>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("policy", &self.inner.policy)
            .field("kids", &self.kids())
            .finish()
    }
}

impl Authenticator {
    /// Builds from a JWKS document.
    pub fn from_jwks_json(jwks: &str, policy: TokenPolicy) -> Result<Self, AuthSetupError> {
        let keys = parse_jwks(jwks, policy.algorithm)?;
        Ok(Self {
            inner: Arc::new(Inner {
                validation: policy.validation(),
                policy,
                keys: RwLock::new(keys),
            }),
        })
    }

    /// Builds from wherever the JWKS lives.
    pub fn from_source(source: &JwksSource, policy: TokenPolicy) -> Result<Self, AuthSetupError> {
        Self::from_jwks_json(&source.load()?, policy)
    }

    /// Swaps in a new key set (rotation, or a refresh from the identity provider). On error
    /// the old keys stay. Returns the number of usable keys.
    pub fn replace_jwks(&self, jwks: &str) -> Result<usize, AuthSetupError> {
        let keys = parse_jwks(jwks, self.inner.policy.algorithm)?;
        let count = keys.len();
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(count)
    }

    pub fn policy(&self) -> &TokenPolicy {
        &self.inner.policy
    }

    /// The key ids currently trusted, sorted.
    pub fn kids(&self) -> Vec<String> {
        let keys = self
            .inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut kids: Vec<String> = keys.keys().cloned().collect();
        kids.sort();
        kids
    }

    /// Checks a compact JWS (without the `Bearer ` prefix) and returns who sent it.
    pub fn validate(&self, token: &str) -> Result<Principal, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(TokenError::Header)?;
        let pinned = self.inner.policy.algorithm;
        if header.alg != pinned.jwt_algorithm() {
            return Err(TokenError::AlgorithmNotAllowed {
                found: format!("{:?}", header.alg),
                pinned,
            });
        }
        let kid = header.kid.ok_or(TokenError::MissingKid)?;
        let claims = {
            let keys = self
                .inner
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let key = keys
                .get(&kid)
                .ok_or_else(|| TokenError::UnknownKid { kid: kid.clone() })?;
            jsonwebtoken::decode::<Claims>(token, key, &self.inner.validation)
                .map_err(TokenError::Invalid)?
                .claims
        };
        claims.into_principal()
    }
}

/// The claims we read beyond those jsonwebtoken validates (`iss`, `aud`, `exp`, `nbf`).
#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Our own claim; dev tokens and a Keycloak mapper put roles here.
    #[serde(default)]
    roles: Vec<String>,
    /// Keycloak's default place for realm roles.
    #[serde(default)]
    realm_access: Option<RealmAccess>,
    #[serde(default)]
    jti: Option<String>,
}

#[derive(Deserialize)]
struct RealmAccess {
    #[serde(default)]
    roles: Vec<String>,
}

impl Claims {
    fn into_principal(self) -> Result<Principal, TokenError> {
        let subject = Uuid::parse_str(&self.sub).map_err(|_| TokenError::SubjectNotUuid)?;
        let realm_roles = self.realm_access.map(|r| r.roles).unwrap_or_default();
        // Identity providers add roles of their own (`offline_access`, ...); those are not
        // ours and are ignored rather than refused.
        let mut roles: Vec<Role> = self
            .roles
            .iter()
            .chain(&realm_roles)
            .filter_map(|name| name.parse().ok())
            .collect();
        roles.sort_unstable();
        roles.dedup();
        Ok(Principal {
            subject,
            roles,
            token_id: self.jti,
        })
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// Keeps the keys that have a kid, are meant for signatures, fit the pinned algorithm and
/// parse. Others are skipped, not fatal: an IdP's JWKS also lists encryption keys and keys
/// of other algorithms.
fn parse_jwks(
    json: &str,
    algorithm: SigningAlgorithm,
) -> Result<HashMap<String, DecodingKey>, AuthSetupError> {
    let document: JwksDocument =
        serde_json::from_str(json).map_err(|source| AuthSetupError::ParseJwks { source })?;
    let mut keys = HashMap::new();
    let mut skipped = 0;
    for raw in document.keys {
        match usable_key(raw, algorithm) {
            Some((kid, key)) => {
                keys.insert(kid, key);
            }
            None => skipped += 1,
        }
    }
    if keys.is_empty() {
        return Err(AuthSetupError::NoUsableKey { algorithm, skipped });
    }
    Ok(keys)
}

fn usable_key(
    raw: serde_json::Value,
    algorithm: SigningAlgorithm,
) -> Option<(String, DecodingKey)> {
    let jwk: Jwk = serde_json::from_value(raw).ok()?;
    let kid = jwk.common.key_id.clone()?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    if let Some(alg) = jwk.common.key_algorithm {
        if alg != algorithm.key_algorithm() {
            return None;
        }
    }
    if !algorithm.fits(&jwk.algorithm) {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OKP: &str =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    fn jwks(keys: &[&str]) -> String {
        format!(r#"{{"keys":[{}]}}"#, keys.join(","))
    }

    #[test]
    fn keys_without_kid_or_for_other_uses_are_skipped() {
        let with = |extra: &str| OKP.replacen('{', &format!("{{{extra},"), 1);
        let doc = jwks(&[
            OKP,
            &with(r#""kid":"enc","use":"enc""#),
            &with(r#""kid":"rsa-alg","alg":"RS256""#),
            &with(r#""kid":"ok","use":"sig","alg":"EdDSA""#),
            r#"{"kid":"weird","kty":"XYZ"}"#,
        ]);
        let auth = Authenticator::from_jwks_json(&doc, TokenPolicy::new("i", "a")).unwrap();
        assert_eq!(auth.kids(), vec!["ok".to_owned()]);
    }

    #[test]
    fn a_jwks_without_usable_keys_is_an_error() {
        let err =
            Authenticator::from_jwks_json(&jwks(&[OKP]), TokenPolicy::new("i", "a")).unwrap_err();
        assert!(matches!(
            err,
            AuthSetupError::NoUsableKey { skipped: 1, .. }
        ));
        let err = Authenticator::from_jwks_json("[]", TokenPolicy::new("i", "a")).unwrap_err();
        assert!(matches!(err, AuthSetupError::ParseJwks { .. }));
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in [
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::RS256,
            SigningAlgorithm::ES256,
        ] {
            assert_eq!(alg.as_str().parse::<SigningAlgorithm>().unwrap(), alg);
            assert_eq!(format!("{:?}", alg.jwt_algorithm()), alg.as_str());
        }
        assert!("HS256".parse::<SigningAlgorithm>().is_err());
        assert!("none".parse::<SigningAlgorithm>().is_err());
    }
}
