//! `/v2/event-types`: the catalogue of event types a client can publish and subscribe to:
//! the built-in types of the seeds plus the client's own.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hookd_core::event_type::{
    BUILTIN_EVENT_TYPES, EventFilter, EventType, OPERATIONAL_EVENT_TYPES, is_operational,
};
use hookd_store::model::NewEventType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Client;
use crate::body::read_json;
use crate::error::{ApiError, ErrorBody};
use crate::time::{now_ms, rfc3339};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create))
}

/// An event type of the catalogue.
#[derive(Serialize, ToSchema)]
struct EventTypeView {
    #[schema(example = "payout_request.completed")]
    name: String,
    description: Option<String>,
    /// One of the built-in types (not added by the client).
    builtin: bool,
    /// RFC 3339; `null` for built-in types.
    created_at: Option<String>,
}

/// The whole catalogue (a single page: `next_cursor` is always `null`).
#[derive(Serialize, ToSchema)]
struct EventTypePage {
    data: Vec<EventTypeView>,
    next_cursor: Option<String>,
}

/// Every type name the client may use: built-in first, then its own.
pub(crate) async fn catalogue(state: &AppState, client_id: &str) -> Result<Vec<String>, ApiError> {
    let own = state.store.list_event_types(client_id).await?;
    Ok(BUILTIN_EVENT_TYPES
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .chain(own.into_iter().map(|t| t.name))
        .collect())
}

/// Checks a type to publish: built-in types need no store read.
pub(crate) async fn check_publishable(
    state: &AppState,
    client_id: &str,
    event_type: &str,
) -> Result<(), ApiError> {
    EventType::parse(event_type).map_err(|e| ApiError::invalid(e.to_string()))?;
    if is_operational(event_type) {
        return Err(reserved(event_type));
    }
    if BUILTIN_EVENT_TYPES
        .iter()
        .any(|(name, _)| *name == event_type)
    {
        return Ok(());
    }
    let all = catalogue(state, client_id).await?;
    if all.iter().any(|t| t == event_type) {
        return Ok(());
    }
    Err(unknown_type(event_type, &all))
}

/// Parses a webhook's filters against the client's catalogue.
pub(crate) async fn check_filters(
    state: &AppState,
    client_id: &str,
    filters: &[String],
) -> Result<(), ApiError> {
    if filters.is_empty() {
        return Err(ApiError::invalid(
            "`events` must list at least one event type (or `*`)",
        ));
    }
    if filters.len() > 256 {
        return Err(ApiError::invalid("`events` may list at most 256 entries"));
    }
    // Filters may also name hookd's own events, which only such filters match.
    let mut all = catalogue(state, client_id).await?;
    all.extend(
        OPERATIONAL_EVENT_TYPES
            .iter()
            .map(|(name, _)| (*name).to_owned()),
    );
    for filter in filters {
        EventFilter::parse(filter, all.iter().map(String::as_str))
            .map_err(|_| unknown_type(filter, &all))?;
    }
    Ok(())
}

fn reserved(name: &str) -> ApiError {
    ApiError::invalid(format!(
        "`{name}`: event types under `webhook.` are reserved for hookd's own events"
    ))
}

fn unknown_type(name: &str, all: &[String]) -> ApiError {
    ApiError::invalid(format!(
        "unknown event type `{name}`; valid types are: {} (or `*`, or a prefix such as `payout_request.*`)",
        all.join(", ")
    ))
}

/// The catalogue: the built-in types, then the client's own.
#[utoipa::path(
    get,
    path = "/v2/event-types",
    tag = "event-types",
    responses(
        (status = 200, description = "Every event type the client may use", body = EventTypePage),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn list(
    State(state): State<AppState>,
    client: Client,
) -> Result<Json<EventTypePage>, ApiError> {
    let own = state.store.list_event_types(&client.id).await?;
    let data: Vec<EventTypeView> = BUILTIN_EVENT_TYPES
        .iter()
        .map(|(name, description)| EventTypeView {
            name: (*name).to_owned(),
            description: Some((*description).to_owned()),
            builtin: true,
            created_at: None,
        })
        .chain(own.into_iter().map(|t| EventTypeView {
            name: t.name,
            description: t.description,
            builtin: false,
            created_at: Some(rfc3339(t.created_at_ms)),
        }))
        .collect();
    Ok(Json(EventTypePage {
        data,
        next_cursor: None,
    }))
}

/// `POST /v2/event-types`.
#[derive(Deserialize, ToSchema)]
struct CreateEventType {
    /// Dot-separated lower-case words, e.g. `invoice.paid`.
    name: String,
    description: Option<String>,
}

/// Adds an event type of the client's own.
#[utoipa::path(
    post,
    path = "/v2/event-types",
    tag = "event-types",
    request_body = CreateEventType,
    responses(
        (status = 201, description = "Added", body = EventTypeView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 409, description = "The type exists (built in or added before)", body = ErrorBody),
        (status = 422, description = "Invalid name or description", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn create(
    State(state): State<AppState>,
    client: Client,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<EventTypeView>), ApiError> {
    let input: CreateEventType = read_json(body, state.config.max_event_bytes).await?;
    let name = EventType::parse(&input.name).map_err(|e| ApiError::invalid(e.to_string()))?;
    if is_operational(name.as_str()) {
        return Err(reserved(name.as_str()));
    }
    if input
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 1024)
    {
        return Err(ApiError::invalid(
            "`description` may be at most 1024 characters",
        ));
    }
    if BUILTIN_EVENT_TYPES.iter().any(|(n, _)| *n == name.as_str()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("`{name}` is a built-in event type"),
        ));
    }
    let created = state
        .store
        .create_event_type(NewEventType {
            client_id: client.id,
            name: name.as_str().to_owned(),
            description: input.description,
            now_ms: now_ms(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EventTypeView {
            name: created.name,
            description: created.description,
            builtin: false,
            created_at: Some(rfc3339(created.created_at_ms)),
        }),
    ))
}
