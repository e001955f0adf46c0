//! The event log's guarantees, against the real MariaDB: one fresh database per test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use event_store::testing::TestDatabase;
use event_store::{
    AppendError, AppendRequest, Claim, ClaimOp, EventStore, EventType, ExpectedVersion, NewEvent,
    StreamId,
};
use futures_util::future::join_all;
use serde_json::json;

fn stream(s: &str) -> StreamId {
    StreamId::parse(s).unwrap()
}

fn event(n: u64) -> NewEvent {
    NewEvent::new(
        EventType::parse("thing.happened").unwrap(),
        1,
        json!({ "n": n, "text": "it's \"quoted\" \\ and ünïcode" }),
    )
}

fn one(stream_id: &str, expected: ExpectedVersion) -> AppendRequest {
    AppendRequest::single(stream(stream_id), expected, vec![event(0)])
}

/// Waits for `check` to hold, polling, up to a generous deadline.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
    }
}

/// The whole log, checked for holes and per-stream version sequences.
async fn assert_log_is_sound(store: &EventStore) -> u64 {
    let mut after = 0;
    let mut versions: BTreeMap<StreamId, u64> = BTreeMap::new();
    loop {
        let page = store.read_all(after, 1000).await.unwrap();
        if page.is_empty() {
            break;
        }
        for e in page {
            assert_eq!(e.position, after + 1, "hole before position {}", e.position);
            let v = versions.entry(e.stream_id.clone()).or_default();
            assert_eq!(e.stream_version, *v + 1, "version hole in {}", e.stream_id);
            *v += 1;
            after = e.position;
        }
    }
    let report = store.verify(1, None).await.unwrap();
    assert!(report.ok, "chain broken: {report:?}");
    assert_eq!(report.checked, after);
    after
}

#[tokio::test]
async fn an_append_is_read_back_with_its_position_version_and_chain() {
    let db = TestDatabase::new().await;
    let store = db.store().await;

    let out = store
        .append(AppendRequest::single(
            stream("account-1"),
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        ))
        .await
        .unwrap();
    assert_eq!((out.first_position, out.last_position), (1, 2));
    assert_eq!(out.streams[0].version, 2);

    let out = store
        .append(one("account-1", ExpectedVersion::Exact(2)))
        .await
        .unwrap();
    assert_eq!((out.first_position, out.streams[0].version), (3, 3));

    let events = store
        .read_stream(&stream("account-1"), 2, 10)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(
        events[0].prev_hash,
        store.read_all(0, 1).await.unwrap()[0].hash
    );
    let data: serde_json::Value = events[0].data_as().unwrap();
    assert_eq!(data["text"], "it's \"quoted\" \\ and ünïcode");
    assert_eq!(store.stream_version(&stream("account-1")).await.unwrap(), 3);
    assert_eq!(store.stream_version(&stream("nobody")).await.unwrap(), 0);
    assert_eq!(assert_log_is_sound(&store).await, 3);
}

#[tokio::test]
async fn an_append_at_any_version_lands_after_the_stream_head() {
    let db = TestDatabase::new().await;
    let store = db.store().await;
    store.append(one("s", ExpectedVersion::Any)).await.unwrap();
    let out = store.append(one("s", ExpectedVersion::Any)).await.unwrap();
    assert_eq!(out.streams[0].version, 2);
}

