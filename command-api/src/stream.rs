//! A user's stream on the event store: loading (read, decode with `ledger`, fold with
//! `ledger::evolve`) and turning decided `LedgerEvent`s into the store's `NewEvent`s.
//! `ledger` and `event-store` never meet anywhere else.

use event_store::{
    EventStore, EventType, ExpectedVersion, Metadata, NewEvent, StreamId, StreamWrite,
};
use ledger::{decode, evolve, LedgerEvent, User, UserId};
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use crate::error::ApiError;

/// Events read per round trip.
const PAGE: u32 = 1_000;

/// Users' folded states as last loaded or appended. Events never change, so a state at
/// version v plus the events after v is the state now: a load reads only newer events,
/// and a first attempt may decide on the cached state without reading at all
/// ([`Trust::Cache`]). Nothing is trusted that the log does not confirm: an append
/// decided on a cached state carries its expected version, which the log checks, and
/// any other answer decided on one is decided again on a state read from the log
/// (`execute.rs`). Bounded by moka: past `capacity` entries the least recently used go.
#[derive(Clone)]
pub(crate) struct StateCache {
    entries: Cache<UserId, Loaded>,
}

impl StateCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(u64::try_from(capacity).unwrap_or(u64::MAX))
                // The state just appended is kept: the user's next command wants it.
                .eviction_policy(EvictionPolicy::lru())
                .build(),
        }
    }

    fn get(&self, id: UserId) -> Option<Loaded> {
        self.entries.get(&id)
    }

    /// Keeps `loaded` unless a newer state of the user is already kept (compared and
    /// replaced under moka's lock of the key, so a slower load never overwrites a newer
    /// append's state).
    pub(crate) fn put(&self, id: UserId, loaded: &Loaded) {
        self.entries.entry(id).and_compute_with(|kept| match kept {
            Some(kept) if kept.value().version >= loaded.version => Op::Nop,
            _ => Op::Put(loaded.clone()),
        });
    }
}

/// Whether a load may answer from the cache without asking the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trust {
    /// A cached state is used as it is; the append's expected version checks it.
    Cache,
    /// Events newer than the cached state are read from the log first.
    Log,
}

/// A user's state and where their stream stands.
#[derive(Clone)]
pub(crate) struct Loaded {
    pub(crate) user: User,
    /// The stream's version: its last event's (0 for no events).
    pub(crate) version: u64,
    /// The global position of the stream's last event (0 for none).
    pub(crate) position: u64,
}

impl Loaded {
    /// The version after appending `events` at `self.version`.
    pub(crate) fn next_version(&self, events: &[LedgerEvent]) -> u64 {
        self.version + events.len() as u64
    }

    /// The state once `events` are appended (its position is known only after the
    /// commit: [`Self::at_position`]).
    pub(crate) fn after(&self, events: &[LedgerEvent]) -> Self {
        Self {
            user: events.iter().fold(self.user.clone(), evolve),
            version: self.next_version(events),
            position: self.position,
        }
    }

    /// 404 unless the user was registered. Checked before sealing anything, so an
    /// unknown id never gets a data key, and before `If-Match`, so an unknown user is
    /// "not found" rather than "version mismatch".
    pub(crate) fn registered(self) -> Result<Self, ApiError> {
        if self.user.is_registered() {
            Ok(self)
        } else {
            Err(ApiError::NotFound)
        }
    }
}

pub(crate) fn stream_id(user_id: UserId) -> Result<StreamId, ApiError> {
    StreamId::parse(user_id.stream_id()).map_err(|_| ApiError::Corrupt { what: "stream id" })
}

#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub(crate) async fn load(
    store: &EventStore,
    cache: &StateCache,
    user_id: UserId,
    trust: Trust,
) -> Result<Loaded, ApiError> {
    let stream_id = stream_id(user_id)?;
    let cached = cache.get(user_id);
    if let (Trust::Cache, Some(loaded)) = (trust, &cached) {
        return Ok(loaded.clone());
    }
    let mut loaded = cached.unwrap_or(Loaded {
        user: User::default(),
        version: 0,
        position: 0,
    });
    loop {
        let page = store
            .read_stream(&stream_id, loaded.version + 1, PAGE)
            .await?;
        let full = page.len() == PAGE as usize;
        for recorded in page {
            let event = decode(
                recorded.event_type.as_str(),
                recorded.schema_version,
                &recorded.data,
            )
            .map_err(|source| ApiError::Decode {
                stream_id: stream_id.to_string(),
                source,
            })?;
            loaded.user = evolve(loaded.user, &event);
            loaded.version = recorded.stream_version;
            loaded.position = recorded.position;
        }
        if !full {
            cache.put(user_id, &loaded);
            return Ok(loaded);
        }
    }
}

/// `events` for `user_id`'s stream, expected at `version`, each with `metadata`.
pub(crate) fn write(
    user_id: UserId,
    version: u64,
    events: &[LedgerEvent],
    metadata: &Metadata,
) -> Result<StreamWrite, ApiError> {
    let events = events
        .iter()
        .map(|event| {
            let event_type = EventType::parse(event.event_type())
                .map_err(|_| ApiError::Corrupt { what: "event type" })?;
            Ok(
                NewEvent::new(event_type, event.schema_version(), event.data())
                    .with_metadata(metadata.clone()),
            )
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(StreamWrite {
        stream_id: stream_id(user_id)?,
        expected: ExpectedVersion::Exact(version),
        events,
    })
}
