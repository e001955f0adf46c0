//! `spawn_app` and typed helpers: one fresh database and app per test.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ETAG};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use command_api::AppState;
use event_store::testing::TestDatabase;
use event_store::{EventStore, RecordedEvent, StoreOptions, StreamId};
use faults::FaultProxy;
use keyring::{BlindIndex, KeyStore, KeyStoreOptions, MasterKeys};
use ledger::{CurrencySet, LedgerEvent, User, UserId};
use platform::{DevKeys, Metrics, Role, TokenPolicy, DEV_AUDIENCE, DEV_ISSUER};
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

pub struct TestApp {
    pub db: Arc<TestDatabase>,
    pub router: Router,
    pub tokens: DevKeys,
    pub store: EventStore,
    pub master_key: [u8; 32],
    blind_index_key: [u8; 32],
}

pub fn random_key() -> [u8; 32] {
    let mut key = [0; 32];
    getrandom::getrandom(&mut key).unwrap();
    key
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|state| state).await
}

/// [`spawn_app`] with the state adjusted before the router is built.
pub async fn spawn_app_with(configure: impl FnOnce(AppState) -> AppState) -> TestApp {
    let db = TestDatabase::with_migrations(&[event_store::migrator(), keyring::migrator()]).await;
    let store = db.store().await;
    spawn_app_on(
        Arc::new(db),
        store,
        random_key(),
        random_key(),
        DevKeys::generate().unwrap(),
        configure,
    )
}

