//! `/api/v1/users`: register, change the profile, deactivate, erase personal data.
//!
//! E-mail and display name are sealed with the keyring under the user's data key before
//! they enter an event; the e-mail's uniqueness claims (`email_index.rs`) go into the
//! same append. Erasure shreds the data key once its event is committed.

use axum::extract::{FromRequest, Request, State};
use ledger::{
    decide, Command, DeactivateUser, DeactivationReason, DisplayName, Email, ErasePersonalData,
    FieldError, RegisterUser, Rejection, SealedText, UpdateProfile, UserId,
};
use platform::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::caller::{Caller, IfMatch, UserPath};
use crate::email_index::{self, EmailHash};
use crate::error::ApiError;
use crate::execute::{execute, Outcome};
use crate::reply::{Answer, Reply};
use crate::state::AppState;
use crate::stream::{self, Loaded};

/// Keyring field names: a sealed value opens only under the field it was sealed for.
pub const EMAIL_FIELD: &str = ledger::sealed_fields::EMAIL;
pub const DISPLAY_NAME_FIELD: &str = ledger::sealed_fields::DISPLAY_NAME;
pub const DEACTIVATION_REASON_FIELD: &str = ledger::sealed_fields::DEACTIVATION_REASON;

/// `POST /api/v1/users`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterUserBody {
    /// Defaults to the caller's `sub` for role `user` (the only id it may register),
    /// to a new UUIDv7 for admin and service.
    #[serde(default)]
    #[schema(format = "uuid")]
    user_id: Option<String>,
    /// At most 254 characters; unique across users, case-insensitively.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// 1–100 characters after trimming.
    #[schema(min_length = 1, max_length = 100)]
    display_name: String,
}

/// `PATCH /api/v1/users/{id}`: at least one field.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateProfileBody {
    #[serde(default)]
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    display_name: Option<String>,
}

/// `POST /api/v1/users/{id}/deactivate`; the body may be left out.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeactivateUserBody {
    /// Free text, 1–500 characters after trimming; sealed under the user's key, so an
    /// erasure makes it unreadable like the e-mail and name.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 500)]
    reason: Option<String>,
}

/// The answer of every user command (the body also carries `position`).
#[derive(Debug, Serialize)]
struct UserWritten {
    user_id: UserId,
    /// The user stream's version after the command; also the `ETag`.
    version: u64,
}

async fn seal(
    state: &AppState,
    user_id: UserId,
    plaintext: &str,
    field: &str,
) -> Result<SealedText, ApiError> {
    let sealed = state.keys.seal(user_id.as_uuid(), plaintext, field).await?;
    Ok(SealedText::new(sealed.as_str()))
}

fn written(user_id: UserId, version: u64) -> UserWritten {
    UserWritten { user_id, version }
}

