//! What ships: `command_api::run` with a parsed `Config` on a real TCP listener bound to
//! port 0, spoken to in plain HTTP/1.1.

use std::collections::HashMap;
use std::net::SocketAddr;

use clap::Parser;
use command_api::Config;
use platform::Role;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::support::spawn_app;

struct Http {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// One request on its own connection (`Connection: close`, so the body ends with it).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Http {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect::<HashMap<_, _>>();
    assert!(
        !headers.contains_key("transfer-encoding"),
        "this client reads Content-Length bodies only"
    );
    Http {
        status,
        headers,
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn the_shipped_server_serves_commands_health_metrics_and_its_openapi_document() {
    // The database and the token keys of a test app; the server itself is built by `run`.
    let app = spawn_app().await;
    let dir = std::env::temp_dir().join(format!("command-api-test-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, app.tokens.jwks_json()).unwrap();
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| event_store::testing::DEFAULT_DATABASE_URL.to_owned());
    let (server, _) = base.rsplit_once('/').unwrap();
    let url = format!("{server}/{}", app.db.name);
    let config = Config::try_parse_from([
        "command-api",
        "--database-url",
        &url,
        "--jwks-file",
        jwks.to_str().unwrap(),
        "--dev-dir",
        dir.join("dev").to_str().unwrap(),
        "--currencies",
        "EUR,CHF",
    ])
    .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(command_api::run(listener, config, async {
        let _ = stopped.await;
    }));

    let live = http(addr, "GET", "/health/live", &[], "").await;
    assert_eq!(live.status, 200);
    let ready = http(addr, "GET", "/health/ready", &[], "").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let ready: Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(ready["checks"]["mariadb"], "ok");

    // No keys configured: the dev secrets were made in the dev directory.
    assert!(dir
        .join("dev")
        .join(command_api::DEV_MASTER_KEYS_FILE)
        .exists());
    assert!(dir
        .join("dev")
        .join(command_api::DEV_BLIND_INDEX_KEY_FILE)
        .exists());

    let token = app.token(Role::Admin, Uuid::now_v7());
    let auth = format!("Bearer {token}");
    let body = json!({"email": "tcp@example.com", "display_name": "Over TCP"}).to_string();
    let created = http(
        addr,
        "POST",
        "/api/v1/users",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("x-correlation-id", "tcp-1"),
        ],
        &body,
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.headers["content-type"], "application/json");
    assert_eq!(created.headers["etag"], "\"1\"");
    assert_eq!(created.headers["x-correlation-id"], "tcp-1");
    let user: Value = serde_json::from_str(&created.body).unwrap();
    assert_eq!(created.headers["x-position"], user["position"].to_string());

    // The configured currencies hold: CHF yes, USD no.
    let deposit = |currency: &str| {
        json!({"type": "deposit", "user_id": user["user_id"], "amount": 5, "currency": currency})
            .to_string()
    };
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let chf = http(
        addr,
        "POST",
        "/api/v1/transactions",
        &headers,
        &deposit("CHF"),
    )
    .await;
    assert_eq!(chf.status, 201, "{}", chf.body);
    let usd = http(
        addr,
        "POST",
        "/api/v1/transactions",
        &headers,
        &deposit("USD"),
    )
    .await;
    assert_eq!(usd.status, 422);
    assert_eq!(usd.headers["content-type"], "application/problem+json");
    let usd: Value = serde_json::from_str(&usd.body).unwrap();
    assert_eq!(usd["errors"][0]["code"], "unsupported_currency");

    let metrics = http(addr, "GET", "/metrics", &[], "").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .body
        .contains(r#"command_appends_total{command="register_user"} 1"#));
    assert!(metrics
        .body
        .contains(r#"command_appends_total{command="deposit"} 1"#));
    assert!(metrics.body.contains("command_version_conflicts"));
    assert!(metrics.body.contains("command_idempotent_replays"));
    assert!(metrics.body.contains("http_request_duration_seconds"));
    // The store's batches: the registration and the deposit, one event each.
    let sample = |name: &str| -> f64 {
        metrics
            .body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {}", metrics.body))
    };
    assert_eq!(sample("append_batch_appends_sum"), 2.0);
    assert_eq!(sample("append_batch_events_sum"), 2.0);
    assert!(sample("append_batch_duration_seconds_count") >= 1.0);

    let openapi = http(addr, "GET", "/openapi.json", &[], "").await;
    assert_eq!(openapi.status, 200);
    let document: Value = serde_json::from_str(&openapi.body).unwrap();
    let paths = &document["paths"];
    for (path, method) in [
        ("/api/v1/users", "post"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/users/{id}/deactivate", "post"),
        ("/api/v1/users/{id}/personal-data", "delete"),
        ("/api/v1/transactions", "post"),
        ("/api/v1/subscriptions", "post"),
        ("/api/v1/subscriptions", "get"),
        ("/api/v1/subscriptions/{name}", "get"),
        ("/api/v1/subscriptions/{name}", "delete"),
        ("/api/v1/subscriptions/{name}/pause", "post"),
        ("/api/v1/subscriptions/{name}/resume", "post"),
        ("/openapi.json", "get"),
        ("/health/live", "get"),
        ("/health/ready", "get"),
        ("/metrics", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{path} {method} missing");
    }
    assert_eq!(paths.as_object().unwrap().len(), 13);
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_service_refuses_to_start_with_settings_that_would_leak_or_lie() {
    let start = |bind: &'static str, args: &'static [&'static str]| async move {
        let mut argv = vec![
            "command-api",
            "--database-url",
            "mysql://nobody:x@127.0.0.1:1/none",
        ];
        argv.extend_from_slice(args);
        let config = Config::try_parse_from(argv).unwrap();
        let listener = TcpListener::bind(bind).await.unwrap();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            command_api::run(listener, config, std::future::pending()),
        )
        .await
        .expect("refused at once")
        .expect_err("refused")
        .to_string()
    };
    // Dev tokens with an identity provider, or on an address others reach.
    let with_idp = start(
        "127.0.0.1:0",
        &["--dev-tokens", "--jwks-url", "http://127.0.0.1:1/certs"],
    )
    .await;
    assert!(with_idp.contains("JWKS_URL"), "{with_idp}");
    let exposed = start("0.0.0.0:0", &["--dev-tokens"]).await;
    assert!(exposed.contains("loopback"), "{exposed}");
    // A request timeout that could cut off a command whose outcome is not known yet.
    let short = start(
        "127.0.0.1:0",
        &["--request-timeout-secs", "10", "--deadline-secs", "10"],
    )
    .await;
    assert!(short.contains("HTTP_REQUEST_TIMEOUT_SECS"), "{short}");
}
