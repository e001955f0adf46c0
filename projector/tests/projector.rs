//! The projector against a real MariaDB and a real RabbitMQ: each test has its own
//! database and vhost, publishes CloudEvents the way the relay does, runs the projector
//! (in-process, or the built binary for the crash test) and waits on conditions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Child, Stdio};

use ledger::UserId;
use support::{assert_verified, cloud_event, eventually, Env, Running, Scenario};

async fn history(
    env: &Env,
    seed: u64,
    users: usize,
    activity: usize,
) -> Vec<event_store::RecordedEvent> {
    let mut scenario = Scenario::new(seed);
    let mut events = env.append(&scenario.register(users)).await;
    events.extend(env.append(&scenario.activity(activity)).await);
    events
}

#[tokio::test]
async fn the_read_tables_equal_a_rebuild_of_the_log() {
    let env = Env::new().await;
    let events = history(&env, 1, 12, 300).await;
    env.publisher().await.publish(&events).await;
    let projector = Running::start(&env.config).await;

    env.wait_for_checkpoint(env.head().await).await;
    assert_verified(&env).await;

    // A transfer is one row, at its first half's position.
    let transfers: Vec<(u64, i64)> = sqlx::query_as(
        "SELECT t.position, COUNT(*) FROM transactions_view t WHERE type = 'transfer' \
         GROUP BY t.transaction_id, t.position",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert!(!transfers.is_empty());
    assert!(transfers.iter().all(|(_, n)| *n == 1));
    let first_halves: Vec<u64> = events
        .iter()
        .filter(|e| {
            e.event_type.as_str() == "transaction.transferred" && e.data.contains("\"out\"")
        })
        .map(|e| e.position)
        .collect();
    for (position, _) in &transfers {
        assert!(
            first_halves.contains(position),
            "transfer row at {position}"
        );
    }
    // An erased user keeps the row, without personal data.
    let erased: Vec<(Option<String>, bool)> =
        sqlx::query_as("SELECT email_ciphertext, erased FROM users_view WHERE erased")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert!(erased.iter().all(|(email, _)| email.is_none()));

    let (status, body) = projector.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("projector_checkpoint_position"), "{body}");
    assert!(body.contains("projector_lag_events"), "{body}");
    let (status, _) = projector.get("/health/ready").await;
    assert_eq!(status, 200);
    projector.stop().await;
}

#[tokio::test]
async fn duplicates_and_reordered_deliveries_change_nothing() {
    let env = Env::new().await;
    let events = history(&env, 2, 8, 120).await;
    let publisher = env.publisher().await;
    // Every event twice, in an order far from the log's: reversed, then interleaved.
    let mut bodies: Vec<serde_json::Value> = events.iter().rev().map(cloud_event).collect();
    bodies.extend(events.iter().step_by(2).map(cloud_event));
    bodies.extend(events.iter().skip(1).step_by(2).map(cloud_event));
    publisher.inject(&bodies).await;
    let projector = Running::start(&env.config).await;

    let head = env.head().await;
    env.wait_for_checkpoint(head).await;
    eventually("the queue to drain", || async {
        (env.queue_depth() == (0, 0)).then_some(())
    })
    .await;
    assert_verified(&env).await;
    let before = env.snapshot().await;

    // The same again, and again shuffled: nothing may change.
    let again: Vec<serde_json::Value> = events
        .iter()
        .skip(3)
        .step_by(3)
        .chain(events.iter().rev())
        .map(cloud_event)
        .collect();
    let first = bodies.len() as f64;
    eventually("the first copies to be received", || async {
        (projector.metric("projector_deliveries_total").await >= first).then_some(())
    })
    .await;
    publisher.inject(&again).await;
    let expected = (bodies.len() + again.len()) as f64;
    eventually("the duplicates to be received", || async {
        (projector.metric("projector_deliveries_total").await >= expected).then_some(())
    })
    .await;
    eventually("the duplicates to be acknowledged", || async {
        (env.queue_depth() == (0, 0)).then_some(())
    })
    .await;
    assert_eq!(env.snapshot().await, before);
    assert_eq!(env.checkpoint().await, head);
    // Everything past the first copy of each position was a duplicate. (More may be:
    // when the queue pauses the projector also catches up from the log, and the copies
    // of what it read there arrive as duplicates.)
    let skipped = projector.metric("projector_duplicates_skipped_total").await;
    assert!(
        skipped >= expected - events.len() as f64,
        "{skipped} duplicates skipped"
    );
    projector.stop().await;
}

