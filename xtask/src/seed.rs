//! `cargo xtask dev --seed`: a small, realistic data set loaded through the command API,
//! the way a client would: a few hundred users with plausible names and e-mail addresses,
//! thousands of deposits, withdrawals and transfers in five currencies, a few deactivated
//! users and one whose personal data is erased.
//!
//! Idempotent by construction: the plan is a pure function of [`SEED`] (same users, same
//! ids, same bodies byte for byte), every command carries an `Idempotency-Key` derived from
//! the seed and its place in the plan, and all are sent as one fixed admin subject. A second
//! run is answered from command-api's idempotency records (`Idempotent-Replayed: true`)
//! and appends nothing; the summary says how many commands were new.
//!
//! The plan runs in phases (registrations, opening deposits, everyday traffic, closures).
//! Inside a phase commands go out on several connections at once, in any order, so a
//! withdrawal or transfer never counts on money that arrives in the same phase: each is
//! paid from what the opening deposits left after the debits planned before it.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use uuid::Uuid;

/// The data set's seed. Changing it makes a different data set, which would collide with
/// an earlier one on e-mail addresses: seed a fresh database then.
pub const SEED: u64 = 0x5eed_1ed6_e202_4001;
const USERS: usize = 300;
const EVERYDAY_TRANSACTIONS: usize = 3_600;
const DEACTIVATED: usize = 5;
/// Connections in flight inside a phase.
const CONCURRENCY: usize = 8;

/// Small, fast and fixed forever (SplitMix64): the data set must not change when a crate's
/// generator does.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: unbiased enough for test data, and no loop.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// Compact on purpose: rustfmt would give every name a line of its own.
#[rustfmt::skip]
const FIRST_NAMES: &[&str] = &[
    "Ada", "Ahmed", "Aiko", "Alejandro", "Amara", "Anna", "Arjun", "Astrid", "Ben", "Carla",
    "Chen", "Chloé", "Daniel", "Dmitri", "Elena", "Emeka", "Emma", "Fatima", "Felix", "Freya",
    "Giulia", "Grace", "Hannah", "Hiro", "Ines", "Isaac", "Jakob", "Jana", "João", "Julia", "Kai",
    "Karin", "Leila", "Liam", "Lucía", "Maja", "Malik", "Marta", "Mateo", "Mei", "Milan", "Nadia",
    "Niamh", "Noah", "Olga", "Omar", "Paul", "Priya", "Rafael", "Rosa", "Sami", "Sara",
    "Sebastian", "Sofia", "Tariq", "Thea", "Tomás", "Valentina", "Yusuf", "Zoe",
];

// Compact on purpose: rustfmt would give every name a line of its own.
#[rustfmt::skip]
const LAST_NAMES: &[&str] = &[
    "Andersen", "Bauer", "Becker", "Bianchi", "Brown", "Castro", "Chen", "Costa", "Dubois",
    "Eriksson", "Fischer", "Fernández", "García", "Hansen", "Hoffmann", "Ivanova", "Jansen",
    "Kaur", "Keller", "Kim", "Kowalski", "Larsen", "Lee", "Lopez", "Martin", "Meyer", "Moreau",
    "Müller", "Murphy", "Nakamura", "Novak", "Nowak", "O'Brien", "Okafor", "Olsen", "Patel",
    "Peeters", "Petrov", "Popescu", "Richter", "Rossi", "Santos", "Schmidt", "Schneider", "Silva",
    "Smith", "Suzuki", "Tanaka", "Van Dijk", "Wagner", "Walsh", "Weber", "Wilson", "Yilmaz",
    "Zhang",
];

/// Reserved for documentation (RFC 2606): plausible, and never anyone's real inbox.
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "post.example.org",
    "inbox.example.net",
];

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

