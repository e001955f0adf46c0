//! What every service's OpenAPI document says the same way: the bearer-token security
//! scheme and the routes platform serves (`/health/live`, `/health/ready`, `/metrics`),
//! which carry no `#[utoipa::path]` of a service's own.

use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;

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