#[tokio::test]
async fn a_gap_in_the_deliveries_is_filled_from_the_log() {
    let env = Env::new().await;
    let mut scenario = Scenario::new(3);
    let mut groups = scenario.register(2);
    groups.extend(
        scenario
            .activity(40)
            .into_iter()
            .filter(|g| g.len() == 1)
            .take(3),
    );
    let events = env.append(&groups).await;
    assert_eq!(events.len(), 5);
    // Positions 1, 2 and 5 only; 3 and 4 never arrive.
    let chosen: Vec<_> = events
        .iter()
        .filter(|e| [1, 2, 5].contains(&e.position))
        .cloned()
        .collect();
    env.publisher().await.publish(&chosen).await;
    let projector = Running::start(&env.config).await;

    env.wait_for_checkpoint(5).await;
    let (_, metrics) = projector.get("/metrics").await;
    assert!(
        metrics.contains("projector_gap_events_filled_total 2\n"),
        "{metrics}"
    );
    projector.stop().await;
    assert_verified(&env).await;
}

#[tokio::test]
async fn verify_reports_a_tampered_row() {
    let env = Env::new().await;
    let events = history(&env, 4, 6, 80).await;
    env.publisher().await.publish(&events).await;
    let projector = Running::start(&env.config).await;
    env.wait_for_checkpoint(env.head().await).await;
    projector.stop().await;
    assert_verified(&env).await;

    let (user, currency): (Vec<u8>, String) =
        sqlx::query_as("SELECT user_id, currency FROM balances_view ORDER BY amount DESC LIMIT 1")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    sqlx::query("UPDATE balances_view SET amount = amount + 1 WHERE user_id = ? AND currency = ?")
        .bind(&user)
        .bind(&currency)
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE users_view SET status = 'deactivated' WHERE status = 'active' LIMIT 1")
        .execute(&env.pool)
        .await
        .unwrap();

    let report = projector::verify(&env.config).await.unwrap();
    let text: Vec<String> = report.differences.iter().map(ToString::to_string).collect();
    let user = UserId::from_uuid(uuid::Uuid::from_slice(&user).unwrap());
    assert!(
        text.iter().any(|d| d.starts_with("balances_view [")
            && d.contains(&user.to_string())
            && d.contains("amount: live")),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|d| d.starts_with("balances_view (against ledger::replay)")),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|d| d.starts_with("users_view") && d.contains("status: live deactivated")),
        "{text:#?}"
    );
    // The shadow tables are gone again.
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_name LIKE '%\\_verify'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn rebuild_swaps_the_tables_in_while_the_projector_runs() {
    let env = Env::new().await;
    let mut scenario = Scenario::new(5);
    let publisher = env.publisher().await;
    let first = env.append(&scenario.register(10)).await;
    let mut more = env.append(&scenario.activity(400)).await;
    publisher.publish(&first).await;
    publisher.publish(&more).await;
    let projector = Running::start(&env.config).await;
    env.wait_for_checkpoint(env.head().await).await;

    // Writes go on while the rebuild runs and swaps.
    let writer = async {
        for _ in 0..10 {
            let events = env.append(&scenario.activity(30)).await;
            publisher.publish(&events).await;
            more.extend(events);
        }
    };
    let mut reports = 0;
    let mut count = |_: &projector::Progress| reports += 1;
    let (rebuilt, ()) = tokio::join!(projector::rebuild(&env.config, &mut count), writer);
    let report = rebuilt.expect("rebuild");
    assert!(reports > 0, "progress was reported");
    assert!(report.swapped_at > 0);
    assert!(report.checkpoint >= report.swapped_at);
    assert!(report.poison.is_none());

    let tail = env.append(&scenario.activity(20)).await;
    publisher.publish(&tail).await;
    env.wait_for_checkpoint(env.head().await).await;
    assert_verified(&env).await;
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() \
         AND (table_name LIKE '%\\_rebuild' OR table_name LIKE '%\\_old')",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    projector.stop().await;
}

