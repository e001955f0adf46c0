//! The end-to-end test of OpenID Connect sign-in: a real OpenID provider
//! (`ui/e2e/oidc-provider.mjs`, the npm package oidc-provider), query-api verifying its
//! RS256 tokens through `JWKS_URL`, and the gateway rendered with `GATEWAY_OIDC_ISSUER`,
//! driven by `ui/e2e/oidc.mjs` in Chromium. Only reads: query-api alone is enough, on the
//! database the main end-to-end test has just used.

use std::time::Duration;

use crate::database::DbArgs;
use crate::stack::{Service, Stack};

const PROVIDER_ADDR: &str = "127.0.0.1:9180";
const GATEWAY: &str = "http://127.0.0.1:8080";

/// Runs the OpenID Connect scenario. Uses the dev stack's ports (8080, 8082): call it only
/// when that stack is down.
pub async fn run(db: &DbArgs) -> anyhow::Result<()> {
    let issuer = format!("http://{PROVIDER_ADDR}");
    let services = services(db, &issuer)?;
    let mut stack = Stack::start(&services).await?;
    let outcome = async {
        stack
            .wait_ready(
                &[
                    &format!("{issuer}/.well-known/openid-configuration"),
                    // Ready only after it has fetched the provider's keys.
                    "http://127.0.0.1:8082/health/ready",
                    &format!("{GATEWAY}/gateway/health"),
                ],
                Duration::from_secs(90),
            )
            .await?;
        crate::frontend::e2e_script("e2e/oidc.mjs", GATEWAY)
    }
    .await;
    stack.stop().await;
    outcome
}

fn services(db: &DbArgs, issuer: &str) -> anyhow::Result<Vec<Service>> {
    Ok(vec![
        Service {
            name: "oidc-provider",
            package: "",
            features: "",
            program: Some("node".into()),
            args: vec!["ui/e2e/oidc-provider.mjs".into()],
            env: vec![
                ("OIDC_PROVIDER_ADDR", PROVIDER_ADDR.into()),
                ("OIDC_REDIRECT_URIS", format!("{GATEWAY}/signin/callback")),
            ],
            url: Some(format!("{issuer} (OpenID provider for the sign-in test)")),
        },
        Service {
            name: "query-api",
            package: "query-api",
            features: "",
            program: None,
            args: Vec::new(),
            env: vec![
                ("DATABASE_URL", db.reader_url.clone()),
                ("JWKS_URL", format!("{issuer}/jwks")),
                ("JWT_ISSUER", issuer.to_owned()),
                ("JWT_ALGORITHM", "RS256".into()),
            ],
            url: None,
        },
        crate::frontend::gateway_with("gateway-oidc", &[("GATEWAY_OIDC_ISSUER", issuer)])?,
    ])
}
