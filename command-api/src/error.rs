//! The one error type of the service and its one mapping to problem+json (API.md, Errors).
//! Every status and `code` the service answers with is chosen in `IntoResponse` below.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use event_store::{AppendError, StoreError};
use keyring::KeyringError;
use ledger::{DecodeError, FieldError, Rejection};
use platform::{FieldProblem, Problem};

use crate::email_index::EMAIL_SCOPE;
use crate::idempotency::{IDEMPOTENCY_SCOPE, TRANSACTION_ID_SCOPE};

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Already a problem: extractor rejections (401, 400, 413, 415) and the like.
    #[error("{0}")]
    Problem(#[from] Problem),
    /// `decide` refused.
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// Fields that failed their checks at the boundary: 422.
    #[error("{} invalid field(s)", .0.len())]
    Invalid(Vec<FieldError>),
    /// Role or ownership forbids it.
    #[error("forbidden")]
    Forbidden,
    /// No such user (or a path id that cannot name one).
    #[error("no such user")]
    NotFound,
    /// No webhook subscription of that name.
    #[error("no such subscription")]
    NoSuchSubscription,
    /// A webhook subscription of that name exists.
    #[error("a subscription of that name exists")]
    SubscriptionExists,
    #[error("the e-mail address belongs to another user")]
    EmailTaken,
    #[error("the idempotency key was used for another request")]
    IdempotencyKeyReused,
    /// Other writers kept moving the stream through every retry.
    #[error("the stream kept changing through {attempts} attempts")]
    ConcurrencyConflict { attempts: u32 },
    /// `If-Match` names another version than the stream's.
    #[error("If-Match does not match the current version {current}")]
    VersionMismatch { current: u64 },
    /// The request needs `If-Match` and has none.
    #[error("If-Match is required")]
    PreconditionRequired,
    #[error("appending to the event store")]
    Append(#[from] AppendError),
    #[error("reading the event store")]
    Store(#[from] StoreError),
    #[error("sealing or opening personal data")]
    Keyring(#[from] KeyringError),
    #[error("decoding an event of stream {stream_id}")]
    Decode {
        stream_id: String,
        #[source]
        source: DecodeError,
    },
    /// An erasure is in the log but its data key could not be shredded yet: the command
    /// was applied and is not complete, so the answer is `outcome_unknown` (a repeat
    /// completes it, as does the sweeper).
    #[error("the erasure is recorded; its data key is not shredded yet")]
    ErasurePending,
    /// A stored record that is not what this service writes: a bug, never bad input.
    #[error("corrupt {what}")]
    Corrupt { what: &'static str },
}

impl ApiError {
    /// One 422 listing the fields that failed (the `None`s passed).
    pub(crate) fn invalid(errors: impl IntoIterator<Item = Option<FieldError>>) -> Self {
        ApiError::Invalid(errors.into_iter().flatten().collect())
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Invalid(vec![e])
    }
}

fn field_problems(errors: &[FieldError]) -> Vec<FieldProblem> {
    errors
        .iter()
        .map(|e| FieldProblem::new(e.field, e.code, e.message.clone()))
        .collect()
}

fn conflict(code: &str, title: &str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::CONFLICT, code, title, detail)
}

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    /// The problem+json answer (5xx with a generic body).
    fn to_problem(&self) -> Problem {
        match self {
            ApiError::Problem(p) => p.clone(),
            ApiError::Rejected(r) => rejection(r),
            ApiError::Invalid(errors) => Problem::validation_failed(field_problems(errors)),
            ApiError::Forbidden => Problem::forbidden(),
            ApiError::NotFound => Problem::not_found().with_detail("No such user."),
            ApiError::NoSuchSubscription => {
                Problem::not_found().with_detail("No such subscription.")
            }
            ApiError::SubscriptionExists => conflict(
                "already_exists",
                "Subscription exists",
                "A subscription of that name exists.",
            ),
            ApiError::EmailTaken => email_taken(),
            ApiError::IdempotencyKeyReused => idempotency_key_reused(),
            ApiError::ConcurrencyConflict { .. } => concurrency_conflict(),
            ApiError::VersionMismatch { current } => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "version_mismatch",
                "Version mismatch",
                format!("If-Match does not name the current version, \"{current}\"."),
            ),
            ApiError::PreconditionRequired => Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "Precondition required",
                "This request needs If-Match: \"<version>\" (the ETag of the last answer).",
            ),
            ApiError::Append(e) => match e {
                AppendError::Conflict { .. } => concurrency_conflict(),
                AppendError::ClaimTaken { scope, .. } if scope == EMAIL_SCOPE => email_taken(),
                AppendError::ClaimTaken { scope, .. }
                    if scope == IDEMPOTENCY_SCOPE || scope == TRANSACTION_ID_SCOPE =>
                {
                    idempotency_key_reused()
                }
                AppendError::ClaimTaken { .. } => concurrency_conflict(),
                // Each of these means nothing of the command was written.
                AppendError::Closed | AppendError::Database(_) | AppendError::Unavailable(_) => {
                    unavailable()
                }
                AppendError::OutcomeUnknown => outcome_unknown(),
                AppendError::Invalid(_) | AppendError::DuplicateEventId(_) => Problem::internal(),
            },
            ApiError::ErasurePending => outcome_unknown(),
            ApiError::Store(StoreError::Database(e)) if event_store::is_unavailable(e) => {
                unavailable()
            }
            ApiError::Keyring(KeyringError::Shredded { .. }) => conflict(
                "user_erased",
                "Personal data erased",
                "The user's personal data has been erased.",
            ),
            ApiError::Keyring(KeyringError::Database { source, .. })
                if event_store::is_unavailable(source) =>
            {
                unavailable()
            }
            ApiError::Store(_)
            | ApiError::Keyring(_)
            | ApiError::Decode { .. }
            | ApiError::Corrupt { .. } => Problem::internal(),
        }
    }
}

