//! `JWKS_URL`: the keys come from a real HTTP server on a loopback port that serves a JWKS
//! the way an identity provider does, and changes it (rotation) or fails (outage) on cue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use clap::Parser;
use platform::{
    AuthArgs, AuthSetupError, Authenticator, DevKeys, FetchError, Principal, Role, TokenError,
    DEV_AUDIENCE, DEV_ISSUER,
};
use tokio::net::TcpListener;
use tower::ServiceExt;
use uuid::Uuid;

const CERTS_PATH: &str = "/realms/ledger/protocol/openid-connect/certs";

/// What the provider answers next, and how often it was asked.
struct Provider {
    answers: Mutex<Vec<(StatusCode, String)>>,
    steady: Mutex<(StatusCode, String)>,
    hits: AtomicUsize,
}

impl Provider {
    fn serving(keys: &DevKeys) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(Vec::new()),
            steady: Mutex::new((StatusCode::OK, keys.jwks_json())),
            hits: AtomicUsize::new(0),
        })
    }

    fn rotate_to(&self, keys: &DevKeys) {
        *self.steady.lock().unwrap() = (StatusCode::OK, keys.jwks_json());
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn certs(State(provider): State<Arc<Provider>>) -> impl IntoResponse {
    provider.hits.fetch_add(1, Ordering::SeqCst);
    let queued = {
        let mut answers = provider.answers.lock().unwrap();
        (!answers.is_empty()).then(|| answers.remove(0))
    };
    let (status, body) = queued.unwrap_or_else(|| provider.steady.lock().unwrap().clone());
    (status, [("content-type", "application/json")], body)
}

/// Serves `provider` on 127.0.0.1:0 and returns the JWKS URL.
async fn start(provider: Arc<Provider>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(CERTS_PATH, get(certs))
        .with_state(provider);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}{CERTS_PATH}")
}

/// The service side, configured as a service's `Config` would be: flags (or env) parsed
/// by clap.
#[derive(Parser)]
struct Config {
    #[command(flatten)]
    auth: AuthArgs,
}

fn auth_args(url: &str, extra: &[&str]) -> AuthArgs {
    let mut args = vec!["svc", "--jwks-url", url];
    args.extend_from_slice(extra);
    Config::try_parse_from(args).unwrap().auth
}

/// Refreshes and unknown-kid fetches only when a test wants them.
const QUIET: &[&str] = &[
    "--jwks-refresh-secs",
    "3600",
    "--jwks-min-refetch-secs",
    "3600",
];

fn token(keys: &DevKeys, sub: Uuid) -> String {
    keys.mint(
        sub,
        &[Role::User],
        Duration::from_secs(300),
        DEV_ISSUER,
        DEV_AUDIENCE,
    )
    .unwrap()
}