#[tokio::test]
async fn a_version_behind_or_ahead_of_the_stream_is_a_typed_conflict() {
    let db = TestDatabase::new().await;
    let store = db.store().await;
    store
        .append(one("s", ExpectedVersion::NoStream))
        .await
        .unwrap();

    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Exact(3)] {
        match store.append(one("s", expected)).await {
            Err(AppendError::Conflict {
                stream_id,
                expected: e,
                actual,
            }) => {
                assert_eq!(stream_id, stream("s"));
                assert_eq!(e, expected);
                assert_eq!(actual, 1);
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(assert_log_is_sound(&store).await, 1);
}

// A current-thread runtime: every append below is queued before the batcher runs, so
// they share one batch (and hence one `recorded_at`).
#[tokio::test]
async fn in_one_batch_only_one_of_two_same_version_appends_wins_and_neighbours_commit() {
    let db = TestDatabase::new().await;
    let store = db.store().await;

    let mut requests = vec![
        one("contested", ExpectedVersion::NoStream),
        one("contested", ExpectedVersion::NoStream),
    ];
    requests.extend((0..10).map(|i| one(&format!("other-{i}"), ExpectedVersion::NoStream)));
    let results = join_all(requests.into_iter().map(|r| store.append(r))).await;

    let won: Vec<_> = results[..2].iter().filter(|r| r.is_ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    let lost = results[..2].iter().find(|r| r.is_err()).unwrap();
    assert!(
        matches!(lost, Err(AppendError::Conflict { stream_id, actual: 1, .. }) if *stream_id == stream("contested")),
        "{lost:?}"
    );
    let oks: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(oks.len(), 11);
    let batch_times: HashSet<_> = oks.iter().map(|o| o.recorded_at).collect();
    assert_eq!(batch_times.len(), 1, "the appends were not in one batch");
    assert_eq!(assert_log_is_sound(&store).await, 11);
}

#[tokio::test]
async fn a_stale_second_stream_leaves_both_streams_untouched() {
    let db = TestDatabase::new().await;
    let store = db.store().await;
    store
        .append(one("a", ExpectedVersion::NoStream))
        .await
        .unwrap();
    store
        .append(AppendRequest::single(
            stream("b"),
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        ))
        .await
        .unwrap();

    let transfer = AppendRequest::single(stream("a"), ExpectedVersion::Exact(1), vec![event(3)])
        .with_stream(stream("b"), ExpectedVersion::Exact(1), vec![event(4)]);
    match store.append(transfer).await {
        Err(AppendError::Conflict {
            stream_id, actual, ..
        }) => assert_eq!((stream_id, actual), (stream("b"), 2)),
        other => panic!("expected a conflict on b, got {other:?}"),
    }
    assert_eq!(store.stream_version(&stream("a")).await.unwrap(), 1);
    assert_eq!(store.stream_version(&stream("b")).await.unwrap(), 2);
    assert_eq!(assert_log_is_sound(&store).await, 3);

    let transfer = AppendRequest::single(stream("a"), ExpectedVersion::Exact(1), vec![event(3)])
        .with_stream(stream("b"), ExpectedVersion::Exact(2), vec![event(4)]);
    let out = store.append(transfer).await.unwrap();
    assert_eq!(
        out.streams.iter().map(|s| s.version).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!((out.first_position, out.last_position), (4, 5));
}

#[tokio::test]
async fn a_taken_claim_fails_the_append_and_writes_nothing() {
    let db = TestDatabase::new().await;
    let store = db.store().await;
    let claim = |stream_id: &str| {
        one(stream_id, ExpectedVersion::NoStream).with_claim(ClaimOp::Claim(Claim {
            scope: "email".into(),
            key: b"hash-of-address".to_vec(),
            payload: json!({ "owner": stream_id }),
        }))
    };

    let first = store.append(claim("user-1")).await.unwrap();
    let held = store
        .claim("email", b"hash-of-address")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.payload, json!({ "owner": "user-1" }));
    assert_eq!(held.position, first.last_position);

    match store.append(claim("user-2")).await {
        Err(AppendError::ClaimTaken { scope, key }) => {
            assert_eq!(
                (scope.as_str(), key.as_slice()),
                ("email", &b"hash-of-address"[..])
            );
        }
        other => panic!("expected the claim to be taken, got {other:?}"),
    }
    assert_eq!(store.stream_version(&stream("user-2")).await.unwrap(), 0);

    // Giving the key up in one append lets another take it.
    store
        .append(
            one("user-1", ExpectedVersion::Exact(1)).with_claim(ClaimOp::Release {
                scope: "email".into(),
                key: b"hash-of-address".to_vec(),
            }),
        )
        .await
        .unwrap();
    store.append(claim("user-2")).await.unwrap();
    assert_eq!(assert_log_is_sound(&store).await, 3);
}

#[tokio::test]
async fn a_failed_claim_in_a_batch_undoes_only_its_own_append() {
    let db = TestDatabase::new().await;
    let store = db.store().await;
    let claimed = |stream_id: &str| {
        one(stream_id, ExpectedVersion::NoStream).with_claim(ClaimOp::Claim(Claim {
            scope: "idempotency".into(),
            key: b"k".to_vec(),
            payload: json!(null),
        }))
    };
    let results = join_all(
        [
            claimed("x"),
            one("y", ExpectedVersion::NoStream),
            claimed("z"),
        ]
        .into_iter()
        .map(|r| store.append(r)),
    )
    .await;
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(
        matches!(results[2], Err(AppendError::ClaimTaken { .. })),
        "{results:?}"
    );
    assert_eq!(store.stream_version(&stream("z")).await.unwrap(), 0);
    assert_eq!(assert_log_is_sound(&store).await, 2);
}

#[tokio::test]
async fn a_reused_event_id_is_refused() {
    let db = TestDatabase::new().await;
    let store = db.store().await;
    let e = event(1);
    let id = e.event_id;
    store
        .append(AppendRequest::single(
            stream("a"),
            ExpectedVersion::Any,
            vec![e.clone()],
        ))
        .await
        .unwrap();
    let again = store
        .append(AppendRequest::single(
            stream("b"),
            ExpectedVersion::Any,
            vec![e],
        ))
        .await;
    assert!(
        matches!(again, Err(AppendError::DuplicateEventId(x)) if x == id),
        "{again:?}"
    );
}

#[tokio::test]
async fn invalid_appends_are_refused_before_the_database() {
    let db = TestDatabase::new().await;
    let store = db.store().await;
    let empty = AppendRequest::default();
    assert!(matches!(
        store.append(empty).await,
        Err(AppendError::Invalid(_))
    ));
    let no_events = AppendRequest::single(stream("a"), ExpectedVersion::Any, vec![]);
    assert!(matches!(
        store.append(no_events).await,
        Err(AppendError::Invalid(_))
    ));
    let twice = one("a", ExpectedVersion::Any).with_stream(
        stream("a"),
        ExpectedVersion::Any,
        vec![event(1)],
    );
    assert!(matches!(
        store.append(twice).await,
        Err(AppendError::Invalid(_))
    ));
    let huge = AppendRequest::single(
        stream("a"),
        ExpectedVersion::Any,
        vec![NewEvent::new(
            EventType::parse("big").unwrap(),
            1,
            json!("x".repeat(2 * 1024 * 1024)),
        )],
    );
    assert!(matches!(
        store.append(huge).await,
        Err(AppendError::Invalid(_))
    ));
    assert_eq!(store.head().await.unwrap(), None);
}

#[tokio::test]
async fn verify_finds_a_tampered_event_at_its_position() {
    let db = TestDatabase::new().await;
    let store = db.store().await;
    for i in 0..20 {
        store
            .append(AppendRequest::single(
                stream("s"),
                ExpectedVersion::Any,
                vec![event(i)],
            ))
            .await
            .unwrap();
    }
    let clean = store.verify(1, None).await.unwrap();
    assert!(clean.ok);
    assert_eq!((clean.checked, clean.head_position), (20, 20));

    let pool = db.pool(1).await;
    sqlx::query("UPDATE events SET data = '{\"n\": 999}' WHERE position = 13")
        .execute(&pool)
        .await
        .unwrap();
    let report = store.verify(1, None).await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.first_bad_position, Some(13));
    assert_eq!(report.checked, 12);
    // A range that ends before the damage is still sound.
    assert!(store.verify(1, Some(12)).await.unwrap().ok);
    assert!(!store.verify(5, None).await.unwrap().ok);
}

#[tokio::test]
async fn the_writer_account_may_insert_and_select_events_but_never_change_them() {
    let db = TestDatabase::new().await;
    let admin = db.pool(1).await;
    let user = format!("w_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    event_store::grant_writer(&admin, &db.name, &user, "s3cret'pw")
        .await
        .unwrap();

    let writer = db.options.clone().username(&user).password("s3cret'pw");
    let result = async {
        let store = EventStore::connect_with(writer.clone(), Default::default()).await?;
        store.append(one("s", ExpectedVersion::NoStream)).await?;
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(1)
            .connect_with(writer)
            .await?;
        let update = sqlx::query("UPDATE events SET data = '{}'")
            .execute(&pool)
            .await;
        let delete = sqlx::query("DELETE FROM events").execute(&pool).await;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&pool)
            .await?;
        anyhow::Ok((update, delete, count))
    }
    .await;
    sqlx::query(&format!("DROP USER '{user}'@'%'"))
        .execute(&admin)
        .await
        .unwrap();
    let (update, delete, count) = result.unwrap();
    for denied in [update, delete] {
        let err = denied.expect_err("the writer changed the log");
        let code = err
            .as_database_error()
            .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
            .map(|m| m.number());
        assert_eq!(code, Some(1142), "{err}"); // command denied to user
    }
    assert_eq!(count, 1);
}

/// Several appenders in two processes' worth of pools append while a third tails: the
/// tail sees every event exactly once, in order, and the log has no hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_in_two_pools_leave_a_gapless_log_that_a_tail_reads_once() {
    let db = TestDatabase::new().await;
    let stores = [db.store().await, db.store().await];
    let reader = db
        .store_with(event_store::StoreOptions {
            poll_interval: Duration::from_millis(5),
            ..Default::default()
        })
        .await;

    let mut tail = reader.tail(0);
    let tailing = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let e = tail.next().await.unwrap();
            seen.push(e.position);
            if e.event_type.as_str() == "test.finished" {
                return seen;
            }
        }
    });

    const WRITERS: usize = 24;
    const APPENDS: u64 = 40;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = stores[w % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            for i in 0..APPENDS {
                // Half write their own stream with exact versions; half share four
                // streams at any version, so the pools contend for streams and head.
                let request = if w % 2 == 0 {
                    AppendRequest::single(
                        StreamId::parse(format!("own-{w}")).unwrap(),
                        ExpectedVersion::Exact(i),
                        vec![event(i)],
                    )
                } else {
                    AppendRequest::single(
                        StreamId::parse(format!("shared-{}", i % 4)).unwrap(),
                        ExpectedVersion::Any,
                        vec![event(i), event(i)],
                    )
                };
                store.append(request).await.unwrap();
                ok += 1;
            }
            ok
        }));
    }
    let mut appended = 0;
    for t in tasks {
        appended += t.await.unwrap();
    }
    assert_eq!(appended, WRITERS as u64 * APPENDS);
    stores[0]
        .append(AppendRequest::single(
            stream("end"),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                EventType::parse("test.finished").unwrap(),
                1,
                json!({}),
            )],
        ))
        .await
        .unwrap();

    let seen = tailing.await.unwrap();
    let total = assert_log_is_sound(&stores[1]).await;
    // 12 single-event writers, 12 double-event writers, and the closing event.
    assert_eq!(total, (WRITERS as u64 / 2) * APPENDS * 3 + 1);
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    eventually("the reader's head to reach the end", || async {
        reader.head().await.unwrap().map(|h| h.0) == Some(total)
    })
    .await;
}

