//! Each refused token is refused for the reason it was built to show (the HTTP tests only
//! see the 401 they all share).

// Helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use platform::{Authenticator, DevKeys, Role, TokenError, TokenPolicy, DEV_AUDIENCE, DEV_ISSUER};
use serde_json::{json, Value};
use uuid::Uuid;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({
        "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": Uuid::now_v7(),
        "nbf": now(), "exp": now() + 300, "roles": ["user"],
    })
}

fn setup() -> (DevKeys, Authenticator) {
    let keys = DevKeys::generate().unwrap();
    let auth = keys
        .authenticator(TokenPolicy::new(DEV_ISSUER, DEV_AUDIENCE))
        .unwrap();
    (keys, auth)
}

fn invalid_kind(error: TokenError) -> ErrorKind {
    match error {
        TokenError::Invalid(e) => e.into_kind(),
        other => panic!("expected a validation failure, got {other:?}"),
    }
}

#[test]
fn expired() {
    let (keys, auth) = setup();
    let mut c = claims();
    c["exp"] = json!(now() - 60);
    let error = auth.validate(&keys.sign(&c).unwrap()).unwrap_err();
    assert_eq!(invalid_kind(error), ErrorKind::ExpiredSignature);
}

#[test]
fn not_yet_valid() {
    let (keys, auth) = setup();
    let mut c = claims();
    c["nbf"] = json!(now() + 60);
    let error = auth.validate(&keys.sign(&c).unwrap()).unwrap_err();
    assert_eq!(invalid_kind(error), ErrorKind::ImmatureSignature);
}

#[test]
fn wrong_issuer_and_audience() {
    let (keys, auth) = setup();
    let mut c = claims();
    c["iss"] = json!("other");
    assert_eq!(
        invalid_kind(auth.validate(&keys.sign(&c).unwrap()).unwrap_err()),
        ErrorKind::InvalidIssuer
    );
    let mut c = claims();
    c["aud"] = json!(["other", "more"]);
    assert_eq!(
        invalid_kind(auth.validate(&keys.sign(&c).unwrap()).unwrap_err()),
        ErrorKind::InvalidAudience
    );
    // An audience list that includes ours is fine.
    c["aud"] = json!(["other", DEV_AUDIENCE]);
    assert!(auth.validate(&keys.sign(&c).unwrap()).is_ok());
}

#[test]
fn forged_signature() {
    let (keys, auth) = setup();
    let genuine = keys.sign(&claims()).unwrap();
    let (head, _) = genuine.rsplit_once('.').unwrap();
    let stranger = DevKeys::generate().unwrap().sign(&claims()).unwrap();
    let (_, foreign_signature) = stranger.rsplit_once('.').unwrap();
    let error = auth
        .validate(&format!("{head}.{foreign_signature}"))
        .unwrap_err();
    assert_eq!(invalid_kind(error), ErrorKind::InvalidSignature);
}

#[test]
fn unknown_and_missing_kid() {
    let (_, auth) = setup();
    let stranger = DevKeys::generate().unwrap();
    let error = auth
        .validate(&stranger.sign(&claims()).unwrap())
        .unwrap_err();
    assert!(matches!(error, TokenError::UnknownKid { kid } if kid == stranger.kid()));

    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "EdDSA" }).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    let error = auth
        .validate(&format!("{header}.{payload}.AAAA"))
        .unwrap_err();
    assert!(matches!(error, TokenError::MissingKid));
}

#[test]
fn alg_none_cannot_even_be_read() {
    let (keys, auth) = setup();
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "kid": keys.kid() }).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    let error = auth.validate(&format!("{header}.{payload}.")).unwrap_err();
    assert!(matches!(error, TokenError::Header(_)), "{error:?}");
}

#[test]
fn other_algorithms_are_refused_before_any_key_is_used() {
    let (keys, auth) = setup();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(keys.kid().to_owned());
    let token = jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(b"k"),
    )
    .unwrap();
    let error = auth.validate(&token).unwrap_err();
    assert!(
        matches!(error, TokenError::AlgorithmNotAllowed { .. }),
        "{error:?}"
    );
}

#[test]
fn minted_tokens_carry_roles_and_an_id() {
    let (keys, auth) = setup();
    let sub = Uuid::now_v7();
    let token = keys
        .mint(
            sub,
            &[Role::Service],
            Duration::from_secs(30),
            DEV_ISSUER,
            DEV_AUDIENCE,
        )
        .unwrap();
    let principal = auth.validate(&token).unwrap();
    assert_eq!(
        (principal.subject, principal.roles),
        (sub, vec![Role::Service])
    );
    assert!(principal.token_id.is_some());
}

#[test]
fn an_rs256_deployment_ignores_ed25519_keys() {
    let keys = DevKeys::generate().unwrap();
    let policy = TokenPolicy::new(DEV_ISSUER, DEV_AUDIENCE)
        .with_algorithm(platform::SigningAlgorithm::RS256);
    assert!(matches!(
        Authenticator::from_jwks_json(&keys.jwks_json(), policy),
        Err(platform::AuthSetupError::NoUsableKey { .. })
    ));
}

#[test]
fn a_token_verified_before_is_refused_once_its_key_is_gone() {
    let (keys, auth) = setup();
    let token = keys.sign(&claims()).unwrap();
    auth.validate(&token).unwrap();
    auth.validate(&token).unwrap();
    let other = DevKeys::generate().unwrap();
    auth.replace_jwks(&other.jwks_json()).unwrap();
    assert!(matches!(
        auth.validate(&token),
        Err(TokenError::UnknownKid { .. })
    ));
}

#[test]
fn a_token_verified_before_still_expires() {
    let keys = DevKeys::generate().unwrap();
    let auth = keys
        .authenticator(TokenPolicy::new(DEV_ISSUER, DEV_AUDIENCE).with_leeway(Duration::ZERO))
        .unwrap();
    let mut c = claims();
    let exp = now() + 1;
    c["exp"] = json!(exp);
    let token = keys.sign(&c).unwrap();
    assert!(auth.validate(&token).is_ok());
    // Wait for the clock, not for a fixed time.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while now() <= exp && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let error = auth.validate(&token).unwrap_err();
    assert_eq!(invalid_kind(error), ErrorKind::ExpiredSignature);
}
