//! Concurrent money moves through the router: whatever the interleaving, every committed
//! command is applied exactly once, no balance goes below zero, and the state the log
//! replays to (`ledger::replay`) is the state the command side acts on.

use std::collections::HashMap;

use axum::http::StatusCode;
use futures_util::future::join_all;
use ledger::Currency;
use serde_json::json;
use uuid::Uuid;

use crate::support::{spawn_app, spawn_app_with, Someone, TestApp};

const USERS: usize = 4;
const CLIENTS: usize = 8;
const OPS_PER_CLIENT: usize = 12;
const OPENING: i64 = 1_000;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[derive(Debug, Clone)]
enum Op {
    Deposit(usize, i64),
    Withdraw(usize, i64),
    Transfer(usize, usize, i64),
}

fn plan(rng: &mut Rng) -> Op {
    let user = rng.below(USERS as u64) as usize;
    let amount = 1 + rng.below(600) as i64;
    match rng.below(3) {
        0 => Op::Deposit(user, amount),
        1 => Op::Withdraw(user, amount),
        _ => {
            let other = (user + 1 + rng.below(USERS as u64 - 1) as usize) % USERS;
            Op::Transfer(user, other, amount)
        }
    }
}

async fn issue(app: &TestApp, users: &[Someone], op: &Op) -> (StatusCode, String) {
    // Each user moves its own money with its own token.
    let (token, body) = match *op {
        Op::Deposit(u, amount) => (
            &users[u].token,
            json!({"type": "deposit", "user_id": users[u].id, "amount": amount, "currency": "EUR"}),
        ),
        Op::Withdraw(u, amount) => (
            &users[u].token,
            json!({"type": "withdrawal", "user_id": users[u].id, "amount": amount, "currency": "EUR"}),
        ),
        Op::Transfer(from, to, amount) => (
            &users[from].token,
            json!({"type": "transfer", "from_user_id": users[from].id,
                "to_user_id": users[to].id, "amount": amount, "currency": "EUR"}),
        ),
    };
    let answer = app.money(token, body).await;
    let code = if answer.status == StatusCode::CREATED {
        answer.ok(StatusCode::CREATED);
        String::new()
    } else {
        answer.json()["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (answer.status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_money_moves_keep_every_balance_exact_and_non_negative() {
    let seed = std::env::var("COMMAND_API_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(Uuid::new_v4().as_fields().0) | 1);
    println!("COMMAND_API_SEED={seed}");
    let mut rng = Rng(seed);

    let app = spawn_app().await;
    let mut users = Vec::new();
    for _ in 0..USERS {
        let user = app.someone().await;
        app.deposit(&user.token, user.id, OPENING)
            .await
            .ok(StatusCode::CREATED);
        users.push(user);
    }
    let scripts: Vec<Vec<Op>> = (0..CLIENTS)
        .map(|_| (0..OPS_PER_CLIENT).map(|_| plan(&mut rng)).collect())
        .collect();

    let results = join_all(scripts.iter().map(|script| {
        let (app, users) = (&app, &users);
        async move {
            let mut done = Vec::new();
            for op in script {
                done.push((op.clone(), issue(app, users, op).await));
            }
            done
        }
    }))
    .await;

    // The model: every committed command applied once, in whatever order.
    let mut expected = [OPENING; USERS];
    let mut touches = [2_usize; USERS]; // registration and opening deposit
    let mut conflicts = 0;
    for (op, (status, code)) in results.into_iter().flatten() {
        match (status, code.as_str()) {
            (StatusCode::CREATED, _) => match op {
                Op::Deposit(u, a) => {
                    expected[u] += a;
                    touches[u] += 1;
                }
                Op::Withdraw(u, a) => {
                    expected[u] -= a;
                    touches[u] += 1;
                }
                Op::Transfer(f, t, a) => {
                    expected[f] -= a;
                    expected[t] += a;
                    touches[f] += 1;
                    touches[t] += 1;
                }
            },
            (StatusCode::CONFLICT, "insufficient_funds") => {}
            (StatusCode::CONFLICT, "concurrency_conflict") => conflicts += 1,
            other => panic!("unexpected answer {other:?} to {op:?} (seed {seed})"),
        }
    }
    assert!(
        conflicts * 10 <= CLIENTS * OPS_PER_CLIENT,
        "{conflicts} commands gave up on contention (seed {seed})"
    );
    // How often a stream moved under a command and it was decided again.
    let metrics = app.send(crate::support::Req::get("/metrics")).await;
    let retries: u64 = String::from_utf8(metrics.body)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("command_version_conflicts_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    println!("{retries} retries after version conflicts, {conflicts} gave up");
    assert!(retries > 0, "the commands never contended (seed {seed})");

    let mut by_user = HashMap::new();
    for (i, user) in users.iter().enumerate() {
        let replayed = app.replayed(user.id).await;
        let balance = replayed.balance(Currency::EUR).minor_units();
        assert!(balance >= 0, "seed {seed}");
        assert_eq!(balance, expected[i], "user {i} (seed {seed})");
        assert_eq!(app.events(user.id).await.len(), touches[i], "seed {seed}");
        by_user.insert(user.id, balance);
    }

    // The command side acts on exactly the replayed state: each user can withdraw what
    // the log says it holds, and not a cent more.
    for user in &users {
        let balance = by_user[&user.id];
        if balance > 0 {
            app.money(
                &user.token,
                json!({"type": "withdrawal", "user_id": user.id, "amount": balance, "currency": "EUR"}),
            )
            .await
            .ok(StatusCode::CREATED);
        }
        app.money(
            &user.token,
            json!({"type": "withdrawal", "user_id": user.id, "amount": 1, "currency": "EUR"}),
        )
        .await
        .problem(StatusCode::CONFLICT, "insufficient_funds");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_keeps_moving_past_the_last_attempt_is_a_concurrency_conflict() {
    let app = spawn_app_with(|state| state.with_max_attempts(1)).await;
    let ada = app.someone().await;
    let (mut created, mut conflicts) = (0, 0);
    // Rounds of racing deposits until one loses its only attempt (nearly always the first).
    for _ in 0..50 {
        let answers = join_all((0..8).map(|_| app.deposit(&ada.token, ada.id, 1))).await;
        for answer in answers {
            if answer.status == StatusCode::CREATED {
                created += 1;
            } else {
                answer.problem(StatusCode::CONFLICT, "concurrency_conflict");
                conflicts += 1;
            }
        }
        if conflicts > 0 {
            break;
        }
    }
    assert!(conflicts > 0, "no deposit ever lost a race");
    // A refused attempt appended nothing.
    assert_eq!(app.events(ada.id).await.len(), 1 + created);
    let balance = app
        .replayed(ada.id)
        .await
        .balance(Currency::EUR)
        .minor_units();
    assert_eq!(balance, created as i64);
}
