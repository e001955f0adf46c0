//! query-api against a real MariaDB: a fresh database per test (event store, keyring and
//! the projector's read tables), the router driven in process, `run` over TCP once.
//! Assertions look at status, content type and `code`, never at message text; waits are
//! on conditions with a deadline, never fixed sleeps or timing asserts.

// Helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod balances;
mod caching;
mod events;
mod openapi;
mod server;
mod support;
mod transactions;
mod users;
mod waits;
