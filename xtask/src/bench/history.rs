//! A large, valid ledger history written straight into an event log, for benchmarks that
//! need a log of a million events in seconds rather than the minutes the HTTP API would
//! take. Every event comes from `ledger::decide` / `decide_transfer` on the users' folded
//! states, so the log is one the command side could have written; personal data is
//! sealed by the real keyring.
//!
//! Appends go in windows: each window's events are grouped per stream (a stream's order
//! kept) and sent as concurrent multi-stream appends with exact expected versions, each
//! stream in one append per window. Positions across streams then differ from the order
//! the commands were generated in, which no state depends on: a user's state is its own
//! stream's fold.

use std::collections::HashMap;

use anyhow::Context;
use event_store::{AppendRequest, EventStore, EventType, ExpectedVersion, NewEvent, StreamId};
use indicatif::{ProgressBar, ProgressStyle};
use keyring::KeyStore;
use ledger::{
    decide, decide_transfer, evolve, Amount, Command, Currency, Deposit, LedgerEvent, RegisterUser,
    SealedText, TransactionId, Transfer, User, UserId, Withdraw,
};
use uuid::Uuid;

const CURRENCIES: [Currency; 3] = [Currency::EUR, Currency::USD, Currency::GBP];
/// Events decided before they are appended together.
const WINDOW_EVENTS: usize = 20_000;
/// Events in one append at most.
const APPEND_EVENTS: usize = 400;

/// xorshift64*: seeded, reproducible, enough for picking users and amounts.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

struct Party {
    id: UserId,
    user: User,
    /// Version of the stream as appended so far.
    version: u64,
}

/// A bench database made ready for a history and its read model: the read-model tables,
/// the event store, and a keyring under a fresh master key (returned, for a query-api
/// that must open what it sealed).
pub(crate) struct Bench {
    pub(crate) pool: sqlx::MySqlPool,
    pub(crate) store: EventStore,
    pub(crate) keys: KeyStore,
    pub(crate) master_key: [u8; 32],
}

impl Bench {
    pub(crate) async fn prepare(
        options: &sqlx::mysql::MySqlConnectOptions,
    ) -> anyhow::Result<Self> {
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(2)
            .connect_with(options.clone())
            .await?;
        read_model::migrator()
            .run(&pool)
            .await
            .context("applying migrations/readmodel")?;
        let mut master_key = [0u8; 32];
        getrandom::getrandom(&mut master_key).context("a random master key for the bench")?;
        let keys = KeyStore::new(
            pool.clone(),
            keyring::MasterKeys::from_keys([(1, master_key)])?,
        );
        let store =
            EventStore::connect_with(options.clone(), event_store::StoreOptions::default()).await?;
        Ok(Self {
            pool,
            store,
            keys,
            master_key,
        })
    }
}

/// `projector rebuild` (release build) on `url`.
pub(crate) async fn rebuild(root: &std::path::Path, url: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new(root.join("target/release/projector"))
        .arg("rebuild")
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .context("running projector rebuild")?;
    if !status.success() {
        anyhow::bail!("projector rebuild failed");
    }
    Ok(())
}

/// A progress bar for [`write`]ing `events` events: count, rate, bar, time left.
pub(crate) fn progress_bar(events: usize) -> anyhow::Result<ProgressBar> {
    let style = ProgressStyle::with_template(
        "  {pos:>9}/{len} events {per_sec:>14} [{bar:30}] {eta} left",
    )?
    .progress_chars("#-");
    Ok(ProgressBar::new(events as u64).with_style(style))
}

/// Writes a history of about `events` events (at least) with `users` users into `store`.
/// Returns the log's head position.
pub(crate) async fn write(
    store: &EventStore,
    keys: &KeyStore,
    users: usize,
    events: usize,
    progress: &mut dyn FnMut(usize),
) -> anyhow::Result<u64> {
    let mut rng = Rng(0x5eed_1ed6_e42a_u64);
    let mut parties = Vec::with_capacity(users);
    let mut pending: Vec<(usize, LedgerEvent)> = Vec::new();
    for i in 0..users {
        let id = UserId::from_uuid(Uuid::now_v7());
        let email = keys
            .seal(id.as_uuid(), &format!("user{i}@bench.example.com"), "email")
            .await
            .context("sealing a bench user's e-mail")?;
        let name = keys
            .seal(id.as_uuid(), &format!("Bench User {i}"), "display_name")
            .await
            .context("sealing a bench user's name")?;
        let command = Command::RegisterUser(RegisterUser {
            user_id: id,
            email: SealedText::new(email.as_str()),
            display_name: SealedText::new(name.as_str()),
        });
        let party = Party {
            id,
            user: User::default(),
            version: 0,
        };
        let decided = decide(&party.user, &command)?;
        parties.push(party);
        record(&mut parties, &mut pending, i, decided);
    }
    let mut written = 0;
    loop {
        while pending.len() < WINDOW_EVENTS && written + pending.len() < events {
            activity(&mut rng, &mut parties, &mut pending)?;
        }
        if pending.is_empty() {
            break;
        }
        written += flush(store, &mut parties, std::mem::take(&mut pending)).await?;
        progress(written);
        if written >= events {
            break;
        }
    }
    Ok(store.head().await?.map_or(0, |(position, _)| position))
}

