//! Test support: a fresh database and a fresh RabbitMQ vhost per test, a ledger history
//! generator, CloudEvents published the way the relay publishes them, the projector run
//! in-process, and waits on conditions with a deadline.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use event_store::relay::testing::TestBroker;
use event_store::relay::{Relay, RelayConfig, RelayStats, Topology};
use event_store::testing::TestDatabase;
use event_store::{
    AppendRequest, EventStore, EventType, ExpectedVersion, NewEvent, RecordedEvent, StreamId,
    StreamWrite,
};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use ledger::{
    Amount, Currency, Deposited, Direction, LedgerEvent, PersonalDataErased, ProfileUpdated,
    SealedText, TransactionId, Transferred, UserDeactivated, UserId, UserRegistered, Withdrawn,
};
use projector::Config;
use sqlx::{MySqlPool, Row};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(90);

/// `(ready, unacknowledged)` messages in `queue` of `vhost`, as the broker last counted
/// them (its counts lag a little: wait on them, never assert them once).
pub fn queue_depth(vhost: &str, queue: &str) -> (u64, u64) {
    let out = Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "-q",
            "--no-table-headers",
            "-p",
            vhost,
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ])
        .output()
        .expect("rabbitmqctl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() == 3 && cols[0] == queue {
            return (cols[1].parse().unwrap(), cols[2].parse().unwrap());
        }
    }
    panic!("queue {queue} not listed in vhost {vhost}: {text}");
}

/// URL `base` with its last path segment (the database or vhost) replaced.
fn with_path(base: &str, segment: &str) -> String {
    let (url, query) = match base.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (base, None),
    };
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let root = match url[scheme_end..].find('/') {
        Some(i) => &url[..scheme_end + i],
        None => url,
    };
    match query {
        Some(q) => format!("{root}/{segment}?{q}"),
        None => format!("{root}/{segment}"),
    }
}

/// One test's world: database (log + read tables), vhost, and the projector's config
/// (its broker account may only consume its queue; `broker.url` is the vhost's
/// administrator, for publishing and declaring the way the relay does).
pub struct Env {
    pub db: TestDatabase,
    pub store: EventStore,
    pub pool: MySqlPool,
    pub broker: TestBroker,
    pub config: Config,
}

