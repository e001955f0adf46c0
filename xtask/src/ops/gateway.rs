//! The gateway's nginx configuration: `nginx -t` of the compose image's rendering, and
//! its rules read back from what the start script renders.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

use super::tool;

/// The compose gateway image's start script renders the shared templates, adds /auth/
/// and runs `nginx -t`, with a throw-away certificate like the stacks' secrets.
pub(super) fn gateway_image_config(root: &Path) -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!("ledger-gateway-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(scratch.join("ui"))?;
    let result = (|| {
        tool(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", "/CN=localhost", "-keyout"])
                .arg(scratch.join("key.pem"))
                .arg("-out")
                .arg(scratch.join("cert.pem")),
        )?;
        tool(
            Command::new("sh")
                .arg(root.join("compose/docker/gateway/start.sh"))
                .arg("--check")
                .env("GATEWAY_TEMPLATES", root.join("compose/gateway"))
                .env("GATEWAY_UI_ROOT", scratch.join("ui"))
                .env("GATEWAY_LISTEN", "127.0.0.1:18080")
                .env("GATEWAY_TLS_LISTEN", "127.0.0.1:18443")
                .env("GATEWAY_TLS_CERT", scratch.join("cert.pem"))
                .env("GATEWAY_TLS_KEY", scratch.join("key.pem"))
                .env("GATEWAY_KEYCLOAK", "keycloak:8080")
                .env(
                    "GATEWAY_OIDC_ISSUER",
                    "https://ledger.example/auth/realms/ledger",
                ),
        )
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The `location` blocks of an nginx file: (the line that opens it, its text).
fn location_blocks(conf: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut rest = conf;
    while let Some(start) = rest.find("\nlocation ") {
        let block = &rest[start + 1..];
        let mut depth = 0usize;
        let mut end = block.len();
        for (i, c) in block.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let head = block.lines().next().unwrap_or_default().trim().to_owned();
        blocks.push((head, block[..end].to_owned()));
        rest = &block[end..];
    }
    blocks
}

/// The gateway as compose renders it (start.sh, with Keycloak under /auth/ and TLS) and as
/// the dev stack renders it (GATEWAY_DEV_TOKENS=true), read back.
pub(super) fn gateway_rules(root: &Path) -> anyhow::Result<Vec<String>> {
    let scratch =
        std::env::temp_dir().join(format!("ledger-gateway-rules-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(scratch.join("ui"))?;
    let result = (|| {
        tool(
            Command::new("sh")
                .arg(root.join("compose/docker/gateway/start.sh"))
                .arg("--render")
                .arg(scratch.join("compose"))
                .env("GATEWAY_TEMPLATES", root.join("compose/gateway"))
                .env("GATEWAY_UI_ROOT", scratch.join("ui"))
                .env("GATEWAY_KEYCLOAK", "keycloak:8080")
                .env(
                    "GATEWAY_OIDC_ISSUER",
                    "https://ledger.example/auth/realms/ledger",
                ),
        )?;
        tool(
            Command::new("sh")
                .arg(root.join("compose/gateway/render.sh"))
                .arg(scratch.join("dev"))
                .env("GATEWAY_UI_ROOT", scratch.join("ui"))
                .env("GATEWAY_DEV_TOKENS", "true"),
        )?;
        let read = |path: &str| {
            std::fs::read_to_string(scratch.join(path)).with_context(|| format!("reading {path}"))
        };
        let routes = read("compose/conf/routes.conf")?;
        let proxy = read("compose/conf/proxy.conf")?;
        let dev_routes = read("dev/conf/routes.conf")?;
        let mut problems = Vec::new();
        if !routes
            .lines()
            .any(|l| l.trim() == "include security_headers.conf;")
        {
            problems
                .push("routes.conf does not include security_headers.conf at server level".into());
        }
        let blocks = location_blocks(&format!("\n{routes}"));
        for (head, block) in &blocks {
            if !block.contains("add_header") || block.contains("include security_headers.conf;") {
                continue;
            }
            for header in [
                "X-Content-Type-Options",
                "X-Frame-Options",
                "Referrer-Policy",
                "Strict-Transport-Security",
            ] {
                if !block.contains(header) {
                    problems.push(format!(
                        "`{head}` has add_header lines of its own, which drop the server's, \
                         and not {header}: include security_headers.conf"
                    ));
                }
            }
        }
        for prefix in ["/auth/admin", "/auth/realms/master"] {
            let closed = blocks.iter().any(|(head, block)| {
                head.starts_with(&format!("location ^~ {prefix}")) && block.contains("return 404")
            });
            if !closed {
                problems.push(format!(
                    "{prefix} is not closed with `location ^~ {prefix}` (404)"
                ));
            }
        }
        match blocks
            .iter()
            .find(|(head, _)| head.starts_with("location /auth/ "))
        {
            Some((_, block)) if block.contains("limit_req zone=auth_per_ip") => {}
            Some(_) => {
                problems.push("/auth/ is not rate-limited (limit_req zone=auth_per_ip)".into())
            }
            None => problems.push("no /auth/ location in the compose gateway".into()),
        }
        if routes.contains("location = /dev/token") {
            problems.push("/dev/token is routed in compose".into());
        }
        if !dev_routes.contains("location = /dev/token") {
            problems.push("/dev/token is not routed in the dev stack".into());
        }
        if proxy.contains("$proxy_add_x_forwarded_for")
            || !proxy.contains("proxy_set_header X-Forwarded-For $remote_addr;")
        {
            problems.push("X-Forwarded-For must be set to $remote_addr, not appended to".into());
        }
        Ok(problems)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}
