//! One command of the plan, and the HTTP request that sends it as API.md describes.

use serde::Serialize;
use uuid::Uuid;

/// One command of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Op {
    Register {
        user_id: Uuid,
        email: String,
        display_name: String,
    },
    Deposit {
        user_id: Uuid,
        amount: i64,
        currency: &'static str,
    },
    Withdraw {
        user_id: Uuid,
        amount: i64,
        currency: &'static str,
    },
    Transfer {
        from: Uuid,
        to: Uuid,
        amount: i64,
        currency: &'static str,
    },
    Deactivate {
        user_id: Uuid,
        reason: &'static str,
    },
    Erase {
        user_id: Uuid,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum TransactionBody<'a> {
    Deposit {
        user_id: Uuid,
        amount: i64,
        currency: &'a str,
    },
    Withdrawal {
        user_id: Uuid,
        amount: i64,
        currency: &'a str,
    },
    Transfer {
        from_user_id: Uuid,
        to_user_id: Uuid,
        amount: i64,
        currency: &'a str,
    },
}

impl Op {
    pub(super) fn method(&self) -> &'static str {
        match self {
            Self::Erase { .. } => "DELETE",
            _ => "POST",
        }
    }

    pub(super) fn path(&self) -> String {
        match self {
            Self::Register { .. } => "/api/v1/users".into(),
            Self::Deposit { .. } | Self::Withdraw { .. } | Self::Transfer { .. } => {
                "/api/v1/transactions".into()
            }
            Self::Deactivate { user_id, .. } => format!("/api/v1/users/{user_id}/deactivate"),
            Self::Erase { user_id } => format!("/api/v1/users/{user_id}/personal-data"),
        }
    }

    /// The JSON body, the same bytes on every run (idempotency compares them).
    pub(super) fn body(&self) -> Option<String> {
        let json = match self {
            Self::Register {
                user_id,
                email,
                display_name,
            } => serde_json::json!({
                "user_id": user_id, "email": email, "display_name": display_name,
            })
            .to_string(),
            Self::Deposit {
                user_id,
                amount,
                currency,
            } => transaction(TransactionBody::Deposit {
                user_id: *user_id,
                amount: *amount,
                currency,
            }),
            Self::Withdraw {
                user_id,
                amount,
                currency,
            } => transaction(TransactionBody::Withdrawal {
                user_id: *user_id,
                amount: *amount,
                currency,
            }),
            Self::Transfer {
                from,
                to,
                amount,
                currency,
            } => transaction(TransactionBody::Transfer {
                from_user_id: *from,
                to_user_id: *to,
                amount: *amount,
                currency,
            }),
            Self::Deactivate { reason, .. } => serde_json::json!({ "reason": reason }).to_string(),
            Self::Erase { .. } => return None,
        };
        Some(json)
    }

    pub(super) fn expected_status(&self) -> u16 {
        match self {
            Self::Register { .. }
            | Self::Deposit { .. }
            | Self::Withdraw { .. }
            | Self::Transfer { .. } => 201,
            Self::Deactivate { .. } | Self::Erase { .. } => 200,
        }
    }
}

fn transaction(body: TransactionBody<'_>) -> String {
    // Serialising a plain enum of numbers and strings cannot fail.
    serde_json::to_string(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_api_md_says() {
        let id = Uuid::nil();
        let op = Op::Transfer {
            from: id,
            to: id,
            amount: 250,
            currency: "EUR",
        };
        assert_eq!(
            (op.method(), op.path().as_str()),
            ("POST", "/api/v1/transactions")
        );
        let body: serde_json::Value = serde_json::from_str(&op.body().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"type": "transfer", "from_user_id": id, "to_user_id": id, "amount": 250, "currency": "EUR"})
        );
        let body: serde_json::Value = serde_json::from_str(
            &Op::Withdraw {
                user_id: id,
                amount: 1,
                currency: "JPY",
            }
            .body()
            .unwrap(),
        )
        .unwrap();
        assert_eq!(body["type"], "withdrawal");
        let erase = Op::Erase { user_id: id };
        assert_eq!(erase.method(), "DELETE");
        assert_eq!(erase.body(), None);
        assert_eq!(erase.expected_status(), 200);
        assert!(erase.path().ends_with("/personal-data"));
    }
}
