//! Schemathesis (PyPI) against both APIs: every check of `xtask/schemathesis/
//! schemathesis.toml`, the stateful phase included, a bounded number of examples, one run
//! per role with a token of that role, with `xtask/schemathesis/hooks.py` taking out of
//! generated requests what no schema can say (control characters HTTP forbids in headers,
//! positions beyond the log's head, the audit balance's one-of pair). Installed into a
//! virtualenv under `target/` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::stack::workspace_root;

/// The version the documents are checked with; hypothesis is held below the release
/// that broke hypothesis-jsonschema's object strategy.
const PACKAGES: [&str; 2] = ["schemathesis==4.3.*", "hypothesis<6.150"];
/// Examples per operation and phase: enough for every check to meet every operation on
/// each role, few enough for the test run (about ten seconds per API and role).
const EXAMPLES: &str = "20";

/// The `st` command of the virtualenv, installed if missing.
pub fn ensure_installed() -> anyhow::Result<PathBuf> {
    let venv = workspace_root().join("target/schemathesis-venv");
    let st = venv.join("bin/st");
    if st.exists() {
        return Ok(st);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("running python3 -m venv (Debian: python3-venv)")?;
    if !made.success() {
        bail!(
            "python3 -m venv {} failed (Debian: python3-venv)",
            venv.display()
        );
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet"])
        .args(PACKAGES)
        .output()
        .context("running pip")?;
    if !pip.status.success() {
        bail!(
            "could not install {} from PyPI into {} (is PyPI reachable?): {}",
            PACKAGES.join(" "),
            venv.display(),
            String::from_utf8_lossy(&pip.stderr)
        );
    }
    Ok(st)
}

/// Which of schemathesis's phases run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phases {
    /// Examples, fuzzing and the stateful phase: the test run's.
    Test,
    /// Those and the coverage phase, which takes minutes per operation with a `oneOf`
    /// body and trips over its own recursion on `POST /api/v1/transactions` (4.3.18).
    All,
}

impl Phases {
    fn arg(self) -> &'static str {
        match self {
            Self::Test => "examples,fuzzing,stateful",
            Self::All => "examples,coverage,fuzzing,stateful",
        }
    }
}

/// Runs schemathesis on both APIs, with a dev token of each role.
pub fn run_all(
    st: &Path,
    command_api: &str,
    query_api: &str,
    phases: Phases,
) -> anyhow::Result<()> {
    let tokens = tokens()?;
    let commands = run(st, command_api, &tokens, phases);
    let queries = run(st, query_api, &tokens, phases);
    commands.and(queries)
}

/// Runs schemathesis on `base`'s `/openapi.json` once per `(role, token)`.
fn run(st: &Path, base: &str, tokens: &[(String, String)], phases: Phases) -> anyhow::Result<()> {
    let dir = workspace_root().join("xtask/schemathesis");
    let config = dir.join("schemathesis.toml");
    let mut failed = Vec::new();
    for (role, token) in tokens {
        println!("schemathesis: {base} as {role}");
        let status = Command::new(st)
            // hooks.py: what no schema can say, taken out of generated requests.
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("PYTHONPATH", &dir)
            .arg("--config-file")
            .arg(&config)
            .args(["run", &format!("{base}/openapi.json")])
            .args(["--checks", "all", "--max-examples", EXAMPLES])
            .args(["--phases", phases.arg()])
            .args(["--seed", "20261207", "--no-color"])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .status()
            .context("running schemathesis")?;
        if !status.success() {
            failed.push(role.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "schemathesis found failures on {base} as {}",
            failed.join(", ")
        );
    }
    Ok(())
}

/// A dev token for each role, from the dev key in `.dev/`.
fn tokens() -> anyhow::Result<Vec<(String, String)>> {
    let keys = platform::DevKeys::load_or_create(&workspace_root().join(".dev"))?;
    let mut out = Vec::new();
    for role in [
        platform::Role::Admin,
        platform::Role::User,
        platform::Role::Service,
        platform::Role::Auditor,
    ] {
        let token = keys.mint(
            uuid::Uuid::now_v7(),
            &[role],
            std::time::Duration::from_secs(3600),
            platform::DEV_ISSUER,
            platform::DEV_AUDIENCE,
        )?;
        out.push((role.as_str().to_owned(), token));
    }
    Ok(out)
}