impl Env {
    pub async fn new() -> Self {
        let db =
            TestDatabase::with_migrations(&[event_store::migrator(), read_model::migrator()]).await;
        let store = db.store().await;
        let pool = db.pool(4).await;
        let broker = TestBroker::new().await;
        let database_url = with_path(
            &std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| projector::DEFAULT_DATABASE_URL.into()),
            &db.name,
        );
        // The projector runs with the rights it has in production: consume its queue.
        let projector_url = broker
            .account("projector", &Topology::default().consumer_permissions())
            .await;
        let mut config = Config::new(database_url, projector_url);
        config.metrics_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.idle_ms = 200;
        Self {
            db,
            store,
            pool,
            broker,
            config,
        }
    }

    /// Appends each group atomically (a transfer's two halves are one group), in order.
    pub async fn append(&self, groups: &[Vec<LedgerEvent>]) -> Vec<RecordedEvent> {
        let before = self.head().await;
        for group in groups {
            self.store.append(request(group)).await.expect("append");
        }
        self.log_after(before).await
    }

    /// Appends the groups concurrently (the store's group commit batches them): fast,
    /// order between groups not guaranteed.
    pub async fn append_many(&self, groups: &[Vec<LedgerEvent>]) -> Vec<RecordedEvent> {
        let before = self.head().await;
        for chunk in groups.chunks(500) {
            let appends = chunk.iter().map(|g| self.store.append(request(g)));
            for result in futures_util::future::join_all(appends).await {
                result.expect("append");
            }
        }
        self.log_after(before).await
    }

    /// Appends many groups fast: each user's single-stream events go in one request per
    /// user (their order kept), the transfers after them, concurrently.
    pub async fn append_bulk(&self, groups: &[Vec<LedgerEvent>]) -> u64 {
        let mut per_stream: HashMap<String, Vec<NewEvent>> = HashMap::new();
        let mut pairs = Vec::new();
        for group in groups {
            if group.len() == 1 {
                per_stream
                    .entry(group[0].stream_id())
                    .or_default()
                    .push(new_event(&group[0]));
            } else {
                pairs.push(group.clone());
            }
        }
        let mut requests: Vec<AppendRequest> = Vec::new();
        for (stream, events) in per_stream {
            for chunk in events.chunks(200) {
                requests.push(AppendRequest::single(
                    StreamId::parse(stream.clone()).unwrap(),
                    ExpectedVersion::Any,
                    chunk.to_vec(),
                ));
            }
        }
        requests.extend(pairs.iter().map(|g| request(g)));
        for chunk in requests.chunks(200) {
            let appends = chunk.iter().map(|r| self.store.append(r.clone()));
            for result in futures_util::future::join_all(appends).await {
                result.expect("append");
            }
        }
        self.head().await
    }

    /// Appends the groups in order, one at a time, until `stop` turns true or none are
    /// left: commands arriving steadily while something else happens. Returns how many
    /// were appended (a prefix of a valid history is valid).
    pub async fn append_until(
        &self,
        groups: &[Vec<LedgerEvent>],
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> usize {
        for (appended, group) in groups.iter().enumerate() {
            if *stop.borrow() {
                return appended;
            }
            self.store.append(request(group)).await.expect("append");
        }
        groups.len()
    }

    /// Appends raw data as an event of `event_type` on `user`'s stream (for poison).
    pub async fn append_raw(
        &self,
        user: UserId,
        event_type: &str,
        data: serde_json::Value,
    ) -> RecordedEvent {
        let before = self.head().await;
        let event = NewEvent::new(EventType::parse(event_type).unwrap(), 1, data);
        self.store
            .append(AppendRequest::single(
                StreamId::parse(user.stream_id()).unwrap(),
                ExpectedVersion::Any,
                vec![event],
            ))
            .await
            .expect("append");
        self.log_after(before).await.remove(0)
    }

    pub async fn log_after(&self, mut after: u64) -> Vec<RecordedEvent> {
        let mut out = Vec::new();
        loop {
            let page = self.store.read_all(after, 5_000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.position;
            out.extend(page);
        }
        out
    }

    pub async fn head(&self) -> u64 {
        self.store.head().await.unwrap().map_or(0, |(p, _)| p)
    }

    pub async fn checkpoint(&self) -> u64 {
        sqlx::query_scalar::<_, u64>("SELECT position FROM checkpoints WHERE projection = 'main'")
            .fetch_optional(&self.pool)
            .await
            .unwrap()
            .unwrap_or(0)
    }

    pub async fn wait_for_checkpoint(&self, position: u64) {
        eventually(&format!("checkpoint {position}"), || async {
            (self.checkpoint().await >= position).then_some(())
        })
        .await;
        assert_eq!(self.checkpoint().await, position, "checkpoint overshot");
    }

    /// Declares the topology as the relay does, and publishes as the relay would.
    pub async fn publisher(&self) -> Publisher {
        let connection = self.broker.connect().await;
        let channel = connection.create_channel().await.unwrap();
        Topology::default()
            .declare(&channel)
            .await
            .expect("declare the topology");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Publisher {
            _connection: connection,
            channel,
            queue: self.config.queue.clone(),
        }
    }

    /// `(ready, unacknowledged)` messages in the projector's queue.
    pub fn queue_depth(&self) -> (u64, u64) {
        queue_depth(&self.broker.vhost, &self.config.queue)
    }

    /// Every row of the read tables (and the checkpoint), as text, for before/after.
    pub async fn snapshot(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (table, order) in [
            ("users_view", "user_id"),
            ("balances_view", "user_id, currency"),
            ("transactions_view", "transaction_id"),
            ("checkpoints", "projection"),
        ] {
            let cols: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&self.pool)
            .await
            .unwrap();
            let list = cols
                .iter()
                .map(|c| format!("COALESCE(HEX(`{c}`), 'NULL')"))
                .collect::<Vec<_>>()
                .join(", ");
            let rows = sqlx::query(&format!(
                "SELECT CONCAT_WS('|', {list}) FROM {table} ORDER BY {order}"
            ))
            .fetch_all(&self.pool)
            .await
            .unwrap();
            for row in rows {
                let cell: Vec<u8> = row.try_get(0).unwrap();
                out.push(format!("{table}: {}", String::from_utf8_lossy(&cell)));
            }
        }
        out
    }
}

fn request(group: &[LedgerEvent]) -> AppendRequest {
    AppendRequest {
        streams: group
            .iter()
            .map(|e| StreamWrite {
                stream_id: StreamId::parse(e.stream_id()).unwrap(),
                expected: ExpectedVersion::Any,
                events: vec![new_event(e)],
            })
            .collect(),
        claims: Vec::new(),
    }
}

fn new_event(e: &LedgerEvent) -> NewEvent {
    NewEvent::new(
        EventType::parse(e.event_type()).unwrap(),
        e.schema_version(),
        e.data(),
    )
    .with_metadata(event_store::Metadata {
        correlation_id: Some(Uuid::new_v4().to_string()),
        ..event_store::Metadata::default()
    })
}

/// Publishes CloudEvents with confirms, as the relay does.
pub struct Publisher {
    _connection: Connection,
    channel: Channel,
    queue: String,
}

