//! Every answer of an append is true when the world around it breaks: a fault proxy
//! between the store and MariaDB loses replies, refuses and cuts connections, or holds
//! them half-open, and each append's answer is then compared with what the log holds
//! (`faults::History`). An append that committed is never answered with an error other
//! than `OutcomeUnknown`; one answered with success is in the log; none hangs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use event_store::testing::TestDatabase;
use event_store::{
    AppendError, AppendRequest, EventStore, EventType, ExpectedVersion, NewEvent, StoreOptions,
    StreamId,
};
use faults::{Answer, Direction, FaultProxy, Flow, History};
use serde_json::json;

fn deposit(stream: &str) -> AppendRequest {
    AppendRequest::single(
        StreamId::parse(stream).unwrap(),
        ExpectedVersion::Any,
        vec![NewEvent::new(
            EventType::parse("thing.happened").unwrap(),
            1,
            json!({ "n": 1 }),
        )],
    )
}

fn answer(result: &Result<event_store::AppendOutcome, AppendError>) -> Answer {
    match result {
        Ok(_) => Answer::Applied,
        Err(AppendError::OutcomeUnknown) => Answer::OutcomeUnknown,
        Err(e) => Answer::Failed(format!("{e:?}").chars().take(60).collect()),
    }
}

/// How often each event id is in the log.
async fn applied(store: &EventStore) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        for e in page {
            *out.entry(e.event_id.to_string()).or_default() += 1;
        }
    }
    let report = store.verify(1, None).await.unwrap();
    assert!(
        report.ok,
        "the chain must verify after the faults: {report:?}"
    );
    out
}

/// A store whose connections all go through `proxy`, with a short deadline so the test
/// sees answers soon.
async fn store_behind(db: &TestDatabase, proxy: &FaultProxy, deadline: Duration) -> EventStore {
    let options = db.options.clone().host("127.0.0.1").port(proxy.port());
    EventStore::connect_with(
        options,
        StoreOptions {
            read_pool_size: 2,
            append_deadline: deadline,
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap()
}

/// An append to a stream of its own at `NoStream`: its batch is one INSERT, the only
/// round trip a lost reply can hit (no version read before it).
fn fresh() -> AppendRequest {
    AppendRequest::single(
        StreamId::parse(format!("fresh-{}", uuid::Uuid::new_v4().simple())).unwrap(),
        ExpectedVersion::NoStream,
        vec![NewEvent::new(
            EventType::parse("thing.happened").unwrap(),
            1,
            json!({ "n": 1 }),
        )],
    )
}

/// Appenders that keep appending until told to stop, recording every answer by event id.
fn appenders(
    store: &EventStore,
    history: &Arc<History>,
    stop: &Arc<AtomicBool>,
    n: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let (store, history, stop) = (store.clone(), history.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    // Half the appenders read a version first (`Any`), half do not.
                    let request = if i % 2 == 0 {
                        deposit(&format!("user-{i}"))
                    } else {
                        fresh()
                    };
                    let id = request.streams[0].events[0].event_id.to_string();
                    let result = store.append(request).await;
                    history.record(id, answer(&result));
                }
            })
        })
        .collect()
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The finding: replies of a committed batch are dropped for a while, then the
/// database refuses connections for longer than any retry budget. Before the batcher
/// settled outcomes, the clients of the batch in flight were told the append failed
/// although it had committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_commit_reply_is_never_answered_as_a_failure() {
    let db = TestDatabase::new().await;
    let proxy = FaultProxy::to("127.0.0.1", db.options.get_port())
        .await
        .unwrap();
    let store = store_behind(&db, &proxy, Duration::from_secs(3)).await;
    let history = Arc::new(History::new());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = appenders(&store, &history, &stop, 32);

    for _round in 0..2 {
        let before = history.count("applied");
        wait_for("appends before the fault", || {
            history.count("applied") > before + 200
        })
        .await;
        // The database gets the batch and commits it; its answer never arrives.
        proxy.set(Direction::ToClient, Flow::Hold);
        let held = proxy.stats().held_bytes;
        wait_for("a reply to be dropped", || proxy.stats().held_bytes > held).await;
        // Then no connection at all, for longer than the retry budget.
        proxy.refuse(true);
        proxy.cut();
        let answered = history.len();
        wait_for("answers while the database is unreachable", || {
            history.len() > answered
        })
        .await;
        proxy.heal();
    }
    let before = history.count("applied");
    wait_for("appends after healing", || {
        history.count("applied") > before + 100
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    let direct = db.store().await;
    let verdict = history.check(&applied(&direct).await);
    eprintln!("{verdict}");
    assert!(verdict.is_true(), "{verdict}");
    assert!(
        verdict.unknown_applied + verdict.answers.get("applied").copied().unwrap_or(0) > 0,
        "the run must have appended"
    );
}

/// A half-open link (both directions held): every append is answered (success,
/// unavailable or outcome unknown), none waits for ever; after healing, appends go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_half_open_link_stalls_no_append_past_its_deadline() {
    let db = TestDatabase::new().await;
    let proxy = FaultProxy::to("127.0.0.1", db.options.get_port())
        .await
        .unwrap();
    let store = store_behind(&db, &proxy, Duration::from_secs(2)).await;
    let history = Arc::new(History::new());
    let first = deposit("user-a");
    history.record(
        first.streams[0].events[0].event_id.to_string(),
        Answer::Applied,
    );
    store.append(first).await.unwrap();

    proxy.hold_both();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = appenders(&store, &history, &stop, 8);
    // Every appender gets answers while the link stays half-open.
    wait_for("answers through a half-open link", || history.len() >= 16).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    proxy.heal();
    let last = deposit("user-a");
    let id = last.streams[0].events[0].event_id.to_string();
    let after = store.append(last).await;
    assert!(after.is_ok(), "appends go on after healing: {after:?}");
    history.record(id, Answer::Applied);

    let direct = db.store().await;
    let verdict = history.check(&applied(&direct).await);
    assert!(verdict.is_true(), "{verdict}");
}

