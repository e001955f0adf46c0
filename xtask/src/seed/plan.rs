//! The data set: registrations, opening deposits, everyday traffic and closures, in
//! phases, each command with its idempotency key. A pure function of the seed.

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

use super::names::{ascii_fold, DOMAINS, FIRST_NAMES, LAST_NAMES};
use super::op::Op;
use super::rng::{v7_at, Rng};

pub(super) const USERS: usize = 300;
const EVERYDAY_TRANSACTIONS: usize = 3_600;
const DEACTIVATED: usize = 5;

/// Currencies with weights (percent) and a scale: JPY has no minor unit.
const CURRENCIES: &[(&str, u64, i64)] = &[
    ("EUR", 55, 1),
    ("USD", 20, 1),
    ("GBP", 12, 1),
    ("CHF", 9, 1),
    ("JPY", 4, 0),
];

const DEACTIVATION_REASONS: &[&str] = &[
    "Closed at the customer's request",
    "Customer moved abroad",
    "Duplicate account",
    "Suspected fraud, under review",
    "Dormant for two years",
];

/// A group of commands that may run in any order among themselves.
#[derive(Debug)]
pub(super) struct Phase {
    pub(super) name: &'static str,
    pub(super) ops: Vec<Op>,
}

/// Everything the data set consists of, in phases, with each command's idempotency key.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) seed: u64,
    pub(super) phases: Vec<Phase>,
}

impl Plan {
    pub(super) fn len(&self) -> usize {
        self.phases.iter().map(|p| p.ops.len()).sum()
    }

    /// `Idempotency-Key` of the `index`-th command of the whole plan.
    pub(super) fn key(&self, index: usize) -> String {
        idempotency_key(self.seed, index)
    }

    /// The subject every command is sent as: idempotency keys are scoped to their sender.
    pub(super) fn admin_subject(&self) -> Uuid {
        let mut rng = Rng::new(self.seed ^ 0xad31_0000_0000_0000);
        v7_at(&mut rng, 1_704_067_200_000)
    }
}

pub(super) fn idempotency_key(seed: u64, index: usize) -> String {
    format!("seed-{seed:016x}-{index:06}")
}

struct Person {
    id: Uuid,
    /// The currency this person mostly uses.
    home: &'static str,
}

