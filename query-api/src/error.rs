//! The one error type of the service and its one mapping to problem+json (API.md, Errors).
//! Every status and `code` the service answers with is chosen in `to_problem` below.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use event_store::StoreError;
use keyring::KeyringError;
use ledger::DecodeError;
use platform::{FieldProblem, Problem};

/// Seconds a client should wait before asking again after a 503.
const RETRY_AFTER_SECS: u64 = 1;

/// Why a view or audit request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Already a problem: extractor rejections (401) and the like.
    #[error("{0}")]
    Problem(#[from] Problem),
    /// Query parameters, path ids or headers that failed their checks: 422.
    #[error("{} invalid field(s)", .0.len())]
    Invalid(Vec<FieldProblem>),
    /// Role or ownership forbids it.
    #[error("forbidden")]
    Forbidden,
    /// No such user, transaction or point in a user's history.
    #[error("no such {what}")]
    NotFound { what: &'static str },
    /// `X-Min-Position` was not reached within the wait.
    #[error("the projection reached {reached}, not {wanted}, within the wait")]
    ProjectionLagging { wanted: u64, reached: u64 },
    /// Personal data must be opened and no master keys are loaded.
    #[error("no master keys are loaded")]
    KeysUnavailable,
    /// A subscriber of `/api/v1/events` that did not read in time: the stream's last
    /// event (`event: error`) before it is cut.
    #[error("the subscriber read too slowly")]
    SubscriberTooSlow,
    /// The anchors' JWKS is not configured or cannot be read.
    #[error("the anchors' JWKS is not available")]
    AnchorKeysUnavailable,
    #[error("reading the read tables")]
    Database(#[from] sqlx::Error),
    #[error("reading the event store")]
    Store(#[from] StoreError),
    #[error("opening personal data")]
    Keyring(#[from] KeyringError),
    #[error("decoding the event at position {position}")]
    Decode {
        position: u64,
        #[source]
        source: DecodeError,
    },
    /// A stored row that is not what the projector writes: a bug, never bad input.
    #[error("corrupt {what}")]
    Corrupt { what: &'static str },
}

impl ApiError {
    /// One failed field: 422 `validation_failed`.
    pub(crate) fn invalid(field: &str, code: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid(vec![FieldProblem::new(field, code, message)])
    }

    pub(crate) fn to_problem(&self) -> Problem {
        match self {
            ApiError::Problem(p) => p.clone(),
            ApiError::Invalid(errors) => Problem::validation_failed(errors.clone()),
            ApiError::Forbidden => Problem::forbidden(),
            ApiError::NotFound { what } => {
                Problem::not_found().with_detail(format!("No such {what}."))
            }
            ApiError::ProjectionLagging { wanted, reached } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "projection_lagging",
                "Projection lagging",
                format!(
                    "The views reached position {reached}, not {wanted}, within the wait; retry."
                ),
            )
            .with_retry_after(RETRY_AFTER_SECS),
            ApiError::SubscriberTooSlow => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "subscriber_too_slow",
                "Subscriber too slow",
                "The events were not read in time; reconnect with Last-Event-ID.",
            ),
            ApiError::KeysUnavailable => Problem::unavailable(
                "The keys that open personal data are not loaded.",
                RETRY_AFTER_SECS,
            ),
            ApiError::AnchorKeysUnavailable => Problem::unavailable(
                "The keys that sign anchors are not available.",
                RETRY_AFTER_SECS,
            ),
            ApiError::Database(e) if event_store::is_unavailable(e) => database_unavailable(),
            ApiError::Store(StoreError::Database(e)) if event_store::is_unavailable(e) => {
                database_unavailable()
            }
            ApiError::Keyring(KeyringError::Database { source, .. })
                if event_store::is_unavailable(source) =>
            {
                database_unavailable()
            }
            ApiError::Database(_)
            | ApiError::Store(_)
            | ApiError::Keyring(_)
            | ApiError::Decode { .. }
            | ApiError::Corrupt { .. } => Problem::internal(),
        }
    }
}

fn database_unavailable() -> Problem {
    Problem::unavailable("The database is unavailable.", RETRY_AFTER_SECS)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.to_problem();
        if problem.status().is_server_error() {
            // The one place the cause of a 5xx is logged; the body stays generic.
            tracing::error!(error = %platform::error_chain(&self), status = problem.status().as_u16(), "query failed");
        }
        problem.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(e: ApiError) -> (StatusCode, String) {
        let p = e.to_problem();
        (p.status(), p.code().to_owned())
    }

    #[test]
    fn codes_follow_api_md() {
        assert_eq!(
            answer(ApiError::ProjectionLagging {
                wanted: 9,
                reached: 3
            }),
            (StatusCode::SERVICE_UNAVAILABLE, "projection_lagging".into())
        );
        assert_eq!(
            answer(ApiError::invalid("limit", "out_of_range", "1 to 200")),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed".into())
        );
        assert_eq!(
            answer(ApiError::NotFound { what: "user" }),
            (StatusCode::NOT_FOUND, "not_found".into())
        );
        assert_eq!(
            answer(ApiError::Database(sqlx::Error::PoolTimedOut)),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable".into())
        );
        assert_eq!(
            answer(ApiError::Corrupt { what: "row" }),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal".into())
        );
    }

    #[test]
    fn lagging_says_when_to_retry() {
        let r = ApiError::ProjectionLagging {
            wanted: 2,
            reached: 1,
        }
        .into_response();
        assert_eq!(r.headers()[axum::http::header::RETRY_AFTER], "1");
    }
}
