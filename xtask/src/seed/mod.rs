//! `cargo xtask dev --seed`: a small, realistic data set loaded through the command API,
//! the way a client would: a few hundred users with plausible names and e-mail addresses,
//! thousands of deposits, withdrawals and transfers in five currencies, a few deactivated
//! users and one whose personal data is erased.
//!
//! Idempotent by construction: the plan is a pure function of [`SEED`] (same users, same
//! ids, same bodies byte for byte), every command carries an `Idempotency-Key` derived from
//! the seed and its place in the plan, and all are sent as one fixed admin subject. A second
//! run is answered from command-api's idempotency records (`Idempotent-Replayed: true`)
//! and appends nothing; the summary says how many commands were new.
//!
//! The plan runs in phases (registrations, opening deposits, everyday traffic, closures).
//! Inside a phase commands go out on several connections at once, in any order, so a
//! withdrawal or transfer never counts on money that arrives in the same phase: each is
//! paid from what the opening deposits left after the debits planned before it.
//!
//! - `rng.rs`: the fixed random generator and the UUIDv7s drawn from it.
//! - `names.rs`: first and last names, documentation domains, e-mail addresses.
//! - `op.rs`: one command of the plan and the HTTP request that sends it.
//! - `plan.rs`: the data set as phases of commands, a pure function of the seed.
//! - `run.rs`: sending a plan to command-api, phase by phase, with a progress bar.

mod names;
mod op;
mod plan;
mod rng;
mod run;

use std::time::Duration;

use anyhow::Context;

use plan::{plan, USERS};
use run::load;

/// The data set's seed. Changing it makes a different data set, which would collide with
/// an earlier one on e-mail addresses: seed a fresh database then.
pub const SEED: u64 = 0x5eed_1ed6_e202_4001;

/// What must answer before seeding: command-api, ready when its database is.
pub const READY: &str = "http://127.0.0.1:8081/health/ready";

/// Seeds the dev stack's command-api (127.0.0.1:8081) with the [`SEED`] data set, as an
/// admin whose token comes from the dev key in `.dev/`.
pub async fn seed_dev_stack() -> anyhow::Result<()> {
    let plan = plan(SEED);
    let keys = platform::DevKeys::load_or_create(&crate::stack::workspace_root().join(".dev"))
        .context("loading the dev signing key in .dev/")?;
    let token = keys.mint(
        plan.admin_subject(),
        &[platform::Role::Admin],
        Duration::from_secs(3600),
        platform::DEV_ISSUER,
        platform::DEV_AUDIENCE,
    )?;
    println!(
        "seeding {} commands ({USERS} users, seed {SEED:#x}) through http://127.0.0.1:8081",
        plan.len()
    );
    let outcome = load(&plan, "http://127.0.0.1:8081", &token).await?;
    println!(
        "seeded: {} commands appended, {} already there (a repeated run appends nothing)",
        outcome.appended, outcome.replayed
    );
    Ok(())
}
