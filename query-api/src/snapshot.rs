//! A view and the checkpoint it is at, read in one consistent snapshot.
//!
//! The projector writes rows and checkpoint in one transaction, and a rebuild swaps all
//! the tables at once. A reader that took the checkpoint from one read and the rows from
//! another could pair rows of one state with the position of another: rows read after a
//! swap under a position read before it, or rows older than the position it reports.
//! So every view is read in a REPEATABLE READ transaction that reads the checkpoint row
//! first: each row it then reads is exactly as of that checkpoint, and the answer says
//! that position (docs/adr/0015).
//!
//! The transaction holds the checkpoint table's metadata lock while it reads the view,
//! so a swap's `RENAME TABLE` may pick it as the loser of a metadata-lock deadlock
//! (1213), or its snapshot may predate the tables just swapped in (1412): the read is
//! done again, a few times at most.

use futures_util::future::BoxFuture;
use sqlx::mysql::MySqlDatabaseError;
use sqlx::MySqlConnection;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::state::AppState;
use read_model::{read_checkpoint, Checkpoint};

const BEGIN: &str = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
    START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";

/// Attempts of a read that met a swap.
const ATTEMPTS: u32 = 3;

/// What a view reads inside the snapshot, on its connection.
pub(crate) type Read<'c, T> = BoxFuture<'c, Result<T, ApiError>>;

/// Waits until the projection reached `min` (as [`crate::wait::Projection::reach`]),
/// then runs `read` in a snapshot with the checkpoint and returns both. The snapshot is
/// at `min` or past it: should the tables ever stand lower than the position the wait
/// saw, the read waits for them, within the same bound.
pub(crate) async fn read<T, F>(
    state: &AppState,
    min: Option<u64>,
    mut read: F,
) -> Result<(Checkpoint, T), ApiError>
where
    F: for<'c> FnMut(&'c mut MySqlConnection) -> Read<'c, T>,
{
    let projection = &state.projection;
    let deadline = Instant::now() + projection.max_wait();
    loop {
        projection.reach(min).await?;
        let (at, value) = consistent(state, &mut read).await?;
        match min {
            Some(min) if at.position < min => {
                if Instant::now() >= deadline {
                    return Err(projection.lagging(min));
                }
                tokio::time::sleep(projection.poll_interval()).await;
            }
            _ => return Ok((at, value)),
        }
    }
}

async fn consistent<T, F>(state: &AppState, read: &mut F) -> Result<(Checkpoint, T), ApiError>
where
    F: for<'c> FnMut(&'c mut MySqlConnection) -> Read<'c, T>,
{
    let mut attempt = 1;
    loop {
        match once(state, read).await {
            Err(ApiError::Database(error)) if attempt < ATTEMPTS && met_a_swap(&error) => {
                tracing::debug!(%error, attempt, "a view's snapshot met a swap; reading again");
                attempt += 1;
            }
            result => return result,
        }
    }
}

async fn once<T, F>(state: &AppState, read: &mut F) -> Result<(Checkpoint, T), ApiError>
where
    F: for<'c> FnMut(&'c mut MySqlConnection) -> Read<'c, T>,
{
    let mut tx = state.pool.begin_with(BEGIN).await?;
    let at = read_checkpoint(&mut tx, state.projection.name()).await?;
    let value = read(&mut tx).await?;
    tx.commit().await?;
    state.projection.observe(at);
    Ok((at, value))
}

/// A metadata-lock deadlock lost to a `RENAME TABLE` (1213), or a snapshot older than
/// the tables swapped in (1412, "table definition has changed").
fn met_a_swap(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    db.try_downcast_ref::<MySqlDatabaseError>()
        .is_some_and(|e| matches!(e.number(), 1213 | 1412))
}
