//! Bearer JWT validation against a JWKS: the [`Authenticator`] behind the
//! [`Principal`](crate::Principal) extractor.
//!
//! One algorithm is pinned per deployment ([`TokenPolicy::algorithm`], EdDSA by default, the
//! one dev tokens use); a token whose header names any other algorithm, `none` and the HMAC
//! family included, is refused before a key is even looked up. Keys are picked by `kid`.
//! `iss`, `aud`, `exp` and `sub` are required; `nbf` is checked when present; both time
//! claims get [`TokenPolicy::leeway`].
//!
//! Where keys come from is a [`JwksSource`] (a file, dev: `.dev/jwks.json`, or inline JSON)
//! or a [`RemoteJwks`]: an identity provider's URL, fetched at startup
//! ([`Authenticator::from_remote`]), refreshed in the background and fetched again when a
//! token names a `kid` we do not know ([`Authenticator::authenticate`]; at most once per
//! [`RemoteJwks::min_refetch_interval`]). Every path ends in [`Authenticator::replace_jwks`],
//! which swaps the keys in place for every clone of the authenticator (rotation without a
//! restart); a failed refresh keeps the old keys.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;

use crate::jwks_remote::{self, FetchError, RemoteJwks};
use crate::principal::{Principal, Role};
use crate::verified::VerifiedTokens;

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
    // A URL is not a variant: it needs fetching (async, retried, refreshed), which
    // `load` does not do. See `RemoteJwks` and `Authenticator::from_remote`.
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
    #[error("fetching the JWKS from {url} failed ({attempts} attempts over {waited:.1?})")]
    FetchJwks {
        url: String,
        attempts: u32,
        waited: Duration,
        #[source]
        source: FetchError,
    },
    #[error("{url} is https: JWKS_CA_FILE must name the CA certificates its server's certificate is checked against")]
    JwksCaMissing { url: String },
    #[error("reading the JWKS CA certificates {path}")]
    JwksCa {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the JWKS from {url} is unusable")]
    RemoteJwks {
        url: String,
        #[source]
        source: Box<AuthSetupError>,
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
    remote: Option<Remote>,
    /// Tokens whose signature and claims were checked against the keys held now.
    verified: VerifiedTokens,
}

/// The provider the keys come from, when they come from one.
struct Remote {
    config: RemoteJwks,
    /// When a fetch for an unknown kid last started. Also serialises those fetches: callers
    /// that queue behind one find its keys instead of fetching again.
    last_kid_fetch: tokio::sync::Mutex<Option<tokio::time::Instant>>,
    /// When the keys were last fetched successfully.
    last_success: std::sync::Mutex<tokio::time::Instant>,
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
        Self::build(jwks, policy, None)
    }

    fn build(
        jwks: &str,
        policy: TokenPolicy,
        remote: Option<Remote>,
    ) -> Result<Self, AuthSetupError> {
        let keys = parse_jwks(jwks, policy.algorithm)?;
        Ok(Self {
            inner: Arc::new(Inner {
                validation: policy.validation(),
                verified: VerifiedTokens::new(
                    crate::verified::DEFAULT_CAPACITY,
                    policy.leeway.as_secs(),
                ),
                policy,
                keys: RwLock::new(keys),
                remote,
            }),
        })
    }

    /// Fetches the JWKS from an identity provider, retrying (with backoff, up to
    /// [`RemoteJwks::startup_wait`]) while it is unreachable or answers an error, and
    /// starts the background refresh, which stops once every clone is dropped. A document
    /// that arrives but has no usable key fails at once: that is configuration, not a
    /// provider still starting.
    pub async fn from_remote(
        remote: RemoteJwks,
        policy: TokenPolicy,
    ) -> Result<Self, AuthSetupError> {
        let started = tokio::time::Instant::now();
        let mut attempts = 0;
        let mut backoff = Duration::from_millis(250);
        let jwks = loop {
            attempts += 1;
            match jwks_remote::fetch(&remote.url, remote.ca.as_ref(), remote.request_timeout).await
            {
                Ok(jwks) => break jwks,
                Err(source) => {
                    let waited = started.elapsed();
                    if waited + backoff > remote.startup_wait {
                        return Err(AuthSetupError::FetchJwks {
                            url: remote.url.to_string(),
                            attempts,
                            waited,
                            source,
                        });
                    }
                    tracing::warn!(url = %remote.url, error = %crate::error_chain(&source), attempts, "JWKS not available yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        let url = remote.url.to_string();
        let refresh_every = remote.refresh_every;
        let auth = Self::build(
            &jwks,
            policy,
            Some(Remote {
                config: remote,
                last_kid_fetch: tokio::sync::Mutex::new(None),
                last_success: std::sync::Mutex::new(tokio::time::Instant::now()),
            }),
        )
        .map_err(|source| AuthSetupError::RemoteJwks {
            url: url.clone(),
            source: Box::new(source),
        })?;
        tracing::info!(url = %url, kids = ?auth.kids(), "JWKS fetched");
        tokio::spawn(refresh_periodically(
            Arc::downgrade(&auth.inner),
            refresh_every,
        ));
        Ok(auth)
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
        let mut held = self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *held = keys;
        // Under the write lock: no validation against the old keys can land in the
        // cache after this.
        self.inner.verified.clear();
        drop(held);
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

    /// [`validate`](Self::validate), and when the keys come from a provider and the token
    /// names a `kid` we do not know, fetches the JWKS again (at most once per
    /// [`RemoteJwks::min_refetch_interval`]; concurrent callers share one fetch) and
    /// validates once more. What the extractor uses.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, TokenError> {
        match self.validate(token) {
            Err(TokenError::UnknownKid { kid }) if self.inner.remote.is_some() => {
                if self.fetch_for_unknown_kid(&kid).await {
                    self.validate(token)
                } else {
                    Err(TokenError::UnknownKid { kid })
                }
            }
            other => other,
        }
    }

    /// Whether `kid` is known after (perhaps) fetching.
    async fn fetch_for_unknown_kid(&self, kid: &str) -> bool {
        let Some(remote) = &self.inner.remote else {
            return false;
        };
        let mut last = remote.last_kid_fetch.lock().await;
        // Whoever held the lock before us may have fetched this very key.
        if self.knows(kid) {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < remote.config.min_refetch_interval) {
            return false;
        }
        *last = Some(tokio::time::Instant::now());
        match self.refresh_from(&remote.config).await {
            Ok(count) => tracing::info!(kid, keys = count, "JWKS fetched for an unknown kid"),
            Err(error) => {
                tracing::warn!(kid, error = %crate::error_chain(&error), "fetching the JWKS for an unknown kid failed; keeping the old keys")
            }
        }
        self.knows(kid)
    }

    async fn refresh_from(&self, remote: &RemoteJwks) -> Result<usize, AuthSetupError> {
        let fetched = tokio::time::Instant::now();
        let jwks = jwks_remote::fetch(&remote.url, remote.ca.as_ref(), remote.request_timeout)
            .await
            .map_err(|source| AuthSetupError::FetchJwks {
                url: remote.url.to_string(),
                attempts: 1,
                waited: fetched.elapsed(),
                source,
            })?;
        let count = self.replace_jwks(&jwks)?;
        if let Some(remote) = &self.inner.remote {
            *remote
                .last_success
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = tokio::time::Instant::now();
        }
        Ok(count)
    }

    /// After a failed refresh: drops the keys once none was fetched for longer than
    /// [`RemoteJwks::max_stale`], so a key the provider revoked while it could not be
    /// asked is not trusted for ever.
    fn expire_stale_keys(&self) {
        let Some(remote) = &self.inner.remote else {
            return;
        };
        let since = remote
            .last_success
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed();
        if since < remote.config.max_stale || self.kids().is_empty() {
            return;
        }
        let mut held = self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        held.clear();
        self.inner.verified.clear();
        drop(held);
        tracing::error!(
            stale_secs = since.as_secs(),
            "no JWKS fetched for longer than JWKS_MAX_STALE_SECS: the old keys are dropped and \
             tokens are refused until the identity provider answers"
        );
    }

    fn knows(&self, kid: &str) -> bool {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(kid)
    }

    /// Checks a compact JWS (without the `Bearer ` prefix) against the keys held now and
    /// returns who sent it. The same token seen again is answered from the verified
    /// tokens (`verified.rs`), its `exp` and `nbf` checked again.
    pub fn validate(&self, token: &str) -> Result<Principal, TokenError> {
        let digest = crate::verified::digest(token);
        if let Some(principal) = self.inner.verified.get(&digest) {
            return Ok(principal);
        }
        let header = jsonwebtoken::decode_header(token).map_err(TokenError::Header)?;
        let pinned = self.inner.policy.algorithm;
        if header.alg != pinned.jwt_algorithm() {
            return Err(TokenError::AlgorithmNotAllowed {
                found: format!("{:?}", header.alg),
                pinned,
            });
        }
        let kid = header.kid.ok_or(TokenError::MissingKid)?;
        let principal = {
            let keys = self
                .inner
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let key = keys
                .get(&kid)
                .ok_or_else(|| TokenError::UnknownKid { kid: kid.clone() })?;
            let claims = jsonwebtoken::decode::<Claims>(token, key, &self.inner.validation)
                .map_err(TokenError::Invalid)?
                .claims;
            let (expires, not_before) = (claims.exp, claims.nbf);
            let principal = claims.into_principal()?;
            // Still under the read lock: a key replacement clears after this, not before.
            self.inner
                .verified
                .put(digest, &principal, expires, not_before);
            principal
        };
        Ok(principal)
    }
}

/// The background refresh: holds the authenticator only while fetching, so dropping the
/// last clone ends it at the next tick.
async fn refresh_periodically(inner: Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let auth = Authenticator { inner };
        let Some(remote) = &auth.inner.remote else {
            return;
        };
        match auth.refresh_from(&remote.config).await {
            Ok(count) => tracing::debug!(keys = count, "JWKS refreshed"),
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), "refreshing the JWKS failed; keeping the old keys");
                auth.expire_stale_keys();
            }
        }
    }
}

/// The claims we read beyond those jsonwebtoken validates (`iss`, `aud`, `exp`, `nbf`).
#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Checked by jsonwebtoken (required); kept for re-checking a verified token.
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
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
