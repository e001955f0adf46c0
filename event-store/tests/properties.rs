//! Property tests: random appends, conflicts and claims never break the log's guarantees.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use event_store::testing::TestDatabase;
use event_store::{
    AppendError, AppendOutcome, AppendRequest, Claim, ClaimOp, EventStore, EventType,
    ExpectedVersion, NewEvent, StoreOptions, StreamId,
};
use futures_util::future::join_all;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The stream's version when the round starts.
    Current,
    Stale,
    Ahead,
    Any,
}

#[derive(Debug, Clone)]
struct Op {
    stream: u8,
    expect: Expect,
    events: usize,
    claim: Option<u8>,
    /// A second stream in the same append (a transfer), at its current version.
    with: Option<u8>,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0u8..4,
        prop_oneof![
            4 => Just(Expect::Current),
            1 => Just(Expect::Stale),
            1 => Just(Expect::Ahead),
            2 => Just(Expect::Any)
        ],
        1usize..4,
        proptest::option::weighted(0.3, 0u8..3),
        proptest::option::weighted(0.2, 0u8..4),
    )
        .prop_map(|(stream, expect, events, claim, with)| Op {
            stream,
            expect,
            events,
            claim,
            with: with.filter(|w| *w != stream),
        })
}

fn rounds() -> impl Strategy<Value = Vec<Vec<Op>>> {
    proptest::collection::vec(proptest::collection::vec(op(), 1..8), 1..6)
}

fn stream(case: u64, s: u8) -> StreamId {
    StreamId::parse(format!("case{case}-s{s}")).unwrap()
}

fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            NewEvent::new(
                EventType::parse("p.happened").unwrap(),
                1,
                json!({ "i": i }),
            )
        })
        .collect()
}

fn expected(expect: Expect, current: u64) -> ExpectedVersion {
    match expect {
        Expect::Current if current == 0 => ExpectedVersion::NoStream,
        Expect::Current => ExpectedVersion::Exact(current),
        Expect::Stale if current == 0 => ExpectedVersion::Exact(5),
        Expect::Stale => ExpectedVersion::Exact(current - 1),
        Expect::Ahead => ExpectedVersion::Exact(current + 1),
        Expect::Any => ExpectedVersion::Any,
    }
}

fn request(case: u64, op: &Op, versions: &HashMap<u8, u64>) -> AppendRequest {
    let current = |s| versions.get(&s).copied().unwrap_or(0);
    let mut r = AppendRequest::single(
        stream(case, op.stream),
        expected(op.expect, current(op.stream)),
        events(op.events),
    );
    if let Some(w) = op.with {
        r = r.with_stream(
            stream(case, w),
            expected(Expect::Current, current(w)),
            events(1),
        );
    }
    if let Some(k) = op.claim {
        r = r.with_claim(ClaimOp::Claim(Claim {
            scope: "prop".into(),
            key: format!("case{case}-k{k}").into_bytes(),
            payload: json!(null),
        }));
    }
    r
}

/// Every event of a successful append is in the log exactly where its outcome says.
async fn assert_outcome_in_log(store: &EventStore, request: &AppendRequest, out: &AppendOutcome) {
    let logged = store
        .read_all(
            out.first_position - 1,
            (out.last_position - out.first_position + 1) as u32,
        )
        .await
        .unwrap();
    let sent: Vec<_> = request
        .streams
        .iter()
        .flat_map(|s| s.events.iter())
        .collect();
    assert_eq!(logged.len(), sent.len());
    for (e, s) in logged.iter().zip(sent) {
        assert_eq!(e.event_id, s.event_id);
    }
    for w in &out.streams {
        let last = logged
            .iter()
            .rev()
            .find(|e| e.stream_id == w.stream_id)
            .unwrap();
        assert_eq!(last.stream_version, w.version);
    }
}

async fn assert_log_sound(store: &EventStore) {
    let mut after = 0;
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let mut ids = HashSet::new();
    loop {
        let page = store.read_all(after, 1000).await.unwrap();
        if page.is_empty() {
            break;
        }
        for e in page {
            assert_eq!(e.position, after + 1, "hole in the log");
            let v = versions.entry(e.stream_id.clone()).or_default();
            assert_eq!(e.stream_version, *v + 1, "hole in {}", e.stream_id);
            *v += 1;
            assert!(ids.insert(e.event_id), "event id twice");
            after = e.position;
        }
    }
    let report = store.verify(1, None).await.unwrap();
    assert!(report.ok, "{report:?}");
}

