//! `/v2/events`: publishing (single and batch), listing, and each event's deliveries and
//! attempts.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hookd_core::envelope::Envelope;
use hookd_core::ids::{IdKind, check_client_key, new_id};
use hookd_core::json::{CanonicalJson, JsonLimits};
use hookd_store::model::{AttemptLog, EventQuery, EventRecord, NewEvent, Published};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Client;
use crate::body::read_json;
use crate::error::ApiError;
use crate::event_types::check_publishable;
use crate::pagination::PageParams;
use crate::time::{now_ms, parse_instant, rfc3339};

/// Most events in one batch.
pub(crate) const MAX_BATCH: usize = 1000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/events", get(list).post(publish))
        .route("/v2/events/batch", post(publish_batch))
        .route("/v2/events/{id}", get(show))
        .route("/v2/events/{id}/attempts", get(attempts))
}

#[derive(Deserialize)]
struct PublishEvent {
    #[serde(rename = "type")]
    event_type: String,
    /// Kept as written, so numbers are read exactly as JavaScript would read them.
    data: Box<RawValue>,
    id: Option<String>,
}

#[derive(Deserialize)]
struct PublishBatch {
    events: Vec<PublishEvent>,
}

#[derive(Serialize)]
struct Accepted {
    id: String,
    created: i64,
    #[serde(rename = "type")]
    event_type: String,
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

async fn publish_batch(
    State(state): State<AppState>,
    client: Client,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let limit = state
        .config
        .max_event_bytes
        .saturating_mul(4)
        .max(16 * 1024 * 1024);
    let input: PublishBatch = read_json(body, limit).await?;
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
    Ok((StatusCode::ACCEPTED, Json(json!({ "data": data }))))
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
        return Err(ApiError::too_large(state.config.max_event_bytes));
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
    })
}

#[derive(Serialize)]
struct EventView {
    id: String,
    created: i64,
    #[serde(rename = "type")]
    event_type: String,
    data: Value,
}

impl EventView {
    fn of(event: &EventRecord) -> EventView {
        EventView {
            id: event.id.clone(),
            created: event.created,
            event_type: event.event_type.clone(),
            data: event.data.to_value(),
        }
    }
}

#[derive(Deserialize)]
struct ListParams {
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    // Not flattened: flattening makes the query parser see every value as a string.
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    client: Client,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let query = EventQuery {
        event_type: params.event_type,
        since_ms: params
            .since
            .as_deref()
            .map(|s| parse_instant("since", s))
            .transpose()?,
        until_ms: params
            .until
            .as_deref()
            .map(|s| parse_instant("until", s))
            .transpose()?,
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
    Ok(Json(
        json!({ "data": data, "next_cursor": page.next_cursor }),
    ))
}

async fn show(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let detail = state
        .store
        .get_event(&client.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let deliveries: Vec<Value> = detail
        .deliveries
        .iter()
        .map(|d| {
            json!({
                "webhook_id": d.webhook_id,
                "state": d.state.as_str(),
                // The same, under the name many webhook products use.
                "status": d.state.as_str(),
                "attempts": d.attempts,
                "next_attempt_at": d.next_attempt_at_ms.map(rfc3339),
                "last_response_status": d.last_response_status,
                "updated_at": rfc3339(d.updated_at_ms),
            })
        })
        .collect();
    let mut view = serde_json::to_value(EventView::of(&detail.event))
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    if let Value::Object(map) = &mut view {
        map.insert("deliveries".to_owned(), Value::Array(deliveries));
    }
    Ok(Json(view))
}

async fn attempts(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (event, attempts) = state
        .store
        .list_attempts(&client.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let data: Vec<Value> = attempts.iter().map(|a| attempt_view(&event, a)).collect();
    Ok(Json(json!({ "data": data, "next_cursor": null })))
}

fn attempt_view(event: &EventRecord, a: &AttemptLog) -> Value {
    // The body is rebuilt from the event: the envelope is a pure function of it.
    let request_body = Envelope {
        event_id: &event.id,
        created: event.created,
        event_type: &event.event_type,
        data: &event.data,
    }
    .body(a.format);
    json!({
        "id": a.id,
        "event_id": event.id,
        "webhook_id": a.webhook_id,
        "attempt_number": a.attempt_number,
        "started_at": rfc3339(a.started_at_ms),
        "duration_ms": a.duration_ms,
        "request_headers": header_object(&a.request_headers),
        "request_body": request_body,
        "response_status": a.response_status,
        "response_headers": header_object(&a.response_headers),
        "response_body": a.response_body,
        "error": a.error,
    })
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
