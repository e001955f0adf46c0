//! Load → decide → append, with the retry that makes optimistic concurrency invisible to
//! clients: an append refused because a stream moved is decided again on fresh state
//! (bounded, with jittered backoff), so a client sees 409 `concurrency_conflict` only
//! under pathological contention. A command with `If-Match` re-checks it on every
//! attempt, so a stream that moved answers 412 instead.
//!
//! The first attempt decides on the states this process already holds, without reading
//! the log ([`Trust::Cache`]): for the usual command the only round trip is the append,
//! whose expected versions reject a state that was stale. Only an append is checked that
//! way, so any other outcome of a first attempt (a rejection, 412, "nothing to do") is
//! decided again on states read from the log before it is answered. A committed append
//! leaves the states it produced in the cache.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use event_store::{AppendError, AppendRequest};

use crate::email_index::USER_EMAIL_SCOPE;
use crate::error::ApiError;
use crate::idempotency::Idempotent;
use crate::reply::{Answer, Reply};
use crate::state::AppState;
use crate::stream::{Loaded, Trust};

/// Attempts of one command before answering 409 `concurrency_conflict`, by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// What one attempt decided.
pub(crate) enum Outcome {
    /// Append this; answer with `answer` once committed.
    Append {
        request: AppendRequest,
        answer: Answer,
        /// Each stream's state once the append commits, in the request's stream order.
        after: Vec<(ledger::UserId, Loaded)>,
    },
    /// Nothing to append: the command asks for what already holds. Answer at the
    /// position of the stream's last event.
    Unchanged { answer: Answer, position: u64 },
}

/// Runs `attempt` (load the streams as `Trust` allows, decide, build the append) until its
/// append commits, it fails for a reason other than a moved stream, or the state's
/// `max_attempts` are used up.
/// With idempotency keys (the `Idempotency-Key` header, a client's `transaction_id`),
/// each record is claimed in the same append, and a key already recorded answers from
/// the record without attempting anything.
#[tracing::instrument(skip_all, fields(command = command))]
pub(crate) async fn execute<F, Fut>(
    state: &AppState,
    command: &'static str,
    idempotent: &[Idempotent],
    mut attempt: F,
) -> Result<Reply, ApiError>
where
    F: FnMut(Trust) -> Fut,
    Fut: Future<Output = Result<Outcome, ApiError>>,
{
    let max_attempts = state.max_attempts;
    for n in 1..=max_attempts {
        if let Some(reply) = recorded(state, command, idempotent).await? {
            return Ok(reply);
        }
        let decided = match attempt(if n == 1 { Trust::Cache } else { Trust::Log }).await {
            // An append decided on cached states is checked by the log; anything else
            // decided on them is decided again on states read from it.
            appended @ Ok(Outcome::Append { .. }) => appended,
            _ if n == 1 => attempt(Trust::Log).await,
            other => other,
        };
        let (mut request, answer, after) = match decided? {
            Outcome::Unchanged { answer, position } => return Ok(Reply::new(answer, position)),
            Outcome::Append {
                request,
                answer,
                after,
            } => (request, answer, after),
        };
        request
            .claims
            .extend(idempotent.iter().map(|i| i.claim(&answer)));
        let events = request.streams.iter().map(|s| s.events.len()).sum();
        let error = match state.store.append(request).await {
            Ok(outcome) => {
                state.counters.appended(command, events);
                remember(state, after, &outcome);
                return Ok(Reply::new(answer, outcome.last_position));
            }
            Err(error) => error,
        };
        // The same request with the same key may have committed meanwhile: its answer
        // is ours, whatever refused this append. After a lost commit reply, a failed
        // look-up must not turn "outcome unknown" into an error that says "not applied".
        let found = recorded(state, command, idempotent).await;
        if matches!(error, AppendError::OutcomeUnknown) {
            state.counters.outcome_unknown(command);
            return match found {
                Ok(Some(reply)) => Ok(reply),
                _ => Err(error.into()),
            };
        }
        if let Some(reply) = found? {
            return Ok(reply);
        }
        match error {
            // The user-email claim is per user: held means the user's stream moved too.
            AppendError::Conflict { .. } => {}
            AppendError::ClaimTaken { ref scope, .. } if scope == USER_EMAIL_SCOPE => {}
            other => return Err(other.into()),
        }
        state.counters.conflict(command);
        tracing::debug!(attempt = n, "a stream moved; deciding again");
        if n < max_attempts {
            tokio::time::sleep(backoff(n)).await;
        }
    }
    Err(ApiError::ConcurrencyConflict {
        attempts: max_attempts,
    })
}

/// Caches the states a committed append produced, each at its stream's last position.
fn remember(
    state: &AppState,
    after: Vec<(ledger::UserId, Loaded)>,
    outcome: &event_store::AppendOutcome,
) {
    for ((user_id, mut loaded), written) in after.into_iter().zip(&outcome.streams) {
        loaded.position = written.position;
        state.states.put(user_id, &loaded);
    }
}

async fn recorded(
    state: &AppState,
    command: &'static str,
    idempotent: &[Idempotent],
) -> Result<Option<Reply>, ApiError> {
    for key in idempotent {
        if let Some(reply) = key.recorded(&state.store).await? {
            state.counters.replay(command);
            return Ok(Some(reply));
        }
    }
    Ok(None)
}

/// Up to 1, 2, 4 … 32 ms, uniformly jittered so that writers that collided once do not
/// collide again in step.
fn backoff(attempt: u32) -> Duration {
    let ceiling_us = 1_000u64 << attempt.saturating_sub(1).min(5);
    // A fresh `RandomState` is seeded from the OS; enough randomness for a jitter.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    Duration::from_micros(random % ceiling_us + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for n in 1..=DEFAULT_MAX_ATTEMPTS {
            let d = backoff(n);
            assert!(d >= Duration::from_micros(1));
            assert!(d <= Duration::from_millis(32), "{d:?}");
        }
    }
}
