//! What every service's OpenAPI document says the same way: the bearer-token security
//! scheme, the routes platform serves (`/health/live`, `/health/ready`, `/metrics`),
//! which carry no `#[utoipa::path]` of a service's own, and the problem document of
//! every error answer ([`ProblemDoc`], [`ProblemSchemas`], [`problem_responses!`]).
//!
//! [`problem_responses!`]: crate::problem_responses

use serde::Serialize;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, PartialSchema, ToSchema};

/// The security scheme `bearer`: a JWT in `Authorization: Bearer`.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The health and metrics routes, tagged `operations`; `metrics` is the summary of
/// `/metrics`, which says what this service's series include.
pub struct PlatformRoutes {
    pub metrics: &'static str,
}

impl Modify for PlatformRoutes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let routes = [
            ("/health/live", "Liveness", "Live"),
            (
                "/health/ready",
                "Readiness: MariaDB answers",
                "Ready; 503 unavailable if not",
            ),
            ("/metrics", self.metrics, "Metrics"),
        ];
        for (path, summary, answer) in routes {
            let operation = OperationBuilder::new()
                .tag("operations")
                .summary(Some(summary))
                .response("200", ResponseBuilder::new().description(answer).build())
                .build();
            openapi
                .paths
                .add_path_operation(path, vec![HttpMethod::Get], operation);
        }
    }
}

/// The nil UUID, which no id of the ledger may be.
const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// Marks every UUID string of `doc` (`format: uuid`) as not the nil UUID, which the
/// ledger's ids refuse: a generator holding to the document then never sends it.
pub fn refuse_nil_uuids(doc: &mut serde_json::Value) {
    match doc {
        serde_json::Value::Object(map) => {
            if map.get("format").and_then(serde_json::Value::as_str) == Some("uuid") {
                map.insert("not".to_owned(), serde_json::json!({ "const": NIL_UUID }));
            }
            map.values_mut().for_each(refuse_nil_uuids);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(refuse_nil_uuids),
        _ => {}
    }
}

// What `Problem` serializes to, for the documents only (`problem.rs` writes the bodies).
/// RFC 9457 problem details (`application/problem+json`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // read by the derive only
pub struct ProblemDoc {
    #[serde(rename = "type")]
    type_uri: String,
    title: String,
    status: u16,
    detail: String,
    code: String,
    /// 422 only.
    errors: Option<Vec<FieldProblemDoc>>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // read by the derive only
pub struct FieldProblemDoc {
    field: String,
    code: String,
    message: String,
}

/// The schemas `ProblemDoc` and `FieldProblemDoc`; `code` is described with an example
/// of this service's own codes.
pub struct ProblemSchemas {
    /// A `code` this service answers, e.g. `insufficient_funds`.
    pub code_example: &'static str,
}

impl Modify for ProblemSchemas {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut problem = ProblemDoc::schema();
        if let RefOr::T(Schema::Object(object)) = &mut problem {
            if let Some(RefOr::T(Schema::Object(code))) = object.properties.get_mut("code") {
                code.description = Some(format!(
                    "Stable machine code, e.g. `{}`.",
                    self.code_example
                ));
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert(ProblemDoc::name().into(), problem);
        components
            .schemas
            .insert(FieldProblemDoc::name().into(), FieldProblemDoc::schema());
    }
}

/// Declares responses (`#[derive(utoipa::ToResponse)]` types) whose body is a
/// [`ProblemDoc`] in `application/problem+json`, one per answer a service documents:
///
/// ```
/// platform::problem_responses! {
///     Forbidden => "`forbidden`: role or ownership forbids it",
/// }
/// ```
#[macro_export]
macro_rules! problem_responses {
    ($($name:ident => $description:literal),* $(,)?) => {
        $(
            #[derive(utoipa::ToResponse)]
            #[response(description = $description, content_type = "application/problem+json")]
            #[allow(dead_code)] // read by the derive only
            pub(crate) struct $name($crate::openapi::ProblemDoc);
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uuid_schema_refuses_the_nil_uuid_and_nothing_else_changes() {
        let mut doc = serde_json::json!({
            "a": {"type": "string", "format": "uuid"},
            "b": [{"type": "string", "format": "date-time"}, {"format": "uuid"}],
        });
        refuse_nil_uuids(&mut doc);
        assert_eq!(
            doc,
            serde_json::json!({
                "a": {"type": "string", "format": "uuid", "not": {"const": NIL_UUID}},
                "b": [{"type": "string", "format": "date-time"}, {"format": "uuid", "not": {"const": NIL_UUID}}],
            })
        );
    }
}
