//! How far a projection has got: the checkpoint row every read of the tables is judged
//! by (`X-Projection-Position`, `X-Min-Position`, the caches' keys).

use sqlx::MySqlConnection;

/// Where the views stand: the checkpoint's generation (bumped by each rebuild's swap)
/// and position. Ordered by generation, then position, the order in which the views only
/// ever move.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Checkpoint {
    pub generation: u64,
    pub position: u64,
}

/// `projection`'s checkpoint as `conn` sees it (inside a snapshot, the snapshot's);
/// zeros before the projection wrote one.
pub async fn read_checkpoint(
    conn: &mut MySqlConnection,
    projection: &str,
) -> Result<Checkpoint, sqlx::Error> {
    let found = sqlx::query_as!(
        Checkpoint,
        "SELECT generation, position FROM checkpoints WHERE projection = ?",
        projection
    )
    .fetch_optional(conn)
    .await?;
    Ok(found.unwrap_or_default())
}