/// On a current-thread runtime each round's appends are all queued before the batcher
/// runs, so a round is one batch applied in order: the outcome of every append must be
/// exactly what applying them one by one predicts.
#[test]
fn a_batch_gives_each_append_the_outcome_of_applying_them_in_order() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDatabase::new());
    let store = rt.block_on(db.store());
    let case = AtomicU64::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&rounds(), |rounds| {
            let case = case.fetch_add(1, Ordering::Relaxed);
            rt.block_on(async {
                let mut versions: HashMap<u8, u64> = HashMap::new();
                let mut held: HashSet<u8> = HashSet::new();
                for round in rounds {
                    let requests: Vec<_> = round.iter().map(|o| request(case, o, &versions)).collect();
                    let results = join_all(requests.iter().cloned().map(|r| store.append(r))).await;
                    // The model: apply in order against the versions as they move.
                    for ((op, req), result) in round.iter().zip(&requests).zip(&results) {
                        let fits = req.streams.iter().all(|w| {
                            let now = versions.get(&stream_index(&w.stream_id)).copied().unwrap_or(0);
                            w.expected.pinned().is_none_or(|e| e == now)
                        });
                        let claim_free = op.claim.is_none_or(|k| !held.contains(&k));
                        match (fits, claim_free, result) {
                            (true, true, Ok(out)) => {
                                assert_outcome_in_log(&store, req, out).await;
                                for w in &req.streams {
                                    *versions.entry(stream_index(&w.stream_id)).or_default() +=
                                        w.events.len() as u64;
                                }
                                if let Some(k) = op.claim {
                                    held.insert(k);
                                }
                            }
                            (false, _, Err(AppendError::Conflict { .. })) => {}
                            (true, false, Err(AppendError::ClaimTaken { .. })) => {}
                            (fits, claim_free, other) => panic!(
                                "{op:?}: model says fits={fits} claim_free={claim_free}, store said {other:?}"
                            ),
                        }
                    }
                }
                assert_log_sound(&store).await;
            });
            Ok(())
        })
        .unwrap();
}

fn stream_index(id: &StreamId) -> u8 {
    id.as_str()
        .rsplit("-s")
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap()
}

/// Two stores (two processes' worth of pools and batchers) on a multi-threaded runtime
/// race random appends on shared streams: whatever the interleaving, the log stays
/// gapless and chained, and every reported outcome is in the log as reported.
#[test]
fn racing_stores_never_break_the_log() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDatabase::new());
    let stores = rt.block_on(async {
        [
            db.store_with(StoreOptions {
                read_pool_size: 2,
                ..Default::default()
            })
            .await,
            db.store_with(StoreOptions {
                read_pool_size: 2,
                ..Default::default()
            })
            .await,
        ]
    });
    let case = AtomicU64::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&rounds(), |rounds| {
            let case = case.fetch_add(1, Ordering::Relaxed);
            rt.block_on(async {
                for round in rounds {
                    let mut versions = HashMap::new();
                    for s in 0..4u8 {
                        versions
                            .insert(s, stores[0].stream_version(&stream(case, s)).await.unwrap());
                    }
                    let tasks: Vec<_> = round
                        .iter()
                        .enumerate()
                        .map(|(i, op)| {
                            let store = stores[i % 2].clone();
                            let req = request(case, op, &versions);
                            tokio::spawn(async move {
                                let result = store.append(req.clone()).await;
                                (req, result)
                            })
                        })
                        .collect();
                    for t in tasks {
                        let (req, result) = t.await.unwrap();
                        match result {
                            Ok(out) => assert_outcome_in_log(&stores[1], &req, &out).await,
                            Err(AppendError::Conflict { .. } | AppendError::ClaimTaken { .. }) => {
                                for e in req.streams.iter().flat_map(|s| s.events.iter()) {
                                    let found = stores[1]
                                        .read_all(0, u32::MAX)
                                        .await
                                        .unwrap()
                                        .iter()
                                        .any(|x| x.event_id == e.event_id);
                                    assert!(!found, "a failed append left an event behind");
                                }
                            }
                            Err(other) => panic!("unexpected {other:?}"),
                        }
                    }
                }
                assert_log_sound(&stores[0]).await;
            });
            Ok(())
        })
        .unwrap();
}