/// One command of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Register {
        user_id: Uuid,
        email: String,
        display_name: String,
    },
    Deposit {
        user_id: Uuid,
        amount: i64,
        currency: &'static str,
    },
    Withdraw {
        user_id: Uuid,
        amount: i64,
        currency: &'static str,
    },
    Transfer {
        from: Uuid,
        to: Uuid,
        amount: i64,
        currency: &'static str,
    },
    Deactivate {
        user_id: Uuid,
        reason: &'static str,
    },
    Erase {
        user_id: Uuid,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum TransactionBody<'a> {
    Deposit {
        user_id: Uuid,
        amount: i64,
        currency: &'a str,
    },
    Withdrawal {
        user_id: Uuid,
        amount: i64,
        currency: &'a str,
    },
    Transfer {
        from_user_id: Uuid,
        to_user_id: Uuid,
        amount: i64,
        currency: &'a str,
    },
}

impl Op {
    fn method(&self) -> &'static str {
        match self {
            Self::Erase { .. } => "DELETE",
            _ => "POST",
        }
    }

    fn path(&self) -> String {
        match self {
            Self::Register { .. } => "/api/v1/users".into(),
            Self::Deposit { .. } | Self::Withdraw { .. } | Self::Transfer { .. } => {
                "/api/v1/transactions".into()
            }
            Self::Deactivate { user_id, .. } => format!("/api/v1/users/{user_id}/deactivate"),
            Self::Erase { user_id } => format!("/api/v1/users/{user_id}/personal-data"),
        }
    }

    /// The JSON body, the same bytes on every run (idempotency compares them).
    fn body(&self) -> Option<String> {
        let json = match self {
            Self::Register {
                user_id,
                email,
                display_name,
            } => serde_json::json!({
                "user_id": user_id, "email": email, "display_name": display_name,
            })
            .to_string(),
            Self::Deposit {
                user_id,
                amount,
                currency,
            } => transaction(TransactionBody::Deposit {
                user_id: *user_id,
                amount: *amount,
                currency,
            }),
            Self::Withdraw {
                user_id,
                amount,
                currency,
            } => transaction(TransactionBody::Withdrawal {
                user_id: *user_id,
                amount: *amount,
                currency,
            }),
            Self::Transfer {
                from,
                to,
                amount,
                currency,
            } => transaction(TransactionBody::Transfer {
                from_user_id: *from,
                to_user_id: *to,
                amount: *amount,
                currency,
            }),
            Self::Deactivate { reason, .. } => serde_json::json!({ "reason": reason }).to_string(),
            Self::Erase { .. } => return None,
        };
        Some(json)
    }

    fn expected_status(&self) -> u16 {
        match self {
            Self::Register { .. }
            | Self::Deposit { .. }
            | Self::Withdraw { .. }
            | Self::Transfer { .. } => 201,
            Self::Deactivate { .. } | Self::Erase { .. } => 200,
        }
    }
}

fn transaction(body: TransactionBody<'_>) -> String {
    // Serialising a plain enum of numbers and strings cannot fail.
    serde_json::to_string(&body).unwrap_or_default()
}

/// A group of commands that may run in any order among themselves.
#[derive(Debug)]
pub struct Phase {
    pub name: &'static str,
    pub ops: Vec<Op>,
}

/// Everything the data set consists of, in phases, with each command's idempotency key.
#[derive(Debug)]
pub struct Plan {
    pub seed: u64,
    pub phases: Vec<Phase>,
}

impl Plan {
    pub fn len(&self) -> usize {
        self.phases.iter().map(|p| p.ops.len()).sum()
    }

    /// `Idempotency-Key` of the `index`-th command of the whole plan.
    pub fn key(&self, index: usize) -> String {
        idempotency_key(self.seed, index)
    }

    /// The subject every command is sent as: idempotency keys are scoped to their sender.
    pub fn admin_subject(&self) -> Uuid {
        let mut rng = Rng::new(self.seed ^ 0xad31_0000_0000_0000);
        v7_at(&mut rng, 1_704_067_200_000)
    }
}

pub fn idempotency_key(seed: u64, index: usize) -> String {
    format!("seed-{seed:016x}-{index:06}")
}

/// A UUIDv7 for `millis` with random bits from `rng`: ids sort like registrations would.
fn v7_at(rng: &mut Rng, millis: u64) -> Uuid {
    let mut bytes = [0u8; 10];
    for chunk in bytes.chunks_mut(8) {
        let random = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&random[..chunk.len()]);
    }
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
}

