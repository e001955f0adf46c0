//! The issue that made the rule: deposits through a lost commit reply and a database
//! that refuses connections for longer than any retry budget. Every answer must be true
//! (`faults::History` against the log), and every command answered `outcome_unknown` or
//! `unavailable` that is repeated with its `transaction_id` is applied exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use faults::{Answer, Direction, Flow, History};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{spawn_app_behind_proxy, Req, TestApp};

/// Each command by its id: which client sent it, whether with a `transaction_id`, and
/// what it was told.
type Sent = HashMap<Uuid, (usize, bool, Answer)>;

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn deposit(user: Uuid, id: Uuid, keyed: bool) -> Value {
    let mut body = json!({"type": "deposit", "user_id": user, "amount": 1, "currency": "EUR"});
    if keyed {
        body["transaction_id"] = json!(id);
    }
    body
}

async fn send(app: &TestApp, token: &str, id: Uuid, body: Value) -> (Answer, bool) {
    let answer = app
        .send(
            Req::post("/api/v1/transactions")
                .token(token)
                .header("x-correlation-id", id.to_string())
                .json(body),
        )
        .await;
    let code = (!answer.status.is_success())
        .then(|| answer.json()["code"].as_str().map(str::to_owned))
        .flatten();
    let replayed = answer.headers.contains_key("idempotent-replayed");
    (
        Answer::from_http(answer.status.as_u16(), code.as_deref()),
        replayed,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deposits_through_a_lost_reply_and_an_outage_are_answered_truly_and_retried_once() {
    let (app, proxy) = spawn_app_behind_proxy(Duration::from_secs(3)).await;
    let app = Arc::new(app);
    // A user per client: the commands do not contend, many are in flight at once.
    let mut users = Vec::new();
    for _ in 0..32 {
        users.push(app.someone().await);
    }
    let history = Arc::new(History::new());
    // Half the clients choose a transaction_id (and may repeat), half send none.
    let sent: Arc<std::sync::Mutex<Sent>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let (app, history, sent, stop) =
                (app.clone(), history.clone(), sent.clone(), stop.clone());
            let (user, token) = (users[n].id, users[n].token.clone());
            tokio::spawn(async move {
                let keyed = n % 2 == 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = Uuid::now_v7();
                    let (answer, _) = send(&app, &token, id, deposit(user, id, keyed)).await;
                    history.record(id.to_string(), answer.clone());
                    sent.lock().unwrap().insert(id, (n, keyed, answer));
                }
            })
        })
        .collect();

    for _round in 0..2 {
        let before = history.count("applied");
        wait_for("deposits before the fault", || {
            history.count("applied") > before + 100
        })
        .await;
        proxy.set(Direction::ToClient, Flow::Hold);
        let held = proxy.stats().held_bytes;
        wait_for("a reply to be dropped", || proxy.stats().held_bytes > held).await;
        proxy.refuse(true);
        proxy.cut();
        let answered = history.len();
        wait_for("answers during the outage", || {
            history.len() > answered + 32
        })
        .await;
        proxy.heal();
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    // Repeat every keyed command that was not answered with success, as a client would.
    let unsettled: Vec<(Uuid, usize, Answer)> = sent
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, (_, keyed, a))| *keyed && *a != Answer::Applied)
        .map(|(id, (n, _, a))| (*id, *n, a.clone()))
        .collect();
    let mut replays = 0;
    for (id, n, first) in &unsettled {
        let who = &users[*n];
        let (again, replayed) = send(&app, &who.token, *id, deposit(who.id, *id, true)).await;
        assert_eq!(
            again,
            Answer::Applied,
            "repeating {id} (first told {first:?})"
        );
        replays += u64::from(replayed);
        history.record(id.to_string(), again);
    }

    // How often the log applied each command (by correlation id, which a repeat keeps).
    let mut applied: HashMap<String, u64> = HashMap::new();
    for who in &users {
        let mut deposits = 0;
        for e in app.events(who.id).await {
            let metadata: Value = serde_json::from_str(&e.metadata).unwrap();
            if e.event_type.as_str() == "transaction.deposited" {
                let id = metadata["correlation_id"].as_str().unwrap().to_owned();
                *applied.entry(id).or_default() += 1;
                deposits += 1;
            }
        }
        // The balance is exactly the deposits the log holds.
        let user = app.replayed(who.id).await;
        assert_eq!(user.balance(ledger::Currency::EUR).minor_units(), deposits);
    }
    let verdict = history.check(&applied);
    eprintln!(
        "{verdict}\nrepeated {} commands, {replays} replayed",
        unsettled.len()
    );
    assert!(verdict.is_true(), "{verdict}");
    // The faults hit commands: some were first told something other than success.
    let hit = sent
        .lock()
        .unwrap()
        .values()
        .filter(|(_, _, a)| *a != Answer::Applied)
        .count();
    assert!(hit > 0, "the faults must have hit commands: {verdict}");
}

