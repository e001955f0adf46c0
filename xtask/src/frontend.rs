//! The browser side: npm packages, the UI build, the UI's tests (with the check of its
//! types generated from the services' OpenAPI documents), the gateway (nginx) and
//! Chromium for the end-to-end test. Installs what a fresh machine lacks (npm packages;
//! nginx and Chromium from Debian's packages) and names what it cannot install.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::stack::{workspace_root, Service};

fn ui_dir() -> PathBuf {
    workspace_root().join("ui")
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Installs Debian packages that are missing, when this process may (root, apt).
pub(crate) fn apt_install(program: &str, package: &str) -> anyhow::Result<()> {
    if have(program) {
        return Ok(());
    }
    if !have("apt-get") {
        bail!("{program} is missing: install the `{package}` package");
    }
    println!("installing {package} (apt-get)");
    run(
        Command::new("apt-get").args(["update", "-qq"]),
        "apt-get update",
    )?;
    run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("apt-get install {package} (run as root, or install it yourself)"),
    )?;
    if !have(program) {
        bail!("{package} was installed but {program} is still not on PATH");
    }
    Ok(())
}

/// `npm ci` when `node_modules` is missing or older than the lock file.
pub fn ensure_ui_packages() -> anyhow::Result<()> {
    if !have("node") || !have("npm") {
        bail!("Node.js and npm are missing: install the `nodejs` and `npm` packages");
    }
    let dir = ui_dir();
    let installed = dir.join("node_modules").join(".package-lock.json");
    let stale = match (
        modified(&installed),
        modified(&dir.join("package-lock.json")),
    ) {
        (Some(i), Some(l)) => i < l,
        _ => true,
    };
    if stale {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
            "npm ci in ui/",
        )?;
    }
    Ok(())
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

pub fn build_ui() -> anyhow::Result<()> {
    ensure_ui_packages()?;
    run(
        Command::new("npm")
            .args(["run", "--silent", "build"])
            .current_dir(ui_dir()),
        "the UI build (npm run build)",
    )
}

/// The UI's suite: its API types are the ones its copies of the services' OpenAPI
/// documents generate (the services' own tests check the copies against what they serve),
/// it type-checks against them, and its unit tests pass.
pub fn ui_unit_tests() -> anyhow::Result<()> {
    ensure_ui_packages()?;
    run(
        Command::new("npm")
            .args(["run", "--silent", "check:api"])
            .current_dir(ui_dir()),
        "the check of ui/src/api/*.gen.ts against ui/openapi/*.json \
         (npm run check:api; `npm run gen:api` in ui/ refreshes both)",
    )?;
    run(
        Command::new("npm")
            .args(["run", "--silent", "typecheck"])
            .current_dir(ui_dir()),
        "the UI's type check (npm run typecheck)",
    )?;
    run(
        Command::new("npm").args(["test"]).current_dir(ui_dir()),
        "the UI's unit tests (npm test)",
    )
}

/// The gateway as a service of the stack: renders the nginx configuration into
/// `target/gateway` and runs nginx in the foreground with one process (so that stopping
/// it stops everything).
pub fn gateway() -> anyhow::Result<Service> {
    gateway_with("gateway", &[("GATEWAY_DEV_TOKENS", "true")])
}

/// The gateway rendered into `target/<dir>` with extra `GATEWAY_*` settings (e.g. the
/// OpenID Connect issuer of the end-to-end sign-in test).
pub fn gateway_with(dir: &str, settings: &[(&str, &str)]) -> anyhow::Result<Service> {
    apt_install("nginx", "nginx")?;
    let root = workspace_root();
    let prefix = root.join("target").join(dir);
    run(
        Command::new("sh")
            .arg(root.join("compose/gateway/render.sh"))
            .arg(&prefix)
            .envs(settings.iter().copied()),
        "rendering the gateway configuration",
    )?;
    Ok(Service {
        name: "gateway",
        package: "",
        features: "",
        program: Some("nginx".into()),
        args: vec![
            "-p".into(),
            prefix.display().to_string(),
            "-c".into(),
            "conf/nginx.conf".into(),
            "-e".into(),
            "stderr".into(),
            "-g".into(),
            "daemon off; master_process off;".into(),
        ],
        env: Vec::new(),
        url: Some("http://127.0.0.1:8080 (open this)".into()),
    })
}

pub fn ensure_chromium() -> anyhow::Result<()> {
    if Path::new("/usr/bin/chromium").exists() {
        return Ok(());
    }
    apt_install("chromium", "chromium")
}

/// The end-to-end test in real Chromium against the stack at `base_url`.
pub fn e2e(base_url: &str) -> anyhow::Result<()> {
    e2e_script("e2e/e2e.mjs", base_url)
}

/// `script` (relative to `ui/`) in real Chromium against `base_url`.
pub fn e2e_script(script: &str, base_url: &str) -> anyhow::Result<()> {
    ensure_chromium()?;
    run(
        Command::new("node")
            .arg(script)
            .env("BASE_URL", base_url)
            .env(
                "SCREENSHOT_DIR",
                workspace_root().join("docs").join("screenshots"),
            )
            .current_dir(ui_dir()),
        &format!("the end-to-end test (ui/{script})"),
    )
}