fn ascii_fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' => Some('a'),
            'é' | 'è' | 'ê' | 'ë' => Some('e'),
            'í' | 'ì' | 'î' | 'ï' => Some('i'),
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => Some('o'),
            'ú' | 'ù' | 'û' | 'ü' => Some('u'),
            'ñ' => Some('n'),
            'ç' => Some('c'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

struct Person {
    id: Uuid,
    /// The currency this person mostly uses.
    home: &'static str,
}

/// The data set for `seed`: a pure function, the same on every run and every machine.
pub fn plan(seed: u64) -> Plan {
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

// ---------------------------------------------------------------- sending it

/// What must answer before seeding: command-api, ready when its database is.
pub const READY: &str = "http://127.0.0.1:8081/health/ready";

/// Seeds the dev stack's command-api (127.0.0.1:8081) with the [`SEED`] data set, as an
/// admin whose token comes from the dev key in `.dev/`.
pub async fn seed_dev_stack() -> anyhow::Result<()> {
    let plan = plan(SEED);
    let keys = platform::DevKeys::load_or_create(&crate::stack::workspace_root().join(".dev"))
        .context("loading the dev signing key in .dev/")?;
    let token = keys.mint(
        plan.admin_subject(),
        &[platform::Role::Admin],
        Duration::from_secs(3600),
        platform::DEV_ISSUER,
        platform::DEV_AUDIENCE,
    )?;
    println!(
        "seeding {} commands ({USERS} users, seed {SEED:#x}) through http://127.0.0.1:8081",
        plan.len()
    );
    let outcome = load(&plan, "127.0.0.1:8081", &token).await?;
    println!(
        "seeded: {} commands appended, {} already there (a repeated run appends nothing)",
        outcome.appended, outcome.replayed
    );
    Ok(())
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub appended: usize,
    pub replayed: usize,
}

/// Sends `plan` to the command API at `addr` (host:port) with `token`, phase by phase.
pub async fn load(plan: &Plan, addr: &str, token: &str) -> anyhow::Result<Outcome> {
    let total = plan.len();
    let progress = Arc::new(Progress::new(total));
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(150)).await;
                progress.draw(false);
            }
        })
    };
    let mut outcome = Outcome::default();
    let mut offset = 0;
    let result = async {
        for phase in &plan.phases {
            progress.set_phase(phase.name);
            let (appended, replayed) = run_phase(plan, phase, offset, addr, token, &progress)
                .await
                .with_context(|| format!("seeding phase {:?}", phase.name))?;
            outcome.appended += appended;
            outcome.replayed += replayed;
            offset += phase.ops.len();
        }
        anyhow::Ok(())
    }
    .await;
    ticker.abort();
    progress.draw(true);
    result.map(|()| outcome)
}

async fn run_phase(
    plan: &Plan,
    phase: &Phase,
    offset: usize,
    addr: &str,
    token: &str,
    progress: &Progress,
) -> anyhow::Result<(usize, usize)> {
    let next = AtomicUsize::new(0);
    let appended = AtomicUsize::new(0);
    let replayed = AtomicUsize::new(0);
    let worker = || async {
        let mut client = Client::connect(addr).await?;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(op) = phase.ops.get(i) else {
                return anyhow::Ok(());
            };
            let key = plan.key(offset + i);
            let answer = client.send(op, token, &key).await?;
            if answer.status != op.expected_status() {
                bail!(
                    "{} {} answered {} (expected {}): {}",
                    op.method(),
                    op.path(),
                    answer.status,
                    op.expected_status(),
                    answer.body
                );
            }
            if answer.replayed {
                replayed.fetch_add(1, Ordering::Relaxed);
            } else {
                appended.fetch_add(1, Ordering::Relaxed);
            }
            progress.advance();
        }
    };
    let workers: Vec<_> = (0..CONCURRENCY.min(phase.ops.len().max(1)))
        .map(|_| worker())
        .collect();
    for result in futures_util::future::join_all(workers).await {
        result?;
    }
    Ok((appended.into_inner(), replayed.into_inner()))
}

