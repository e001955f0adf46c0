//! `POST /api/v1/transactions`: deposit, withdrawal and transfer. Money lives on the user
//! streams; a transfer appends to both parties' streams in one atomic append, each with
//! its expected version.

use axum::extract::State;
use ledger::{
    decide, decide_transfer, Amount, Command, Currency, Deposit, FieldError, TransactionId,
    Transfer, UserId, Withdraw,
};
use platform::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::execute::{execute, Outcome};
use crate::idempotency::Idempotent;
use crate::reply::{Answer, Reply};
use crate::state::AppState;
use crate::stream;

/// The body, by `type`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum TransactionBody {
    /// Money paid in to `user_id`.
    Deposit(OneParty),
    /// Money paid out of `user_id`; 409 `insufficient_funds` if it holds less.
    Withdrawal(OneParty),
    /// Money moved from one user to another, atomically.
    Transfer(TwoParties),
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OneParty {
    /// Chosen by the client to make the command idempotent: the same id with the same
    /// body answers the first result, with another body 409 `idempotency_key_reused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uuid")]
    transaction_id: Option<String>,
    #[schema(format = "uuid")]
    user_id: String,
    /// Minor units (cents), 1 … 10^15.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    amount: i64,
    /// ISO 4217, one of the configured currencies.
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TwoParties {
    /// As for deposits and withdrawals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uuid")]
    transaction_id: Option<String>,
    #[schema(format = "uuid")]
    from_user_id: String,
    #[schema(format = "uuid")]
    to_user_id: String,
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    amount: i64,
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: String,
}

/// The answer (the body also carries `position`).
#[derive(Debug, Serialize)]
struct TransactionRecorded {
    transaction_id: TransactionId,
    status: &'static str,
}

/// Records a deposit, a withdrawal or a transfer.
#[utoipa::path(
    post, path = "/api/v1/transactions", tag = "transactions",
    request_body = TransactionBody,
    params(crate::openapi::CommandHeaders),
    responses(
        (status = 201, description = "Completed", body = crate::openapi::TransactionWrittenDoc,
            headers(("X-Position" = u64),
                ("ETag" = String, description = "\"<version>\" of the user's stream; not for transfers"))),
        (status = 400, response = crate::openapi::MalformedBody),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, description = "insufficient_funds, user_inactive, user_erased, balance_limit_exceeded, idempotency_key_reused, concurrency_conflict",
            body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 413, response = crate::openapi::BodyTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn record_transaction(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<TransactionBody>,
) -> Result<Reply, ApiError> {
    let chosen = body.transaction_id()?;
    let transaction_id = chosen.unwrap_or_else(|| TransactionId::from_uuid(Uuid::now_v7()));
    let idempotent = caller.idempotent_transaction(chosen.map(|t| t.as_uuid()), &body);
    let idempotent = idempotent.as_slice();
    let metadata = &caller.metadata();
    match &body {
        TransactionBody::Deposit(party) => {
            let (user_id, amount, currency) = one_party(&state, party)?;
            caller.authorize(user_id)?;
            let command = Command::Deposit(Deposit {
                transaction_id,
                user_id,
                amount,
                currency,
            });
            on_one_stream(
                &state,
                "deposit",
                idempotent,
                metadata,
                transaction_id,
                command,
            )
            .await
        }
        TransactionBody::Withdrawal(party) => {
            let (user_id, amount, currency) = one_party(&state, party)?;
            caller.authorize(user_id)?;
            let command = Command::Withdraw(Withdraw {
                transaction_id,
                user_id,
                amount,
                currency,
            });
            on_one_stream(
                &state,
                "withdraw",
                idempotent,
                metadata,
                transaction_id,
                command,
            )
            .await
        }
        TransactionBody::Transfer(parties) => {
            let transfer = two_parties(&state, parties, transaction_id)?;
            // A user moves money only *from* itself.
            caller.authorize(transfer.from_user_id)?;
            on_two_streams(&state, idempotent, metadata, &transfer).await
        }
    }
}

impl TransactionBody {
    /// The client's own transaction id, if it sent one: 422 unless a UUID.
    fn transaction_id(&self) -> Result<Option<TransactionId>, ApiError> {
        let raw = match self {
            TransactionBody::Deposit(p) | TransactionBody::Withdrawal(p) => &p.transaction_id,
            TransactionBody::Transfer(p) => &p.transaction_id,
        };
        raw.as_deref()
            .map(|id| {
                TransactionId::parse(id)
                    .map_err(|e| ApiError::from(FieldError::from(e).at("transaction_id")))
            })
            .transpose()
    }
}

fn one_party(state: &AppState, body: &OneParty) -> Result<(UserId, Amount, Currency), ApiError> {
    let user_id = UserId::parse(&body.user_id).map_err(|e| FieldError::from(e).at("user_id"));
    let amount = Amount::parse(body.amount).map_err(FieldError::from);
    let currency = Currency::parse(&body.currency, &state.currencies).map_err(FieldError::from);
    match (user_id, amount, currency) {
        (Ok(u), Ok(a), Ok(c)) => Ok((u, a, c)),
        (u, a, c) => Err(ApiError::invalid([u.err(), a.err(), c.err()])),
    }
}

fn two_parties(
    state: &AppState,
    body: &TwoParties,
    transaction_id: TransactionId,
) -> Result<Transfer, ApiError> {
    let from =
        UserId::parse(&body.from_user_id).map_err(|e| FieldError::from(e).at("from_user_id"));
    let to = UserId::parse(&body.to_user_id).map_err(|e| FieldError::from(e).at("to_user_id"));
    let amount = Amount::parse(body.amount).map_err(FieldError::from);
    let currency = Currency::parse(&body.currency, &state.currencies).map_err(FieldError::from);
    match (from, to, amount, currency) {
        (Ok(from_user_id), Ok(to_user_id), Ok(amount), Ok(currency)) => Ok(Transfer {
            transaction_id,
            from_user_id,
            to_user_id,
            amount,
            currency,
        }),
        (f, t, a, c) => Err(ApiError::invalid([f.err(), t.err(), a.err(), c.err()])),
    }
}

fn recorded(transaction_id: TransactionId) -> TransactionRecorded {
    TransactionRecorded {
        transaction_id,
        status: "completed",
    }
}

async fn on_one_stream(
    state: &AppState,
    name: &'static str,
    idempotent: &[Idempotent],
    metadata: &event_store::Metadata,
    transaction_id: TransactionId,
    command: Command,
) -> Result<Reply, ApiError> {
    let user_id = command.user_id();
    let command = &command;
    execute(state, name, idempotent, move |trust| async move {
        let loaded = stream::load(&state.store, &state.states, user_id, trust).await?;
        let events = decide(&loaded.user, command)?;
        let version = loaded.next_version(&events);
        Ok(Outcome::Append {
            request: event_store::AppendRequest {
                streams: vec![stream::write(user_id, loaded.version, &events, metadata)?],
                claims: Vec::new(),
            },
            answer: Answer::created(recorded(transaction_id), Some(version)),
            after: vec![(user_id, loaded.after(&events))],
        })
    })
    .await
}

async fn on_two_streams(
    state: &AppState,
    idempotent: &[Idempotent],
    metadata: &event_store::Metadata,
    transfer: &Transfer,
) -> Result<Reply, ApiError> {
    execute(state, "transfer", idempotent, move |trust| async move {
        let (from, to) = (transfer.from_user_id, transfer.to_user_id);
        // A transfer to oneself loads one stream twice; `decide_transfer` refuses it.
        let payer = stream::load(&state.store, &state.states, from, trust).await?;
        let payee = stream::load(&state.store, &state.states, to, trust).await?;
        let (out, into) = decide_transfer(&payer.user, &payee.user, transfer)?;
        Ok(Outcome::Append {
            request: event_store::AppendRequest {
                streams: vec![
                    stream::write(from, payer.version, &out, metadata)?,
                    stream::write(to, payee.version, &into, metadata)?,
                ],
                claims: Vec::new(),
            },
            // Two streams, two versions: no single ETag applies.
            answer: Answer::created(recorded(transfer.transaction_id), None),
            after: vec![(from, payer.after(&out)), (to, payee.after(&into))],
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_chosen_by_type_and_refuses_unknown_fields() {
        let ok: TransactionBody = platform::parse_json(
            br#"{"type":"deposit","user_id":"x","amount":1,"currency":"EUR"}"#,
        )
        .unwrap();
        assert!(matches!(ok, TransactionBody::Deposit(_)));
        for bad in [
            &br#"{"type":"deposit","user_id":"x","amount":1,"currency":"EUR","extra":1}"#[..],
            br#"{"type":"refund","user_id":"x","amount":1,"currency":"EUR"}"#,
            br#"{"type":"transfer","user_id":"x","amount":1,"currency":"EUR"}"#,
            br#"{"user_id":"x","amount":1,"currency":"EUR"}"#,
            br#"{"type":"deposit","user_id":"x","amount":"1","currency":"EUR"}"#,
        ] {
            let problem = platform::parse_json::<TransactionBody>(bad).unwrap_err();
            assert_eq!(problem.code(), "malformed_body");
        }
        let back = serde_json::to_value(&ok).unwrap();
        assert_eq!(back["type"], "deposit");
    }
}