/// A [`FaultProxy`] to MariaDB and an app whose every connection goes through it, with
/// commands answered within `deadline`.
pub async fn spawn_app_behind_proxy(deadline: Duration) -> (TestApp, FaultProxy) {
    let db = TestDatabase::with_migrations(&[event_store::migrator(), keyring::migrator()]).await;
    let proxy = FaultProxy::to("127.0.0.1", db.options.get_port())
        .await
        .unwrap();
    let options = db.options.clone().host("127.0.0.1").port(proxy.port());
    let store = EventStore::connect_with(
        options,
        StoreOptions {
            append_deadline: deadline,
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let app = spawn_app_on(
        Arc::new(db),
        store,
        random_key(),
        random_key(),
        DevKeys::generate().unwrap(),
        |state| state,
    );
    (app, proxy)
}

/// An app on a database of its own on `server` (a private MariaDB the test kills or
/// pauses), with the store's limits as given.
pub async fn spawn_app_on_server(
    server: sqlx::mysql::MySqlConnectOptions,
    options: StoreOptions,
) -> TestApp {
    let db = TestDatabase::on_server(server, &[event_store::migrator(), keyring::migrator()]).await;
    let store = EventStore::connect_with(db.options.clone(), options)
        .await
        .unwrap();
    spawn_app_on(
        Arc::new(db),
        store,
        random_key(),
        random_key(),
        DevKeys::generate().unwrap(),
        |state| state,
    )
}

fn spawn_app_on(
    db: Arc<TestDatabase>,
    store: EventStore,
    master_key: [u8; 32],
    blind_index_key: [u8; 32],
    tokens: DevKeys,
    configure: impl FnOnce(AppState) -> AppState,
) -> TestApp {
    let keys = KeyStore::new(
        store.pool().clone(),
        MasterKeys::from_keys([(1, master_key)]).unwrap(),
    );
    let authenticator = tokens
        .authenticator(TokenPolicy::new(DEV_ISSUER, DEV_AUDIENCE))
        .unwrap();
    let state = AppState::new(
        store.clone(),
        keys,
        BlindIndex::new(blind_index_key),
        CurrencySet::default(),
        authenticator,
        Metrics::new(),
    );
    TestApp {
        router: command_api::router(configure(state)),
        db,
        tokens,
        store,
        master_key,
        blind_index_key,
    }
}

/// A request under construction.
pub struct Req {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Req {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    pub fn patch(path: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path)
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn token(self, token: &str) -> Self {
        self.header(AUTHORIZATION.as_str(), format!("Bearer {token}"))
    }

    pub fn json(self, body: Value) -> Self {
        self.raw("application/json", body.to_string().into_bytes())
    }

    pub fn raw(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers
            .push((CONTENT_TYPE.as_str().to_owned(), content_type.to_owned()));
        self.body = Some(body);
        self
    }

    pub fn idempotency_key(self, key: &str) -> Self {
        self.header("idempotency-key", key)
    }

    pub fn if_match(self, version: u64) -> Self {
        self.header("if-match", format!("\"{version}\""))
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// Asserts a success with a JSON body and returns the body.
    #[track_caller]
    pub fn ok(&self, status: StatusCode) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type(), "application/json");
        let body = self.json();
        // The headers carry the body's position (and version where one applies).
        assert_eq!(self.position(), body["position"].as_u64().unwrap());
        if let Some(version) = body.get("version") {
            assert_eq!(self.etag(), Some(version.as_u64().unwrap()));
        }
        body
    }

    /// Asserts a status only.
    #[track_caller]
    pub fn ok_status(&self, status: StatusCode) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
    }

    /// Asserts a problem+json answer with `code` and returns the body.
    #[track_caller]
    pub fn problem(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type(), "application/problem+json");
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["status"], status.as_u16());
        body
    }

    pub fn position(&self) -> u64 {
        self.headers["x-position"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn etag(&self) -> Option<u64> {
        let tag = self.headers.get(ETAG)?.to_str().unwrap();
        Some(tag.trim_matches('"').parse().unwrap())
    }
}

/// A user id and the token of that user.
pub struct Someone {
    pub id: Uuid,
    pub token: String,
}

impl TestApp {
    /// A second instance of the service on the same database, with its own event store
    /// (batcher, pool) and its own caches, as another process would have: the same keys.
    pub async fn replica(&self) -> TestApp {
        let store = self.db.store().await;
        spawn_app_on(
            self.db.clone(),
            store,
            self.master_key,
            self.blind_index_key,
            self.tokens.clone(),
            |state| state,
        )
    }

    pub fn token(&self, role: Role, sub: Uuid) -> String {
        self.tokens
            .mint(
                sub,
                &[role],
                Duration::from_secs(300),
                DEV_ISSUER,
                DEV_AUDIENCE,
            )
            .unwrap()
    }

    pub fn admin(&self) -> String {
        self.token(Role::Admin, Uuid::now_v7())
    }

    pub async fn send(&self, req: Req) -> Answer {
        let mut builder = Request::builder().method(req.method).uri(req.path);
        for (name, value) in req.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(req.body.map_or_else(Body::empty, Body::from))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.to_vec(),
        }
    }

    /// Registers a user as itself (role `user`), with a unique address.
    pub async fn someone(&self) -> Someone {
        let id = Uuid::now_v7();
        let token = self.token(Role::User, id);
        let answer = self
            .send(Req::post("/api/v1/users").token(&token).json(json!({
                "email": format!("{}@example.com", id.simple()),
                "display_name": "Someone",
            })))
            .await;
        answer.ok(StatusCode::CREATED);
        Someone { id, token }
    }

    pub async fn money(&self, token: &str, body: Value) -> Answer {
        self.send(Req::post("/api/v1/transactions").token(token).json(body))
            .await
    }

    pub async fn deposit(&self, token: &str, user: Uuid, amount: i64) -> Answer {
        self.money(
            token,
            json!({"type": "deposit", "user_id": user, "amount": amount, "currency": "EUR"}),
        )
        .await
    }

    pub async fn events(&self, user: Uuid) -> Vec<RecordedEvent> {
        let stream = StreamId::parse(UserId::from_uuid(user).stream_id()).unwrap();
        self.store.read_stream(&stream, 1, 10_000).await.unwrap()
    }

    /// The user as the log says: decoded with `ledger` and folded with `ledger::replay`.
    pub async fn replayed(&self, user: Uuid) -> User {
        let events: Vec<LedgerEvent> = self
            .events(user)
            .await
            .iter()
            .map(|e| ledger::decode(e.event_type.as_str(), e.schema_version, &e.data).unwrap())
            .collect();
        ledger::replay(&events)
    }

    /// A key store that has never seen a key: opens only what the database still holds.
    pub fn fresh_key_store(&self) -> KeyStore {
        KeyStore::with_options(
            self.store.pool().clone(),
            MasterKeys::from_keys([(1, self.master_key)]).unwrap(),
            KeyStoreOptions {
                cache_capacity: 0,
                ..KeyStoreOptions::default()
            },
        )
    }
}