/// Folds `events` into party `i`'s state and queues them.
fn record(
    parties: &mut [Party],
    pending: &mut Vec<(usize, LedgerEvent)>,
    i: usize,
    events: Vec<LedgerEvent>,
) {
    for event in events {
        parties[i].user = evolve(std::mem::take(&mut parties[i].user), &event);
        pending.push((i, event));
    }
}

/// One command's events: mostly deposits, withdrawals and transfers.
fn activity(
    rng: &mut Rng,
    parties: &mut [Party],
    pending: &mut Vec<(usize, LedgerEvent)>,
) -> anyhow::Result<()> {
    let n = parties.len() as u64;
    let i = rng.below(n) as usize;
    let currency = CURRENCIES[rng.below(CURRENCIES.len() as u64) as usize];
    let transaction_id = TransactionId::from_uuid(Uuid::now_v7());
    let user_id = parties[i].id;
    let have = parties[i].user.balance(currency).minor_units();
    let roll = rng.below(100);
    if roll < 45 || have == 0 {
        let amount = Amount::parse(1 + rng.below(100_000) as i64)?;
        let command = Command::Deposit(Deposit {
            transaction_id,
            user_id,
            amount,
            currency,
        });
        let events = decide(&parties[i].user, &command)?;
        record(parties, pending, i, events);
    } else if roll < 70 {
        let amount = Amount::parse(1 + rng.below(have as u64) as i64)?;
        let command = Command::Withdraw(Withdraw {
            transaction_id,
            user_id,
            amount,
            currency,
        });
        let events = decide(&parties[i].user, &command)?;
        record(parties, pending, i, events);
    } else {
        let mut j = rng.below(n) as usize;
        if j == i {
            j = (j + 1) % parties.len();
        }
        let transfer = Transfer {
            transaction_id,
            from_user_id: user_id,
            to_user_id: parties[j].id,
            amount: Amount::parse(1 + rng.below(have as u64) as i64)?,
            currency,
        };
        let (out, into) = decide_transfer(&parties[i].user, &parties[j].user, &transfer)?;
        record(parties, pending, i, out);
        record(parties, pending, j, into);
    }
    Ok(())
}

fn new_event(event: &LedgerEvent) -> anyhow::Result<NewEvent> {
    let event_type = EventType::parse(event.event_type())?;
    Ok(NewEvent::new(
        event_type,
        event.schema_version(),
        event.data(),
    ))
}

/// Appends the window's events, each stream's in one append. Returns how many.
async fn flush(
    store: &EventStore,
    parties: &mut [Party],
    pending: Vec<(usize, LedgerEvent)>,
) -> anyhow::Result<usize> {
    let total = pending.len();
    let mut per_party: HashMap<usize, Vec<NewEvent>> = HashMap::new();
    let mut order = Vec::new();
    for (i, event) in &pending {
        let events = per_party.entry(*i).or_insert_with(|| {
            order.push(*i);
            Vec::new()
        });
        events.push(new_event(event)?);
    }
    let mut requests = Vec::new();
    let mut request = AppendRequest {
        streams: Vec::new(),
        claims: Vec::new(),
    };
    let mut in_request = 0;
    for i in order {
        let events = per_party.remove(&i).unwrap_or_default();
        let party = &mut parties[i];
        let count = events.len();
        request.streams.push(event_store::StreamWrite {
            stream_id: StreamId::parse(party.id.stream_id())?,
            expected: if party.version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(party.version)
            },
            events,
        });
        party.version += count as u64;
        in_request += count;
        if in_request >= APPEND_EVENTS {
            requests.push(std::mem::replace(
                &mut request,
                AppendRequest {
                    streams: Vec::new(),
                    claims: Vec::new(),
                },
            ));
            in_request = 0;
        }
    }
    if !request.streams.is_empty() {
        requests.push(request);
    }
    let appends = requests.into_iter().map(|r| store.append(r));
    for result in futures_util::future::join_all(appends).await {
        result.context("appending a bench history")?;
    }
    Ok(total)
}
