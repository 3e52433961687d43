//! `/v2/event-types`: the catalogue of event types a client can publish and subscribe to:
//! the built-in types of the seeds plus the client's own.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hookd_core::event_type::{
    BUILTIN_EVENT_TYPES, EventFilter, EventType, MAX_EVENT_TYPE_LEN, OPERATIONAL_EVENT_TYPES,
    is_operational,
};
use hookd_store::model::NewEventType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Client;
use crate::body::{check_text, read_json};
use crate::error::{ApiError, ErrorBody, excerpt};
use crate::time::{now_ms, rfc3339};

/// Most event types one client may add: the catalogue is read on every publish of a type
/// of the client's own, so it stays small.
pub(crate) const MAX_OWN_EVENT_TYPES: usize = 1000;
/// Most entries in a webhook's `events`.
pub(crate) const MAX_FILTERS: usize = 256;
/// Most catalogue types an "unknown event type" message names.
const MAX_TYPES_LISTED: usize = 50;
/// Longest event type description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 1024;

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
    parse_type(event_type)?;
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
    if filters.len() > MAX_FILTERS {
        return Err(ApiError::invalid(format!(
            "`events` may list at most {MAX_FILTERS} entries"
        )));
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

/// An event type name, or a 422 that quotes at most the start of it.
pub(crate) fn parse_type(name: &str) -> Result<EventType, ApiError> {
    EventType::parse(name).map_err(|_| {
        ApiError::invalid(format!(
            "`{}` is not a valid event type: use dot-separated segments of lowercase letters, digits, `_` or `-` (at most {MAX_EVENT_TYPE_LEN} characters)",
            excerpt(name)
        ))
    })
}

fn reserved(name: &str) -> ApiError {
    ApiError::invalid(format!(
        "`{}`: event types under `webhook.` are reserved for hookd's own events",
        excerpt(name)
    ))
}

fn unknown_type(name: &str, all: &[String]) -> ApiError {
    let mut listed = all
        .iter()
        .take(MAX_TYPES_LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if all.len() > MAX_TYPES_LISTED {
        listed.push_str(&format!(
            " and {} more (GET /v2/event-types)",
            all.len() - MAX_TYPES_LISTED
        ));
    }
    ApiError::invalid(format!(
        "unknown event type `{}`; valid types are: {listed} (or `*`, or a prefix such as `payout_request.*`)",
        excerpt(name)
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
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid name or description, or the client has 1000 types already", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn create(
    State(state): State<AppState>,
    client: Client,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<EventTypeView>), ApiError> {
    let input: CreateEventType = read_json(body, state.config.max_event_bytes).await?;
    let name = parse_type(&input.name)?;
    if is_operational(name.as_str()) {
        return Err(reserved(name.as_str()));
    }
    if let Some(description) = &input.description {
        check_text("description", description, MAX_DESCRIPTION_CHARS)?;
    }
    if BUILTIN_EVENT_TYPES.iter().any(|(n, _)| *n == name.as_str()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("`{name}` is a built-in event type"),
        ));
    }
    // A soft bound: two adds racing may both pass at the edge.
    if state.store.list_event_types(&client.id).await?.len() >= MAX_OWN_EVENT_TYPES {
        return Err(ApiError::invalid(format!(
            "a client may add at most {MAX_OWN_EVENT_TYPES} event types; use prefixes and `data` fields to tell cases apart"
        )));
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
