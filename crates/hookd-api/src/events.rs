//! `/v2/events`: publishing (single and batch), listing, and each event's deliveries and
//! attempts.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hookd_core::envelope::Envelope;
use hookd_core::ids::{IdKind, check_client_key, new_id};
use hookd_core::json::{CanonicalJson, JsonLimits};
use hookd_store::model::DeliveryRecord;
use hookd_store::model::{AttemptLog, EventQuery, EventRecord, NewEvent, Published};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Client;
use crate::body::{check_id, read_json};
use crate::error::{ApiError, ErrorBody};
use crate::event_types::check_publishable;
use crate::pagination::PageParams;
use crate::time::{now_ms, parse_window, rfc3339};

/// Most events in one batch.
pub(crate) const MAX_BATCH: usize = 1000;
/// Largest body of a batch, whatever the per-event limit: one request never makes the
/// server hold more than this (plus its parsed copy). Room for 1000 events of 16 KiB, or
/// about 60 of the default largest (256 KiB); bigger batches are split by the publisher.
pub(crate) const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Room per event for its envelope (`type`, `id`, keys) around `data`.
const EVENT_ENVELOPE_BYTES: usize = 1024;

/// The body limit of `POST /v2/events/batch`: 1000 events of the per-event limit (plus
/// each one's envelope), capped at [`MAX_BATCH_BYTES`].
pub(crate) fn batch_body_limit(max_event_bytes: usize) -> usize {
    max_event_bytes
        .saturating_add(EVENT_ENVELOPE_BYTES)
        .saturating_mul(MAX_BATCH)
        .min(MAX_BATCH_BYTES)
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, publish))
        .routes(routes!(publish_batch))
        .routes(routes!(show))
        .routes(routes!(attempts))
}

/// An event to publish.
#[derive(Deserialize, ToSchema)]
struct PublishEvent {
    /// A type of the catalogue (`GET /v2/event-types`).
    #[serde(rename = "type")]
    #[schema(example = "payout_request.completed")]
    event_type: String,
    /// A JSON object, delivered as given.
    // Kept as written, so numbers are read exactly as JavaScript would read them.
    #[schema(value_type = Object)]
    data: Box<RawValue>,
    /// Your own id (idempotent: the same id again answers the original event).
    id: Option<String>,
}

/// `POST /v2/events/batch`: 1 to 1000 events, stored all or none.
#[derive(Deserialize, ToSchema)]
struct PublishBatch {
    #[serde(deserialize_with = "crate::body::at_most::<MAX_BATCH, _, _>")]
    events: Vec<PublishEvent>,
}

/// An accepted (durably stored) event.
#[derive(Serialize, ToSchema)]
struct Accepted {
    #[schema(example = "evt_01m822p1gcz71t5e4t5cz89g9j")]
    id: String,
    /// Unix seconds.
    created: i64,
    #[serde(rename = "type")]
    event_type: String,
}

/// The accepted events of a batch, in the order given.
#[derive(Serialize, ToSchema)]
struct AcceptedBatch {
    data: Vec<Accepted>,
}

impl Accepted {
    fn of(event: &EventRecord) -> Accepted {
        Accepted {
            id: event.id.clone(),
            created: event.created,
            event_type: event.event_type.clone(),
        }
    }
}

