//! `query_api::run` as `main` calls it: configuration parsed like flags and environment,
//! a real listener on port 0, HTTP over TCP, graceful shutdown.

use std::str::FromStr;

use clap::Parser;
use platform::Role;
use sqlx::mysql::MySqlConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::support::{set_checkpoint, test_database};

async fn http_get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn run_serves_the_views_until_shutdown() {
    let db = test_database().await;
    let owner = db.pool(1).await;
    set_checkpoint(&owner, 12).await;
    // The test database's URL: DATABASE_URL's account, this database.
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| event_store::testing::DEFAULT_DATABASE_URL.to_owned());
    MySqlConnectOptions::from_str(&base).unwrap();
    let (server, _) = base.rsplit_once('/').unwrap();
    let url = format!("{server}/{}", db.name);

    let dir = std::env::temp_dir().join(format!("query-api-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = platform::DevKeys::generate().unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, keys.jwks_json()).unwrap();
    let config = query_api::Config::try_parse_from([
        "query-api",
        "--database-url",
        &url,
        "--jwks-file",
        jwks.to_str().unwrap(),
        "--dev-dir",
        dir.to_str().unwrap(),
    ])
    .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(query_api::run(listener, config, async {
        let _ = stopped.await;
    }));

    let live = http_get(addr, "/health/live", None).await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let ready = http_get(addr, "/health/ready", None).await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let token = keys
        .mint(
            Uuid::now_v7(),
            &[Role::Admin],
            std::time::Duration::from_secs(60),
            platform::DEV_ISSUER,
            platform::DEV_AUDIENCE,
        )
        .unwrap();
    let users = http_get(addr, "/api/v1/users", Some(&token)).await;
    assert!(users.starts_with("HTTP/1.1 200"), "{users}");
    assert!(
        users
            .to_ascii_lowercase()
            .contains("x-projection-position: 12"),
        "{users}"
    );
    let anonymous = http_get(addr, "/api/v1/users", None).await;
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