#[derive(Default, Clone)]
struct Batches(std::sync::Arc<std::sync::Mutex<Vec<(usize, usize)>>>);

impl event_store::AppendObserver for Batches {
    fn batch(&self, appends: usize, events: usize, _took: Duration) {
        self.0.lock().unwrap().push((appends, events));
    }
}

#[tokio::test]
async fn an_observer_hears_of_every_batch_with_its_appends_and_events() {
    let db = TestDatabase::new().await;
    let batches = Batches::default();
    let store = db
        .store_with(event_store::StoreOptions {
            observer: event_store::BatchObserver::new(batches.clone()),
            ..event_store::StoreOptions::default()
        })
        .await;
    let appends = (0..20).map(|i| {
        store.append(AppendRequest::single(
            stream(&format!("observed-{i}")),
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        ))
    });
    for result in join_all(appends).await {
        result.unwrap();
    }
    // A refused append is part of its batch too.
    let refused = store
        .append(one("observed-0", ExpectedVersion::NoStream))
        .await;
    assert!(matches!(refused, Err(AppendError::Conflict { .. })));
    let seen = batches.0.lock().unwrap().clone();
    let appends: usize = seen.iter().map(|b| b.0).sum();
    let events: usize = seen.iter().map(|b| b.1).sum();
    assert_eq!((appends, events), (21, 41), "{seen:?}");
    assert!(seen.iter().all(|b| b.0 >= 1 && b.1 >= b.0));
}