/// The CloudEvents 1.0 body of a recorded event, field for field as API.md says.
pub fn cloud_event(e: &RecordedEvent) -> serde_json::Value {
    const TIME: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    let metadata: serde_json::Value = serde_json::from_str(&e.metadata).unwrap();
    let mut body = serde_json::json!({
        "specversion": "1.0",
        "id": e.event_id.to_string(),
        "source": "urn:example:ledger",
        "type": e.event_type.as_str(),
        "subject": e.stream_id.as_str(),
        "time": e.recorded_at.to_offset(time::UtcOffset::UTC).format(TIME).unwrap(),
        "datacontenttype": "application/json",
        "data": serde_json::from_str::<serde_json::Value>(&e.data).unwrap(),
        "position": e.position,
        "streamversion": e.stream_version,
        "schemaversion": e.schema_version,
    });
    for (from, to) in [
        ("correlation_id", "correlationid"),
        ("causation_id", "causationid"),
    ] {
        if let Some(id) = metadata.get(from).and_then(|v| v.as_str()) {
            body[to] = id.into();
        }
    }
    body
}

impl Publisher {
    /// Through the exchange, routing key = type, like the relay.
    pub async fn publish(&self, events: &[RecordedEvent]) {
        let bodies: Vec<(String, serde_json::Value)> = events
            .iter()
            .map(|e| (e.event_type.as_str().to_owned(), cloud_event(e)))
            .collect();
        self.publish_bodies("example.events", &bodies, |(key, _)| key.clone(), None)
            .await;
    }

    /// Like [`Self::publish`], as a relay in the leadership term `epoch` does.
    pub async fn publish_in_term(&self, events: &[RecordedEvent], epoch: u64) {
        let bodies: Vec<(String, serde_json::Value)> = events
            .iter()
            .map(|e| (e.event_type.as_str().to_owned(), cloud_event(e)))
            .collect();
        self.publish_bodies(
            "example.events",
            &bodies,
            |(key, _)| key.clone(),
            Some(epoch),
        )
        .await;
    }

    /// Straight into the queue (the default exchange), as a broker redelivery or a
    /// misbehaving publisher would.
    pub async fn inject(&self, bodies: &[serde_json::Value]) {
        let bodies: Vec<(String, serde_json::Value)> =
            bodies.iter().map(|b| (String::new(), b.clone())).collect();
        let queue = self.queue.clone();
        self.publish_bodies("", &bodies, |_| queue.clone(), None)
            .await;
    }

    async fn publish_bodies(
        &self,
        exchange: &str,
        bodies: &[(String, serde_json::Value)],
        routing_key: impl Fn(&(String, serde_json::Value)) -> String,
        epoch: Option<u64>,
    ) {
        for chunk in bodies.chunks(1_000) {
            let mut confirms = Vec::with_capacity(chunk.len());
            for item in chunk {
                let id = item.1["id"].as_str().unwrap_or("no-id").to_owned();
                let mut properties = BasicProperties::default()
                    .with_content_type("application/cloudevents+json".into())
                    .with_delivery_mode(2)
                    .with_message_id(id.into());
                if let Some(epoch) = epoch {
                    let mut headers = lapin::types::FieldTable::default();
                    headers.insert(
                        event_store::relay::RELAY_EPOCH.into(),
                        lapin::types::AMQPValue::LongLongInt(epoch as i64),
                    );
                    properties = properties.with_headers(headers);
                }
                let confirm = self
                    .channel
                    .basic_publish(
                        exchange.into(),
                        routing_key(item).into(),
                        BasicPublishOptions::default(),
                        item.1.to_string().as_bytes(),
                        properties,
                    )
                    .await
                    .unwrap();
                confirms.push(confirm);
            }
            for confirm in confirms {
                let confirmation = confirm.await.unwrap();
                assert!(confirmation.is_ack(), "the broker refused a message");
            }
        }
    }
}

/// The projector running in this process.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), projector::Error>>,
}

