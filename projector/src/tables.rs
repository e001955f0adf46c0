//! The read tables, by name, for the projector (their one writer) and for query-api (a
//! reader). Their columns are defined once, in `migrations/readmodel`; this module says
//! what the rows mean.
//!
//! | table | key | columns |
//! |---|---|---|
//! | [`USERS`] | `user_id` | `email_ciphertext`, `display_name_ciphertext` (NULL once erased), `status` (`active` / `deactivated`), `erased`, `version` (stream version, what `If-Match` compares), `created_at`, `updated_at`, `position` |
//! | [`BALANCES`] | `user_id`, `currency` | `amount` (minor units), `position` |
//! | [`TRANSACTIONS`] | `transaction_id` | `type` (`deposit` / `withdrawal` / `transfer`), `user_id` (deposit, withdrawal) or `from_user_id` + `to_user_id` (transfer), `amount`, `currency`, `position` (of the transaction's first event), `recorded_at` |
//! | [`CHECKPOINTS`] | `projection` | `position`: every event up to it is in the tables above, nothing after; `updated_at` |
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

use sqlx::migrate::Migrator;

/// Users as of their stream's last event.
pub const USERS: &str = "users_view";
/// Balances per user and currency.
pub const BALANCES: &str = "balances_view";
/// One row per deposit, withdrawal or transfer.
pub const TRANSACTIONS: &str = "transactions_view";
/// How far each projection has got.
pub const CHECKPOINTS: &str = "checkpoints";
/// Positions an operator parked (skipped on purpose).
pub const PARKED_EVENTS: &str = "parked_events";
/// The highest relay epoch each projection has seen. Like [`PARKED_EVENTS`], never
/// swapped by a rebuild.
pub const RELAY_EPOCHS_SEEN: &str = "relay_epochs_seen";

/// The projection the tables above belong to, and the default `PROJECTION`.
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

/// The names of one set of read tables: the live ones, or a rebuild's or a verify's
/// copies (`users_view_rebuild`, ...), which have the live tables' definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableSet {
    pub users: String,
    pub balances: String,
    pub transactions: String,
    pub checkpoints: String,
}

impl TableSet {
    pub fn live() -> Self {
        Self::with_suffix("")
    }

    pub fn with_suffix(suffix: &str) -> Self {
        Self {
            users: format!("{USERS}{suffix}"),
            balances: format!("{BALANCES}{suffix}"),
            transactions: format!("{TRANSACTIONS}{suffix}"),
            checkpoints: format!("{CHECKPOINTS}{suffix}"),
        }
    }

    /// The four names; the checkpoint last, as a rebuild swaps them.
    pub fn names(&self) -> [&str; 4] {
        [
            &self.users,
            &self.balances,
            &self.transactions,
            &self.checkpoints,
        ]
    }
}