/// The data set for `seed`: a pure function, the same on every run and every machine.
pub(super) fn plan(seed: u64) -> Plan {
    let mut rng = Rng::new(seed);
    let start_millis = 1_704_067_200_000; // 2024-01-01, registrations a few hours apart
    let mut people = Vec::with_capacity(USERS);
    let mut emails = HashSet::new();
    let mut registrations = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let first = *rng.pick(FIRST_NAMES);
        let last = *rng.pick(LAST_NAMES);
        let (f, l) = (ascii_fold(first), ascii_fold(last));
        let domain = rng.pick(DOMAINS);
        let local = match rng.below(4) {
            0 => format!("{f}.{l}"),
            1 => format!("{}{l}", &f[..1]),
            2 => format!("{f}_{l}{}", rng.between(1, 99)),
            _ => format!("{l}.{f}"),
        };
        let mut email = format!("{local}@{domain}");
        let mut n = 2;
        while !emails.insert(email.clone()) {
            email = format!("{local}{n}@{domain}");
            n += 1;
        }
        let millis = start_millis + i as u64 * 3_600_000 + rng.below(3_600_000);
        let id = v7_at(&mut rng, millis);
        let home = weighted_currency(&mut rng);
        registrations.push(Op::Register {
            user_id: id,
            email,
            display_name: format!("{first} {last}"),
        });
        people.push(Person { id, home });
    }

    // Opening deposits: what later debits are paid from.
    let mut funds: BTreeMap<(Uuid, &'static str), i64> = BTreeMap::new();
    let mut opening = Vec::new();
    for person in &people {
        let deposits = 1 + rng.below(2);
        for d in 0..deposits {
            let currency = if d == 0 {
                person.home
            } else {
                weighted_currency(&mut rng)
            };
            let amount = amount_in(&mut rng, currency, 20_000, 500_000);
            *funds.entry((person.id, currency)).or_default() += amount;
            opening.push(Op::Deposit {
                user_id: person.id,
                amount,
                currency,
            });
        }
    }

    let mut everyday = Vec::with_capacity(EVERYDAY_TRANSACTIONS);
    while everyday.len() < EVERYDAY_TRANSACTIONS {
        let person = rng.pick(&people);
        let roll = rng.below(100);
        let currency = if rng.chance(85) {
            person.home
        } else {
            weighted_currency(&mut rng)
        };
        let available = funds.get(&(person.id, currency)).copied().unwrap_or(0);
        // 1.00 in a currency with cents; 100 yen.
        let minimum = 100;
        if roll < 35 || available < minimum {
            everyday.push(Op::Deposit {
                user_id: person.id,
                amount: amount_in(&mut rng, currency, 1_000, 150_000),
                currency,
            });
            continue;
        }
        let ceiling = available.min(scaled(currency, 80_000));
        let amount = rng.between(minimum, ceiling.max(minimum));
        if let Some(balance) = funds.get_mut(&(person.id, currency)) {
            *balance -= amount;
        }
        if roll < 65 {
            everyday.push(Op::Withdraw {
                user_id: person.id,
                amount,
                currency,
            });
        } else {
            let mut to = rng.pick(&people).id;
            while to == person.id {
                to = rng.pick(&people).id;
            }
            everyday.push(Op::Transfer {
                from: person.id,
                to,
                amount,
                currency,
            });
        }
    }

    // Closures last, so no transaction ever meets a closed account. The erased customer
    // closed the account first, as a real one would.
    let mut closing = Vec::new();
    let mut chosen = HashSet::new();
    while chosen.len() < DEACTIVATED + 1 {
        chosen.insert(rng.below(USERS as u64) as usize);
    }
    let mut chosen: Vec<usize> = chosen.into_iter().collect();
    chosen.sort_unstable();
    for (n, &i) in chosen.iter().enumerate() {
        closing.push(Op::Deactivate {
            user_id: people[i].id,
            reason: DEACTIVATION_REASONS[n % DEACTIVATION_REASONS.len()],
        });
    }
    if let Some(&erased) = chosen.last() {
        closing.push(Op::Erase {
            user_id: people[erased].id,
        });
    }

    Plan {
        seed,
        phases: vec![
            Phase {
                name: "users",
                ops: registrations,
            },
            Phase {
                name: "opening",
                ops: opening,
            },
            Phase {
                name: "everyday",
                ops: everyday,
            },
            Phase {
                name: "closures",
                ops: closing,
            },
        ],
    }
}

fn weighted_currency(rng: &mut Rng) -> &'static str {
    let mut roll = rng.below(100);
    for &(code, weight, _) in CURRENCIES {
        if roll < weight {
            return code;
        }
        roll -= weight;
    }
    "EUR"
}

/// `minor` in cents of a euro-like currency, as the currency's own minor units (a yen
/// amount is about 1.5 × the euro amount in cents: 100.00 EUR ≈ 15,000 JPY).
fn scaled(currency: &str, minor: i64) -> i64 {
    match CURRENCIES.iter().find(|c| c.0 == currency) {
        Some((_, _, 0)) => minor * 3 / 2,
        _ => minor,
    }
}