#[tokio::test]
async fn a_poison_event_stops_the_projection_until_it_is_parked() {
    let env = Env::new().await;
    let mut scenario = Scenario::new(6);
    let mut events = env.append(&scenario.register(3)).await;
    events.extend(env.append(&scenario.activity(20)).await);
    let victim = UserId::parse(events[0].stream_id.as_str().trim_start_matches("user-")).unwrap();
    // Amount 0 is outside the domain: the event does not decode.
    let poison = env
        .append_raw(
            victim,
            "transaction.deposited",
            serde_json::json!({
                "transaction_id": uuid::Uuid::now_v7().to_string(),
                "user_id": victim.to_string(),
                "amount": 0,
                "currency": "EUR",
            }),
        )
        .await;
    let after = env.append(&scenario.activity(20)).await;
    events.push(poison.clone());
    events.extend(after);
    env.publisher().await.publish(&events).await;
    let projector = Running::start(&env.config).await;

    env.wait_for_checkpoint(poison.position - 1).await;
    eventually("readiness to turn 503", || async {
        let (status, body) = projector.get("/health/ready").await;
        (status == 503).then_some(body)
    })
    .await;
    // Nothing from the poison on is acknowledged (the broker's counts lag a little).
    eventually("the poison message to be held unacknowledged", || async {
        let (_, unacked) = env.queue_depth();
        (unacked >= 1).then_some(())
    })
    .await;
    assert_eq!(env.checkpoint().await, poison.position - 1);
    let (_, metrics) = projector.get("/metrics").await;
    assert!(metrics.contains("projector_poisoned 1\n"), "{metrics}");
    assert!(
        metrics.contains(&format!("projector_poison_position {}\n", poison.position)),
        "{metrics}"
    );

    // Parking an applied position is refused; parking the poison lets it go on.
    assert!(matches!(
        projector::park(&env.config, 1, "test").await,
        Err(projector::Error::AlreadyApplied { .. })
    ));
    let parked = projector::park(&env.config, poison.position, "test: amount 0")
        .await
        .unwrap();
    assert!(parked.newly);
    env.wait_for_checkpoint(env.head().await).await;
    eventually("readiness to return", || async {
        (projector.get("/health/ready").await.0 == 200).then_some(())
    })
    .await;
    eventually("the queue to drain", || async {
        (env.queue_depth() == (0, 0)).then_some(())
    })
    .await;
    projector.stop().await;
    // Rebuild and verify step over the parked position too.
    assert_verified(&env).await;
    let report = projector::rebuild(&env.config, &mut |_| {}).await.unwrap();
    assert_eq!(report.parked, vec![poison.position]);
    assert_verified(&env).await;
}

#[tokio::test]
async fn a_standby_takes_over_when_the_active_projector_stops() {
    let env = Env::new().await;
    let mut scenario = Scenario::new(7);
    let publisher = env.publisher().await;
    let a = Running::start(&env.config).await;
    let b = Running::start(&env.config).await;
    let events = env.append(&scenario.register(5)).await;
    publisher.publish(&events).await;
    env.wait_for_checkpoint(env.head().await).await;

    // Whichever was active, stopping `a` leaves `b` consuming.
    a.stop().await;
    let events = env.append(&scenario.activity(100)).await;
    publisher.publish(&events).await;
    env.wait_for_checkpoint(env.head().await).await;
    b.stop().await;
    assert_verified(&env).await;
}

