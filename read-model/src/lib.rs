//! The read model: the tables the projector builds from the log and query-api serves.
//!
//! Every other crate names these tables, decodes their rows and reads their checkpoint
//! through this one, so a column changes in one place:
//!
//! - [`TableName`] and [`TableSet`] (`table.rs`): the tables by name, as a type only this
//!   crate can make (no string from outside becomes an identifier), and the live, rebuild,
//!   verify and retired sets a rebuild swaps between.
//! - [`UserRow`], [`BalanceEntry`], [`TransactionRow`] (`rows.rs`): the rows as read,
//!   with the fixed queries that read them (`sqlx::query_as!`, checked at build time
//!   against `.sqlx/`, see ADR 0004) and the decoders the dynamic ones use.
//! - [`Checkpoint`] and [`read_checkpoint`] (`checkpoint.rs`): how far a projection has
//!   got, the one value that says how fresh every row is.
//! - [`columns`]: decoding text and times read by column name or index.
//! - [`literal`]: SQL literals for the projector's multi-row upserts (`event_store`'s,
//!   the same the append uses).
//! - [`migrator`]: the `migrations/readmodel` set, which never touches the log.
//!
//! What it never does: write a row (the projector is the tables' one writer) or read the
//! log. Its queries take a connection, so a caller decides the transaction or snapshot.
//!
//! | table | key | columns |
//! |---|---|---|
//! | [`USERS`] | `user_id` | `email_ciphertext`, `display_name_ciphertext` (NULL once erased), `status` (`active` / `deactivated`), `erased`, `version` (stream version, what `If-Match` compares), `created_at`, `updated_at`, `position` |
//! | [`BALANCES`] | `user_id`, `currency` | `amount` (minor units), `position` |
//! | [`TRANSACTIONS`] | `transaction_id` | `type` (`deposit` / `withdrawal` / `transfer`), `user_id` (deposit, withdrawal) or `from_user_id` + `to_user_id` (transfer), `amount`, `currency`, `position` (of the transaction's first event), `recorded_at` |
//! | [`CHECKPOINTS`] | `projection` | `position`: every event up to it is in the tables above, nothing after; `generation` (bumped by each rebuild's swap); `updated_at` |
//! | [`PARKED_EVENTS`] | `projection`, `position` | `event_id`, `event_type`, `reason`, `parked_at`: poison an operator told the projection to skip |
//! | [`RELAY_EPOCHS_SEEN`] | `projection` | `epoch`: the highest relay epoch the projection accepted a message of; older ones are dropped (ADR 0013); `updated_at` |
//!
//! Ids are `BINARY(16)` UUIDs, times `DATETIME(6)` UTC. A row's `position` is the log
//! position of the last event that changed it, so a reader can tell how fresh it is; the
//! checkpoint of [`DEFAULT_PROJECTION`] is what `X-Projection-Position` reports.
//!
//! Indexes for query-api: users by `(created_at, user_id)`; a user's transactions newest
//! first by `(user_id, position)`, `(from_user_id, position)` and `(to_user_id, position)`
//! (one per role, so a union of three index range scans); all transactions by `position`.
//!
//! The tables are written in one transaction with the checkpoint, so a reader that sees
//! checkpoint N sees every row as of N. `projector rebuild` replaces all of them at once
//! (one `RENAME TABLE`); readers never see a half-built table.

mod checkpoint;
pub mod columns;
mod rows;
mod table;

pub use checkpoint::{read_checkpoint, Checkpoint};
pub use event_store::literal;
pub use rows::{
    select_balances, select_transaction, select_user, BalanceEntry, TransactionRow, UserRow,
    TRANSACTION_COLUMNS, USER_COLUMNS,
};
pub use table::{
    TableName, TableSet, BALANCES, CHECKPOINTS, PARKED_EVENTS, RELAY_EPOCHS_SEEN, TRANSACTIONS,
    USERS,
};

use sqlx::migrate::Migrator;

/// The projection the tables belong to, and the default `PROJECTION`.
pub const DEFAULT_PROJECTION: &str = "main";

// Several migration sets share one database's `_sqlx_migrations` (the event store's, the
// keyring's, this one): each ignores the versions of the others.
static MIGRATOR: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("../migrations/readmodel")
};

/// The `migrations/readmodel` set, embedded at build time. It never touches the log.
pub fn migrator() -> &'static Migrator {
    &MIGRATOR
}