fn rejection(r: &Rejection) -> Problem {
    match r {
        Rejection::NotFound { .. } => Problem::not_found().with_detail(r.to_string()),
        Rejection::ValidationFailed(field) => {
            Problem::validation_failed(field_problems(std::slice::from_ref(field)))
        }
        Rejection::AlreadyExists { .. } => conflict(r.code(), "User already exists", r.to_string()),
        Rejection::UserInactive { .. } => conflict(r.code(), "User deactivated", r.to_string()),
        Rejection::UserErased { .. } => conflict(r.code(), "Personal data erased", r.to_string()),
        Rejection::InsufficientFunds { .. } => {
            conflict(r.code(), "Insufficient funds", r.to_string())
        }
        Rejection::BalanceLimitExceeded { .. } => {
            conflict(r.code(), "Balance limit exceeded", r.to_string())
        }
    }
}

fn email_taken() -> Problem {
    conflict(
        "email_taken",
        "E-mail address taken",
        "Another user has this e-mail address.",
    )
}

fn idempotency_key_reused() -> Problem {
    conflict(
        "idempotency_key_reused",
        "Idempotency key reused",
        "This Idempotency-Key was used for a different request.",
    )
}

fn concurrency_conflict() -> Problem {
    conflict(
        "concurrency_conflict",
        "Concurrency conflict",
        "The resource kept changing while the command was applied; retry.",
    )
}

fn unavailable() -> Problem {
    Problem::unavailable("The event store is unavailable.", RETRY_AFTER_SECS)
}

/// API.md: the only error that does not mean "nothing was applied".
fn outcome_unknown() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "outcome_unknown",
        "Outcome unknown",
        "The command reached the event store but its result was lost and could not be \
         confirmed in time: it may or may not have been applied. Repeat it with the same \
         Idempotency-Key (or transaction_id) to learn the outcome; that is always safe.",
    )
    .with_retry_after(RETRY_AFTER_SECS)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.to_problem();
        if problem.status().is_server_error() {
            // The one place the cause of a 5xx is logged; the body stays generic.
            tracing::error!(error = %platform::error_chain(&self), status = problem.status().as_u16(), "command failed");
        }
        problem.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::UserId;

    fn code(e: ApiError) -> (StatusCode, String) {
        let p = e.to_problem();
        (p.status(), p.code().to_owned())
    }

    #[test]
    fn every_rejection_code_has_the_status_of_api_md() {
        let user_id = UserId::parse("0190a8f6-7b2c-7c3e-9f00-0123456789ab").unwrap();
        let cases = [
            (Rejection::NotFound { user_id }, StatusCode::NOT_FOUND),
            (Rejection::AlreadyExists { user_id }, StatusCode::CONFLICT),
            (Rejection::UserInactive { user_id }, StatusCode::CONFLICT),
            (Rejection::UserErased { user_id }, StatusCode::CONFLICT),
            (
                Rejection::ValidationFailed(FieldError::new("x", "y", "z")),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ];
        for (r, status) in cases {
            let expected = r.code().to_owned();
            assert_eq!(code(ApiError::from(r)), (status, expected));
        }
    }

    #[test]
    fn claims_map_by_scope() {
        let taken = |scope: &str| {
            ApiError::Append(AppendError::ClaimTaken {
                scope: scope.into(),
                key: vec![1],
            })
        };
        assert_eq!(code(taken(EMAIL_SCOPE)).1, "email_taken");
        assert_eq!(code(taken(IDEMPOTENCY_SCOPE)).1, "idempotency_key_reused");
        assert_eq!(
            code(taken(TRANSACTION_ID_SCOPE)).1,
            "idempotency_key_reused"
        );
        assert_eq!(
            code(ApiError::VersionMismatch { current: 3 }),
            (StatusCode::PRECONDITION_FAILED, "version_mismatch".into())
        );
    }

    #[test]
    fn only_a_lost_commit_reply_is_outcome_unknown() {
        let down = std::sync::Arc::new(sqlx::Error::PoolTimedOut);
        assert_eq!(
            code(ApiError::Append(AppendError::OutcomeUnknown)),
            (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown".into())
        );
        for nothing_written in [
            AppendError::Unavailable(down.clone()),
            AppendError::Database(down),
            AppendError::Closed,
        ] {
            assert_eq!(
                code(ApiError::Append(nothing_written)),
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable".into())
            );
        }
    }
}
