//! `spawn_app` and typed helpers: one fresh database and app per test. The read tables
//! come from the projector's own migration set (`migrations/readmodel`) and are seeded
//! with SQL, as the projector would write them; the log gets real ledger events through
//! `EventStore::append`.

use std::time::Duration;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use event_store::testing::TestDatabase;
use event_store::{AppendOutcome, AppendRequest, EventStore, ExpectedVersion, NewEvent, StreamId};
use keyring::{KeyStore, MasterKeys};
use ledger::LedgerEvent;
use platform::{DevKeys, Metrics, Role, TokenPolicy, DEV_AUDIENCE, DEV_ISSUER};
use query_api::{AppState, PersonalData, Settings};
use serde_json::Value;
use sqlx::MySqlPool;
use time::OffsetDateTime;
use tower::ServiceExt;
use uuid::Uuid;

pub const MASTER_KEY: [u8; 32] = [7; 32];

pub struct TestApp {
    pub router: Router,
    pub tokens: DevKeys,
    pub store: EventStore,
    pub keys: KeyStore,
    /// The owner account, for seeding and tampering.
    pub pool: MySqlPool,
    /// Where the app reads the anchors' JWKS (no file until a test writes one).
    pub anchor_jwks: std::path::PathBuf,
    /// Dropped last: removes the database.
    _db: TestDatabase,
}

pub async fn test_database() -> TestDatabase {
    TestDatabase::with_migrations(&[
        event_store::migrator(),
        keyring::migrator(),
        read_model::migrator(),
    ])
    .await
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_, keys| PersonalData::new(keys)).await
}

/// `spawn_app` with `settings`.
pub async fn spawn_app_with_settings(settings: Settings) -> TestApp {
    spawn_app_configured(|_, keys| PersonalData::new(keys), settings).await
}

/// `spawn_app` with the personal-data keys `personal` makes (from the store and the
/// test's keyring).
pub async fn spawn_app_with(
    personal: impl FnOnce(&EventStore, KeyStore) -> PersonalData,
) -> TestApp {
    spawn_app_configured(personal, Settings::default()).await
}

async fn spawn_app_configured(
    personal: impl FnOnce(&EventStore, KeyStore) -> PersonalData,
    settings: Settings,
) -> TestApp {
    let db = test_database().await;
    let store = db.store().await;
    let pool = db.pool(4).await;
    let keys = KeyStore::new(
        store.pool().clone(),
        MasterKeys::from_keys([(1, MASTER_KEY)]).unwrap(),
    );
    let tokens = DevKeys::generate().unwrap();
    let authenticator = tokens
        .authenticator(TokenPolicy::new(DEV_ISSUER, DEV_AUDIENCE))
        .unwrap();
    let anchor_jwks = std::env::temp_dir().join(format!("{}-anchor-jwks.json", db.name));
    let state = AppState::new(
        store.pool().clone(),
        store.clone(),
        personal(&store, keys.clone()),
        authenticator,
        Metrics::new(),
        settings,
    )
    .with_anchor_jwks(anchor_jwks.clone());
    TestApp {
        router: query_api::router(state),
        tokens,
        store,
        keys,
        pool,
        anchor_jwks,
        _db: db,
    }
}

/// A request under construction.
pub struct Req {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
}

impl Req {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            headers: Vec::new(),
        }
    }

    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn token(self, token: &str) -> Self {
        self.header(AUTHORIZATION.as_str(), format!("Bearer {token}"))
    }

    pub fn min_position(self, position: u64) -> Self {
        self.header("x-min-position", position.to_string())
    }

    pub fn if_none_match(self, etag: &str) -> Self {
        self.header("if-none-match", etag)
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

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn content_type(&self) -> &str {
        self.header(CONTENT_TYPE.as_str()).unwrap_or("")
    }

    /// Asserts a 200 with a JSON body and returns the body.
    #[track_caller]
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type(), "application/json");
        assert!(self.header("x-projection-position").is_some());
        self.json()
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

    /// `X-Projection-Position`.
    pub fn position(&self) -> u64 {
        self.header("x-projection-position")
            .expect("X-Projection-Position")
            .parse()
            .unwrap()
    }

    pub fn etag(&self) -> &str {
        self.header("etag").expect("ETag")
    }
}

