//! Who is calling: [`Principal`] and its [`Role`]s, and the extractor that turns an
//! `Authorization: Bearer` header into one.
//!
//! The role predicates encode API.md's Roles table; ownership is checked by the handler
//! where the resource id is known (`principal.may_act_for(user_id)`).

use std::fmt;
use std::str::FromStr;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Authenticator;
use crate::problem::Problem;

/// The roles of API.md. Token roles outside this set are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Its own profile and money only.
    User,
    /// Every command and view, no audit.
    Service,
    /// Every view and the audit endpoints, no command.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::User, Role::Service, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Service => "service",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name outside [`Role`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected admin, user, service or auditor)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// An authenticated caller. Extract it in a handler to require a valid bearer token;
/// `Option<Principal>` accepts anonymous requests but still refuses a bad token.
///
/// The extractor needs an [`Authenticator`] from the router state (`Authenticator:
/// FromRef<S>`) and rejects with 401 problem+json `unauthenticated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`; for role `user` also the user's id.
    pub subject: Uuid,
    /// Sorted, without duplicates.
    pub roles: Vec<Role>,
    /// The token's `jti`, if any.
    pub token_id: Option<String>,
}

impl Principal {
    pub fn new(subject: Uuid, roles: impl IntoIterator<Item = Role>) -> Self {
        let mut roles: Vec<Role> = roles.into_iter().collect();
        roles.sort_unstable();
        roles.dedup();
        Self {
            subject,
            roles,
            token_id: None,
        }
    }

    pub fn is(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    fn is_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|role| self.is(*role))
    }

    /// May issue commands at all (admin, user, service); ownership is a further check.
    pub fn may_command(&self) -> bool {
        self.is_any(&[Role::Admin, Role::User, Role::Service])
    }

    /// May read every user's views (admin, service, auditor).
    pub fn may_view_all(&self) -> bool {
        self.is_any(&[Role::Admin, Role::Service, Role::Auditor])
    }

    /// May use the audit endpoints (admin, auditor).
    pub fn may_audit(&self) -> bool {
        self.is_any(&[Role::Admin, Role::Auditor])
    }

    /// Whether `user_id` is this caller's own id.
    pub fn is_subject(&self, user_id: Uuid) -> bool {
        self.subject == user_id
    }

    /// May issue a command on behalf of `user_id`: register it, change its profile, move
    /// money *from* it. Admin and service for anyone; a user only for itself.
    pub fn may_act_for(&self, user_id: Uuid) -> bool {
        self.is_any(&[Role::Admin, Role::Service])
            || self.is(Role::User) && self.is_subject(user_id)
    }

    /// May read `user_id`'s profile, balances and transactions: anyone who may view all,
    /// or the user itself.
    pub fn may_view_user(&self, user_id: Uuid) -> bool {
        self.may_view_all() || self.is(Role::User) && self.is_subject(user_id)
    }
}

impl<S> FromRequestParts<S> for Principal
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match <Principal as OptionalFromRequestParts<S>>::from_request_parts(parts, state).await? {
            Some(principal) => Ok(principal),
            None => Err(Problem::unauthenticated(false)),
        }
    }
}

impl<S> OptionalFromRequestParts<S> for Principal
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Some(principal.clone()));
        }
        let Some(token) = bearer_token(&parts.headers) else {
            return Ok(None);
        };
        let authenticator = Authenticator::from_ref(state);
        match authenticator.authenticate(token).await {
            Ok(principal) => {
                tracing::Span::current()
                    .record("subject", tracing::field::display(principal.subject));
                parts.extensions.insert(principal.clone());
                Ok(Some(principal))
            }
            Err(error) => {
                tracing::info!(error = %error, "bearer token rejected");
                Err(Problem::unauthenticated(true))
            }
        }
    }
}

/// The credentials of `Authorization: Bearer <token>`; `None` when there is no header or
/// it uses another scheme (RFC 6750 §3.1: then the challenge carries no error code). An
/// empty token comes back as `Some("")` and fails validation.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn user(id: Uuid) -> Principal {
        Principal::new(id, [Role::User])
    }

    #[test]
    fn roles_parse_and_print_in_lowercase() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(
                serde_json::to_value(role).unwrap(),
                serde_json::json!(role.as_str())
            );
        }
        assert!("Admin".parse::<Role>().is_err());
    }

    #[test]
    fn a_user_acts_and_views_only_for_itself() {
        let me = Uuid::now_v7();
        let other = Uuid::now_v7();
        let p = user(me);
        assert!(p.may_command() && p.may_act_for(me) && p.may_view_user(me));
        assert!(!p.may_act_for(other) && !p.may_view_user(other));
        assert!(!p.may_view_all() && !p.may_audit());
    }

    #[test]
    fn roles_table_of_api_md() {
        let id = Uuid::now_v7();
        let anyone = Uuid::now_v7();
        let admin = Principal::new(id, [Role::Admin]);
        assert!(admin.may_command() && admin.may_view_all() && admin.may_audit());
        assert!(admin.may_act_for(anyone));

        let service = Principal::new(id, [Role::Service]);
        assert!(service.may_command() && service.may_view_all() && !service.may_audit());
        assert!(service.may_act_for(anyone) && service.may_view_user(anyone));

        let auditor = Principal::new(id, [Role::Auditor]);
        assert!(!auditor.may_command() && auditor.may_view_all() && auditor.may_audit());
        assert!(!auditor.may_act_for(id) && auditor.may_view_user(anyone));

        let nobody = Principal::new(id, []);
        assert!(!nobody.may_command() && !nobody.may_view_user(id) && !nobody.may_act_for(id));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_others_count_as_absent() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(bearer_token(&with("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&with("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&with("Bearer")), Some(""));
        assert_eq!(bearer_token(&with("Basic dXNlcjpwdw==")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
