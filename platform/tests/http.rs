//! Drives a small router built from the platform's extractors and middleware, in process
//! (`tower::ServiceExt::oneshot`), the way a service uses them.

// Helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRef;
use axum::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use platform::{
    Authenticator, CorrelationId, DevKeys, Json, Metrics, Principal, Readiness, Role, TokenPolicy,
    CORRELATION_ID_HEADER, DEV_AUDIENCE, DEV_ISSUER, MAX_BODY_BYTES,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

#[derive(Clone)]
struct AppState {
    authenticator: Authenticator,
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.authenticator.clone()
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Deposit {
    user_id: Uuid,
    amount: i64,
}

async fn whoami(principal: Principal) -> Json<Value> {
    Json(json!({ "sub": principal.subject, "roles": principal.roles }))
}

async fn maybe_whoami(principal: Option<Principal>) -> Json<Value> {
    Json(json!({ "sub": principal.map(|p| p.subject) }))
}

async fn deposit(Json(body): Json<Deposit>) -> (StatusCode, Json<Deposit>) {
    (StatusCode::CREATED, Json(body))
}

async fn correlation(id: CorrelationId) -> String {
    id.into_string()
}

struct Fixture {
    keys: DevKeys,
    app: Router,
    metrics: Metrics,
}

fn fixture_with(readiness: Readiness) -> Fixture {
    let keys = DevKeys::generate().unwrap();
    let authenticator = keys
        .authenticator(TokenPolicy::new(DEV_ISSUER, DEV_AUDIENCE))
        .unwrap();
    let metrics = Metrics::new();
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/maybe", get(maybe_whoami))
        .route("/users/{id}/deposits", post(deposit))
        .route("/correlation", get(correlation))
        .with_state(AppState { authenticator })
        .merge(readiness.router())
        .merge(metrics.router())
        .fallback(platform::not_found);
    let app = platform::observe(app, &metrics);
    Fixture { keys, app, metrics }
}

fn fixture() -> Fixture {
    fixture_with(Readiness::new())
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn content_type(&self) -> &str {
        self.headers[CONTENT_TYPE].to_str().unwrap()
    }

    /// Asserts a problem+json answer and returns its body.
    fn problem(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status);
        assert_eq!(self.content_type(), "application/problem+json");
        let body = self.json();
        assert_eq!(body["code"], code);
        assert_eq!(body["status"], status.as_u16());
        assert_eq!(body["type"], format!("https://example.com/problems/{code}"));
        body
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

fn get_with_token(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: Uuid) -> Value {
    let now = now();
    json!({
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "roles": ["user"],
    })
}

async fn assert_rejected(f: &Fixture, token: &str) {
    let answer = send(&f.app, get_with_token("/whoami", token)).await;
    answer.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        answer.headers[WWW_AUTHENTICATE],
        r#"Bearer error="invalid_token""#
    );
}

// ---- authentication ----

#[tokio::test]
async fn a_valid_token_yields_the_principal() {
    let f = fixture();
    let sub = Uuid::now_v7();
    let token = f
        .keys
        .mint(
            sub,
            &[Role::User, Role::Auditor],
            Duration::from_secs(60),
            DEV_ISSUER,
            DEV_AUDIENCE,
        )
        .unwrap();
    let answer = send(&f.app, get_with_token("/whoami", &token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type(), "application/json");
    assert_eq!(
        answer.json(),
        json!({ "sub": sub, "roles": ["user", "auditor"] })
    );
}

#[tokio::test]
async fn foreign_roles_are_ignored_and_keycloak_realm_roles_count() {
    let f = fixture();
    let sub = Uuid::now_v7();
    let mut c = claims(sub);
    c["roles"] = json!(["offline_access", "service"]);
    c["realm_access"] = json!({ "roles": ["admin", "uma_authorization"] });
    let answer = send(&f.app, get_with_token("/whoami", &f.keys.sign(&c).unwrap())).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["roles"], json!(["admin", "service"]));
}

#[tokio::test]
async fn a_missing_header_gets_a_bare_bearer_challenge() {
    let f = fixture();
    let answer = send(&f.app, Request::get("/whoami").body(Body::empty()).unwrap()).await;
    answer.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(answer.headers[WWW_AUTHENTICATE], "Bearer");

    let basic = Request::get("/whoami")
        .header(AUTHORIZATION, "Basic dXNlcjpwdw==")
        .body(Body::empty())
        .unwrap();
    let answer = send(&f.app, basic).await;
    answer.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(answer.headers[WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn optional_principal_allows_anonymous_but_not_bad_tokens() {
    let f = fixture();
    let answer = send(&f.app, Request::get("/maybe").body(Body::empty()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({ "sub": null }));
    let answer = send(&f.app, get_with_token("/maybe", "garbage")).await;
    answer.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn an_expired_token_is_rejected() {
    let f = fixture();
    let mut c = claims(Uuid::now_v7());
    c["iat"] = json!(now() - 600);
    c["nbf"] = json!(now() - 600);
    c["exp"] = json!(now() - 60);
    assert_rejected(&f, &f.keys.sign(&c).unwrap()).await;
}

#[tokio::test]
async fn a_token_not_yet_valid_is_rejected() {
    let f = fixture();
    let mut c = claims(Uuid::now_v7());
    c["nbf"] = json!(now() + 60);
    assert_rejected(&f, &f.keys.sign(&c).unwrap()).await;
}

#[tokio::test]
async fn a_token_within_the_leeway_is_accepted() {
    let f = fixture();
    let mut c = claims(Uuid::now_v7());
    c["nbf"] = json!(now() + 2);
    let answer = send(&f.app, get_with_token("/whoami", &f.keys.sign(&c).unwrap())).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_issuer_or_audience_is_rejected() {
    let f = fixture();
    let mut c = claims(Uuid::now_v7());
    c["iss"] = json!("https://evil.example/");
    assert_rejected(&f, &f.keys.sign(&c).unwrap()).await;

    let mut c = claims(Uuid::now_v7());
    c["aud"] = json!("another-api");
    assert_rejected(&f, &f.keys.sign(&c).unwrap()).await;
}

#[tokio::test]
async fn missing_required_claims_are_rejected() {
    let f = fixture();
    for claim in ["exp", "iss", "aud", "sub"] {
        let mut c = claims(Uuid::now_v7());
        c.as_object_mut().unwrap().remove(claim);
        assert_rejected(&f, &f.keys.sign(&c).unwrap()).await;
    }
}

#[tokio::test]
async fn a_subject_that_is_not_a_uuid_is_rejected() {
    let f = fixture();
    let mut c = claims(Uuid::now_v7());
    c["sub"] = json!("alice");
    assert_rejected(&f, &f.keys.sign(&c).unwrap()).await;
}

#[tokio::test]
async fn an_unknown_kid_is_rejected() {
    let f = fixture();
    let stranger = DevKeys::generate().unwrap();
    assert_rejected(&f, &stranger.sign(&claims(Uuid::now_v7())).unwrap()).await;
}

#[tokio::test]
async fn a_bad_signature_is_rejected() {
    let f = fixture();
    // The trusted kid in the header, signed by another key.
    let stranger = DevKeys::generate().unwrap();
    let forged = stranger.sign(&claims(Uuid::now_v7())).unwrap();
    let genuine = f.keys.sign(&claims(Uuid::now_v7())).unwrap();
    let genuine_header = genuine.split('.').next().unwrap();
    let (_, rest) = forged.split_once('.').unwrap();
    assert_rejected(&f, &format!("{genuine_header}.{rest}")).await;

    // A genuine token whose payload was changed.
    let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    let mut c = claims(Uuid::now_v7());
    c["roles"] = json!(["admin"]);
    parts[1] = URL_SAFE_NO_PAD.encode(c.to_string());
    assert_rejected(&f, &parts.join(".")).await;
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let f = fixture();
    let header = URL_SAFE_NO_PAD
        .encode(json!({ "alg": "none", "typ": "JWT", "kid": f.keys.kid() }).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims(Uuid::now_v7()).to_string());
    assert_rejected(&f, &format!("{header}.{payload}.")).await;
    assert_rejected(&f, &format!("{header}.{payload}")).await;
}

#[tokio::test]
async fn hmac_tokens_are_rejected() {
    let f = fixture();
    // The classic confusion attack: HS256 keyed with the public key.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(f.keys.kid().to_owned());
    let jwk = f.keys.jwk();
    let public_key = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let token = jsonwebtoken::encode(
        &header,
        &claims(Uuid::now_v7()),
        &jsonwebtoken::EncodingKey::from_secret(&public_key),
    )
    .unwrap();
    assert_rejected(&f, &token).await;
}

#[tokio::test]
async fn garbage_and_empty_tokens_are_rejected() {
    let f = fixture();
    assert_rejected(&f, "not.a.jwt").await;
    assert_rejected(&f, "").await;
}

#[tokio::test]
async fn rotated_keys_take_effect_for_every_clone() {
    let f = fixture();
    let next = DevKeys::generate().unwrap();
    let sub = Uuid::now_v7();
    let token = next
        .mint(
            sub,
            &[Role::Service],
            Duration::from_secs(60),
            DEV_ISSUER,
            DEV_AUDIENCE,
        )
        .unwrap();
    let authenticator = f
        .keys
        .authenticator(TokenPolicy::new(DEV_ISSUER, DEV_AUDIENCE))
        .unwrap();
    let clone = authenticator.clone();
    assert!(clone.validate(&token).is_err());
    authenticator.replace_jwks(&next.jwks_json()).unwrap();
    assert_eq!(clone.validate(&token).unwrap().subject, sub);
}

// ---- bodies ----

fn post_json(content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::post(format!("/users/{}/deposits", Uuid::now_v7()));
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    request.body(body.into()).unwrap()
}

#[tokio::test]
async fn a_json_body_is_extracted_and_echoed() {
    let f = fixture();
    let user_id = Uuid::now_v7();
    let body = json!({ "user_id": user_id, "amount": 150 }).to_string();
    let answer = send(
        &f.app,
        post_json(Some("application/json; charset=utf-8"), body),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.content_type(), "application/json");
    assert_eq!(answer.json(), json!({ "user_id": user_id, "amount": 150 }));
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_415() {
    let f = fixture();
    let body = json!({ "user_id": Uuid::now_v7(), "amount": 1 }).to_string();
    let answer = send(&f.app, post_json(Some("text/plain"), body.clone())).await;
    answer.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let answer = send(&f.app, post_json(None, body)).await;
    answer.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let f = fixture();
    let big = format!(
        r#"{{"user_id":"{}","amount":1,"pad":"{}"}}"#,
        Uuid::now_v7(),
        "x".repeat(MAX_BODY_BYTES)
    );

    // Declared by Content-Length.
    let mut request = post_json(Some("application/json"), big.clone());
    request
        .headers_mut()
        .insert(CONTENT_LENGTH, big.len().into());
    send(&f.app, request)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");

    // Streamed without a length: cut off while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(4096)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let request = post_json(
        Some("application/json"),
        Body::from_stream(futures_util::stream::iter(chunks)),
    );
    send(&f.app, request)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_read() {
    let f = fixture();
    let head = format!(r#"{{"user_id":"{}","amount":1}}"#, Uuid::now_v7());
    let body = format!("{head}{}", " ".repeat(MAX_BODY_BYTES - head.len()));
    assert_eq!(body.len(), MAX_BODY_BYTES);
    let answer = send(&f.app, post_json(Some("application/json"), body)).await;
    assert_eq!(answer.status, StatusCode::CREATED);
}

#[tokio::test]
async fn malformed_or_mistyped_bodies_are_400() {
    let f = fixture();
    let id = Uuid::now_v7();
    for body in [
        "{".to_owned(),
        "".to_owned(),
        json!({ "user_id": id, "amount": "150" }).to_string(),
        json!({ "user_id": "not-a-uuid", "amount": 150 }).to_string(),
        json!({ "user_id": id }).to_string(),
        json!({ "user_id": id, "amount": 150, "admin": true }).to_string(),
    ] {
        let answer = send(&f.app, post_json(Some("application/json"), body)).await;
        answer.problem(StatusCode::BAD_REQUEST, "malformed_body");
    }
}

// ---- correlation ----

#[tokio::test]
async fn a_valid_correlation_id_is_used_and_echoed() {
    let f = fixture();
    let request = Request::get("/correlation")
        .header(CORRELATION_ID_HEADER, "cmd-42:abc")
        .body(Body::empty())
        .unwrap();
    let answer = send(&f.app, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, b"cmd-42:abc");
    assert_eq!(answer.headers[CORRELATION_ID_HEADER], "cmd-42:abc");
}

#[tokio::test]
async fn a_missing_or_invalid_correlation_id_is_replaced_by_a_uuid_v7() {
    let f = fixture();
    for sent in [None, Some("has spaces"), Some(&*"x".repeat(129))] {
        let mut request = Request::get("/correlation");
        if let Some(sent) = sent {
            request = request.header(CORRELATION_ID_HEADER, sent);
        }
        let answer = send(&f.app, request.body(Body::empty()).unwrap()).await;
        let echoed = answer.headers[CORRELATION_ID_HEADER].to_str().unwrap();
        assert_eq!(echoed.as_bytes(), answer.body, "handler and header agree");
        assert_eq!(Uuid::parse_str(echoed).unwrap().get_version_num(), 7);
    }
}

#[tokio::test]
async fn problems_carry_the_correlation_id_too() {
    let f = fixture();
    let request = Request::get("/nowhere")
        .header(CORRELATION_ID_HEADER, "trace-me")
        .body(Body::empty())
        .unwrap();
    let answer = send(&f.app, request).await;
    answer.problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(answer.headers[CORRELATION_ID_HEADER], "trace-me");
}

// ---- metrics ----

#[tokio::test]
async fn metrics_render_the_latency_histogram_by_route() {
    let f = fixture();
    let body = json!({ "user_id": Uuid::now_v7(), "amount": 1 }).to_string();
    send(&f.app, post_json(Some("application/json"), body)).await;
    send(
        &f.app,
        Request::get("/nowhere").body(Body::empty()).unwrap(),
    )
    .await;

    let answer = send(
        &f.app,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer
        .content_type()
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(answer.body).unwrap();
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
    assert!(text.contains(r#"http_request_duration_seconds_count{method="POST",route="/users/{id}/deposits",status="201"} 1"#), "{text}");
    assert!(
        text.contains(
            r#"http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(f
        .metrics
        .render()
        .unwrap()
        .contains("http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn service_metrics_share_the_registry() {
    let f = fixture();
    let appends = platform::prometheus_client::metrics::counter::Counter::<u64>::default();
    f.metrics
        .register("event_appends", "Events appended", appends.clone());
    appends.inc_by(3);
    let answer = send(
        &f.app,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(String::from_utf8(answer.body)
        .unwrap()
        .contains("event_appends_total 3"));
}

#[tokio::test]
async fn a_watched_pool_is_sampled() {
    let metrics = Metrics::new();
    metrics.watch_pool("reads", || Some((5, 2, 8)));
    let line = r#"db_pool_connections{pool="reads",state="idle"} 2"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !metrics.render().unwrap().contains(line) {
        assert!(std::time::Instant::now() < deadline, "never sampled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = metrics.render().unwrap();
    assert!(text.contains(r#"db_pool_connections{pool="reads",state="open"} 5"#));
    assert!(text.contains(r#"db_pool_connections{pool="reads",state="max"} 8"#));
}

// ---- health ----

#[tokio::test]
async fn liveness_is_always_200() {
    let f = fixture_with(Readiness::new().with_check("mariadb", || async { Err::<(), _>("down") }));
    let answer = send(
        &f.app,
        Request::get("/health/live").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type(), "application/json");
    assert_eq!(answer.json()["status"], "live");
}

#[tokio::test]
async fn readiness_is_200_when_every_check_passes() {
    let f = fixture_with(
        Readiness::new()
            .with_check("mariadb", || async { Ok::<(), std::io::Error>(()) })
            .with_check("rabbitmq", || async { Ok::<(), std::io::Error>(()) }),
    );
    let answer = send(
        &f.app,
        Request::get("/health/ready").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({ "status": "ready", "checks": { "mariadb": "ok", "rabbitmq": "ok" } })
    );
}

#[tokio::test]
async fn readiness_is_503_naming_the_failing_dependency() {
    let f = fixture_with(
        Readiness::new()
            .with_check("mariadb", || async { Ok::<(), std::io::Error>(()) })
            .with_check("rabbitmq", || async {
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "refused",
                ))
            }),
    );
    let answer = send(
        &f.app,
        Request::get("/health/ready").body(Body::empty()).unwrap(),
    )
    .await;
    let body = answer.problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(answer.headers.contains_key(RETRY_AFTER));
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("rabbitmq") && !detail.contains("mariadb"));
    assert!(!detail.contains("refused"), "causes stay in the log");
}

#[tokio::test]
async fn a_check_that_never_answers_counts_as_failed() {
    let f = fixture_with(
        Readiness::new()
            .with_timeout(Duration::from_millis(20))
            .with_check("projection", || {
                std::future::pending::<Result<(), std::io::Error>>()
            }),
    );
    let answer = send(
        &f.app,
        Request::get("/health/ready").body(Body::empty()).unwrap(),
    )
    .await;
    answer.problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

// ---- dev keys on disk ----

#[tokio::test]
async fn tokens_minted_from_the_dev_directory_are_accepted_via_the_jwks_file() {
    let dir = std::env::temp_dir().join(format!("platform-http-{}", Uuid::new_v4()));
    let keys = DevKeys::load_or_create(&dir).unwrap();
    let authenticator = Authenticator::from_source(
        &platform::JwksSource::File(dir.join(platform::DEV_JWKS_FILE)),
        TokenPolicy::new(DEV_ISSUER, DEV_AUDIENCE),
    )
    .unwrap();
    let sub = Uuid::now_v7();
    let token = DevKeys::load_or_create(&dir)
        .unwrap()
        .mint(
            sub,
            &[Role::Admin],
            Duration::from_secs(60),
            DEV_ISSUER,
            DEV_AUDIENCE,
        )
        .unwrap();
    assert_eq!(authenticator.kids(), vec![keys.kid().to_owned()]);
    assert_eq!(authenticator.validate(&token).unwrap().subject, sub);
    std::fs::remove_dir_all(&dir).unwrap();
}
