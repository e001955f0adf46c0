//! The command API against the real MariaDB: each test gets its own database
//! (`TestDatabase`), in-memory dev token keys and freshly generated keyring keys, and
//! drives the router in process (`oneshot`); `server.rs` goes over a real TCP socket.
//! Assertions look at status, content type and `code`, never at message text.

// Helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod concurrency;
mod erasure;
mod errors;
mod faults;
mod idempotency;
mod keys;
mod openapi;
mod replicas;
mod server;
mod subscriptions;
mod transactions;
mod users;