/// Registers a user.
#[utoipa::path(
    post, path = "/api/v1/users", tag = "users",
    request_body = RegisterUserBody,
    params(crate::openapi::CommandHeaders),
    responses(
        (status = 201, description = "Registered", body = crate::openapi::UserWrittenDoc,
            headers(("ETag" = String, description = "\"<version>\""), ("X-Position" = u64))),
        (status = 400, response = crate::openapi::MalformedBody),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, description = "already_exists, email_taken, idempotency_key_reused, concurrency_conflict",
            body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 413, response = crate::openapi::BodyTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn register_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<RegisterUserBody>,
) -> Result<Reply, ApiError> {
    let user_id = match &body.user_id {
        Some(raw) => UserId::parse(raw).map_err(|e| FieldError::from(e).at("user_id")),
        None if caller.acts_for_anyone() => Ok(UserId::from_uuid(Uuid::now_v7())),
        None => Ok(UserId::from_uuid(caller.subject())),
    };
    let email = Email::parse(&body.email).map_err(FieldError::from);
    let display_name = DisplayName::parse(&body.display_name).map_err(FieldError::from);
    let (user_id, email, display_name) = match (user_id, email, display_name) {
        (Ok(u), Ok(e), Ok(d)) => (u, e, d),
        (u, e, d) => return Err(ApiError::invalid([u.err(), e.err(), d.err()])),
    };
    caller.authorize(user_id)?;
    let email_hash = EmailHash::of(&state.blind_index, &email);
    let idempotent = caller.idempotent(&body);
    let metadata = &caller.metadata();
    let (state, email, display_name) = (&state, &email, &display_name);

    execute(
        state,
        "register_user",
        idempotent.as_slice(),
        move |trust| async move {
            let loaded = stream::load(&state.store, &state.states, user_id, trust).await?;
            if loaded.user.is_registered() {
                // `decide` says so too; answering first spares sealing for nothing.
                return Err(Rejection::AlreadyExists { user_id }.into());
            }
            let command = Command::RegisterUser(RegisterUser {
                user_id,
                email: seal(state, user_id, email.as_str(), EMAIL_FIELD).await?,
                display_name: seal(state, user_id, display_name.as_str(), DISPLAY_NAME_FIELD)
                    .await?,
            });
            let events = decide(&loaded.user, &command)?;
            let version = loaded.next_version(&events);
            let request = event_store::AppendRequest {
                streams: vec![stream::write(user_id, loaded.version, &events, metadata)?],
                claims: email_index::claim_email(user_id, email_hash, None),
            };
            Ok(Outcome::Append {
                answer: Answer::created(written(user_id, version), Some(version)),
                request,
                after: vec![(user_id, loaded.after(&events))],
            })
        },
    )
    .await
}

