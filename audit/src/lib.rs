//! The offline verifier's engine: what `audit verify` and `audit balances` do, for the
//! binary (`main.rs`) and for tests that check our exports with it. Needs no database
//! and no service: an export (NDJSON from `GET /api/v1/audit/export`), the anchors and
//! their JWKS are files.
//!
//! - `verify.rs`: [`verify`] walks the export with the chain rules of ADR 0003
//!   (`hash_chain::Walk`) and checks it against every validly signed anchor.
//! - `balances.rs`: [`balances`] replays one user with `ledger::replay`.
//! - `anchors.rs`: [`parse_anchors`] reads saved anchors in the shapes auditors keep them.
//! - `render.rs`: the human-readable reports.

mod anchors;
mod balances;
mod render;
mod verify;

pub use anchors::{parse_anchors, AnchorsFileError};
pub use balances::{balances, Balance, BalancesError, BalancesReport, Point};
pub use render::{render_balances, render_verify};
pub use verify::{verify, AnchorFindings, ChainFinding, Mismatch, ReadError, VerifyReport};
