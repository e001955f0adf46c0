use crate::field::FieldError;
use crate::id::UserId;
use crate::money::{Amount, Balance, Currency};

/// Why `decide` refused a command. `code()` is the stable machine code of API.md's
/// problem+json answers; the command side maps codes to statuses in one place.
///
/// | code | status (API.md) |
/// |---|---|
/// | `not_found` | 404 |
/// | `already_exists`, `user_inactive`, `user_erased`, `insufficient_funds`, `balance_limit_exceeded` | 409 |
/// | `validation_failed` | 422 |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("user {user_id} does not exist")]
    NotFound { user_id: UserId },
    #[error("user {user_id} is already registered")]
    AlreadyExists { user_id: UserId },
    #[error("user {user_id} is deactivated")]
    UserInactive { user_id: UserId },
    #[error("user {user_id}'s personal data has been erased")]
    UserErased { user_id: UserId },
    #[error("user {user_id} holds {balance} {currency}, less than {requested}")]
    InsufficientFunds {
        user_id: UserId,
        currency: Currency,
        balance: Balance,
        requested: Amount,
    },
    #[error("crediting {amount} {currency} to user {user_id} would pass the balance limit")]
    BalanceLimitExceeded {
        user_id: UserId,
        currency: Currency,
        balance: Balance,
        amount: Amount,
    },
    #[error("{0}")]
    ValidationFailed(FieldError),
}

impl Rejection {
    /// Every code `code()` can return.
    pub const CODES: &'static [&'static str] = &[
        "not_found",
        "already_exists",
        "user_inactive",
        "user_erased",
        "insufficient_funds",
        "balance_limit_exceeded",
        "validation_failed",
    ];

    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NotFound { .. } => "not_found",
            Rejection::AlreadyExists { .. } => "already_exists",
            Rejection::UserInactive { .. } => "user_inactive",
            Rejection::UserErased { .. } => "user_erased",
            Rejection::InsufficientFunds { .. } => "insufficient_funds",
            Rejection::BalanceLimitExceeded { .. } => "balance_limit_exceeded",
            Rejection::ValidationFailed(_) => "validation_failed",
        }
    }
}
