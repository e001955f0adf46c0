//! The restore drill (ADR 0019), on a MariaDB server of the test's own with its binary log
//! on (`faults::PrivateMariaDb`), never the shared one: a history is written and anchored,
//! `cargo xtask backup` copies it, more is acknowledged after it (deposits, and an erasure
//! whose shredding a crash interrupted), and `cargo xtask restore` brings it back into a
//! fresh database, to the backup's moment or through the binlogs to the last one. Each
//! restore must verify its chain, match the anchors at or below its head, say which anchors
//! it lost, rebuild views equal to what was acknowledged up to its point, and leave the
//! erased user's personal data unreadable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use event_store::anchor::{AnchorConfig, AnchorSigner};
use event_store::testing::TestDatabase;
use event_store::{AppendRequest, EventStore, EventType, ExpectedVersion, NewEvent, StreamId};
use faults::PrivateMariaDb;
use hash_chain::{Jwks, SigningKey};
use keyring::{Erasure, ErasureRegister, KeyStore, MasterKeys};
use ledger::{
    Amount, Currency, Deposited, LedgerEvent, PersonalDataErased, SealedText, TransactionId,
    UserId, UserRegistered,
};
use serde_json::Value;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::MySqlPool;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Balances acknowledged so far: user → currency → minor units.
type Ledger = BTreeMap<Uuid, BTreeMap<String, i64>>;

/// Fields drop in order: the database before the server it lives on.
struct World {
    work: PathBuf,
    store: EventStore,
    db: TestDatabase,
    users: Vec<UserId>,
    /// What was acknowledged up to the backup, and up to the end.
    at_backup: Ledger,
    at_end: Ledger,
    /// The erased user, and the head at the backup and at the end.
    ada: UserId,
    backup_head: u64,
    end_head: u64,
    server: PrivateMariaDb,
}

