//! `projector park --position N`: an operator's decision to go on without one event.
//!
//! Only the position the projection stopped at can be parked: checkpoint + 1, checked
//! under the checkpoint's lock (`SELECT … FOR UPDATE` of the checkpoint row) in the same
//! transaction that records it, so no batch can apply the position between the check
//! and the record. A position already applied would make a rebuild differ from the live
//! tables; a later one would skip an event nobody looked at. Both are refused.
//!
//! The position is recorded in `parked_events` (with the event's id and type, the reason
//! and the time); nothing is published and the log is untouched. The live projector,
//! stopped in front of it, notices within a second and goes on; every later run,
//! rebuild and verify steps over it with a loud log line. The read model then equals a
//! replay of the log without the parked events.

use crate::checkpoint::{lock_checkpoint, Projection};
use crate::error::Error;
use read_model::PARKED_EVENTS;

/// What `park` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub position: u64,
    pub event_type: String,
    /// False if the position was parked already.
    pub newly: bool,
}

pub(crate) async fn park(
    projection: &Projection,
    position: u64,
    reason: &str,
) -> Result<Parked, Error> {
    let event = projection
        .store
        .read_all(position.saturating_sub(1), 1)
        .await
        .map_err(Error::log("reading the event to park"))?
        .into_iter()
        .find(|e| e.position == position)
        .ok_or(Error::NoSuchPosition { position })?;
    let parked = |newly| Parked {
        position,
        event_type: event.event_type.as_str().to_owned(),
        newly,
    };

    let mut tx = projection
        .pool
        .begin()
        .await
        .map_err(Error::db("starting to park"))?;
    // Batches hold this lock while they apply: once we have it, the checkpoint stays put
    // until the record below is committed (or not made).
    let checkpoint = lock_checkpoint(&mut tx, &projection.tables, &projection.name)
        .await
        .map_err(Error::db("locking the checkpoint"))?;
    let found: Option<u64> = sqlx::query_scalar(&format!(
        "SELECT position FROM `{PARKED_EVENTS}` WHERE projection = ? AND position = ?"
    ))
    .bind(&projection.name)
    .bind(position)
    .fetch_optional(&mut *tx)
    .await
    .map_err(Error::db("reading parked positions"))?;
    if found.is_some() {
        // A repeated command: said once, changes nothing.
        return Ok(parked(false));
    }
    let next = checkpoint.saturating_add(1);
    if position < next {
        return Err(Error::AlreadyApplied {
            position,
            checkpoint,
        });
    }
    if position > next {
        return Err(Error::NotWhereStopped {
            position,
            next,
            checkpoint,
        });
    }
    sqlx::query(&format!(
        "INSERT INTO `{PARKED_EVENTS}` \
         (projection, position, event_id, event_type, reason, parked_at) \
         VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6))"
    ))
    .bind(&projection.name)
    .bind(position)
    .bind(event.event_id.as_bytes().as_slice())
    .bind(event.event_type.as_str())
    .bind(reason)
    .execute(&mut *tx)
    .await
    .map_err(Error::db("recording the parked position"))?;
    tx.commit()
        .await
        .map_err(Error::db("committing the parked position"))?;
    tracing::warn!(
        projection = %projection.name,
        position,
        event_type = %event.event_type,
        reason,
        "position parked: projections will skip this event"
    );
    Ok(parked(true))
}
