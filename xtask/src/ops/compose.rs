//! The compose stacks: `docker-compose config` on every combination (it validates the
//! files against the Compose schema and merges them, without a Docker engine), then
//! checks on the merged result that the schema cannot make: start order with health
//! conditions, health checks, replicas, settings the binaries really read, files that
//! exist, images built from stages that exist and run unprivileged, and the token
//! settings matching the Keycloak realm.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context};
use serde_yaml::Value;

use super::dockerfile::{self, Dockerfile};
use super::sources;

/// The stacks: the base file plus one override each.
pub const STACKS: [(&str, &str); 3] = [
    ("dev", "compose.dev.yaml"),
    ("staging", "compose.staging.yaml"),
    ("prod", "compose.prod.yaml"),
];

/// Values for the variables staging and production require (`${VAR:?}`).
const DEPLOY_VARS: [(&str, &str); 3] = [
    ("LEDGER_IMAGE_PREFIX", "ghcr.io/example/ledger"),
    ("LEDGER_TAG", "0123456789abcdef"),
    ("LEDGER_ORIGIN", "https://ledger.example"),
];

/// Services that run without a health check, and why.
const NO_HEALTHCHECK: [(&str, &str); 1] = [(
    "fluent-bit",
    "distroless image: nothing inside to probe with",
)];

/// Services that must run at least twice (stateless replicas, or active/standby).
const REPLICATED: [&str; 4] = ["command-api", "query-api", "relay", "projector"];

/// The settings each image's binary reads, by build target.
const BINARY_CONFIG: [(&str, &[&str]); 6] = [
    (
        "command-api",
        &["command-api/src/config.rs", "platform/src/config.rs"],
    ),
    (
        "query-api",
        &["query-api/src/config.rs", "platform/src/config.rs"],
    ),
    (
        "projector",
        &["projector/src/cli.rs", "platform/src/config.rs"],
    ),
    (
        "relay",
        &["event-store/src/bin/relay.rs", "platform/src/config.rs"],
    ),
    ("migrate", &["xtask/src/database.rs"]),
    (
        "ops",
        &[
            "xtask/src/database.rs",
            "xtask/src/backup.rs",
            "xtask/src/restore.rs",
        ],
    ),
];

pub fn compose_dir(root: &Path) -> PathBuf {
    root.join("compose")
}