/// The shipped `command-api` binary, as its own process, on a test app's database with
/// its keys and token keys. Killed (SIGKILL) when dropped.
pub struct Binary {
    pub addr: std::net::SocketAddr,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl TestApp {
    /// The URL of this app's database, as the owner, with `host:port` replaced by `via`
    /// when given (a proxy in front of MariaDB).
    pub fn database_url(&self, via: Option<std::net::SocketAddr>) -> String {
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| event_store::testing::DEFAULT_DATABASE_URL.to_owned());
        let (server, _) = base.rsplit_once('/').unwrap();
        let server = match via {
            None => server.to_owned(),
            Some(addr) => {
                let (credentials, _) = server.rsplit_once('@').unwrap();
                format!("{credentials}@{addr}")
            }
        };
        format!("{server}/{}", self.db.name)
    }

    /// Starts the binary with `env` on top of the app's settings and waits until it
    /// listens.
    pub fn start_binary(&self, env: &[(&str, &str)]) -> Binary {
        use base64::Engine;
        use std::io::BufRead;
        let encode = |key: &[u8; 32]| base64::engine::general_purpose::STANDARD.encode(key);
        let dir = std::env::temp_dir().join(format!("command-api-bin-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let jwks = dir.join("jwks.json");
        std::fs::write(&jwks, self.tokens.jwks_json()).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_command-api"));
        command
            .env_clear()
            .env("COMMAND_API_ADDR", "127.0.0.1:0")
            .env("DATABASE_URL", self.database_url(None))
            .env("MASTER_KEYS", format!("1:{}", encode(&self.master_key)))
            .env("BLIND_INDEX_KEY", encode(&self.blind_index_key))
            .env("JWKS_FILE", &jwks)
            .env("DEV_DIR", dir.join("dev"))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the command-api binary");
        // The address is in the "listening" line; the rest of the output is drained so
        // the process never blocks on a full pipe.
        let stdout = child.stdout.take().unwrap();
        let (found, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if !line.contains("listening") {
                    continue;
                }
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if let Some(addr) = find_addr(&value) {
                    let _ = found.send(addr);
                }
            }
        });
        let addr = listening
            .recv_timeout(Duration::from_secs(60))
            .expect("the command-api binary listens");
        Binary { addr, child, dir }
    }
}

fn find_addr(value: &Value) -> Option<std::net::SocketAddr> {
    match value {
        Value::Object(map) => map.iter().find_map(|(key, v)| match (key.as_str(), v) {
            ("addr", Value::String(s)) => s.parse().ok(),
            _ => find_addr(v),
        }),
        _ => None,
    }
}

impl Binary {
    /// SIGKILL, as a crash: no shutdown, nothing flushed.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// One request on its own connection: the status and the JSON body (`Null` if not
    /// JSON); `None` when the connection ends without an answer (the process died).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> Option<(u16, Value)> {
        let (status, body) = self.request(method, path, token, body).await?;
        Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// The value of a sample of `/metrics` (0 if absent).
    pub async fn metric(&self, sample: &str) -> f64 {
        let (_, body) = self.request("GET", "/metrics", "", "").await.unwrap();
        body.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