/// Publishes an event. `202` means it and its deliveries are committed.
#[utoipa::path(
    post,
    path = "/v2/events",
    tag = "events",
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key again answers the original event; nothing is sent twice")),
    request_body = PublishEvent,
    responses(
        (status = 202, description = "Stored (or, for a repeated key or id, the original event, with header `idempotent-replayed: true`)", body = Accepted),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Unknown event type, `data` not an object, missing or mistyped field", body = ErrorBody),
        (status = 503, description = "The store is overloaded or unreachable; retry with the same key", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn publish(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = value
                .to_str()
                .map_err(|_| ApiError::invalid("`Idempotency-Key` must be printable ASCII"))?;
            check_client_key(key)
                .map_err(|e| ApiError::invalid(format!("`Idempotency-Key` {e}")))?;
            Some(key.to_owned())
        }
    };
    let input: PublishEvent = read_json(body, state.config.max_event_bytes).await?;
    let now = now_ms();
    let event = prepare(&state, &client, input, idempotency_key, now).await?;
    let mut published = state.store.publish_events(&client.id, vec![event]).await?;
    let Some(published) = published.pop() else {
        return Err(ApiError::from(hookd_store::StoreError::Database(
            "publish returned nothing".into(),
        )));
    };
    crate::observability::count_published([&published]);
    let replayed = matches!(published, Published::Existing { .. });
    let mut response =
        (StatusCode::ACCEPTED, Json(Accepted::of(published.event()))).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Publishes up to 1000 events at once, all or none. The body may hold up to 16 MiB (and
/// each event's `data` up to the per-event limit, 256 KiB by default).
#[utoipa::path(
    post,
    path = "/v2/events/batch",
    tag = "events",
    request_body = PublishBatch,
    responses(
        (status = 202, description = "All stored", body = AcceptedBatch),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 413, description = "Body over 16 MiB, or an event's `data` over the per-event limit", body = ErrorBody),
        (status = 422, description = "An invalid event (the message says which: `events[3]: …`), or not 1 to 1000 events", body = ErrorBody),
        (status = 503, description = "The store is overloaded or unreachable", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn publish_batch(
    State(state): State<AppState>,
    client: Client,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<AcceptedBatch>), ApiError> {
    let input: PublishBatch =
        read_json(body, batch_body_limit(state.config.max_event_bytes)).await?;
    if input.events.is_empty() || input.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "`events` must hold 1 to {MAX_BATCH} events"
        )));
    }
    let now = now_ms();
    let mut events = Vec::with_capacity(input.events.len());
    for (index, event) in input.events.into_iter().enumerate() {
        let prepared = prepare(&state, &client, event, None, now)
            .await
            .map_err(|e| e.with_context(&format!("events[{index}]")))?;
        events.push(prepared);
    }
    let published = state.store.publish_events(&client.id, events).await?;
    crate::observability::count_published(&published);
    let data: Vec<Accepted> = published.iter().map(|p| Accepted::of(p.event())).collect();
    Ok((StatusCode::ACCEPTED, Json(AcceptedBatch { data })))
}

/// Validates one event and gives it its id and canonical data.
async fn prepare(
    state: &AppState,
    client: &Client,
    input: PublishEvent,
    idempotency_key: Option<String>,
    now: i64,
) -> Result<NewEvent, ApiError> {
    check_publishable(state, &client.id, &input.event_type).await?;
    let raw = input.data.get();
    if !raw.trim_start().starts_with('{') {
        return Err(ApiError::invalid("`data` must be a JSON object"));
    }
    if raw.len() > state.config.max_event_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "`data` is larger than {} bytes",
                state.config.max_event_bytes
            ),
        ));
    }
    let data = CanonicalJson::parse(raw, JsonLimits::default())
        .map_err(|e| ApiError::invalid(format!("`data`: {e}")))?;
    let (id, id_from_client) = match input.id {
        Some(id) => {
            check_client_key(&id).map_err(|e| ApiError::invalid(format!("`id` {e}")))?;
            (id, true)
        }
        None => (
            // A thread-local generator seeded from the OS: ids need uniqueness, not a
            // system call each (secrets still come from the OS directly).
            new_id(
                IdKind::Event,
                u64::try_from(now).unwrap_or(0),
                rand::random::<u128>(),
            ),
            false,
        ),
    };
    let delay = i64::try_from(state.config.first_attempt_delay.as_millis()).unwrap_or(i64::MAX);
    Ok(NewEvent {
        id,
        id_from_client,
        idempotency_key,
        event_type: input.event_type,
        data,
        now_ms: now,
        first_attempt_at_ms: now.saturating_add(delay),
        test: false,
        only_webhook_id: None,
    })
}

/// An event.
#[derive(Serialize, ToSchema)]
struct EventView {
    id: String,
    /// Unix seconds.
    created: i64,
    #[serde(rename = "type")]
    event_type: String,
    #[schema(value_type = Object)]
    data: Value,
    /// `true` for a test event (`POST /v2/webhooks/{id}/test`); absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(value_type = Option<bool>)]
    test: bool,
}

/// A page of events.
#[derive(Serialize, ToSchema)]
struct EventPage {
    data: Vec<EventView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// An event with the state of its delivery to each webhook.
#[derive(Serialize, ToSchema)]
struct EventDetail {
    #[serde(flatten)]
    event: EventView,
    deliveries: Vec<DeliveryView>,
}

/// One event's delivery to one webhook.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    webhook_id: String,
    /// `pending`, `succeeded`, `failed` or `cancelled`.
    #[schema(value_type = String, example = "succeeded")]
    state: &'static str,
    /// The same as `state`, under the name many webhook products use.
    #[schema(value_type = String, example = "succeeded")]
    status: &'static str,
    /// Attempts made so far.
    attempts: u32,
    /// RFC 3339; while pending.
    next_attempt_at: Option<String>,
    last_response_status: Option<u16>,
    /// RFC 3339.
    updated_at: String,
}

