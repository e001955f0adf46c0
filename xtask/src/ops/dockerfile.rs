//! Dockerfiles, read well enough to check what compose and CI rely on: the stages and
//! their parents, who each stage runs as, its health check, and what it copies.
//!
//! Why not hadolint: it is not packaged in Debian (the suite installs its tools from
//! Debian's packages), and it lints rather than answering these questions.

use std::path::Path;

use anyhow::{bail, Context};

#[derive(Debug, Default)]
pub struct Stage {
    pub name: Option<String>,
    /// The image or earlier stage this one starts from.
    pub from: String,
    /// The last `USER` of this stage itself.
    pub user: Option<String>,
    pub healthcheck: bool,
    /// Sources of `COPY`/`ADD` from the build context (not `--from`).
    pub copies: Vec<String>,
    /// Stages named by `COPY --from=`.
    pub copies_from: Vec<String>,
}

pub struct Dockerfile {
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut stages: Vec<Stage> = Vec::new();
        for line in instructions(text) {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let args: Vec<&str> = words.collect();
            match keyword.to_ascii_uppercase().as_str() {
                "FROM" => {
                    let args: Vec<&str> =
                        args.into_iter().filter(|a| !a.starts_with("--")).collect();
                    let name = match args.as_slice() {
                        [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
                            Some((*name).to_owned())
                        }
                        _ => None,
                    };
                    stages.push(Stage {
                        name,
                        from: args.first().copied().unwrap_or_default().to_owned(),
                        ..Stage::default()
                    });
                }
                keyword => {
                    let Some(stage) = stages.last_mut() else {
                        if keyword == "ARG" {
                            continue;
                        }
                        bail!("{keyword} before the first FROM");
                    };
                    match keyword {
                        "USER" => stage.user = args.first().map(|u| (*u).to_owned()),
                        "HEALTHCHECK" => {
                            stage.healthcheck = args.first().is_none_or(|a| *a != "NONE")
                        }
                        "COPY" | "ADD" => {
                            let from = args.iter().find_map(|a| a.strip_prefix("--from="));
                            let paths: Vec<&str> = args
                                .iter()
                                .copied()
                                .filter(|a| !a.starts_with("--"))
                                .collect();
                            match from {
                                Some(stage_name) => stage.copies_from.push(stage_name.to_owned()),
                                None if paths.len() >= 2 => stage
                                    .copies
                                    .extend(paths[..paths.len() - 1].iter().map(|p| p.to_string())),
                                None => bail!("COPY without a destination: {line}"),
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        if stages.is_empty() {
            bail!("no FROM");
        }
        Ok(Self { stages })
    }

    /// The stage a build `target` names (the last stage without a target).
    pub fn stage(&self, target: Option<&str>) -> Option<&Stage> {
        match target {
            Some(t) => self.stages.iter().find(|s| s.name.as_deref() == Some(t)),
            None => self.stages.last(),
        }
    }

    /// The stage and its ancestors within this file, nearest first.
    pub fn lineage<'a>(&'a self, stage: &'a Stage) -> Vec<&'a Stage> {
        let mut chain = vec![stage];
        let mut current = stage;
        while let Some(parent) = self.stage(Some(&current.from)) {
            if chain.len() > self.stages.len() {
                break;
            }
            chain.push(parent);
            current = parent;
        }
        chain
    }

    /// Who a target runs as: the nearest `USER` in its lineage.
    pub fn user_of<'a>(&'a self, stage: &'a Stage) -> Option<&'a str> {
        self.lineage(stage).iter().find_map(|s| s.user.as_deref())
    }

    pub fn has_healthcheck(&self, stage: &Stage) -> bool {
        self.lineage(stage).iter().any(|s| s.healthcheck)
    }
}

/// Logical lines: comments dropped, `\` continuations joined.
fn instructions(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

pub fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or(user);
    name == "root" || name == "0"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_inherit_user_and_health_check() {
        let file = Dockerfile::parse(
            "# syntax=docker/dockerfile:1\nARG V=1\nFROM rust:${V} AS build\nCOPY . .\n\
             FROM debian AS runtime\nCOPY --chmod=0755 a.sh \\\n  /usr/bin/a\nUSER 10001:10001\n\
             FROM runtime AS api\nCOPY --from=build /out/api /usr/bin/api\n\
             HEALTHCHECK CMD [\"a\"]\nFROM runtime AS job\n",
        )
        .unwrap();
        let api = file.stage(Some("api")).unwrap();
        assert_eq!(file.user_of(api), Some("10001:10001"));
        assert!(file.has_healthcheck(api));
        assert_eq!(api.copies_from, ["build"]);
        assert!(!file.has_healthcheck(file.stage(Some("job")).unwrap()));
        assert_eq!(file.stage(Some("runtime")).unwrap().copies, ["a.sh"]);
        assert_eq!(file.user_of(file.stage(Some("build")).unwrap()), None);
        assert!(is_root("0:0") && is_root("root") && !is_root("nginx"));
    }
}
