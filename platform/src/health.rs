//! `GET /health/live` and `GET /health/ready`.
//!
//! Live answers 200 while the process serves at all. Ready runs every registered check
//! concurrently, each under a timeout, and answers 200 or 503 problem+json `unavailable`
//! naming the dependencies that failed (the causes go to the log, not the body).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use crate::json::Json;
use crate::problem::Problem;

/// What a failing check returns; any error converts into it with `?`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type CheckFn = dyn Fn() -> CheckFuture + Send + Sync;

/// Seconds a client should wait before asking `/health/ready` again after a 503.
const RETRY_AFTER_SECS: u64 = 5;

/// The readiness checks of a process. Cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    checks: Vec<(&'static str, Arc<CheckFn>)>,
    timeout: Duration,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Readiness")
            .field("checks", &names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

/// The outcome of one readiness round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    /// Check names and, for failures, the cause.
    pub results: Vec<(&'static str, Result<(), String>)>,
}

impl ReadinessReport {
    pub fn is_ready(&self) -> bool {
        self.results.iter().all(|(_, result)| result.is_ok())
    }

    pub fn failing(&self) -> Vec<&'static str> {
        self.results
            .iter()
            .filter(|(_, result)| result.is_err())
            .map(|(name, _)| *name)
            .collect()
    }
}

impl Readiness {
    /// No checks (always ready) and a 2 s timeout per check.
    pub fn new() -> Self {
        Self {
            checks: Vec::new(),
            timeout: Duration::from_secs(2),
        }
    }

    /// Adds a check named for its dependency (`mariadb`, `rabbitmq`, `projection`).
    pub fn with_check<F, Fut, E>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let check: Arc<CheckFn> = Arc::new(move || {
            let fut = check();
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
        self.checks.push((name, check));
        self
    }

    /// How long one check may take before it counts as failed.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs every check concurrently.
    pub async fn check(&self) -> ReadinessReport {
        let runs = self.checks.iter().map(|(name, check)| async move {
            let result = match tokio::time::timeout(self.timeout, check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err(format!("no answer within {:?}", self.timeout)),
            };
            (*name, result)
        });
        ReadinessReport {
            results: futures_util::future::join_all(runs).await,
        }
    }

    /// `GET /health/live` and `GET /health/ready`, mergeable into any router.
    pub fn router<S>(&self) -> Router<S> {
        Router::new()
            .route("/health/live", get(live))
            .route("/health/ready", get(ready))
            .with_state(self.clone())
    }
}

#[derive(Serialize)]
struct HealthBody {
    status: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    checks: BTreeMap<&'static str, &'static str>,
}

async fn live() -> Json<HealthBody> {
    Json(HealthBody {
        status: "live",
        checks: BTreeMap::new(),
    })
}

async fn ready(State(readiness): State<Readiness>) -> Response {
    let report = readiness.check().await;
    for (name, result) in &report.results {
        if let Err(cause) = result {
            tracing::warn!(dependency = name, cause = %cause, "readiness check failed");
        }
    }
    if report.is_ready() {
        Json(HealthBody {
            status: "ready",
            checks: report
                .results
                .iter()
                .map(|(name, _)| (*name, "ok"))
                .collect(),
        })
        .into_response()
    } else {
        Problem::unavailable(
            format!("Not ready: {} unavailable.", report.failing().join(", ")),
            RETRY_AFTER_SECS,
        )
        .into_response()
    }
}
