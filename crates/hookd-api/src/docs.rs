//! `GET /openapi.json` (the OpenAPI document, generated from the handlers' annotations)
//! and `GET /docs` (Swagger UI, its files built into the binary), both without
//! authentication.

use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::PathItem;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ErrorBody;

/// The name of the HTTP Basic security scheme authenticated operations refer to.
pub(crate) const BASIC_AUTH: &str = "basic";

/// What the document says besides the paths, which come from the route table.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookd",
        description = "Webhook delivery service. Every `/v2` route needs HTTP Basic authentication with a client's `client_id` and `client_secret`. Every client mistake is answered with a 4xx and `{\"error\":{\"code\",\"message\"}}`."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BasicAuth),
    tags(
        (name = "webhooks", description = "Endpoint registrations"),
        (name = "events", description = "Publishing events; their deliveries and attempts"),
        (name = "event-types", description = "The catalogue of event types"),
        (name = "listen", description = "`hookd listen`: deliveries streamed to a developer's machine"),
        (name = "operations", description = "Health, readiness and metrics (no authentication)"),
        (name = "reference", description = "This document and its page (no authentication)"),
    )
)]
pub(crate) struct ApiDoc;

struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BASIC_AUTH,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(docs_page))
        .routes(routes!(docs_file))
}

/// The methods a path item has operations for, upper case.
pub(crate) fn methods(item: &PathItem) -> impl Iterator<Item = &'static str> + '_ {
    [
        ("GET", &item.get),
        ("PUT", &item.put),
        ("POST", &item.post),
        ("DELETE", &item.delete),
        ("OPTIONS", &item.options),
        ("HEAD", &item.head),
        ("PATCH", &item.patch),
        ("TRACE", &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_ref().map(|_| method))
}

/// The document, serialized once.
static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    crate::openapi().to_json().unwrap_or_else(|e| {
        tracing::error!("cannot serialize the OpenAPI document: {e}");
        String::from("{}")
    })
});

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "reference",
    responses((status = 200, description = "The OpenAPI document of this server", content_type = "application/json"))
)]
async fn openapi_json() -> Response {
    ([(CONTENT_TYPE, "application/json")], OPENAPI_JSON.as_str()).into_response()
}

static SWAGGER_CONFIG: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        utoipa_swagger_ui::Config::new(["/openapi.json"])
            .try_it_out_enabled(false)
            .display_operation_id(false),
    )
});

/// The API reference page (Swagger UI, served from files built into the binary).
#[utoipa::path(
    get,
    path = "/docs",
    tag = "reference",
    responses((status = 200, description = "The API reference page", content_type = "text/html"))
)]
async fn docs_page() -> Response {
    match swagger_file("index.html") {
        Some((content_type, bytes)) => {
            // The page's files are under /docs/; its links are relative.
            let html = String::from_utf8_lossy(&bytes)
                .replacen("<head>", "<head>\n    <base href=\"/docs/\" />", 1)
                .replacen(
                    "<title>Swagger UI</title>",
                    "<title>hookd API reference</title>",
                    1,
                );
            ([(CONTENT_TYPE, content_type)], html).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A file of the API reference page (script, style sheet, icon).
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "reference",
    params(("file" = String, Path, description = "File name, e.g. `swagger-ui-bundle.js`")),
    responses(
        (status = 200, description = "The file"),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such file", body = ErrorBody),
    )
)]
async fn docs_file(Path(file): Path<String>) -> Response {
    match swagger_file(&file) {
        Some((content_type, bytes)) => ([(CONTENT_TYPE, content_type)], bytes).into_response(),
        None => crate::error::ApiError::not_found("file").into_response(),
    }
}

fn swagger_file(name: &str) -> Option<(HeaderValue, Vec<u8>)> {
    match utoipa_swagger_ui::serve(name, Arc::clone(&SWAGGER_CONFIG)) {
        Ok(Some(file)) => {
            let content_type = HeaderValue::from_str(&file.content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            Some((content_type, file.bytes.into_owned()))
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!("cannot serve the API reference file {name}: {e}");
            None
        }
    }
}
