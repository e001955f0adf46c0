//! The ledger domain: users who hold balances per currency and move money between them.
//!
//! Commands are imperative (`Withdraw`), events past tense (`Withdrawn`); all business
//! rules live in `decide`, which may reject, and `evolve` folds events into state and
//! cannot fail. Pure: no I/O, no sqlx, axum, tokio or event-store here.
