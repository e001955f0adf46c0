//! The shell scripts: they parse, and the services' entrypoint puts secret passwords
//! into URLs.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context};

use super::tool;

pub(super) fn shell_scripts_parse(root: &Path) -> anyhow::Result<()> {
    let mut scripts = vec![root.join(".github/workflows/deploy.sh")];
    let mut pending = vec![root.join("compose")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() && !path.ends_with("secrets") {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "sh") {
                scripts.push(path);
            }
        }
    }
    scripts.sort();
    for script in scripts {
        let text = std::fs::read_to_string(&script)?;
        let shell = if text.starts_with("#!/bin/bash") {
            "bash"
        } else {
            "sh"
        };
        tool(Command::new(shell).arg("-n").arg(&script))
            .with_context(|| format!("{} does not parse", script.display()))?;
    }
    Ok(())
}

/// compose/docker/entrypoint.sh: a password file becomes the URL's password; an unsafe
/// password or a URL without a user is refused.
pub(super) fn entrypoint_works(root: &Path) -> anyhow::Result<()> {
    let script = root.join("compose/docker/entrypoint.sh");
    let scratch = std::env::temp_dir().join(format!("ledger-entry-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch)?;
    let result = (|| {
        std::fs::write(scratch.join("good"), "s3cret-Pw.1\n")?;
        std::fs::write(scratch.join("bad"), "pa'ss\n")?;
        let run = |url: &str, file: &str| {
            Command::new("sh")
                .arg(&script)
                .args(["sh", "-c", "printf %s \"$DATABASE_URL\""])
                .env("DATABASE_URL", url)
                .env("DATABASE_PASSWORD_FILE", scratch.join(file))
                .output()
        };
        let out = run("mysql://example_writer@mariadb:3306/example", "good")?;
        ensure!(
            out.status.success()
                && out.stdout == b"mysql://example_writer:s3cret-Pw.1@mariadb:3306/example",
            "got {:?} ({})",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            !run("mysql://example_writer@mariadb/example", "bad")?
                .status
                .success(),
            "a password with a quote was accepted"
        );
        ensure!(
            !run("mysql://mariadb/example", "good")?.status.success(),
            "a URL without a user was accepted"
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}
