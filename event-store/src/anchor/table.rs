//! The `anchors` table: written by the leading signer over its lock connection, read by
//! anyone through the store's pool.

use hash_chain::{SignedAnchor, GENESIS_HASH};
use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::chain::Hash;
use crate::error::StoreError;
use crate::read::text;
use crate::store::EventStore;

/// An anchor as stored, with what publishing it needs.
#[derive(Debug, Clone)]
pub(crate) struct StoredAnchor {
    pub signed: SignedAnchor,
    pub event_id: Uuid,
    pub signed_at: OffsetDateTime,
}

fn naive(t: OffsetDateTime) -> time::PrimitiveDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    time::PrimitiveDateTime::new(t.date(), t.time())
}

fn hash(row: &MySqlRow, i: usize) -> Result<Hash, StoreError> {
    let bytes: Vec<u8> = row.try_get(i)?;
    bytes.try_into().map_err(|_| StoreError::Corrupt {
        position: row.try_get(0).unwrap_or(0),
        what: "anchor hash",
    })
}

fn decode(row: &MySqlRow) -> Result<StoredAnchor, StoreError> {
    let position: u64 = row.try_get(0)?;
    let recorded_at: time::PrimitiveDateTime = row.try_get(2)?;
    let event_id: Vec<u8> = row.try_get(4)?;
    let signed_at: time::PrimitiveDateTime = row.try_get(5)?;
    Ok(StoredAnchor {
        signed: SignedAnchor {
            position,
            hash: hash(row, 1)?,
            recorded_at: recorded_at.assume_utc(),
            anchor: text(row, 3)?,
        },
        event_id: Uuid::from_slice(&event_id).map_err(|_| StoreError::Corrupt {
            position,
            what: "anchor event id",
        })?,
        signed_at: signed_at.assume_utc(),
    })
}

const COLUMNS: &str = "position, hash, recorded_at, anchor, event_id, signed_at";

/// The last anchor's position and hash; `(0, genesis)` before the first.
pub(crate) async fn last(conn: &mut MySqlConnection) -> Result<(u64, Hash), StoreError> {
    let row = sqlx::query("SELECT position, hash FROM anchors ORDER BY position DESC LIMIT 1")
        .fetch_optional(conn)
        .await?;
    match row {
        None => Ok((0, GENESIS_HASH)),
        Some(row) => Ok((row.try_get(0)?, hash(&row, 1)?)),
    }
}

/// Stores a new anchor. An anchor already stored at that position is kept as it is: a
/// signature is never replaced.
pub(crate) async fn insert(
    conn: &mut MySqlConnection,
    anchor: &StoredAnchor,
    kid: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO anchors (position, hash, recorded_at, kid, anchor, event_id, signed_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE position = position",
    )
    .bind(anchor.signed.position)
    .bind(&anchor.signed.hash[..])
    .bind(naive(anchor.signed.recorded_at))
    .bind(kid)
    .bind(&anchor.signed.anchor)
    .bind(&anchor.event_id.as_bytes()[..])
    .bind(naive(anchor.signed_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// Anchors not yet confirmed by the broker, oldest first, at most `limit`.
pub(crate) async fn unpublished(
    conn: &mut MySqlConnection,
    limit: u32,
) -> Result<Vec<StoredAnchor>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM anchors WHERE published_at IS NULL ORDER BY position LIMIT ?"
    );
    let rows = sqlx::query(&sql).bind(limit).fetch_all(conn).await?;
    rows.iter().map(decode).collect()
}

pub(crate) async fn mark_published(
    conn: &mut MySqlConnection,
    position: u64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE anchors SET published_at = UTC_TIMESTAMP(6) WHERE position = ?")
        .bind(position)
        .execute(conn)
        .await?;
    Ok(())
}

impl EventStore {
    /// Signed anchors after position `after`, in position order, at most `limit`.
    pub async fn anchors(&self, after: u64, limit: u32) -> Result<Vec<SignedAnchor>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM anchors WHERE position > ? ORDER BY position LIMIT ?");
        let rows = self
            .bounded(
                sqlx::query(&sql)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.inner.pool),
            )
            .await?;
        rows.iter()
            .map(|row| decode(row).map(|stored| stored.signed))
            .collect()
    }

    /// The latest anchor, if any.
    pub async fn latest_anchor(&self) -> Result<Option<SignedAnchor>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM anchors ORDER BY position DESC LIMIT 1");
        let row = self
            .bounded(sqlx::query(&sql).fetch_optional(&self.inner.pool))
            .await?;
        row.as_ref()
            .map(|row| decode(row).map(|stored| stored.signed))
            .transpose()
    }
}