/// A user row for `users_view`, with its personal data in clear (sealed on insert).
pub struct UserSeed {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub status: &'static str,
    pub erased: bool,
    pub version: u64,
    pub created_at: OffsetDateTime,
    pub position: u64,
}

impl UserSeed {
    pub fn new(created_at: OffsetDateTime) -> Self {
        let id = Uuid::now_v7();
        Self {
            id,
            email: format!("{}@example.com", id.simple()),
            display_name: format!("User {}", &id.simple().to_string()[24..]),
            status: "active",
            erased: false,
            version: 1,
            created_at,
            position: 1,
        }
    }
}

pub fn at(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(
        1_750_000_000_000_000_000 + i128::from(micros) * 1_000,
    )
    .unwrap()
}

fn naive(t: OffsetDateTime) -> time::PrimitiveDateTime {
    time::PrimitiveDateTime::new(t.date(), t.time())
}

impl TestApp {
    /// This test's database, for tampering as its owner.
    pub fn database(&self) -> &TestDatabase {
        &self._db
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

    pub fn as_role(&self, role: Role) -> String {
        self.token(role, Uuid::now_v7())
    }

    /// The response to `req`, its body not read yet (for streams).
    pub async fn open(&self, req: Req) -> axum::response::Response {
        let mut builder = Request::builder().method(req.method).uri(req.path);
        for (name, value) in req.headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(Body::empty()).unwrap();
        self.router.clone().oneshot(request).await.unwrap()
    }

    pub async fn send(&self, req: Req) -> Answer {
        let response = self.open(req).await;
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.to_vec(),
        }
    }