/// The reply to an append is lost while the append waits on a lock; the old session
/// commits once the lock is released, after the batcher gave up on its connection. The
/// batcher must not append the same events a second time, nor answer with an error for
/// an append that committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_that_commits_late_is_settled_before_the_batch_is_tried_again() {
    let db = TestDatabase::new().await;
    let direct = db.store().await;
    let history = History::new();
    let first = deposit("user-a");
    history.record(
        first.streams[0].events[0].event_id.to_string(),
        Answer::Applied,
    );
    direct.append(first).await.unwrap();
    let proxy = FaultProxy::to("127.0.0.1", db.options.get_port())
        .await
        .unwrap();
    let store = store_behind(&db, &proxy, Duration::from_secs(5)).await;
    let second = deposit("user-a");
    history.record(
        second.streams[0].events[0].event_id.to_string(),
        Answer::Applied,
    );
    store.append(second).await.unwrap();

    // Hold the head row: the next insert's predecessor check waits on it.
    let pool = db.pool(2).await;
    let mut lock = pool.begin().await.unwrap();
    // Through the index the predecessor key references, which the check locks.
    sqlx::query(
        "SELECT position FROM events FORCE INDEX (events_position_hash) \
         WHERE position = 2 FOR UPDATE",
    )
    .fetch_one(&mut *lock)
    .await
    .unwrap();

    let request = deposit("user-b");
    let id = request.streams[0].events[0].event_id.to_string();
    let pending = tokio::spawn({
        let store = store.clone();
        async move { store.append(request).await }
    });
    // The insert is on the server, waiting for the lock.
    let session = session_running(&pool, "INSERT INTO events%").await;
    proxy.cut();
    // The lock goes once the batcher has decided what to do about the old session: it
    // is gone (killed), or the batch is tried again while it still waits.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while sessions(&pool, "INSERT INTO events%")
        .await
        .contains(&session)
        && sessions(&pool, "%FOR UPDATE%").await.is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the batcher did nothing"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    lock.commit().await.unwrap();
    let result = pending.await.unwrap();

    history.record(id, answer(&result));
    let verdict = history.check(&applied(&direct).await);
    assert!(verdict.is_true(), "{result:?}\n{verdict}");
    let after = store.append(deposit("user-a")).await;
    assert!(after.is_ok(), "appends go on: {after:?}");
    assert!(applied(&direct).await.values().all(|n| *n == 1));
}