/// Clients depositing on their own users, each with a `transaction_id`, recording every
/// answer, until `stop`.
fn clients(
    app: &Arc<TestApp>,
    users: &[crate::support::Someone],
    history: &Arc<History>,
    sent: &Arc<std::sync::Mutex<Sent>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    users
        .iter()
        .enumerate()
        .map(|(n, who)| {
            let (app, history, sent, stop) =
                (app.clone(), history.clone(), sent.clone(), stop.clone());
            let (user, token) = (who.id, who.token.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let id = Uuid::now_v7();
                    let (answer, _) = send(&app, &token, id, deposit(user, id, true)).await;
                    history.record(id.to_string(), answer.clone());
                    sent.lock().unwrap().insert(id, (n, true, answer));
                }
            })
        })
        .collect()
}

/// After the run: every command told anything but success is repeated with its
/// `transaction_id` and must succeed; then the log is compared with every answer, and
/// each balance with its deposits.
async fn settle_and_check(
    app: &TestApp,
    users: &[crate::support::Someone],
    history: &History,
    sent: &std::sync::Mutex<Sent>,
) -> faults::Verdict {
    let unsettled: Vec<(Uuid, usize)> = sent
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, (_, _, a))| *a != Answer::Applied)
        .map(|(id, (n, _, _))| (*id, *n))
        .collect();
    for (id, n) in &unsettled {
        let who = &users[*n];
        let (again, _) = send(app, &who.token, *id, deposit(who.id, *id, true)).await;
        assert_eq!(again, Answer::Applied, "repeating {id}");
        history.record(id.to_string(), again);
    }
    let mut applied: HashMap<String, u64> = HashMap::new();
    for who in users {
        let mut deposits = 0;
        for e in app.events(who.id).await {
            let metadata: Value = serde_json::from_str(&e.metadata).unwrap();
            if e.event_type.as_str() == "transaction.deposited" {
                let id = metadata["correlation_id"].as_str().unwrap().to_owned();
                *applied.entry(id).or_default() += 1;
                deposits += 1;
            }
        }
        let user = app.replayed(who.id).await;
        assert_eq!(user.balance(ledger::Currency::EUR).minor_units(), deposits);
    }
    let report = app.store.verify(1, None).await.unwrap();
    assert!(report.ok, "the chain verifies: {report:?}");
    let verdict = history.check(&applied);
    assert!(verdict.is_true(), "{verdict}");
    verdict
}

fn limits() -> event_store::StoreOptions {
    event_store::StoreOptions {
        append_deadline: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        ..event_store::StoreOptions::default()
    }
}

/// A database server that stops answering (SIGSTOP) under load: every command is
/// answered within its deadline with 503, nothing is half-written, and once the server
/// runs again (SIGCONT) commands succeed without anyone stepping in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_database_costs_deadlines_not_hangs_and_the_stack_recovers() {
    let mariadb = faults::PrivateMariaDb::new().await;
    let app = Arc::new(crate::support::spawn_app_on_server(mariadb.owner(), limits()).await);
    let mut users = Vec::new();
    for _ in 0..16 {
        users.push(app.someone().await);
    }
    let history = Arc::new(History::new());
    let sent: Arc<std::sync::Mutex<Sent>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = clients(&app, &users, &history, &sent, &stop);

    wait_for("deposits", || history.count("applied") > 200).await;
    mariadb.pause();
    // Every client is answered while the server answers nothing: two answers each.
    let answered = history.len();
    wait_for("answers while the server is paused", || {
        history.len() >= answered + 2 * users.len()
    })
    .await;
    let during: Vec<Answer> = sent
        .lock()
        .unwrap()
        .values()
        .map(|(_, _, a)| a.clone())
        .filter(|a| *a != Answer::Applied)
        .collect();
    assert!(
        during
            .iter()
            .all(|a| matches!(a, Answer::OutcomeUnknown)
                || *a == Answer::Failed("unavailable".into())),
        "a paused database is unavailable, never anything else: {during:?}"
    );
    mariadb.resume();
    let before = history.count("applied");
    wait_for("deposits after the server runs again", || {
        history.count("applied") > before + 200
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let verdict = settle_and_check(&app, &users, &history, &sent).await;
    eprintln!("{verdict}");
}

/// kill -9 of the database server under load, then a start on the same data: nothing
/// acknowledged is lost, nothing is doubled, nothing applied was told failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_database_loses_and_doubles_nothing() {
    let mut mariadb = faults::PrivateMariaDb::new().await;
    let app = Arc::new(crate::support::spawn_app_on_server(mariadb.owner(), limits()).await);
    let mut users = Vec::new();
    for _ in 0..16 {
        users.push(app.someone().await);
    }
    let history = Arc::new(History::new());
    let sent: Arc<std::sync::Mutex<Sent>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = clients(&app, &users, &history, &sent, &stop);
    for _ in 0..2 {
        let before = history.count("applied");
        wait_for("deposits", || history.count("applied") > before + 200).await;
        mariadb.kill();
        let answered = history.len();
        wait_for("answers while the server is down", || {
            history.len() >= answered + users.len()
        })
        .await;
        mariadb.start().await;
    }
    let before = history.count("applied");
    wait_for("deposits after the restart", || {
        history.count("applied") > before + 100
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let verdict = settle_and_check(&app, &users, &history, &sent).await;
    eprintln!("{verdict}");
}