/// A redrawn status line: phase, bar, count of total, rate.
struct Progress {
    total: usize,
    done: AtomicUsize,
    phase: std::sync::Mutex<&'static str>,
    started: Instant,
    terminal: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            total,
            done: AtomicUsize::new(0),
            phase: std::sync::Mutex::new(""),
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn set_phase(&self, name: &'static str) {
        *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = name;
    }

    fn advance(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Redraws the line on a terminal; elsewhere prints only the final line.
    fn draw(&self, last: bool) {
        if !self.terminal && !last {
            return;
        }
        let done = self.done.load(Ordering::Relaxed);
        let phase = *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let line = progress_line(
            phase,
            done,
            self.total,
            self.started.elapsed().as_secs_f64(),
        );
        if self.terminal {
            eprint!("\r{line}\x1b[K{}", if last { "\n" } else { "" });
        } else {
            eprintln!("{line}");
        }
    }
}

fn progress_line(phase: &str, done: usize, total: usize, seconds: f64) -> String {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    let rate = if seconds > 0.0 {
        done as f64 / seconds
    } else {
        0.0
    };
    format!(
        "seeding {phase:<9} [{}{}] {done:>5}/{total} {rate:>6.0}/s",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
    )
}

/// The answer to one command.
struct Answer {
    status: u16,
    replayed: bool,
    body: String,
}

/// A small HTTP/1.1 keep-alive client for our own command API, which always answers with
/// `Content-Length`.
struct Client {
    addr: String,
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to command-api at {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            addr: addr.to_owned(),
            stream: BufReader::new(stream),
        })
    }

    async fn send(&mut self, op: &Op, token: &str, key: &str) -> anyhow::Result<Answer> {
        let body = op.body().unwrap_or_default();
        let content_type = if op.body().is_some() {
            "Content-Type: application/json\r\n"
        } else {
            ""
        };
        let request = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Idempotency-Key: {key}\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
            op.method(),
            op.path(),
            self.addr,
            body.len(),
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no HTTP status line in {line:?}"))?;
        let (mut length, mut replayed, mut close) = (None, false, false);
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("idempotent-replayed") {
                replayed = value.eq_ignore_ascii_case("true");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("command-api answered with Transfer-Encoding {value}; expected a Content-Length");
            }
        }
        let mut bytes = vec![0; length.unwrap_or(0)];
        self.stream.read_exact(&mut bytes).await?;
        if close {
            *self = Self::connect(&self.addr).await?;
        }
        Ok(Answer {
            status,
            replayed,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn requests_read_as_api_md_says() {
        let id = Uuid::nil();
        let op = Op::Transfer {
            from: id,
            to: id,
            amount: 250,
            currency: "EUR",
        };
        assert_eq!(
            (op.method(), op.path().as_str()),
            ("POST", "/api/v1/transactions")
        );
        let body: serde_json::Value = serde_json::from_str(&op.body().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"type": "transfer", "from_user_id": id, "to_user_id": id, "amount": 250, "currency": "EUR"})
        );
        let body: serde_json::Value = serde_json::from_str(
            &Op::Withdraw {
                user_id: id,
                amount: 1,
                currency: "JPY",
            }
            .body()
            .unwrap(),
        )
        .unwrap();
        assert_eq!(body["type"], "withdrawal");
        let erase = Op::Erase { user_id: id };
        assert_eq!(erase.method(), "DELETE");
        assert_eq!(erase.body(), None);
        assert_eq!(erase.expected_status(), 200);
        assert!(erase.path().ends_with("/personal-data"));
    }

    #[test]
    fn the_progress_line_shows_count_total_and_rate() {
        let line = progress_line("everyday", 1_000, 4_000, 2.0);
        assert!(line.contains("1000/4000"), "{line}");
        assert!(line.contains("500/s"), "{line}");
        assert!(line.contains(&format!("[{}{}]", "#".repeat(7), "-".repeat(23))));
        assert!(progress_line("users", 0, 0, 0.0).contains("0/0"));
    }
}
