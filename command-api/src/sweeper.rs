//! The erasure sweeper: shredding that survives a crash.
//!
//! Erasure appends `user.personal_data_erased` and then shreds the user's data key
//! (`users.rs`). The two cannot share a transaction (the keys may even live in another
//! database, KEYS_DATABASE_URL), so a process killed between them, or a keys database
//! that fails the shred, leaves an erased user whose personal data still opens. The
//! sweeper closes that gap: when the service starts it reads every erasure in the log,
//! then every `ERASURE_SWEEP_INTERVAL_SECS` the ones appended up to the previous sweep,
//! and shreds each erased user's key that is not shredded yet. Each one it shreds was an
//! erasure left unfinished: counted (`erasure_sweeper_shredded_total`) and logged as a
//! warning. Erasures are swept one interval after they were appended, so the request
//! that appended one has that long to shred on its own and is not counted.
//!
//! Every replica sweeps; shredding is idempotent, so they never get in each other's way.
//! A sweep that fails (database down) is logged and repeated at the next interval from
//! where the last complete one ended.

use std::time::Duration;

use event_store::{EventStore, EventType, StoreError};
use keyring::{KeyStore, KeyringError};
use ledger::{LedgerEvent, PersonalDataErased};
use platform::prometheus_client::metrics::counter::Counter;
use platform::Metrics;
use uuid::Uuid;

/// Erasure events read per query.
const PAGE: u32 = 500;

/// What a sweep may fail on.
#[derive(Debug, thiserror::Error)]
enum SweepError {
    #[error("reading the log")]
    Log(#[from] StoreError),
    #[error("shredding")]
    Keys(#[from] KeyringError),
    #[error("{0} is not an event type name")]
    EventType(&'static str),
    #[error("user-{0} is not a stream id")]
    StreamId(Uuid),
    #[error("the erasure event at position {position} does not decode")]
    Decode {
        position: u64,
        #[source]
        source: ledger::DecodeError,
    },
}

pub(crate) struct Sweeper {
    store: EventStore,
    keys: KeyStore,
    interval: Duration,
    shredded: Counter,
}

impl Sweeper {
    /// Registers the sweeper's counter with `metrics`.
    pub(crate) fn new(
        store: EventStore,
        keys: KeyStore,
        interval: Duration,
        metrics: &Metrics,
    ) -> Self {
        let shredded = Counter::default();
        metrics.register(
            "erasure_sweeper_shredded",
            "Data keys of users erased in the log that the sweeper found not shredded, \
             and shredded (each an erasure left unfinished)",
            shredded.clone(),
        );
        Self {
            store,
            keys,
            interval: interval.max(Duration::from_secs(1)),
            shredded,
        }
    }

    /// Sweeps the whole log, then, every interval, what was appended up to the previous
    /// sweep. Runs until the task is dropped.
    pub(crate) async fn run(self) {
        // Every erasure at or below `swept` has its key shredded.
        let mut swept = 0;
        let mut target = self.head().await.unwrap_or(0);
        loop {
            if target > swept {
                match self.sweep(swept, target).await {
                    Ok(()) => swept = target,
                    Err(error) => {
                        tracing::warn!(
                            error = %platform::error_chain(&error),
                            from = swept + 1,
                            to = target,
                            "the erasure sweep failed; it runs again at the next interval"
                        );
                    }
                }
            }
            // Swept next time: erasures appended until now get an interval to finish.
            let seen = self.head().await;
            tokio::time::sleep(self.interval).await;
            target = target.max(seen.unwrap_or(target));
        }
    }

    async fn head(&self) -> Option<u64> {
        match self.store.head().await {
            Ok(head) => Some(head.map_or(0, |(position, _)| position)),
            Err(error) => {
                tracing::warn!(error = %platform::error_chain(&error), "the erasure sweeper cannot read the log's head");
                None
            }
        }
    }

    /// Shreds the keys of the users erased at positions `after + 1 ..= upto`.
    async fn sweep(&self, mut after: u64, upto: u64) -> Result<(), SweepError> {
        let erased = EventType::parse(PersonalDataErased::TYPE)
            .map_err(|_| SweepError::EventType(PersonalDataErased::TYPE))?;
        loop {
            let page = self.store.read_of_type(&erased, after, upto, PAGE).await?;
            let full = page.len() == PAGE as usize;
            let mut users: Vec<(Uuid, u64)> = Vec::with_capacity(page.len());
            for event in &page {
                let decoded =
                    ledger::decode(event.event_type.as_str(), event.schema_version, &event.data)
                        .map_err(|source| SweepError::Decode {
                            position: event.position,
                            source,
                        })?;
                if let LedgerEvent::PersonalDataErased(e) = decoded {
                    users.push((e.user_id.as_uuid(), event.position));
                }
            }
            let subjects: Vec<Uuid> = users.iter().map(|(u, _)| *u).collect();
            for subject in self.keys.unshredded(&subjects).await? {
                self.keys.shred(subject).await?;
                // The erasure stopped before it released the user's idempotency records
                // too (they expire anyway; this makes it now).
                let stream = event_store::StreamId::parse(format!("user-{subject}"))
                    .map_err(|_| SweepError::StreamId(subject))?;
                self.store
                    .release_claims_of_stream(crate::idempotency::IDEMPOTENCY_SCOPE, &stream)
                    .await?;
                self.shredded.inc();
                let position = users
                    .iter()
                    .find(|(u, _)| *u == subject)
                    .map_or(0, |(_, p)| *p);
                tracing::warn!(
                    user_id = %subject,
                    position,
                    "an erased user's data key was not shredded; shredded it now"
                );
            }
            match page.last() {
                Some(last) if full => after = last.position,
                _ => return Ok(()),
            }
        }
    }
}