impl Running {
    pub async fn start(config: &Config) -> Self {
        let listener = TcpListener::bind(config.metrics_addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(projector::run(config.clone(), listener, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }

    /// The value of a sample on `/metrics` (0 if absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .find_map(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The status code of `GET path`.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, answer)
    }
}

/// Polls `check` until it gives `Some`, failing the test after a deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The read tables equal a rebuild of the whole log, and the checkpoint is its head.
pub async fn assert_verified(env: &Env) {
    let report = projector::verify(&env.config).await.expect("verify runs");
    assert!(
        report.is_clean(),
        "verify found differences:\n{}",
        report
            .differences
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(report.position, env.head().await);
}

/// A small deterministic generator of plausible ledger histories.
pub struct Scenario {
    state: u64,
    users: Vec<Party>,
}

struct Party {
    id: UserId,
    active: bool,
    erased: bool,
    balances: HashMap<Currency, i64>,
}

const CURRENCIES: [Currency; 3] = [Currency::EUR, Currency::USD, Currency::JPY];

impl Scenario {
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed.max(1),
            users: Vec::new(),
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// `n` new users, registered.
    pub fn register(&mut self, n: usize) -> Vec<Vec<LedgerEvent>> {
        (0..n)
            .map(|_| {
                let id = UserId::from_uuid(Uuid::now_v7());
                self.users.push(Party {
                    id,
                    active: true,
                    erased: false,
                    balances: HashMap::new(),
                });
                vec![LedgerEvent::from(UserRegistered {
                    user_id: id,
                    email_ciphertext: SealedText::new(format!("sealed:{id}@example.com")),
                    display_name_ciphertext: SealedText::new(format!("sealed:name-{id}")),
                })]
            })
            .collect()
    }

    /// `n` appends of every kind, valid as `decide` would have them.
    pub fn activity(&mut self, n: usize) -> Vec<Vec<LedgerEvent>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let roll = self.below(100);
            let u = self.below(self.users.len() as u64) as usize;
            let currency = CURRENCIES[self.below(3) as usize];
            let tx = TransactionId::from_uuid(Uuid::now_v7());
            let amount = 1 + self.below(10_000) as i64;
            let user = self.users[u].id;
            // Deactivations and erasures stay rare, so most users keep trading.
            let active = self.users.iter().filter(|p| p.active).count();
            let erased = self.users.iter().filter(|p| p.erased).count();
            let may_deactivate = active * 2 > self.users.len() + 1;
            let may_erase = erased * 4 < self.users.len();
            match roll {
                0..=39 if self.users[u].active => {
                    *self.users[u].balances.entry(currency).or_default() += amount;
                    out.push(vec![Deposited {
                        transaction_id: tx,
                        user_id: user,
                        amount: Amount::parse(amount).unwrap(),
                        currency,
                    }
                    .into()]);
                }
                40..=59 if self.users[u].active => {
                    let have = self.users[u].balances.get(&currency).copied().unwrap_or(0);
                    if have == 0 {
                        continue;
                    }
                    let take = 1 + self.below(have as u64) as i64;
                    *self.users[u].balances.entry(currency).or_default() -= take;
                    out.push(vec![Withdrawn {
                        transaction_id: tx,
                        user_id: user,
                        amount: Amount::parse(take).unwrap(),
                        currency,
                    }
                    .into()]);
                }
                60..=89 if self.users[u].active => {
                    let v = self.below(self.users.len() as u64) as usize;
                    let have = self.users[u].balances.get(&currency).copied().unwrap_or(0);
                    if v == u || !self.users[v].active || have == 0 {
                        continue;
                    }
                    let give = 1 + self.below(have as u64) as i64;
                    *self.users[u].balances.entry(currency).or_default() -= give;
                    *self.users[v].balances.entry(currency).or_default() += give;
                    let half = |direction| {
                        LedgerEvent::from(Transferred {
                            transaction_id: tx,
                            direction,
                            from_user_id: user,
                            to_user_id: self.users[v].id,
                            amount: Amount::parse(give).unwrap(),
                            currency,
                        })
                    };
                    out.push(vec![half(Direction::Out), half(Direction::In)]);
                }
                90..=95 if !self.users[u].erased => {
                    out.push(vec![ProfileUpdated {
                        user_id: user,
                        email_ciphertext: roll
                            .is_multiple_of(2)
                            .then(|| SealedText::new(format!("sealed:new-{}", self.state))),
                        display_name_ciphertext: Some(SealedText::new(format!(
                            "sealed:renamed-{}",
                            self.state
                        ))),
                    }
                    .into()]);
                }
                96..=97 if self.users[u].active && may_deactivate => {
                    self.users[u].active = false;
                    out.push(vec![UserDeactivated {
                        user_id: user,
                        reason_ciphertext: None,
                    }
                    .into()]);
                }
                98..=99 if !self.users[u].erased && may_erase => {
                    self.users[u].erased = true;
                    out.push(vec![PersonalDataErased { user_id: user }.into()]);
                }
                _ => {}
            }
        }
        out
    }
}

/// The relay running in this process, as its binary runs it.
pub struct RelayTask {
    pub stats: RelayStats,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RelayTask {
    /// The relay's settings for tests, publishing to `amqp_url`.
    pub fn config(amqp_url: String) -> RelayConfig {
        RelayConfig {
            amqp_url,
            // Small enough that the window cycles many times per phase.
            window: 16,
            backoff_max: Duration::from_secs(1),
            ..RelayConfig::default()
        }
    }

    pub async fn start(env: &Env, config: RelayConfig) -> Self {
        let stats = RelayStats::default();
        let relay = Relay::new(env.db.store().await, config)
            .unwrap()
            .with_observer(stats.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.run(async move {
            let _ = stopped.await;
        }));
        Self {
            stats,
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap();
    }
}
