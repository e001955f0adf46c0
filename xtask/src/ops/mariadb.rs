//! Compose's MariaDB: the service accounts' grants match what `xtask migrate` grants,
//! and every server that writes binary logs expires them.

use std::path::Path;

use anyhow::Context;

/// The GRANT lines of compose/mariadb/grants.sh for the
/// projector and reader accounts, against the tables in xtask/src/database.rs.
pub(super) fn compose_grants_match(root: &Path) -> anyhow::Result<Vec<String>> {
    let script = std::fs::read_to_string(root.join("compose/mariadb/grants.sh"))
        .context("reading compose/mariadb/grants.sh")?;
    let mut problems = Vec::new();
    for (user, wanted) in [
        ("example_projector", crate::database::projector_grants()),
        ("example_reader", crate::database::reader_grants()),
    ] {
        let mut found: Vec<(String, String)> = script
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                let rest = line.strip_prefix("GRANT ")?;
                let (privileges, rest) = rest.split_once(" ON ")?;
                let (object, grantee) = rest.split_once(" TO ")?;
                if !grantee.starts_with(&format!("'{user}'@")) {
                    return None;
                }
                let table = object
                    .rsplit('.')
                    .next()?
                    .trim_matches(|c| c == '`' || c == '\\');
                Some((privileges.to_owned(), table.to_owned()))
            })
            .collect();
        let mut wanted: Vec<(String, String)> = wanted
            .iter()
            .map(|(p, t)| ((*p).to_owned(), t.clone()))
            .collect();
        found.sort();
        wanted.sort();
        if found != wanted {
            problems.push(format!(
                "{user}: grants.sh grants {found:?}, xtask migrate grants {wanted:?}"
            ));
        }
    }
    Ok(problems)
}

/// Binary logs keep row images (wrapped keys of erased users among them): every server
/// configuration that turns them on also expires them.
pub(super) fn binlogs_expire(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut files = vec![
        root.join("compose/mariadb/primary.cnf"),
        root.join("compose/mariadb/replica.cnf"),
    ];
    for entry in std::fs::read_dir(root.join("compose/mariadb/conf.d"))? {
        files.push(entry?.path());
    }
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let setting = |name: &str| {
            text.lines()
                .any(|l| l.trim_start().starts_with(name) && l.contains('='))
        };
        if setting("log_bin")
            && !setting("expire_logs_days")
            && !setting("binlog_expire_logs_seconds")
        {
            problems.push(format!(
                "{} writes binary logs and never expires them",
                file.display()
            ));
        }
    }
    Ok(problems)
}
