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