/// One HTTP POST of a delivery: what was sent and what came back.
#[derive(Serialize, ToSchema)]
struct AttemptView {
    id: String,
    event_id: String,
    webhook_id: String,
    /// 1 for the first attempt.
    attempt_number: u32,
    /// RFC 3339.
    started_at: String,
    duration_ms: i64,
    request_headers: BTreeMap<String, String>,
    /// The exact body sent.
    request_body: String,
    response_status: Option<u16>,
    response_headers: BTreeMap<String, String>,
    /// The first 4 KiB of the response.
    response_body: Option<String>,
    /// Why no response was received (timeout, connection refused, …).
    error: Option<String>,
}

/// Every attempt of an event (a single page: `next_cursor` is always `null`).
#[derive(Serialize, ToSchema)]
struct AttemptPage {
    data: Vec<AttemptView>,
    next_cursor: Option<String>,
}

impl DeliveryView {
    /// Also an item of a webhook's delivery log (`GET /v2/webhooks/{id}/deliveries`).
    pub(crate) fn of(d: &DeliveryRecord) -> DeliveryView {
        DeliveryView {
            webhook_id: d.webhook_id.clone(),
            state: d.state.as_str(),
            status: d.state.as_str(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at_ms.map(rfc3339),
            last_response_status: d.last_response_status,
            updated_at: rfc3339(d.updated_at_ms),
        }
    }
}

impl EventView {
    fn of(event: &EventRecord) -> EventView {
        EventView {
            id: event.id.clone(),
            created: event.created,
            event_type: event.event_type.clone(),
            data: event.data.to_value(),
            test: event.test,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only events of this type.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Created at or after: unix seconds or RFC 3339.
    since: Option<String>,
    /// Created before: unix seconds or RFC 3339.
    until: Option<String>,
    // Not flattened: flattening makes the query parser see every value as a string.
    /// Page size, 1 to 250 (default 50).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Lists the client's events, newest first.
#[utoipa::path(
    get,
    path = "/v2/events",
    tag = "events",
    params(ListParams),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Bad parameter", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn list(
    State(state): State<AppState>,
    client: Client,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (since_ms, until_ms) = parse_window(params.since.as_deref(), params.until.as_deref())?;
    if let Some(event_type) = &params.event_type {
        crate::event_types::parse_type(event_type)?;
    }
    let query = EventQuery {
        event_type: params.event_type,
        since_ms,
        until_ms,
    };
    let page_params = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let page = state
        .store
        .list_events(&client.id, query, page_params.to_request()?)
        .await?;
    let data: Vec<EventView> = page.data.iter().map(EventView::of).collect();
    Ok(Json(EventPage {
        data,
        next_cursor: page.next_cursor,
    }))
}

/// One event with the state of its delivery to each webhook.
#[utoipa::path(
    get,
    path = "/v2/events/{id}",
    tag = "events",
    params(("id" = String, Path, description = "Event id")),
    responses(
        (status = 200, description = "The event and its deliveries", body = EventDetail),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such event of this client", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn show(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
) -> Result<Json<EventDetail>, ApiError> {
    check_id(&id, "event")?;
    let detail = state
        .store
        .get_event(&client.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let deliveries: Vec<DeliveryView> = detail.deliveries.iter().map(DeliveryView::of).collect();
    Ok(Json(EventDetail {
        event: EventView::of(&detail.event),
        deliveries,
    }))
}

/// Every attempt to deliver an event, with what was sent and what came back.
#[utoipa::path(
    get,
    path = "/v2/events/{id}/attempts",
    tag = "events",
    params(("id" = String, Path, description = "Event id")),
    responses(
        (status = 200, description = "The event's attempts, oldest first", body = AttemptPage),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such event of this client", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn attempts(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
) -> Result<Json<AttemptPage>, ApiError> {
    check_id(&id, "event")?;
    let (event, attempts) = state
        .store
        .list_attempts(&client.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let data: Vec<AttemptView> = attempts.iter().map(|a| attempt_view(&event, a)).collect();
    Ok(Json(AttemptPage {
        data,
        next_cursor: None,
    }))
}

fn attempt_view(event: &EventRecord, a: &AttemptLog) -> AttemptView {
    // The body is rebuilt from the event: the envelope is a pure function of it.
    let request_body = Envelope {
        event_id: &event.id,
        created: event.created,
        event_type: &event.event_type,
        data: &event.data,
    }
    .body(a.format);
    AttemptView {
        id: a.id.clone(),
        event_id: event.id.clone(),
        webhook_id: a.webhook_id.clone(),
        attempt_number: a.attempt_number,
        started_at: rfc3339(a.started_at_ms),
        duration_ms: a.duration_ms,
        request_headers: header_object(&a.request_headers),
        request_body,
        response_status: a.response_status,
        response_headers: header_object(&a.response_headers),
        response_body: a.response_body.clone(),
        error: a.error.clone(),
    }
}

/// Headers as a JSON object; repeated names are joined with `, ` as HTTP allows.
fn header_object(headers: &[(String, String)]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        out.entry(name.clone())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    out
}