/// Connection ids of this account's sessions running a statement like `pattern`.
async fn sessions(pool: &sqlx::MySqlPool, pattern: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()",
    )
    .bind(pattern)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn session_running(pool: &sqlx::MySqlPool, pattern: &str) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(id) = sessions(pool, pattern).await.first() {
            return *id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no session runs {pattern}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The database refuses a row whose `prev_hash` is not its predecessor's hash, whatever
/// the position: a writer that believes in a head the log does not hold cannot extend it.
#[tokio::test]
async fn the_database_refuses_a_row_that_links_to_a_hash_the_log_does_not_hold() {
    let db = TestDatabase::new().await;
    let store = db.store().await;
    store.append(deposit("user-a")).await.unwrap();
    let pool = db.pool(1).await;
    let forged = sqlx::query(
        "INSERT INTO events (position, prev_position, event_id, stream_id, stream_version, \
         prev_stream_version, event_type, schema_version, data, metadata, recorded_at, \
         prev_hash, hash) VALUES (2, 1, ?, 'user-b', 1, NULL, 'thing.happened', 1, '{}', '{}', \
         UTC_TIMESTAMP(6), ?, ?)",
    )
    .bind(uuid::Uuid::now_v7().as_bytes().as_slice())
    .bind([7u8; 32].as_slice())
    .bind([9u8; 32].as_slice())
    .execute(&pool)
    .await;
    let code = forged
        .as_ref()
        .err()
        .and_then(|e| e.as_database_error())
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .map(|m| m.number());
    assert_eq!(
        code,
        Some(1452),
        "a row linking to a wrong hash: {forged:?}"
    );
}

#[derive(Default, Clone)]
struct Settlements {
    settled: Arc<std::sync::atomic::AtomicU64>,
}

impl event_store::AppendObserver for Settlements {
    fn outcome_settled(&self, settled: bool) {
        if settled {
            self.settled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A reply lost while the database stays reachable: the batcher kills the old session,
/// finds the batch in the log and answers success with the stored positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_commit_reply_is_settled_from_the_log_when_the_database_answers() {
    let db = TestDatabase::new().await;
    let proxy = FaultProxy::to("127.0.0.1", db.options.get_port())
        .await
        .unwrap();
    let settlements = Settlements::default();
    let options = db.options.clone().host("127.0.0.1").port(proxy.port());
    let store = EventStore::connect_with(
        options,
        StoreOptions {
            read_pool_size: 2,
            append_deadline: Duration::from_secs(30),
            observer: event_store::BatchObserver::new(settlements.clone()),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let history = Arc::new(History::new());
    let stop = Arc::new(AtomicBool::new(false));
    // Appends of fresh streams only: every round trip is a commit, so every reply the
    // proxy drops is a commit's.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, history, stop) = (store.clone(), history.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let request = fresh();
                    let id = request.streams[0].events[0].event_id.to_string();
                    let result = store.append(request).await;
                    history.record(id, answer(&result));
                }
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while settlements.settled.load(Ordering::Relaxed) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no lost reply was settled"
        );
        let before = history.count("applied");
        wait_for("appends", || history.count("applied") > before + 100).await;
        proxy.set(Direction::ToClient, Flow::Hold);
        let held = proxy.stats().held_bytes;
        wait_for("a reply to be dropped", || proxy.stats().held_bytes > held).await;
        proxy.cut();
        proxy.heal();
        let settled = settlements.settled.load(Ordering::Relaxed);
        wait_for("the lost reply to be settled", || {
            settlements.settled.load(Ordering::Relaxed) > settled
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let direct = db.store().await;
    let verdict = history.check(&applied(&direct).await);
    assert!(verdict.is_true(), "{verdict}");
    // Every append was answered with the truth itself: nothing unknown, nothing failed.
    assert_eq!(verdict.answers.len(), 1, "{verdict}");
}