impl World {
    fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    fn url(&self, database: &str) -> String {
        self.server.url(database)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn xtask(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("KEYS_DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

async fn append(store: &EventStore, event: LedgerEvent) -> u64 {
    let stream = StreamId::parse(event.stream_id()).unwrap();
    let new = NewEvent::new(
        EventType::parse(event.event_type()).unwrap(),
        event.schema_version(),
        event.data(),
    );
    store
        .append(AppendRequest::single(
            stream,
            ExpectedVersion::Any,
            vec![new],
        ))
        .await
        .unwrap()
        .last_position
}

async fn deposit(
    world_store: &EventStore,
    ledger: &mut Ledger,
    user: UserId,
    amount: i64,
    currency: Currency,
) {
    append(
        world_store,
        Deposited {
            transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
            user_id: user,
            amount: Amount::parse(amount).unwrap(),
            currency,
        }
        .into(),
    )
    .await;
    *ledger
        .entry(user.as_uuid())
        .or_default()
        .entry(currency.as_str().to_owned())
        .or_default() += amount;
}

/// Signs anchors (every 10 events) until the head is anchored.
async fn anchor_head(store: &EventStore, db: &TestDatabase, key: &SigningKey) {
    let signer = AnchorSigner::new(
        db.store().await,
        SigningKey::from_pem(&key.to_pem()).unwrap(),
        AnchorConfig {
            every_events: 10,
            every: Duration::from_millis(50),
            check_interval: Duration::from_millis(20),
            ..AnchorConfig::default()
        },
    )
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(signer.run(async move {
        let _ = stopped.await;
    }));
    let head = store.head().await.unwrap().unwrap().0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while store.latest_anchor().await.unwrap().map(|a| a.position) != Some(head) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the head was not anchored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    task.await.unwrap();
}

/// The history, the backup between its two halves, the erasure after it.
async fn world() -> World {
    let work = std::env::temp_dir().join(format!("xtask-restore-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(work.join("binlogs")).unwrap();
    let log_bin = format!("--log-bin={}", work.join("binlogs/binlog").display());
    let server = PrivateMariaDb::with_args(&[&log_bin, "--server-id=1"]).await;
    let db = TestDatabase::on_server(
        server.owner(),
        &[
            event_store::migrator(),
            keyring::migrator(),
            read_model::migrator(),
        ],
    )
    .await;
    let store = db.store().await;
    let pool = db.pool(2).await;
    let keys = KeyStore::new(pool, MasterKeys::from_keys([(1, [9; 32])]).unwrap());
    let key = SigningKey::generate().unwrap();
    Jwks::add_to_file(&work.join("jwks.json"), key.public_jwk()).unwrap();

    // Before the backup: five users with sealed personal data, 30 deposits.
    let mut ledger = Ledger::new();
    let mut users = Vec::new();
    for i in 0..5 {
        let user = UserId::from_uuid(Uuid::now_v7());
        let email = keys
            .seal(user.as_uuid(), &format!("user{i}@example.com"), "email")
            .await
            .unwrap();
        let name = keys
            .seal(user.as_uuid(), &format!("User {i}"), "display_name")
            .await
            .unwrap();
        append(
            &store,
            UserRegistered {
                user_id: user,
                email_ciphertext: SealedText::new(email.as_str()),
                display_name_ciphertext: SealedText::new(name.as_str()),
            }
            .into(),
        )
        .await;
        users.push(user);
    }
    for n in 0..30 {
        let currency = [Currency::EUR, Currency::USD][n % 2];
        deposit(&store, &mut ledger, users[n % 5], 100 + n as i64, currency).await;
    }
    anchor_head(&store, &db, &key).await;
    let backup_head = store.head().await.unwrap().unwrap().0;
    let at_backup = ledger.clone();

    let (ok, stdout, stderr) = xtask(&[
        "backup",
        "--database-url",
        &server.url(&db.name),
        "--out",
        work.join("backup").to_str().unwrap(),
    ]);
    assert!(ok, "backup failed: {stderr}");
    assert!(stdout.contains("binlog binlog.000001:"), "{stdout}");
    assert!(stderr.contains("dumping"), "progress shown: {stderr}");

    // After the backup: 25 more deposits, and Ada (user 0) erases her personal data. The
    // erasure is recorded in the register and appended, and the process dies before it
    // shreds the key (the sweeper's case): her key is still live in the source.
    for n in 0..25 {
        deposit(
            &store,
            &mut ledger,
            users[(n + 1) % 5],
            1_000 + n as i64,
            Currency::EUR,
        )
        .await;
    }
    let ada = users[0];
    let position = append(&store, PersonalDataErased { user_id: ada }.into()).await;
    ErasureRegister::new(work.join("erasure-register.ndjson"))
        .record(&Erasure {
            subject: ada.as_uuid(),
            position,
            erased_at: time::OffsetDateTime::now_utc(),
        })
        .unwrap();
    for n in 0..4 {
        deposit(&store, &mut ledger, users[1 + n % 4], 7, Currency::GBP).await;
    }
    anchor_head(&store, &db, &key).await;
    let end_head = store.head().await.unwrap().unwrap().0;
    assert!(
        keys.get(ada.as_uuid()).await.is_ok(),
        "the crash left Ada's key live"
    );

    // The anchors as an auditor keeps them, outside the database.
    let anchors = store.anchors(0, 1_000).await.unwrap();
    std::fs::write(
        work.join("anchors.json"),
        serde_json::json!({ "items": anchors, "next_after": null }).to_string(),
    )
    .unwrap();

    World {
        work,
        store,
        db,
        users,
        at_backup,
        at_end: ledger,
        ada,
        backup_head,
        end_head,
        server,
    }
}

async fn pool_of(url: &str) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(1)
        .connect_with(MySqlConnectOptions::from_str(url).unwrap())
        .await
        .unwrap()
}

/// `balances_view` of the restored database, as a ledger.
async fn balances(pool: &MySqlPool) -> Ledger {
    let rows: Vec<(Vec<u8>, String, i64)> =
        sqlx::query_as("SELECT user_id, currency, amount FROM balances_view")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut ledger = Ledger::new();
    for (user, currency, amount) in rows {
        ledger
            .entry(Uuid::from_slice(&user).unwrap())
            .or_default()
            .insert(currency, amount);
    }
    ledger
}

async fn key_is_live(pool: &MySqlPool, user: UserId) -> bool {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT 1 FROM data_keys WHERE subject = ? AND wrapped IS NOT NULL",
    )
    .bind(user.as_uuid())
    .fetch_optional(pool)
    .await
    .unwrap()
    .flatten()
    .is_some()
}

fn restore(world: &World, database: &str, extra: &[&str]) -> Value {
    let url = world.url(database);
    let from = world.path("backup");
    let mut args = vec![
        "restore",
        "--from",
        from.to_str().unwrap(),
        "--database-url",
        &url,
        "--rebuild",
        "--json",
    ];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = xtask(&args);
    assert!(ok, "restore failed:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("loading eventstore.sql"),
        "progress shown: {stderr}"
    );
    serde_json::from_str(&stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_to_the_backup_point_is_proved_rebuilt_and_keeps_later_erasures() {
    let world = world().await;
    let register = world.path("erasure-register.ndjson");
    let anchors = world.path("anchors.json");
    let jwks = world.path("jwks.json");
    let report = restore(
        &world,
        "restored_old",
        &[
            "--erasure-register",
            register.to_str().unwrap(),
            "--anchors",
            anchors.to_str().unwrap(),
            "--jwks",
            jwks.to_str().unwrap(),
        ],
    );
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["chain_ok"], true);
    assert_eq!(report["head_position"], world.backup_head);
    // The latest anchor the backup holds matches; those signed after it name the loss.
    assert_eq!(report["anchors"]["latest_matching"], world.backup_head);
    assert_eq!(report["anchors"]["mismatched"], serde_json::json!([]));
    assert_eq!(report["anchors"]["latest_beyond_head"], world.end_head);
    assert!(report["anchors"]["beyond_head"].as_u64().unwrap() >= 1);
    // Ada's erasure came after the backup: not in the restored log, but in the register.
    assert_eq!(report["erasures"]["in_log"], 0);
    assert_eq!(report["erasures"]["in_registers"], 1);
    assert_eq!(report["erasures"]["shredded"], 1);

    let restored = pool_of(&world.url("restored_old")).await;
    assert!(
        !key_is_live(&restored, world.ada).await,
        "Ada's data came back"
    );
    assert!(key_is_live(&restored, world.users[1]).await);
    assert_eq!(balances(&restored).await, world.at_backup);
    let checkpoint: u64 = sqlx::query_scalar("SELECT position FROM checkpoints")
        .fetch_one(&restored)
        .await
        .unwrap();
    assert_eq!(checkpoint, world.backup_head);
    assert!(!world.db.name.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_through_the_binlogs_holds_everything_acknowledged_and_shreds_its_erasures() {
    let world = world().await;
    let mut binlogs: Vec<PathBuf> = std::fs::read_dir(world.path("binlogs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|e| e != "index"))
        .collect();
    binlogs.sort();
    let jwks = world.path("jwks.json");
    let mut extra = vec!["--jwks", jwks.to_str().unwrap(), "--binlogs"];
    extra.extend(binlogs.iter().map(|p| p.to_str().unwrap()));
    // No register: the erasure is in the restored log itself.
    let report = restore(&world, "restored_now", &extra);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["head_position"], world.end_head);
    assert!(report["binlog_seconds"].is_number());
    // The restored anchors table, brought forward too, matches to the last anchor.
    assert_eq!(report["anchors"]["source"], "the restored anchors table");
    assert_eq!(report["anchors"]["latest_matching"], world.end_head);
    assert_eq!(report["anchors"]["beyond_head"], 0);
    assert_eq!(report["erasures"]["in_log"], 1);
    assert_eq!(
        report["erasures"]["shredded"], 1,
        "the interrupted shred re-applied"
    );

    let restored = pool_of(&world.url("restored_now")).await;
    assert!(
        !key_is_live(&restored, world.ada).await,
        "Ada's data came back"
    );
    assert_eq!(balances(&restored).await, world.at_end);
    assert_eq!(
        world.store.head().await.unwrap().unwrap().0,
        world.end_head,
        "the source was left as it was"
    );
}
