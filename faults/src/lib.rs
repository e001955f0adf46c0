//! Test support for breaking the world around the services on purpose (STYLE.md habit
//! 15: a fault is a test input). Never a dependency of a service binary.
//!
//! - [`FaultProxy`] (`proxy.rs`): a TCP proxy between a service and MariaDB or RabbitMQ
//!   that passes, delays or holds each direction, refuses new connections, cuts every
//!   connection, or re-targets.
//! - [`PrivateMariaDb`] (`mariadb.rs`): a MariaDB server of one test's own (data
//!   directory, port, socket), for SIGKILL and SIGSTOP without disturbing other tests.
//!   Its RabbitMQ counterpart is `event_store::relay::testing::PrivateBroker`.
//! - [`History`] (`history.rs`): what each command was told against what the log holds:
//!   lost, doubled, applied-but-told-failed, unexpected.

mod history;
mod mariadb;
mod proxy;

pub use history::{Answer, History, Verdict};
pub use mariadb::PrivateMariaDb;
pub use proxy::{Direction, FaultProxy, Flow, Stats};
