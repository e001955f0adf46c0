//! Properties over random command sequences: no balance ever leaves 0 ..= ceiling, money
//! is only created by deposits and destroyed by withdrawals, and replaying each stream's
//! events (decoded from their stored JSON) gives exactly the state the decide loop held.

use std::collections::BTreeMap;

use ledger::testing::{amount, register_as, sealed, ALICE, BOB};
use ledger::{
    decide, decide_transfer, decode, evolve, replay, Balance, Command, Currency, DeactivateUser,
    Deposit, ErasePersonalData, LedgerEvent, TransactionId, Transfer, UpdateProfile, User, UserId,
    Withdraw,
};
use proptest::prelude::*;
use uuid::Uuid;

const CAROL: UserId = UserId::from_uuid(Uuid::from_u128(0x0190_a8f6_7b2c_7c3e_9f00_0000_0000_ca01));
const USERS: [UserId; 3] = [ALICE, BOB, CAROL];
const CURRENCIES: [Currency; 2] = [Currency::EUR, Currency::JPY];

#[derive(Debug, Clone)]
enum Op {
    Register(usize),
    Update(usize),
    Deactivate(usize),
    Erase(usize),
    Deposit(usize, usize, i64),
    Withdraw(usize, usize, i64),
    Transfer(usize, usize, usize, i64),
}

fn minor_units() -> impl Strategy<Value = i64> {
    // Mostly everyday amounts, sometimes the largest, so the ceiling is reached too.
    prop_oneof![
        8 => 1i64..=1_000,
        1 => 1i64..=1_000_000_000_000_000,
        1 => Just(1_000_000_000_000_000),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    let currency = 0..CURRENCIES.len();
    prop_oneof![
        3 => user.clone().prop_map(Op::Register),
        1 => user.clone().prop_map(Op::Update),
        1 => user.clone().prop_map(Op::Deactivate),
        1 => user.clone().prop_map(Op::Erase),
        6 => (user.clone(), currency.clone(), minor_units()).prop_map(|(u, c, n)| Op::Deposit(u, c, n)),
        5 => (user.clone(), currency.clone(), minor_units()).prop_map(|(u, c, n)| Op::Withdraw(u, c, n)),
        6 => (user.clone(), user, currency, minor_units()).prop_map(|(a, b, c, n)| Op::Transfer(a, b, c, n)),
    ]
}

#[derive(Default)]
struct World {
    users: BTreeMap<UserId, User>,
    logs: BTreeMap<UserId, Vec<LedgerEvent>>,
    /// Deposits minus withdrawals accepted, per currency.
    net_in: BTreeMap<Currency, i128>,
}

impl World {
    fn user(&self, id: UserId) -> User {
        self.users.get(&id).cloned().unwrap_or_default()
    }

    fn record(&mut self, id: UserId, events: Vec<LedgerEvent>) {
        let user = events.iter().fold(self.user(id), evolve);
        self.users.insert(id, user);
        self.logs.entry(id).or_default().extend(events);
    }

    fn run(&mut self, n: usize, op: &Op) {
        let tx = TransactionId::from_uuid(Uuid::from_u128(n as u128 + 1));
        let command: Command = match *op {
            Op::Register(u) => register_as(USERS[u]).into(),
            Op::Update(u) => UpdateProfile {
                user_id: USERS[u],
                email: Some(sealed(&format!("{n}@example.com"))),
                display_name: None,
            }
            .into(),
            Op::Deactivate(u) => DeactivateUser {
                user_id: USERS[u],
                reason: None,
            }
            .into(),
            Op::Erase(u) => ErasePersonalData { user_id: USERS[u] }.into(),
            Op::Deposit(u, c, m) => Deposit {
                transaction_id: tx,
                user_id: USERS[u],
                amount: amount(m),
                currency: CURRENCIES[c],
            }
            .into(),
            Op::Withdraw(u, c, m) => Withdraw {
                transaction_id: tx,
                user_id: USERS[u],
                amount: amount(m),
                currency: CURRENCIES[c],
            }
            .into(),
            Op::Transfer(a, b, c, m) => {
                let transfer = Transfer {
                    transaction_id: tx,
                    from_user_id: USERS[a],
                    to_user_id: USERS[b],
                    amount: amount(m),
                    currency: CURRENCIES[c],
                };
                let (from, to) = (self.user(USERS[a]), self.user(USERS[b]));
                if let Ok((for_from, for_to)) = decide_transfer(&from, &to, &transfer) {
                    self.record(USERS[a], for_from);
                    self.record(USERS[b], for_to);
                }
                return;
            }
        };
        let id = command.user_id();
        if let Ok(events) = decide(&self.user(id), &command) {
            for event in &events {
                let (currency, delta) = match event {
                    LedgerEvent::Deposited(e) => (e.currency, i128::from(e.amount.minor_units())),
                    LedgerEvent::Withdrawn(e) => (e.currency, -i128::from(e.amount.minor_units())),
                    _ => continue,
                };
                *self.net_in.entry(currency).or_default() += delta;
            }
            self.record(id, events);
        }
    }
}

proptest! {
    #[test]
    fn balances_stay_in_range_and_replay_matches_the_decide_loop(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        let mut world = World::default();
        for (n, op) in ops.iter().enumerate() {
            world.run(n, op);
            for user in world.users.values() {
                for (currency, balance) in user.balances().iter() {
                    prop_assert!(
                        (0..=Balance::MAX).contains(&balance.minor_units()),
                        "{currency} balance {balance} after {op:?}"
                    );
                }
            }
        }

        for currency in CURRENCIES {
            let held: i128 = world
                .users
                .values()
                .map(|u| i128::from(u.balance(currency).minor_units()))
                .sum();
            let net = world.net_in.get(&currency).copied().unwrap_or(0);
            prop_assert_eq!(held, net, "money created or lost in {}", currency);
        }

        for (id, log) in &world.logs {
            let stored: Vec<LedgerEvent> = log
                .iter()
                .map(|e| {
                    decode(e.event_type(), e.schema_version(), &e.data().to_string())
                        .expect("every emitted event decodes")
                })
                .collect();
            prop_assert_eq!(&stored, log);
            prop_assert_eq!(&replay(&stored), &world.users[id]);
            prop_assert!(log.iter().all(|e| e.user_id() == *id), "event on a foreign stream");
        }
    }
}