fn amount_in(rng: &mut Rng, currency: &str, lo: i64, hi: i64) -> i64 {
    // Most amounts are small, a few large: square a uniform draw.
    let t = rng.below(1_000_000) as f64 / 1_000_000.0;
    let raw = lo as f64 + (hi - lo) as f64 * t * t;
    let amount = scaled(currency, raw as i64);
    // Round now and then, as people do: to whole euros (100 cents), or to 100 yen.
    if rng.chance(40) {
        (amount / 100).max(1) * 100
    } else {
        amount.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::SEED;
    use super::*;

    fn all(plan: &Plan) -> impl Iterator<Item = &Op> {
        plan.phases.iter().flat_map(|p| &p.ops)
    }

    #[test]
    fn the_plan_is_the_same_on_every_run() {
        let (a, b) = (plan(SEED), plan(SEED));
        assert_eq!(a.len(), b.len());
        for (x, y) in all(&a).zip(all(&b)) {
            assert_eq!(x, y);
            assert_eq!(x.body(), y.body(), "bodies must match byte for byte");
        }
        assert_eq!(a.admin_subject(), b.admin_subject());
        assert_ne!(
            all(&plan(SEED + 1)).next(),
            all(&a).next(),
            "another seed, another data set"
        );
    }

    #[test]
    fn idempotency_keys_are_fixed_unique_and_well_formed() {
        let plan = plan(SEED);
        let keys: Vec<String> = (0..plan.len()).map(|i| plan.key(i)).collect();
        assert_eq!(keys[0], "seed-5eed1ed6e2024001-000000");
        assert_eq!(keys.iter().collect::<HashSet<_>>().len(), keys.len());
        // API.md: 1–128 visible ASCII characters.
        assert!(keys
            .iter()
            .all(|k| (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic())));
        assert_eq!(idempotency_key(SEED, 42), plan.key(42));
    }

    #[test]
    fn a_few_hundred_users_with_unique_plausible_addresses() {
        let plan = plan(SEED);
        let users: Vec<(&Uuid, &String, &String)> = all(&plan)
            .filter_map(|op| match op {
                Op::Register {
                    user_id,
                    email,
                    display_name,
                } => Some((user_id, email, display_name)),
                _ => None,
            })
            .collect();
        assert_eq!(users.len(), USERS);
        let ids: HashSet<_> = users.iter().map(|u| u.0).collect();
        let emails: HashSet<_> = users.iter().map(|u| u.1.to_lowercase()).collect();
        assert_eq!((ids.len(), emails.len()), (USERS, USERS));
        for (id, email, name) in &users {
            assert_eq!(id.get_version_num(), 7);
            let (local, domain) = email.split_once('@').unwrap();
            assert!(!local.is_empty() && local.is_ascii(), "{email}");
            assert!(DOMAINS.contains(&domain), "{email}");
            assert!(name.split(' ').count() >= 2, "{name}");
        }
    }

    #[test]
    fn thousands_of_transactions_that_never_overdraw_in_any_order() {
        let plan = plan(SEED);
        let phase = |name| plan.phases.iter().find(|p| p.name == name).unwrap();
        // Debits of the everyday phase are covered by the opening deposits alone, so the
        // phase may run in any order (and concurrently).
        let mut funds: BTreeMap<(Uuid, &str), i64> = BTreeMap::new();
        for op in &phase("opening").ops {
            let Op::Deposit {
                user_id,
                amount,
                currency,
            } = op
            else {
                panic!("opening holds deposits only: {op:?}");
            };
            *funds.entry((*user_id, currency)).or_default() += amount;
        }
        let (mut deposits, mut withdrawals, mut transfers) = (0, 0, 0);
        for op in &phase("everyday").ops {
            match op {
                Op::Deposit { amount, .. } => {
                    assert!(*amount >= 1);
                    deposits += 1;
                }
                Op::Withdraw {
                    user_id,
                    amount,
                    currency,
                }
                | Op::Transfer {
                    from: user_id,
                    amount,
                    currency,
                    ..
                } => {
                    assert!(*amount >= 1);
                    let left = funds.get_mut(&(*user_id, currency)).unwrap();
                    *left -= amount;
                    assert!(*left >= 0, "{op:?} overdraws");
                    if matches!(op, Op::Withdraw { .. }) {
                        withdrawals += 1;
                    } else {
                        transfers += 1;
                    }
                }
                other => panic!("not a transaction: {other:?}"),
            }
            if let Op::Transfer { from, to, .. } = op {
                assert_ne!(from, to);
            }
        }
        assert!(deposits > 500 && withdrawals > 500 && transfers > 500);
        let currencies: HashSet<&str> = all(&plan)
            .filter_map(|op| match op {
                Op::Deposit { currency, .. } => Some(*currency),
                _ => None,
            })
            .collect();
        assert_eq!(currencies.len(), CURRENCIES.len());
    }

    #[test]
    fn a_few_closed_accounts_and_one_erasure_come_last() {
        let plan = plan(SEED);
        let closures = &plan.phases.last().unwrap().ops;
        let deactivated: Vec<_> = closures
            .iter()
            .filter_map(|op| match op {
                Op::Deactivate { user_id, .. } => Some(*user_id),
                _ => None,
            })
            .collect();
        let erased: Vec<_> = closures
            .iter()
            .filter_map(|op| match op {
                Op::Erase { user_id } => Some(*user_id),
                _ => None,
            })
            .collect();
        assert_eq!(deactivated.len(), DEACTIVATED + 1);
        assert_eq!(erased.len(), 1);
        assert!(deactivated.contains(&erased[0]), "closed before erased");
        assert!(matches!(closures.last(), Some(Op::Erase { .. })));
    }
}