/// `docker-compose config` of one stack: validated and merged, as YAML.
pub fn merged(root: &Path, override_file: &str) -> anyhow::Result<Value> {
    let dir = compose_dir(root);
    let mut cmd = Command::new("docker-compose");
    cmd.current_dir(root)
        .arg("-f")
        .arg(dir.join("compose.yaml"))
        .arg("-f")
        .arg(dir.join(override_file))
        .arg("config");
    for (var, value) in DEPLOY_VARS {
        cmd.env(var, value);
    }
    let out = cmd
        .output()
        .context("running docker-compose (Debian package docker-compose)")?;
    if !out.status.success() {
        bail!(
            "docker-compose config rejects compose.yaml + {override_file}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_yaml::from_slice(&out.stdout).context("parsing docker-compose config's output")
}

/// Every compose file parses as YAML without duplicate keys (docker-compose itself would
/// silently keep the last of two).
pub fn parse_sources(root: &Path) -> anyhow::Result<()> {
    let dir = compose_dir(root);
    for file in std::iter::once("compose.yaml").chain(STACKS.iter().map(|(_, f)| *f)) {
        let text = std::fs::read_to_string(dir.join(file))
            .with_context(|| format!("reading compose/{file}"))?;
        serde_yaml::from_str::<Value>(&text).with_context(|| format!("compose/{file}"))?;
    }
    Ok(())
}

fn services(config: &Value) -> anyhow::Result<&serde_yaml::Mapping> {
    config
        .get("services")
        .and_then(Value::as_mapping)
        .context("no services")
}

fn str_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn env_of(service: &Value) -> Vec<(String, String)> {
    service
        .get("environment")
        .and_then(Value::as_mapping)
        .map(|m| m.iter().map(|(k, v)| (str_of(k), str_of(v))).collect())
        .unwrap_or_default()
}

fn env_value(service: &Value, name: &str) -> Option<String> {
    env_of(service)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The structure checks on one merged stack. Returns the problems found.
pub fn check_stack(root: &Path, config: &Value) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let services = services(config)?;
    let known: BTreeSet<String> = services.keys().map(str_of).collect();
    let entrypoint_vars = entrypoint_vars(root)?;
    for (name, service) in services {
        let name = str_of(name);
        let one_shot = service.get("restart").map(str_of).as_deref() == Some("no");
        let build = image_stage(root, service)?;

        // Start order: every dependency waits for health or for successful completion.
        if let Some(deps) = service.get("depends_on").and_then(Value::as_mapping) {
            for (dep, how) in deps {
                let dep = str_of(dep);
                let condition = how.get("condition").map(str_of).unwrap_or_default();
                if condition != "service_healthy" && condition != "service_completed_successfully" {
                    problems.push(format!(
                        "{name} depends on {dep} with condition `{condition}`: wait for \
                         service_healthy or service_completed_successfully"
                    ));
                }
                if !known.contains(&dep) {
                    problems.push(format!("{name} depends on {dep}, which is no service"));
                }
            }
        }

        // Health: in compose, in the image, or a one-shot.
        let in_compose = service
            .get("healthcheck")
            .is_some_and(|h| h.get("disable").and_then(Value::as_bool) != Some(true));
        let in_image = build
            .as_ref()
            .is_some_and(|(file, target)| image_has_healthcheck(file, target.as_deref()));
        let excused = NO_HEALTHCHECK.iter().any(|(n, _)| *n == name);
        if !(in_compose || in_image || one_shot || excused) {
            problems.push(format!("{name} has no health check (compose or image)"));
        }

        if REPLICATED.contains(&name.as_str()) {
            let replicas = service
                .get("deploy")
                .and_then(|d| d.get("replicas"))
                .and_then(Value::as_u64)
                .unwrap_or(1);
            if replicas < 2 {
                problems.push(format!(
                    "{name} runs {replicas} replica(s); it needs two or more"
                ));
            }
        }

        // Settings: only names the binary reads (or the entrypoint handles).
        if let Some((_, Some(target))) = &build {
            if let Some((_, files)) = BINARY_CONFIG.iter().find(|(t, _)| t == target) {
                let reads = sources::env_vars(root, files)?;
                for (var, _) in env_of(service) {
                    if !reads.contains(&var) && !entrypoint_vars.contains(&var) {
                        problems.push(format!(
                            "{name} sets {var}, which {target} does not read (its settings: {})",
                            reads.iter().cloned().collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
            }
        }

        // Bind mounts name files of this repository (secrets are checked apart).
        for volume in service
            .get("volumes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let spec = str_of(volume);
            let source = spec.split(':').next().unwrap_or_default();
            if source.starts_with('/')
                && !source.starts_with("/var/lib/docker")
                && !Path::new(source).starts_with(compose_dir(root).join("secrets"))
                && !Path::new(source).exists()
            {
                problems.push(format!("{name} mounts {source}, which does not exist"));
            }
        }

        if let Some((file, target)) = &build {
            let dockerfile = Dockerfile::read(file)?;
            match dockerfile.stage(target.as_deref()) {
                None => problems.push(format!(
                    "{name} builds target {target:?} of {}, which has no such stage",
                    file.display()
                )),
                Some(stage) => match dockerfile.user_of(stage) {
                    Some(user) if !dockerfile::is_root(user) => {}
                    user => problems.push(format!(
                        "{name}'s image ({target:?}) runs as {}",
                        user.unwrap_or("root (no USER)")
                    )),
                },
            }
        }
    }
    problems.extend(check_tokens(root, services)?);
    Ok(problems)
}

/// The Dockerfile and target a service builds, from the merged `build` section.
fn image_stage(root: &Path, service: &Value) -> anyhow::Result<Option<(PathBuf, Option<String>)>> {
    let Some(build) = service.get("build") else {
        return Ok(None);
    };
    let context = build.get("context").map(str_of).unwrap_or_default();
    let dockerfile = build
        .get("dockerfile")
        .map(str_of)
        .unwrap_or_else(|| "Dockerfile".into());
    let context = if Path::new(&context).is_absolute() {
        PathBuf::from(context)
    } else {
        root.join(context)
    };
    Ok(Some((
        context.join(dockerfile),
        build.get("target").map(str_of),
    )))
}

fn image_has_healthcheck(file: &Path, target: Option<&str>) -> bool {
    Dockerfile::read(file)
        .ok()
        .is_some_and(|d| d.stage(target).is_some_and(|s| d.has_healthcheck(s)))
}

/// The `*_PASSWORD_FILE` variables compose/docker/entrypoint.sh turns into URLs.
fn entrypoint_vars(root: &Path) -> anyhow::Result<BTreeSet<String>> {
    let path = root.join("compose/docker/entrypoint.sh");
    let text = std::fs::read_to_string(&path).context("reading compose/docker/entrypoint.sh")?;
    let vars: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("with_password "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_owned)
        .collect();
    ensure!(!vars.is_empty(), "entrypoint.sh handles no *_PASSWORD_FILE");
    Ok(vars)
}

/// The realm file, parsed.
pub fn realm(root: &Path) -> anyhow::Result<serde_json::Value> {
    let path = compose_dir(root).join("keycloak/ledger-realm.json");
    let text =
        std::fs::read_to_string(&path).context("reading compose/keycloak/ledger-realm.json")?;
    serde_json::from_str(&text).context("parsing compose/keycloak/ledger-realm.json")
}

/// What the APIs expect of tokens: realm `ledger` with the four roles, a public PKCE
/// client for the UI, a confidential client-credentials client, `roles` and `aud`.
pub fn check_realm(realm: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    if s(&realm["realm"]) != "ledger" {
        problems.push("the realm is not named `ledger`".into());
    }
    if s(&realm["defaultSignatureAlgorithm"]) != "RS256" {
        problems
            .push("the realm does not sign with RS256 (the APIs pin JWT_ALGORITHM=RS256)".into());
    }
    let roles: BTreeSet<String> = realm["roles"]["realm"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| s(&r["name"]))
        .collect();
    for role in ROLES {
        if !roles.contains(role) {
            problems.push(format!("realm role {role} is missing"));
        }
    }
    for role in &roles {
        if role.parse::<platform::Role>().is_err() {
            problems.push(format!("realm role {role} is no role the APIs know"));
        }
    }
    let clients: Vec<&serde_json::Value> =
        realm["clients"].as_array().into_iter().flatten().collect();
    let Some(ui) = clients.iter().find(|c| s(&c["clientId"]) == "ledger-ui") else {
        problems.push("no client ledger-ui".into());
        return problems;
    };
    let yes = |v: &serde_json::Value| v.as_bool() == Some(true);
    if !yes(&ui["publicClient"])
        || !yes(&ui["standardFlowEnabled"])
        || yes(&ui["implicitFlowEnabled"])
    {
        problems
            .push("ledger-ui must be public, with the standard flow and no implicit flow".into());
    }
    if s(&ui["attributes"]["pkce.code.challenge.method"]) != "S256" {
        problems.push("ledger-ui does not require PKCE S256".into());
    }
    let redirects: Vec<String> = ui["redirectUris"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    // Exact URIs: a wildcard lets an attacker's page on the origin receive a code.
    if redirects != ["${LEDGER_ORIGIN}/signin/callback"] {
        problems.push(format!(
            "ledger-ui's redirect URIs must be exactly ${{LEDGER_ORIGIN}}/signin/callback: {redirects:?}"
        ));
    }
    let after_logout = s(&ui["attributes"]["post.logout.redirect.uris"]);
    if after_logout != "${LEDGER_ORIGIN}/signin" {
        problems.push(format!(
            "ledger-ui's post-logout redirect URIs must be exactly ${{LEDGER_ORIGIN}}/signin: {after_logout:?}"
        ));
    }
    if redirects.is_empty() || redirects.iter().any(|r| !r.starts_with("${LEDGER_ORIGIN}")) {
        problems.push(format!(
            "ledger-ui's redirect URIs must be the gateway origin ${{LEDGER_ORIGIN}}/...: {redirects:?}"
        ));
    }
    let confidential = clients
        .iter()
        .find(|c| c["publicClient"].as_bool() == Some(false) && yes(&c["serviceAccountsEnabled"]));
    match confidential {
        None => problems.push("no confidential client with client credentials".into()),
        Some(c) if !s(&c["secret"]).starts_with("${") => problems.push(format!(
            "client {} has a literal secret in the realm file: use a ${{PLACEHOLDER}}",
            s(&c["clientId"])
        )),
        Some(_) => {}
    }
    for client in confidential.into_iter().chain(std::iter::once(ui)) {
        let id = s(&client["clientId"]);
        let mappers: Vec<&serde_json::Value> = client["protocolMappers"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let roles_mapper = mappers.iter().any(|m| {
            s(&m["protocolMapper"]) == "oidc-usermodel-realm-role-mapper"
                && s(&m["config"]["claim.name"]) == "roles"
                && s(&m["config"]["multivalued"]) == "true"
                && s(&m["config"]["access.token.claim"]) == "true"
        });
        if !roles_mapper {
            problems.push(format!(
                "client {id}: no mapper of realm roles into `roles`"
            ));
        }
        let audience = mappers.iter().any(|m| {
            s(&m["protocolMapper"]) == "oidc-audience-mapper"
                && s(&m["config"]["included.custom.audience"]) == AUDIENCE
                && s(&m["config"]["access.token.claim"]) == "true"
        });
        if !audience {
            problems.push(format!(
                "client {id}: no audience mapper for example-ledger"
            ));
        }
    }
    problems
}

/// The audience every token for the APIs names (API.md; the dev tokens' too).
const AUDIENCE: &str = "example-ledger";

/// The roles of API.md, as the APIs parse them.
const ROLES: [&str; 4] = ["admin", "user", "service", "auditor"];

/// The APIs' token settings against Keycloak's: issuer = Keycloak's hostname (with the
/// relative path) + /realms/ledger, audience example-ledger, RS256, keys from that
/// realm's JWKS; the gateway tells the UI the same issuer.
fn check_tokens(root: &Path, services: &serde_yaml::Mapping) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let get = |name: &str| services.get(name);
    let Some(keycloak) = get("keycloak") else {
        return Ok(vec!["no keycloak service".into()]);
    };
    let realm_name = realm(root)?["realm"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let hostname = env_value(keycloak, "KC_HOSTNAME").unwrap_or_default();
    let relative = env_value(keycloak, "KC_HTTP_RELATIVE_PATH").unwrap_or_default();
    if !hostname.ends_with(&relative) {
        problems.push(format!(
            "KC_HOSTNAME {hostname} does not end with KC_HTTP_RELATIVE_PATH {relative}"
        ));
    }
    let issuer = format!("{hostname}/realms/{realm_name}");
    for api in ["command-api", "query-api"] {
        let Some(service) = get(api) else {
            problems.push(format!("no {api} service"));
            continue;
        };
        let want = [
            ("JWT_ISSUER", issuer.as_str()),
            ("JWT_AUDIENCE", AUDIENCE),
            ("JWT_ALGORITHM", "RS256"),
        ];
        for (var, value) in want {
            let got = env_value(service, var).unwrap_or_default();
            if got != value {
                problems.push(format!("{api}: {var} is {got:?}, Keycloak's is {value:?}"));
            }
        }
    }
    if let Some(gateway) = get("gateway") {
        if let Some(oidc) = env_value(gateway, "GATEWAY_OIDC_ISSUER") {
            if oidc != issuer {
                problems.push(format!(
                    "gateway: GATEWAY_OIDC_ISSUER {oidc} is not {issuer}"
                ));
            }
        }
    }
    // The APIs fetch the realm's keys from Keycloak on the private network, at the
    // address the gateway proxies /auth/ to.
    let keycloak_addr = get("gateway")
        .and_then(|g| env_value(g, "GATEWAY_KEYCLOAK"))
        .unwrap_or_default();
    let certs = format!(
        "http://{keycloak_addr}{relative}/realms/{realm_name}/protocol/openid-connect/certs"
    );
    for api in ["command-api", "query-api"] {
        let url = get(api)
            .and_then(|s| env_value(s, "JWKS_URL"))
            .unwrap_or_default();
        if url != certs {
            problems.push(format!(
                "{api}: JWKS_URL is {url:?}, the realm's keys are at {certs}"
            ));
        }
    }
    Ok(problems)
}

/// Runs compose/gen-secrets.sh in a scratch copy and checks that it makes every secret
/// file the stacks name (compose `secrets:` and bind mounts under secrets/), and that
/// compose/secrets/ keeps them out of git.
pub fn check_secrets(root: &Path, configs: &[Value]) -> anyhow::Result<Vec<String>> {
    let scratch = std::env::temp_dir().join(format!("ledger-secrets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch)?;
    let result = (|| {
        std::fs::copy(
            compose_dir(root).join("gen-secrets.sh"),
            scratch.join("gen-secrets.sh"),
        )?;
        let out = Command::new("sh")
            .arg(scratch.join("gen-secrets.sh"))
            .output()
            .context("running gen-secrets.sh")?;
        ensure!(
            out.status.success(),
            "gen-secrets.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let made = scratch.join("secrets");
        let real = compose_dir(root).join("secrets");
        let mut problems = Vec::new();
        let mut wanted = BTreeSet::new();
        for config in configs {
            for (_, secret) in config
                .get("secrets")
                .and_then(Value::as_mapping)
                .into_iter()
                .flatten()
            {
                wanted.insert(secret.get("file").map(str_of).unwrap_or_default());
            }
            for (_, service) in services(config)? {
                for volume in service
                    .get("volumes")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                {
                    let spec = str_of(volume);
                    let source = spec.split(':').next().unwrap_or_default().to_owned();
                    if Path::new(&source).starts_with(&real) {
                        wanted.insert(source);
                    }
                }
            }
        }
        for file in wanted {
            let Ok(relative) = Path::new(&file).strip_prefix(&real) else {
                problems.push(format!("secret {file} is not under compose/secrets/"));
                continue;
            };
            if !made.join(relative).is_file() {
                problems.push(format!(
                    "gen-secrets.sh does not make secrets/{}",
                    relative.display()
                ));
            }
        }
        let ignore = std::fs::read_to_string(real.join(".gitignore")).unwrap_or_default();
        if !ignore.lines().any(|l| l.trim() == "*") {
            problems.push("compose/secrets/.gitignore does not ignore everything".into());
        }
        let dockerignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap_or_default();
        if !dockerignore.lines().any(|l| l.trim() == "compose/secrets") {
            problems.push(
                ".dockerignore does not keep compose/secrets out of the build context".into(),
            );
        }
        Ok(problems)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The log shipper's configuration: the parsers it names exist, its parsers file and
/// included secret are where compose mounts them, and the variables it uses are set by
/// that secret.
pub fn check_fluent_bit(root: &Path, base: &Value) -> anyhow::Result<Vec<String>> {
    let dir = compose_dir(root).join("observability/fluent-bit");
    let conf = std::fs::read_to_string(dir.join("fluent-bit.conf"))
        .context("reading observability/fluent-bit/fluent-bit.conf")?;
    let parsers = std::fs::read_to_string(dir.join("parsers.conf"))
        .context("reading observability/fluent-bit/parsers.conf")?;
    let mut problems = Vec::new();
    let entries = |text: &str, key: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter_map(|l| {
                let (k, v) = l.split_once(char::is_whitespace)?;
                k.eq_ignore_ascii_case(key).then(|| v.trim().to_owned())
            })
            .collect()
    };
    let defined: BTreeSet<String> = entries(&parsers, "Name").into_iter().collect();
    for parser in entries(&conf, "Parser") {
        if !defined.contains(&parser) {
            problems.push(format!(
                "fluent-bit.conf uses parser {parser}, not in parsers.conf"
            ));
        }
    }
    let service = services(base)?
        .get("fluent-bit")
        .context("no fluent-bit service")?;
    let mount = service
        .get("volumes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(str_of)
        .find(|v| Path::new(v.split(':').next().unwrap_or_default()) == dir)
        .and_then(|v| v.split(':').nth(1).map(str::to_owned))
        .unwrap_or_default();
    for file in entries(&conf, "Parsers_File") {
        if file != format!("{mount}/parsers.conf") {
            problems.push(format!("Parsers_File {file} is not {mount}/parsers.conf"));
        }
    }
    let command = service
        .get("command")
        .and_then(Value::as_sequence)
        .map(|c| c.iter().map(str_of).collect::<Vec<_>>())
        .unwrap_or_default();
    if !command.contains(&format!("{mount}/fluent-bit.conf")) {
        problems.push(format!(
            "the fluent-bit command {command:?} does not run {mount}/fluent-bit.conf"
        ));
    }
    let secrets: Vec<String> = service
        .get("secrets")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|s| s.get("source").map(str_of).unwrap_or_else(|| str_of(s)))
        .collect();
    let mut set = BTreeSet::new();
    for include in conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("@INCLUDE "))
    {
        match include.trim().strip_prefix("/run/secrets/") {
            Some(secret) if secrets.iter().any(|s| s == secret) => {
                // What gen-secrets.sh writes into it.
                let script = std::fs::read_to_string(compose_dir(root).join("gen-secrets.sh"))?;
                for line in script
                    .lines()
                    .filter(|l| l.contains(&format!("make_secret {secret}")))
                {
                    if let Some(var) = line.split("@SET ").nth(1).and_then(|r| r.split('=').next())
                    {
                        set.insert(var.to_owned());
                    }
                }
            }
            _ => problems.push(format!(
                "@INCLUDE {include} is not a secret of the fluent-bit service"
            )),
        }
    }
    let mut rest = conf.as_str();
    while let Some(at) = rest.find("${") {
        rest = &rest[at + 2..];
        let var = rest.split('}').next().unwrap_or_default();
        if !set.contains(var) {
            problems.push(format!(
                "fluent-bit.conf uses ${{{var}}}, which nothing sets"
            ));
        }
    }
    Ok(problems)
}