/// The extractor as a handler sees it: 200 with the subject, or 401.
async fn whoami(authenticator: &Authenticator, token: &str) -> (StatusCode, String) {
    let app = Router::new()
        .route(
            "/me",
            get(|principal: Principal| async move { principal.subject.to_string() }),
        )
        .with_state(authenticator.clone());
    let response = app
        .oneshot(
            Request::get("/me")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn tokens_verify_against_the_keys_fetched_at_startup() {
    let keys = DevKeys::generate().unwrap();
    let provider = Provider::serving(&keys);
    let url = start(provider.clone()).await;

    let authenticator = auth_args(&url, QUIET).authenticator().await.unwrap();
    assert_eq!(authenticator.kids(), vec![keys.kid().to_owned()]);
    assert_eq!(provider.hits(), 1);

    let sub = Uuid::now_v7();
    assert_eq!(
        whoami(&authenticator, &token(&keys, sub)).await,
        (StatusCode::OK, sub.to_string())
    );
    let stranger = DevKeys::generate().unwrap();
    assert_eq!(
        whoami(&authenticator, &token(&stranger, sub)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let old = DevKeys::generate().unwrap();
    let provider = Provider::serving(&old);
    let url = start(provider.clone()).await;
    let authenticator = auth_args(&url, QUIET).authenticator().await.unwrap();

    // The provider rotates: only the new key is published, and tokens are signed with it.
    let new = DevKeys::generate().unwrap();
    provider.rotate_to(&new);
    let sub = Uuid::now_v7();
    let fresh = token(&new, sub);

    // Many requests with the new kid at once: one fetch serves them all.
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let authenticator = authenticator.clone();
            let fresh = fresh.clone();
            tokio::spawn(async move { whoami(&authenticator, &fresh).await })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), (StatusCode::OK, sub.to_string()));
    }
    assert_eq!(provider.hits(), 2, "startup and one fetch for the new kid");
    assert_eq!(authenticator.kids(), vec![new.kid().to_owned()]);

    // The retired key is gone, and asking about it again does not fetch within the interval.
    assert!(matches!(
        authenticator.authenticate(&token(&old, sub)).await,
        Err(TokenError::UnknownKid { .. })
    ));
    assert_eq!(provider.hits(), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_interval() {
    let keys = DevKeys::generate().unwrap();
    let provider = Provider::serving(&keys);
    let url = start(provider.clone()).await;
    let authenticator = auth_args(&url, QUIET).authenticator().await.unwrap();

    let forged: Vec<String> = (0..50)
        .map(|_| token(&DevKeys::generate().unwrap(), Uuid::now_v7()))
        .collect();
    let attempts: Vec<_> = forged
        .into_iter()
        .map(|t| {
            let authenticator = authenticator.clone();
            tokio::spawn(async move { authenticator.authenticate(&t).await })
        })
        .collect();
    for attempt in attempts {
        assert!(matches!(
            attempt.await.unwrap(),
            Err(TokenError::UnknownKid { .. })
        ));
    }
    assert_eq!(provider.hits(), 2, "startup and one fetch for all 50 kids");
    // The real key still works throughout.
    assert!(authenticator
        .authenticate(&token(&keys, Uuid::now_v7()))
        .await
        .is_ok());
}

#[tokio::test]
async fn the_background_refresh_picks_up_new_keys() {
    let old = DevKeys::generate().unwrap();
    let provider = Provider::serving(&old);
    let url = start(provider.clone()).await;
    let authenticator = auth_args(
        &url,
        &[
            "--jwks-refresh-secs",
            "1",
            "--jwks-min-refetch-secs",
            "3600",
        ],
    )
    .authenticator()
    .await
    .unwrap();

    let new = DevKeys::generate().unwrap();
    provider.rotate_to(&new);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while authenticator.kids() != vec![new.kid().to_owned()] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refresh never brought the new key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Found by the refresh, not by an unknown-kid fetch: validate never fetches.
    assert!(authenticator.validate(&token(&new, Uuid::now_v7())).is_ok());
}

#[tokio::test]
async fn a_failing_refresh_keeps_the_old_keys() {
    let keys = DevKeys::generate().unwrap();
    let provider = Provider::serving(&keys);
    let url = start(provider.clone()).await;
    let authenticator = auth_args(
        &url,
        &[
            "--jwks-refresh-secs",
            "1",
            "--jwks-min-refetch-secs",
            "3600",
        ],
    )
    .authenticator()
    .await
    .unwrap();

    *provider.steady.lock().unwrap() = (StatusCode::SERVICE_UNAVAILABLE, "down".into());
    let before = provider.hits();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while provider.hits() < before + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refresh happened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(authenticator.kids(), vec![keys.kid().to_owned()]);
    assert!(authenticator
        .authenticate(&token(&keys, Uuid::now_v7()))
        .await
        .is_ok());
}

/// Keys kept after failed refreshes have a bounded life: a provider that stays down
/// longer than JWKS_MAX_STALE_SECS takes its old keys' trust with it (a key it revoked in
/// the meantime is not trusted for ever).
#[tokio::test]
async fn keys_kept_after_failed_refreshes_expire() {
    let keys = DevKeys::generate().unwrap();
    let provider = Provider::serving(&keys);
    let url = start(provider.clone()).await;
    let authenticator = auth_args(
        &url,
        &[
            "--jwks-refresh-secs",
            "1",
            "--jwks-min-refetch-secs",
            "3600",
            "--jwks-max-stale-secs",
            "2",
        ],
    )
    .authenticator()
    .await
    .unwrap();
    let token = token(&keys, Uuid::now_v7());
    assert_eq!(whoami(&authenticator, &token).await.0, StatusCode::OK);

    *provider.steady.lock().unwrap() = (StatusCode::SERVICE_UNAVAILABLE, "down".into());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !authenticator.kids().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stale keys were kept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        whoami(&authenticator, &token).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The provider back: its keys are trusted again at the next refresh.
    provider.rotate_to(&keys);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while authenticator.kids().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the keys never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(whoami(&authenticator, &token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn startup_retries_a_provider_that_is_still_starting() {
    let keys = DevKeys::generate().unwrap();
    let provider = Provider::serving(&keys);
    provider.answers.lock().unwrap().extend([
        (StatusCode::SERVICE_UNAVAILABLE, "starting".to_owned()),
        (StatusCode::NOT_FOUND, "realm not imported yet".to_owned()),
    ]);
    let url = start(provider.clone()).await;
    let authenticator = auth_args(&url, &["--jwks-startup-wait-secs", "30"])
        .authenticator()
        .await
        .unwrap();
    assert_eq!(provider.hits(), 3);
    assert_eq!(authenticator.kids(), vec![keys.kid().to_owned()]);
}

#[tokio::test]
async fn an_unreachable_url_fails_startup_with_a_clear_error() {
    // A port nobody listens on: bound, then released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}{CERTS_PATH}");
    let error = auth_args(&url, &["--jwks-startup-wait-secs", "1"])
        .authenticator()
        .await
        .unwrap_err();
    match &error {
        AuthSetupError::FetchJwks {
            url: named,
            attempts,
            source: FetchError::Connect { .. },
            ..
        } => {
            assert_eq!(named, &url);
            assert!(*attempts >= 1);
        }
        other => panic!("expected a connect failure, got {other:?}"),
    }
    // What the operator reads: the URL and the cause, in one line.
    let text = anyhow::Error::from(error).to_string();
    assert!(text.contains(&url), "{text}");
}

#[tokio::test]
async fn a_provider_that_keeps_failing_is_reported_with_its_status() {
    let keys = DevKeys::generate().unwrap();
    let provider = Provider::serving(&keys);
    *provider.steady.lock().unwrap() = (StatusCode::NOT_FOUND, "no such realm".into());
    let url = start(provider.clone()).await;
    let error = auth_args(&url, &["--jwks-startup-wait-secs", "1"])
        .authenticator()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            AuthSetupError::FetchJwks {
                source: FetchError::Status { status: 404 },
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_document_without_usable_keys_fails_at_once() {
    let keys = DevKeys::generate().unwrap();
    let provider = Provider::serving(&keys);
    *provider.steady.lock().unwrap() = (StatusCode::OK, r#"{"keys":[]}"#.into());
    let url = start(provider.clone()).await;
    let error = auth_args(&url, &["--jwks-startup-wait-secs", "30"])
        .authenticator()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AuthSetupError::RemoteJwks { source, .. }
            if matches!(**source, AuthSetupError::NoUsableKey { .. })),
        "{error:?}"
    );
    assert_eq!(provider.hits(), 1, "configuration errors are not retried");
}

/// A CA and a certificate for `localhost` it signed, made with openssl in `dir`.
fn certificate(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl (the openssl package) runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("leaf.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

#[tokio::test]
async fn an_https_provider_is_trusted_through_the_configured_ca_only() {
    let dir = std::env::temp_dir().join(format!("platform-jwks-tls-{}", Uuid::new_v4()));
    let (ca, cert, key) = certificate(&dir);
    let keys = DevKeys::generate().unwrap();
    let provider = Provider::serving(&keys);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .route(CERTS_PATH, get(certs))
        .with_state(provider.clone());
    tokio::spawn(platform::serve_with(
        listener,
        app,
        std::future::pending(),
        platform::ServeOptions {
            tls: Some(platform::Tls::from_pem_files(&cert, &key).unwrap()),
            ..platform::ServeOptions::default()
        },
    ));
    let url = format!("https://localhost:{port}{CERTS_PATH}");

    let authenticator = auth_args(&url, &["--jwks-ca-file", ca.to_str().unwrap()])
        .authenticator()
        .await
        .unwrap();
    let sub = Uuid::now_v7();
    assert_eq!(
        whoami(&authenticator, &token(&keys, sub)).await,
        (StatusCode::OK, sub.to_string())
    );

    // Without a CA: refused before any fetch.
    let missing = auth_args(&url, &[]).authenticator().await.unwrap_err();
    assert!(
        matches!(missing, AuthSetupError::JwksCaMissing { .. }),
        "{missing}"
    );
    // Another CA (the server's own certificate is no CA): the handshake fails.
    let wrong = auth_args(
        &url,
        &[
            "--jwks-ca-file",
            cert.to_str().unwrap(),
            "--jwks-startup-wait-secs",
            "1",
        ],
    )
    .authenticator()
    .await
    .unwrap_err();
    assert!(matches!(wrong, AuthSetupError::FetchJwks { .. }), "{wrong}");
    std::fs::remove_dir_all(&dir).unwrap();
}