#[tokio::test]
async fn the_projector_rides_out_a_broker_outage() {
    let env = Env::new().await;
    let mut scenario = Scenario::new(10);
    let events = env.append(&scenario.register(4)).await;
    env.publisher().await.publish(&events).await;
    let projector = Running::start(&env.config).await;
    env.wait_for_checkpoint(env.head().await).await;

    env.broker.outage().await;
    eventually("readiness to report the broker gone", || async {
        let (status, body) = projector.get("/health/ready").await;
        (status == 503 && body.contains("rabbitmq")).then_some(())
    })
    .await;
    // Appended while the broker is away; their messages never arrive (the vhost and its
    // queue are gone), so the projector must find them in the log.
    env.append(&scenario.activity(30)).await;
    env.broker.restore().await;
    // The relay declares the topology again when it reconnects; the projector only
    // consumes.
    let publisher = env.publisher().await;
    eventually("readiness to return", || async {
        (projector.get("/health/ready").await.0 == 200).then_some(())
    })
    .await;
    let after = env.append(&scenario.activity(10)).await;
    publisher.publish(&after).await;
    env.wait_for_checkpoint(env.head().await).await;
    projector.stop().await;
    assert_verified(&env).await;
}

/// Kills the child on drop, so a failing test leaves no process behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_binary(env: &Env) -> ChildGuard {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_projector"))
        .arg("run")
        .env("DATABASE_URL", env.config.database_url.expose())
        .env("AMQP_URL", env.config.broker.amqp_url.expose())
        .env("QUEUE", &env.config.queue)
        .env("METRICS_ADDR", "127.0.0.1:0")
        // Small batches: many commits, so the kill lands between and inside them.
        .env("BATCH_SIZE", "25")
        .env("PREFETCH", "50")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the projector binary");
    ChildGuard(child)
}

#[tokio::test]
async fn a_sigkill_mid_batch_leaves_tables_equal_to_a_rebuild() {
    let env = Env::new().await;
    let mut scenario = Scenario::new(8);
    let mut events = env.append(&scenario.register(50)).await;
    events.extend(env.append_many(&scenario.activity(6_000)).await);
    env.publisher().await.publish(&events).await;
    let head = env.head().await;

    let mut child = spawn_binary(&env);
    let at_kill = eventually("the projector to be part-way", || async {
        let c = env.checkpoint().await;
        (c > 200 && c < head).then_some(c)
    })
    .await;
    child.0.kill().expect("SIGKILL");
    child.0.wait().unwrap();
    assert!(at_kill < head);

    let _child = spawn_binary(&env);
    env.wait_for_checkpoint(head).await;
    assert_verified(&env).await;
}

/// Throughput of rebuild and of the live consumer; run by hand:
/// `BENCH_EVENTS=1000000 cargo test -p projector --release -- --ignored --nocapture throughput`.
/// Prints rates; asserts only that the results are right.
#[tokio::test]
#[ignore = "a benchmark: minutes and a million events"]
async fn throughput() {
    use std::time::Instant;
    let total: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let live_events: usize = std::env::var("BENCH_LIVE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let env = Env::new().await;
    let mut scenario = Scenario::new(9);
    let started = Instant::now();
    env.append(&scenario.register(1_000)).await;
    while (env.head().await as usize) < total {
        env.append_bulk(&scenario.activity(20_000)).await;
    }
    let head = env.head().await;
    eprintln!(
        "log: {head} events appended in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let report = projector::rebuild(&env.config, &mut |_| {}).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "rebuild: {} events in {secs:.2}s = {:.0} events/s",
        report.events,
        report.events as f64 / secs
    );
    assert_eq!(report.checkpoint, head);

    // Live: a backlog of messages, consumed from the start.
    let events = env
        .log_after(head - live_events.min(head as usize) as u64)
        .await;
    sqlx::query("UPDATE checkpoints SET position = ? WHERE projection = 'main'")
        .bind(events[0].position - 1)
        .execute(&env.pool)
        .await
        .unwrap();
    // The rows for those events are applied again on top: only the rate is of interest
    // here, the tables are rebuilt below.
    env.publisher().await.publish(&events).await;
    let started = Instant::now();
    let projector = Running::start(&env.config).await;
    env.wait_for_checkpoint(head).await;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "live: {} events in {secs:.2}s = {:.0} events/s",
        events.len(),
        events.len() as f64 / secs
    );
    projector.stop().await;
    projector::rebuild(&env.config, &mut |_| {}).await.unwrap();
    let started = Instant::now();
    assert_verified(&env).await;
    eprintln!("verify: {:.2}s", started.elapsed().as_secs_f64());
}

