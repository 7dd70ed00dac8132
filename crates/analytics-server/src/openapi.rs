//! The OpenAPI document of the API (`GET /api/analytics/openapi.json`), built from the
//! table the router is built from ([`crate::api`]'s endpoints) with the schemas the
//! API's types derive ([`crate::wire`], the query structs of [`crate::extract`], the
//! report types of `analytics-core`): it cannot describe an endpoint, a parameter or
//! an answer the code does not have.

use std::sync::OnceLock;

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::OperationBuilder;
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{RefOr, Required, Schema};
use utoipa::{IntoResponses, Modify, OpenApi};

use analytics::core::config::Scope;

use crate::api::{Access, Answer, Endpoint, endpoints};
use crate::wire::{ErrorBody, ErrorDetail, Refusals};

/// The API's document: its description and security scheme; the paths come from the
/// endpoints' table ([`Endpoints`]).
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "analytics",
        description = "Event tracking and business statistics for the AI chatbot and the agent \
                       workbench (SPEC §9). Authentication: `Authorization: Bearer <key>`, keys \
                       scoped ingest, read or admin; with no keys configured the service serves \
                       loopback only, without authentication."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Endpoints),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// Adds every endpoint of the table, with the schemas they use, and the bearer keys'
/// security scheme.
#[derive(Debug)]
struct Endpoints;

impl Modify for Endpoints {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut schemas = Vec::new();
        for endpoint in endpoints() {
            let operation = operation(&endpoint, &mut schemas);
            openapi
                .paths
                .add_path_operation(endpoint.path, vec![endpoint.method], operation);
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.extend(schemas);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The content of an answer or a body: its type and, for JSON, its schema.
fn content(
    content_type: &str,
    schema: Option<RefOr<Schema>>,
) -> (String, utoipa::openapi::Content) {
    (
        content_type.to_owned(),
        ContentBuilder::new().schema(schema).build(),
    )
}

/// One endpoint as an OpenAPI operation; the schemas it refers to go to `schemas`.
fn operation(
    endpoint: &Endpoint,
    schemas: &mut Vec<(String, RefOr<Schema>)>,
) -> utoipa::openapi::path::Operation {
    let mut operation = OperationBuilder::new()
        .summary(Some(endpoint.summary))
        .parameters(Some((endpoint.query.document)()));
    for Answer {
        status,
        description,
        content_type,
        schema,
    } in &endpoint.answers
    {
        let (kind, content) = content(content_type, schema.map(|of| of(schemas)));
        let response = ResponseBuilder::new()
            .description(*description)
            .content(kind, content);
        operation = operation.response(status.to_string(), response.build());
    }
    if let Some(body) = endpoint.body {
        let (kind, content) = content("application/json", Some(body(schemas)));
        let body = RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content(kind, content);
        operation = operation.request_body(Some(body.build()));
    }
    match endpoint.access {
        // Open endpoints drop the document's bearer requirement.
        Access::Open => operation = operation.security(SecurityRequirement::default()),
        Access::Key(scope) => {
            operation = operation.description(Some(match scope {
                Scope::Admin => "Needs an admin key.".to_owned(),
                scope => format!("Needs a key with the scope {}, or admin.", scope.as_str()),
            }));
            let refusals = endpoint.refusals.map(|more| more()).unwrap_or_default();
            for (status, response) in refusals.into_iter().chain(Refusals::responses()) {
                operation = operation.response(status, response);
            }
        }
    }
    operation.build()
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    })
}