    /// GET `path` with `token`.
    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(Req::get(path).token(token)).await
    }

    /// Inserts a `users_view` row, its e-mail and name sealed with the keyring as
    /// command-api seals them.
    pub async fn seed_user(&self, user: &UserSeed) {
        let email = self.keys.seal(user.id, &user.email, "email").await.unwrap();
        let name = self
            .keys
            .seal(user.id, &user.display_name, "display_name")
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO users_view (user_id, email_ciphertext, display_name_ciphertext, status, \
             erased, version, created_at, updated_at, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id)
        .bind((!user.erased).then(|| email.as_str().to_owned()))
        .bind((!user.erased).then(|| name.as_str().to_owned()))
        .bind(user.status)
        .bind(user.erased)
        .bind(user.version)
        .bind(naive(user.created_at))
        .bind(naive(user.created_at))
        .bind(user.position)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// A registered user (position 1), created at `created_at`.
    pub async fn user_at(&self, created_at: OffsetDateTime) -> Uuid {
        let user = UserSeed::new(created_at);
        self.seed_user(&user).await;
        user.id
    }

    pub async fn set_balance(&self, user: Uuid, currency: &str, amount: i64, position: u64) {
        sqlx::query(
            "INSERT INTO balances_view (user_id, currency, amount, position) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE amount = VALUES(amount), position = VALUES(position)",
        )
        .bind(user)
        .bind(currency)
        .bind(amount)
        .bind(position)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// Inserts a `transactions_view` row; `parties` is `(user_id, from, to)`.
    pub async fn seed_transaction(
        &self,
        kind: &str,
        parties: (Option<Uuid>, Option<Uuid>, Option<Uuid>),
        amount: i64,
        position: u64,
    ) -> Uuid {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO transactions_view (transaction_id, type, user_id, from_user_id, \
             to_user_id, amount, currency, position, recorded_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'EUR', ?, ?)",
        )
        .bind(id)
        .bind(kind)
        .bind(parties.0)
        .bind(parties.1)
        .bind(parties.2)
        .bind(amount)
        .bind(position)
        .bind(naive(at(position as i64)))
        .execute(&self.pool)
        .await
        .unwrap();
        id
    }

    /// Moves the projection's checkpoint, as the projector does after a batch.
    pub async fn set_checkpoint(&self, position: u64) {
        set_checkpoint(&self.pool, position).await;
    }

    /// Appends erasures of new users until the log's head is at least `position`, so that
    /// an `X-Min-Position` up to it names a position the log has.
    pub async fn grow_log_to(&self, position: u64) {
        let head = self.store.head().await.unwrap().map_or(0, |(p, _)| p);
        for _ in head..position {
            let user_id = ledger::UserId::from_uuid(Uuid::now_v7());
            self.append(vec![ledger::PersonalDataErased { user_id }.into()])
                .await;
        }
    }

    /// Appends `events` to their user streams in one atomic append (a transfer's two
    /// halves together).
    pub async fn append(&self, events: Vec<LedgerEvent>) -> AppendOutcome {
        let mut request = AppendRequest::default();
        for event in events {
            let stream = StreamId::parse(event.stream_id()).unwrap();
            let new = NewEvent::new(
                event_store::EventType::parse(event.event_type()).unwrap(),
                event.schema_version(),
                event.data(),
            );
            match request.streams.iter_mut().find(|s| s.stream_id == stream) {
                Some(write) => write.events.push(new),
                None => request = request.with_stream(stream, ExpectedVersion::Any, vec![new]),
            }
        }
        self.store.append(request).await.unwrap()
    }

    /// Appends `event` on a stream of its own as a writer whose clock read `recorded_at`
    /// would have: the row the event store writes, hash chained to the head, inserted
    /// as the owner. For a head recorded ahead of this process's clock.
    pub async fn append_recorded_at(&self, event: LedgerEvent, recorded_at: OffsetDateTime) -> u64 {
        let (head, prev_hash) = self
            .store
            .head()
            .await
            .unwrap()
            .unwrap_or((0, event_store::GENESIS_HASH));
        let recorded = event_store::RecordedEvent {
            position: head + 1,
            event_id: Uuid::now_v7(),
            stream_id: StreamId::parse(event.stream_id()).unwrap(),
            stream_version: 1,
            event_type: event_store::EventType::parse(event.event_type()).unwrap(),
            schema_version: event.schema_version(),
            data: event.data().to_string(),
            metadata: "{}".to_owned(),
            recorded_at,
            prev_hash,
            hash: [0; 32],
        };
        let hash = event_store::event_hash(&prev_hash, &recorded);
        sqlx::query(
            "INSERT INTO events (position, prev_position, event_id, stream_id, stream_version, \
             prev_stream_version, event_type, schema_version, data, metadata, recorded_at, \
             prev_hash, hash) VALUES (?, ?, ?, ?, 1, NULL, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(recorded.position)
        .bind((head > 0).then_some(head))
        .bind(recorded.event_id)
        .bind(recorded.stream_id.as_str())
        .bind(recorded.event_type.as_str())
        .bind(recorded.schema_version)
        .bind(&recorded.data)
        .bind(&recorded.metadata)
        .bind(naive(recorded_at))
        .bind(&prev_hash[..])
        .bind(&hash[..])
        .execute(&self.pool)
        .await
        .unwrap();
        recorded.position
    }

    /// The value of one sample of `/metrics`, e.g. `query_view_cache_hits_total{view="user"}`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let answer = self.send(Req::get("/metrics")).await;
        assert_eq!(answer.status, StatusCode::OK);
        let text = String::from_utf8(answer.body).unwrap();
        text.lines()
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == sample).then(|| value.parse().unwrap())
            })
            .unwrap_or(0.0)
    }
}

pub async fn set_checkpoint(pool: &MySqlPool, position: u64) {
    sqlx::query(
        "INSERT INTO checkpoints (projection, position, updated_at) \
         VALUES ('main', ?, UTC_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE position = VALUES(position), updated_at = VALUES(updated_at)",
    )
    .bind(position)
    .execute(pool)
    .await
    .unwrap();
}

/// Waits for `condition` to hold, failing after a generous deadline (never a timing
/// assertion: only a guard against hanging).
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