#[tokio::test]
async fn park_accepts_only_the_position_the_projection_stopped_at() {
    let env = Env::new().await;
    let mut scenario = Scenario::new(13);
    let mut events = env.append(&scenario.register(3)).await;
    events.extend(env.append(&scenario.activity(10)).await);
    let victim = UserId::parse(events[0].stream_id.as_str().trim_start_matches("user-")).unwrap();
    let poison = env
        .append_raw(
            victim,
            "transaction.deposited",
            serde_json::json!({
                "transaction_id": uuid::Uuid::now_v7().to_string(),
                "user_id": victim.to_string(),
                "amount": 0,
                "currency": "EUR",
            }),
        )
        .await;
    events.push(poison.clone());
    events.extend(env.append(&scenario.activity(10)).await);
    env.publisher().await.publish(&events).await;
    let projector = Running::start(&env.config).await;
    env.wait_for_checkpoint(poison.position - 1).await;

    // A later position exists in the log, but the projection did not stop there:
    // parking it would skip an event nobody looked at.
    let beyond = projector::park(&env.config, poison.position + 1, "test").await;
    assert!(
        matches!(
            beyond,
            Err(projector::Error::NotWhereStopped { position, next, .. })
                if position == poison.position + 1 && next == poison.position
        ),
        "{beyond:?}"
    );
    assert!(matches!(
        projector::park(&env.config, poison.position - 1, "test").await,
        Err(projector::Error::AlreadyApplied { .. })
    ));
    let parked = projector::park(&env.config, poison.position, "test: amount 0")
        .await
        .unwrap();
    assert!(parked.newly);
    env.wait_for_checkpoint(env.head().await).await;
    // Repeating the command once the projection went on says so and changes nothing.
    let again = projector::park(&env.config, poison.position, "again")
        .await
        .unwrap();
    assert!(!again.newly);
    projector.stop().await;
    let parked: Vec<u64> = sqlx::query_scalar("SELECT position FROM parked_events")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(parked, vec![poison.position]);
    assert_verified(&env).await;
}

#[tokio::test]
async fn park_waits_for_a_batch_in_flight_and_refuses_the_position_it_applied() {
    let env = Env::new().await;
    let mut scenario = Scenario::new(14);
    env.append(&scenario.register(5)).await;
    sqlx::query(
        "INSERT INTO checkpoints (projection, position, updated_at) \
         VALUES ('main', 3, UTC_TIMESTAMP(6))",
    )
    .execute(&env.pool)
    .await
    .unwrap();

    // A batch holds the checkpoint's lock and is about to commit position 4.
    let mut batch = env.pool.begin().await.unwrap();
    sqlx::query("SELECT position FROM checkpoints WHERE projection = 'main' FOR UPDATE")
        .execute(&mut *batch)
        .await
        .unwrap();
    sqlx::query("UPDATE checkpoints SET position = 4 WHERE projection = 'main'")
        .execute(&mut *batch)
        .await
        .unwrap();
    let config = env.config.clone();
    let park = tokio::spawn(async move { projector::park(&config, 4, "test").await });
    // Until park is done, or waits for the checkpoint's lock.
    eventually(
        "park to finish or wait for the checkpoint's lock",
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND INFO LIKE '%FOR UPDATE%'",
            )
            .fetch_one(&env.pool)
            .await
            .unwrap();
            (park.is_finished() || waiting > 0).then_some(())
        },
    )
    .await;
    batch.commit().await.unwrap();

    let result = park.await.unwrap();
    assert!(
        matches!(
            result,
            Err(projector::Error::AlreadyApplied {
                position: 4,
                checkpoint: 4
            })
        ),
        "park accepted a position the batch in flight applied: {result:?}"
    );
    let parked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM parked_events")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(parked, 0);
}
