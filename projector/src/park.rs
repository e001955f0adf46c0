//! `projector park --position N`: an operator's decision to go on without one event.
//!
//! The position is recorded in `parked_events` (with the event's id and type, the reason
//! and the time); nothing is published and the log is untouched. The live projector,
//! stopped in front of it, notices within a second and goes on; every later run,
//! rebuild and verify steps over it with a loud log line. The read model then equals a
//! replay of the log without the parked events.

use crate::checkpoint::Projection;
use crate::error::Error;
use crate::tables::PARKED_EVENTS;

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
    let checkpoint = projection
        .checkpoint()
        .await
        .map_err(Error::db("reading the checkpoint"))?;
    let parked = projection
        .is_parked(position)
        .await
        .map_err(Error::db("reading parked positions"))?;
    if position <= checkpoint && !parked {
        // Applied already: parking it now would make the next rebuild differ from the
        // tables the projector built.
        return Err(Error::AlreadyApplied {
            position,
            checkpoint,
        });
    }
    let result = sqlx::query(&format!(
        "INSERT IGNORE INTO `{PARKED_EVENTS}` \
         (projection, position, event_id, event_type, reason, parked_at) \
         VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6))"
    ))
    .bind(&projection.name)
    .bind(position)
    .bind(event.event_id.as_bytes().as_slice())
    .bind(event.event_type.as_str())
    .bind(reason)
    .execute(&projection.pool)
    .await
    .map_err(Error::db("recording the parked position"))?;
    let newly = result.rows_affected() == 1;
    tracing::warn!(
        projection = %projection.name,
        position,
        event_type = %event.event_type,
        reason,
        newly,
        "position parked: projections will skip this event"
    );
    Ok(Parked {
        position,
        event_type: event.event_type.as_str().to_owned(),
        newly,
    })
}