/// Changes e-mail, display name or both. Needs `If-Match: "<version>"`.
#[utoipa::path(
    patch, path = "/api/v1/users/{id}", tag = "users",
    request_body = UpdateProfileBody,
    params(("id" = String, Path, format = "uuid"), crate::openapi::CommandHeaders,
        ("If-Match" = String, Header, description = "\"<version>\" from the last ETag; required")),
    responses(
        (status = 200, description = "Changed", body = crate::openapi::UserWrittenDoc,
            headers(("ETag" = String), ("X-Position" = u64))),
        (status = 400, response = crate::openapi::MalformedBody),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, description = "email_taken, user_inactive, user_erased, idempotency_key_reused",
            body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 412, response = crate::openapi::VersionMismatch),
        (status = 413, response = crate::openapi::BodyTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 428, response = crate::openapi::PreconditionRequired),
        (status = 503, response = crate::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn update_profile(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    UserPath(id): UserPath,
    Json(body): Json<UpdateProfileBody>,
) -> Result<Reply, ApiError> {
    let user_id = caller.authorize_path(&id)?;
    if_match.required()?;
    let email = body.email.as_deref().map(Email::parse).transpose();
    let display_name = body
        .display_name
        .as_deref()
        .map(DisplayName::parse)
        .transpose();
    let (email, display_name) = match (email, display_name) {
        (Ok(e), Ok(d)) => (e, d),
        (e, d) => {
            return Err(ApiError::invalid([
                e.err().map(FieldError::from),
                d.err().map(FieldError::from),
            ]))
        }
    };
    let email_hash = email.as_ref().map(|e| EmailHash::of(&state.blind_index, e));
    let idempotent = caller.idempotent(&body);
    let metadata = &caller.metadata();
    let (state, if_match, email, display_name) = (&state, &if_match, &email, &display_name);

    execute(
        state,
        "update_profile",
        idempotent.as_slice(),
        move |trust| async move {
            let loaded = stream::load(&state.store, &state.states, user_id, trust)
                .await?
                .registered()?;
            if_match.check(loaded.version)?;
            if loaded.user.is_erased() {
                // Sealing would fail on the shredded key; `decide` has the same rule.
                return Err(Rejection::UserErased { user_id }.into());
            }
            let email_sealed = match &email {
                Some(e) => Some(seal(state, user_id, e.as_str(), EMAIL_FIELD).await?),
                None => None,
            };
            let name_sealed = match &display_name {
                Some(n) => Some(seal(state, user_id, n.as_str(), DISPLAY_NAME_FIELD).await?),
                None => None,
            };
            let command = Command::UpdateProfile(UpdateProfile {
                user_id,
                email: email_sealed,
                display_name: name_sealed,
            });
            let events = decide(&loaded.user, &command)?;
            let claims = match email_hash {
                Some(new) => {
                    let old = email_index::current_email(&state.store, user_id).await?;
                    email_index::claim_email(user_id, new, old)
                }
                None => Vec::new(),
            };
            append(user_id, &loaded, events, claims, metadata)
        },
    )
    .await
}

/// Deactivates a user: no more money moves or profile changes. Deactivating a
/// deactivated user changes nothing and answers 200.
#[utoipa::path(
    post, path = "/api/v1/users/{id}/deactivate", tag = "users",
    request_body(content = DeactivateUserBody, description = "Optional"),
    params(("id" = String, Path, format = "uuid"), crate::openapi::CommandHeaders,
        ("If-Match" = Option<String>, Header, description = "\"<version>\"; optional")),
    responses(
        (status = 200, description = "Deactivated", body = crate::openapi::UserWrittenDoc,
            headers(("ETag" = String), ("X-Position" = u64))),
        (status = 400, response = crate::openapi::MalformedBody),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, description = "idempotency_key_reused, concurrency_conflict",
            body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 412, response = crate::openapi::VersionMismatch),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn deactivate_user(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    UserPath(id): UserPath,
    OptionalJson(body): OptionalJson<DeactivateUserBody>,
) -> Result<Reply, ApiError> {
    let user_id = caller.authorize_path(&id)?;
    let body = body.unwrap_or_default();
    let reason = match body.reason.as_deref() {
        Some(r) => Some(DeactivationReason::parse(r).map_err(FieldError::from)?),
        None => None,
    };
    let idempotent = caller.idempotent(&body);
    let metadata = &caller.metadata();
    let (state, if_match, reason) = (&state, &if_match, &reason);

    execute(
        state,
        "deactivate_user",
        idempotent.as_slice(),
        move |trust| async move {
            let loaded = stream::load(&state.store, &state.states, user_id, trust)
                .await?
                .registered()?;
            if_match.check(loaded.version)?;
            let reason = match reason {
                Some(reason) => {
                    Some(seal(state, user_id, reason.as_str(), DEACTIVATION_REASON_FIELD).await?)
                }
                None => None,
            };
            let command = Command::DeactivateUser(DeactivateUser { user_id, reason });
            let events = decide(&loaded.user, &command)?;
            append(user_id, &loaded, events, Vec::new(), metadata)
        },
    )
    .await
}

/// Erases the user's personal data: appends `user.personal_data_erased`, releases the
/// e-mail, and destroys the user's data key, after which their e-mail and name are
/// unreadable everywhere. Repeating it changes nothing and answers 200.
#[utoipa::path(
    delete, path = "/api/v1/users/{id}/personal-data", tag = "users",
    params(("id" = String, Path, format = "uuid"), crate::openapi::CommandHeaders,
        ("If-Match" = Option<String>, Header, description = "\"<version>\"; optional")),
    responses(
        (status = 200, description = "Erased", body = crate::openapi::UserWrittenDoc,
            headers(("ETag" = String), ("X-Position" = u64))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, description = "idempotency_key_reused, concurrency_conflict",
            body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 412, response = crate::openapi::VersionMismatch),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn erase_personal_data(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    UserPath(id): UserPath,
) -> Result<Reply, ApiError> {
    let user_id = caller.authorize_path(&id)?;
    let idempotent = caller.idempotent(&());
    let metadata = &caller.metadata();
    let (state, if_match) = (&state, &if_match);

    let reply = execute(
        state,
        "erase_personal_data",
        idempotent.as_slice(),
        move |trust| async move {
            let loaded = stream::load(&state.store, &state.states, user_id, trust)
                .await?
                .registered()?;
            if_match.check(loaded.version)?;
            let command = Command::ErasePersonalData(ErasePersonalData { user_id });
            let events = decide(&loaded.user, &command)?;
            let claims = if events.is_empty() {
                Vec::new()
            } else {
                let old = email_index::current_email(&state.store, user_id).await?;
                email_index::release_email(user_id, old)
            };
            append(user_id, &loaded, events, claims, metadata)
        },
    )
    .await?;
    // After the commit, and on every repeat: a register line or a shredding interrupted
    // before it finished is completed by the next request, or by the erasure sweeper
    // (`sweeper.rs`) of any replica. Both are idempotent. The erasure is in the log by
    // now, so a shred that fails must not be answered as a failure of the command (ADR
    // 0012): the answer is `outcome_unknown`, and the repeat it asks for answers 200 once
    // the key is gone.
    record_erasure(state, user_id, reply.position()).await;
    if let Err(error) = state.keys.shred(user_id.as_uuid()).await {
        tracing::warn!(
            %user_id,
            error = %error,
            "erasure recorded, its data key not shredded yet: a repeat or the sweeper completes it"
        );
        return Err(ApiError::ErasurePending);
    }
    // The user's idempotency records go too (their fingerprints are of bodies that held
    // the address), this request's own included: a repeat finds nothing to do and answers
    // 200 all the same. Like the shred, a failure here asks for the repeat.
    if let Err(error) = crate::idempotency::release_for(&state.store, user_id).await {
        tracing::warn!(
            %user_id,
            error = %error,
            "erasure recorded, its idempotency records not released yet: a repeat completes it"
        );
        return Err(ApiError::ErasurePending);
    }
    tracing::info!(%user_id, "personal data erased");
    Ok(reply)
}

/// Appends the erasure to the register outside the database (ADR 0019), if there is one.
/// A failure does not fail the erasure, which the log already holds and the shredding
/// completes: it is logged and counted, and a repeat of the request records it.
async fn record_erasure(state: &AppState, user_id: UserId, position: u64) {
    let Some(register) = state.erasure_register.clone() else {
        return;
    };
    let erasure = keyring::Erasure {
        subject: user_id.as_uuid(),
        position,
        erased_at: time::OffsetDateTime::now_utc(),
    };
    let written = tokio::task::spawn_blocking(move || register.record(&erasure)).await;
    let error = match written {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error.to_string(),
        Err(_) => "the writing task failed".to_owned(),
    };
    state.counters.register_failed();
    tracing::error!(
        %user_id,
        position,
        error,
        "ERASURE NOT IN THE REGISTER: a restore to before this erasure would not shred \
         again; repeat DELETE /api/v1/users/{{id}}/personal-data to record it"
    );
}

/// The append of a one-stream user command, or the unchanged answer if `decide` found
/// nothing to do.
fn append(
    user_id: UserId,
    loaded: &Loaded,
    events: Vec<ledger::LedgerEvent>,
    claims: Vec<event_store::ClaimOp>,
    metadata: &event_store::Metadata,
) -> Result<Outcome, ApiError> {
    if events.is_empty() {
        return Ok(Outcome::Unchanged {
            answer: Answer::ok(written(user_id, loaded.version), Some(loaded.version)),
            position: loaded.position,
        });
    }
    let version = loaded.next_version(&events);
    Ok(Outcome::Append {
        request: event_store::AppendRequest {
            streams: vec![stream::write(user_id, loaded.version, &events, metadata)?],
            claims,
        },
        answer: Answer::ok(written(user_id, version), Some(version)),
        after: vec![(user_id, loaded.after(&events))],
    })
}

/// A JSON body that may be left out entirely: an empty body reads as `None`; anything
/// else goes through [`platform::Json`] (415, 413, 400 as usual).
pub(crate) struct OptionalJson<T>(Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        // Past the limit, or a body the client broke off: either way nothing to parse.
        let bytes = axum::body::to_bytes(body, platform::MAX_BODY_BYTES)
            .await
            .map_err(|_| platform::Problem::body_too_large(platform::MAX_BODY_BYTES))?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        let Json(body) = Json::<T>::from_request(req, state).await?;
        Ok(Self(Some(body)))
    }
}
