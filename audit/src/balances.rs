//! `audit balances`: a user's balances at a position or a time, replayed from an export
//! with `ledger::replay` (the fold the commands use), on a chain checked on the way.
//!
//! A time means the last position recorded by then: the user's events up to that
//! position count, as `GET /api/v1/audit/users/{id}/balances?as_of=` answers.

use std::io::BufRead;

use hash_chain::{ExportedEvent, Walk};
use ledger::{LedgerEvent, UserId};
use serde::Serialize;
use time::OffsetDateTime;

/// Where the replay stops.
#[derive(Debug, Clone, Copy)]
pub enum Point {
    /// The whole export.
    End,
    Position(u64),
    Time(OffsetDateTime),
}

/// Why no balances could be given.
#[derive(Debug, thiserror::Error)]
pub enum BalancesError {
    #[error("reading the export failed at line {line}")]
    Io {
        line: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("the export starts at position {0}: a replay needs it from position 1")]
    NotFromTheStart(u64),
    #[error("the export breaks the chain rules at position {position} ({reason}): its balances cannot be trusted")]
    BrokenChain { position: u64, reason: String },
    #[error("the export ends at position {last}, before position {wanted}")]
    BeyondExport { wanted: u64, last: u64 },
    #[error("the event at position {position} is not a ledger event ({source})")]
    Decode {
        position: u64,
        #[source]
        source: ledger::DecodeError,
    },
    #[error("user {0} is not registered at that point of the export")]
    NotRegistered(UserId),
}

/// A user's balances at a point, as the log says.
#[derive(Debug, Clone, Serialize)]
pub struct BalancesReport {
    pub user_id: uuid::Uuid,
    #[serde(with = "time::serde::rfc3339::option")]
    pub as_of: Option<OffsetDateTime>,
    pub at_position: Option<u64>,
    /// The last position the point covers.
    pub through_position: u64,
    /// The user's events the replay applied, and the last of them.
    pub stream_version: u64,
    pub last_position: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub last_recorded_at: OffsetDateTime,
    /// Every currency the user had held by then, zeros included, in code order.
    pub balances: Vec<Balance>,
    /// Events of the export whose chain was checked on the way.
    pub events_checked: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balance {
    pub currency: String,
    /// Minor units.
    pub amount: i64,
}

/// Replays `user`'s stream from `export` up to `point`.
pub fn balances(
    export: impl BufRead,
    user: UserId,
    point: Point,
) -> Result<BalancesReport, BalancesError> {
    let stream = user.stream_id();
    let mut walk = Walk::from_genesis();
    // The user's events with their positions; the point's position is known at the end
    // for a time.
    let mut mine: Vec<(u64, OffsetDateTime, LedgerEvent)> = Vec::new();
    let mut through_time: u64 = 0;
    let mut line = String::new();
    let mut reader = export;
    let mut number = 0u64;
    loop {
        line.clear();
        number += 1;
        let read = reader
            .read_line(&mut line)
            .map_err(|source| BalancesError::Io {
                line: number,
                source,
            })?;
        if read == 0 {
            break;
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            continue;
        }
        let event = ExportedEvent::parse(text).map_err(|e| BalancesError::BrokenChain {
            position: walk.position() + 1,
            reason: format!("line {number} is not an event ({e})"),
        })?;
        if walk.checked() == 0 && event.position != 1 {
            return Err(BalancesError::NotFromTheStart(event.position));
        }
        walk.step(&event.canonical(), &event.prev_hash, &event.hash)
            .map_err(|broke| BalancesError::BrokenChain {
                position: broke.position(),
                reason: broke.to_string(),
            })?;
        if let Point::Time(t) = point {
            if event.recorded_at <= t {
                through_time = event.position;
            }
        }
        if event.stream_id == stream {
            let decoded = ledger::decode(&event.event_type, event.schema_version, event.data.get())
                .map_err(|source| BalancesError::Decode {
                    position: event.position,
                    source,
                })?;
            mine.push((event.position, event.recorded_at, decoded));
        }
    }
    let last = walk.position();
    let through = match point {
        Point::End => last,
        Point::Position(n) if n > last => {
            return Err(BalancesError::BeyondExport { wanted: n, last })
        }
        Point::Position(n) => n,
        Point::Time(_) => through_time,
    };
    mine.retain(|(position, _, _)| *position <= through);
    let user_state = ledger::replay(mine.iter().map(|(_, _, e)| e));
    let Some((last_position, last_recorded_at, _)) =
        mine.last().filter(|_| user_state.is_registered())
    else {
        return Err(BalancesError::NotRegistered(user));
    };
    Ok(BalancesReport {
        user_id: user.as_uuid(),
        as_of: match point {
            Point::Time(t) => Some(t),
            _ => None,
        },
        at_position: match point {
            Point::Position(n) => Some(n),
            _ => None,
        },
        through_position: through,
        stream_version: mine.len() as u64,
        last_position: *last_position,
        last_recorded_at: *last_recorded_at,
        balances: user_state
            .balances()
            .iter()
            .map(|(currency, balance)| Balance {
                currency: currency.as_str().to_owned(),
                amount: balance.minor_units(),
            })
            .collect(),
        events_checked: walk.checked(),
    })
}
