//! `GET /dev/token?role=ROLE[&sub=UUID][&ttl=SECONDS]`: a token the dev stack accepts,
//! signed with the dev key in `.dev/`. Mounted only when `DEV_TOKENS` is on (`cargo
//! xtask dev` turns it on); never in a deployment, where a real identity provider issues
//! tokens.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use platform::{DevKeys, FieldProblem, Json, Problem, Role};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize)]
struct TokenQuery {
    role: String,
    sub: Option<String>,
    ttl: Option<u64>,
}

pub fn router(keys: Arc<DevKeys>) -> Router {
    Router::new()
        .route("/dev/token", get(mint_token))
        .with_state(keys)
}

async fn mint_token(
    State(keys): State<Arc<DevKeys>>,
    Query(q): Query<TokenQuery>,
) -> Result<Json<serde_json::Value>, Problem> {
    let mut errors = Vec::new();
    let role: Option<Role> = q.role.parse().ok();
    if role.is_none() {
        errors.push(FieldProblem::new(
            "role",
            "invalid_role",
            "role is one of admin, user, service, auditor",
        ));
    }
    let sub = match q.sub.as_deref() {
        None | Some("") => Some(Uuid::now_v7()),
        Some(s) => Uuid::parse_str(s).ok(),
    };
    if sub.is_none() {
        errors.push(FieldProblem::new("sub", "invalid_uuid", "sub is a UUID"));
    }
    let ttl = q.ttl.unwrap_or(3600);
    if !(1..=86_400).contains(&ttl) {
        errors.push(FieldProblem::new(
            "ttl",
            "out_of_range",
            "ttl is 1 to 86400 seconds",
        ));
    }
    let (Some(role), Some(sub), true) = (role, sub, errors.is_empty()) else {
        return Err(Problem::validation_failed(errors));
    };
    let token = keys
        .mint(
            sub,
            &[role],
            Duration::from_secs(ttl),
            platform::DEV_ISSUER,
            platform::DEV_AUDIENCE,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "minting a dev token");
            Problem::internal()
        })?;
    Ok(Json(
        serde_json::json!({ "token": token, "sub": sub, "role": q.role }),
    ))
}
