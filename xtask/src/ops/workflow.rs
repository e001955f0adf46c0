//! The GitHub workflow: its jobs, their gates and the images they build.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{ensure, Context};
use serde_yaml::Value;

use super::{as_str, read_yaml, seq};

/// .github/workflows/ci.yml: lint with fmt and clippy -D warnings, `cargo xtask test`,
/// images for exactly the images compose builds, staging after the images, production
/// after staging behind its environment.
pub(super) fn workflow(root: &Path, configs: &[Value]) -> anyhow::Result<()> {
    let doc = read_yaml(&root.join(".github/workflows/ci.yml"))?;
    let jobs = doc
        .get("jobs")
        .and_then(Value::as_mapping)
        .context("no jobs")?;
    let job = |name: &str| jobs.get(name).with_context(|| format!("no job {name}"));
    let runs = |name: &str| -> anyhow::Result<String> {
        Ok(seq(job(name)?.get("steps"))
            .filter_map(|s| s.get("run").map(as_str))
            .collect::<Vec<_>>()
            .join("\n"))
    };
    let needs = |name: &str| -> anyhow::Result<Vec<String>> {
        let needs = job(name)?.get("needs");
        Ok(match needs {
            Some(Value::String(s)) => vec![s.clone()],
            other => seq(other).map(|v| as_str(v).to_owned()).collect(),
        })
    };
    let environment = |name: &str| -> anyhow::Result<String> {
        let env = job(name)?.get("environment").context("no environment")?;
        Ok(env
            .get("name")
            .map_or_else(|| as_str(env), as_str)
            .to_owned())
    };
    let lint = runs("lint")?;
    ensure!(
        lint.contains("cargo fmt") && lint.contains("--check"),
        "lint runs no `cargo fmt --check`"
    );
    ensure!(
        lint.contains("cargo clippy") && lint.contains("-D warnings"),
        "lint runs no clippy -D warnings"
    );
    ensure!(
        runs("test")?.contains("cargo xtask test"),
        "the test job does not run `cargo xtask test`"
    );
    ensure!(
        ["lint", "test"]
            .iter()
            .all(|j| needs("images").is_ok_and(|n| n.iter().any(|x| x == j))),
        "images must wait for lint and test"
    );
    ensure!(
        needs("deploy-staging")? == ["images"],
        "deploy-staging must follow images"
    );
    ensure!(
        needs("deploy-production")? == ["deploy-staging"],
        "deploy-production must follow deploy-staging"
    );
    ensure!(
        environment("deploy-staging")? == "staging",
        "deploy-staging runs outside the staging environment"
    );
    ensure!(
        environment("deploy-production")? == "production",
        "deploy-production runs outside the production environment (its required reviewers are the gate)"
    );
    // The matrix builds what compose builds.
    let built: BTreeSet<(String, String)> =
        seq(job("images")?["strategy"]["matrix"].get("include"))
            .map(|e| {
                (
                    as_str(&e["dockerfile"]).to_owned(),
                    as_str(&e["target"]).to_owned(),
                )
            })
            .collect();
    let mut wanted = BTreeSet::new();
    for config in configs {
        for (_, service) in config
            .get("services")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            if let Some(build) = service.get("build") {
                wanted.insert((
                    as_str(&build["dockerfile"]).to_owned(),
                    build
                        .get("target")
                        .map(as_str)
                        .unwrap_or_default()
                        .to_owned(),
                ));
            }
        }
    }
    ensure!(
        !wanted.is_empty(),
        "no compose stack to compare the images with"
    );
    ensure!(
        built == wanted,
        "the images job builds {built:?}, compose builds {wanted:?}"
    );
    Ok(())
}
