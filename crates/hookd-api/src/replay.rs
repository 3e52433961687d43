//! Replay: `POST /v2/events/{id}/replay` sends one event again; `POST
//! /v2/webhooks/{id}/replay` starts a bulk replay job over a time window, which `GET
//! /v2/replays/{id}` and `GET /v2/webhooks/{id}/replays` follow. A replay is a new
//! delivery of the same event (same id, same body, so receivers can dedup), attempted
//! from 1 again; the engine works bulk jobs through in batches.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookd_core::ids::{IdKind, new_id};
use hookd_store::model::{
    EventReplay, NewReplayJob, ReplayFilter, ReplayJob, ReplayRefusal, ReplayedEvent,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Client;
use crate::body::{check_id, read_json, read_optional_json};
use crate::error::{ApiError, ErrorBody, excerpt};
use crate::pagination::PageParams;
use crate::time::{now_ms, parse_instant, rfc3339};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(replay_event))
        .routes(routes!(replay_webhook))
        .routes(routes!(list_jobs))
        .routes(routes!(show_job))
}

/// `POST /v2/events/{id}/replay`; the body may be absent.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayEvent {
    /// Send it to this webhook only (it must be enabled and subscribe to the event's
    /// type). Default: every webhook the event was delivered to that is still enabled and
    /// still subscribes to its type.
    #[schema(example = "wh_01m822p0xrrpw3y1mdpe98qrbt")]
    webhook_id: Option<String>,
}

/// The event being sent again, and where to.
#[derive(Serialize, ToSchema)]
struct EventReplayed {
    #[schema(example = "evt_01m822p1gcz71t5e4t5cz89g9j")]
    id: String,
    /// Unix seconds, as first published (the body is unchanged).
    created: i64,
    #[serde(rename = "type")]
    event_type: String,
    /// `true` for a test event, which stays one (its attempts carry `webhook-test: true`);
    /// absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(value_type = Option<bool>)]
    test: bool,
    /// The webhooks it is being sent to: one new delivery each.
    webhook_ids: Vec<String>,
}

impl EventReplayed {
    fn of(replayed: ReplayedEvent) -> EventReplayed {
        EventReplayed {
            id: replayed.event.id,
            created: replayed.event.created,
            event_type: replayed.event.event_type,
            test: replayed.event.test,
            webhook_ids: replayed.webhook_ids,
        }
    }
}

/// A point in time: unix seconds, or an RFC 3339 time such as `2024-01-15T10:30:00Z`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
enum TimeInput {
    Seconds(i64),
    Text(String),
}

impl TimeInput {
    fn to_ms(&self, name: &str) -> Result<i64, ApiError> {
        match self {
            TimeInput::Seconds(seconds) => seconds
                .checked_mul(1000)
                .ok_or_else(|| ApiError::invalid(format!("`{name}` is out of range"))),
            TimeInput::Text(text) => parse_instant(name, text),
        }
    }
}

/// `POST /v2/webhooks/{id}/replay`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayWebhook {
    /// Events received at or after this time.
    since: TimeInput,
    /// Events received before this time (default: up to now).
    until: Option<TimeInput>,
    /// Which events: those whose latest delivery to this webhook `failed` (default),
    /// `succeeded` or was `cancelled`, or `all` of those. Events still being delivered
    /// and test events are never replayed in bulk.
    #[schema(example = "failed")]
    status: Option<String>,
}

/// A bulk replay job.
#[derive(Serialize, ToSchema)]
struct ReplayJobView {
    #[schema(example = "rpl_01m82fr44vqht140cqacvgpwx2")]
    id: String,
    webhook_id: String,
    /// Unix seconds: events received at or after.
    since: i64,
    /// Unix seconds: events received before; `null` for "up to when the job was made".
    until: Option<i64>,
    /// The filter: `failed`, `succeeded`, `cancelled` or `all`.
    #[schema(value_type = String, example = "failed")]
    status: &'static str,
    /// `running`, `completed`, or `cancelled` (the webhook was disabled or deleted).
    #[schema(value_type = String, example = "running")]
    state: &'static str,
    /// Events to re-send: counted when the job was made, and set to `done` once it
    /// completes (deliveries may have changed meanwhile).
    total: u64,
    /// Events re-sent so far (each as a new delivery, queued for sending).
    done: u64,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    updated_at: String,
    /// RFC 3339; once the job has completed or was cancelled.
    completed_at: Option<String>,
}

impl ReplayJobView {
    fn of(job: &ReplayJob) -> ReplayJobView {
        ReplayJobView {
            id: job.id.clone(),
            webhook_id: job.webhook_id.clone(),
            since: job.since_ms.div_euclid(1000),
            until: job.until_ms.map(|ms| ms.div_euclid(1000)),
            status: job.filter.as_str(),
            state: job.state.as_str(),
            total: job.total,
            done: job.done,
            created_at: rfc3339(job.created_at_ms),
            updated_at: rfc3339(job.updated_at_ms),
            completed_at: job.completed_at_ms.map(rfc3339),
        }
    }
}

/// A page of a webhook's replay jobs.
#[derive(Serialize, ToSchema)]
struct ReplayJobPage {
    data: Vec<ReplayJobView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "webhook_disabled",
        "the webhook is disabled; enable it (`PATCH {\"enabled\": true}`) to replay to it",
    )
}

impl From<ReplayRefusal> for ApiError {
    fn from(refused: ReplayRefusal) -> ApiError {
        match refused {
            ReplayRefusal::EventNotFound => ApiError::not_found("event"),
            ReplayRefusal::WebhookNotFound => ApiError::not_found("webhook"),
            ReplayRefusal::WebhookDisabled => disabled(),
            ReplayRefusal::NotSubscribed {
                event_type,
                filters,
            } => ApiError::invalid(format!(
                "the webhook does not subscribe to `{event_type}`; its `events` are: {}",
                filters.join(", ")
            )),
            ReplayRefusal::NoWebhook => ApiError::new(
                StatusCode::CONFLICT,
                "no_webhook_to_replay_to",
                "none of the webhooks this event was delivered to is still enabled and subscribed to its type; pass `webhook_id` to send it to another",
            ),
        }
    }
}

/// Sends a stored event again: a new delivery per webhook, with the same event id and
/// body (receivers dedup by `webhook-id`), attempted from 1 again on the retry schedule.
#[utoipa::path(
    post,
    path = "/v2/events/{id}/replay",
    tag = "events",
    params(("id" = String, Path, description = "Event id")),
    request_body(content = ReplayEvent, description = "Optional: an empty body (or `{}`) sends it to every webhook it was delivered to"),
    responses(
        (status = 202, description = "The new deliveries are committed", body = EventReplayed),
        (status = 400, description = "Not JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such event, or no such webhook, of this client", body = ErrorBody),
        (status = 409, description = "The webhook is disabled (code `webhook_disabled`), or none it went to can take it (code `no_webhook_to_replay_to`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "The webhook does not subscribe to the event's type, or a field is mistyped", body = ErrorBody),
        (status = 503, description = "The store is overloaded or unreachable", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn replay_event(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<EventReplayed>), ApiError> {
    check_id(&id, "event")?;
    let input: ReplayEvent = read_optional_json(body, state.config.max_event_bytes).await?;
    if let Some(webhook_id) = &input.webhook_id {
        check_id(webhook_id, "webhook")?;
    }
    let replayed = state
        .store
        .replay_event(EventReplay {
            client_id: client.id,
            event_id: id,
            webhook_id: input.webhook_id,
            now_ms: now_ms(),
        })
        .await??;
    Ok((StatusCode::ACCEPTED, Json(EventReplayed::of(replayed))))
}

/// Starts re-sending every event of a time window that went to this webhook, by default
/// those whose delivery failed. A job: follow it with `GET /v2/replays/{id}` (the
/// `Location`).
#[utoipa::path(
    post,
    path = "/v2/webhooks/{id}/replay",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)")),
    request_body = ReplayWebhook,
    responses(
        (status = 202, description = "The job is stored and running (or, with nothing to re-send, already completed)", body = ReplayJobView,
            headers(("Location" = String, description = "`/v2/replays/{job id}`"))),
        (status = 400, description = "Not JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such webhook of this client", body = ErrorBody),
        (status = 409, description = "The webhook is disabled (code `webhook_disabled`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "`since` missing, a bad time, `until` not after `since`, or an unknown `status`", body = ErrorBody),
        (status = 503, description = "The store is overloaded or unreachable", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn replay_webhook(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    check_id(&id, "webhook")?;
    let input: ReplayWebhook = read_json(body, state.config.max_event_bytes).await?;
    let since_ms = input.since.to_ms("since")?;
    let until_ms = input.until.map(|t| t.to_ms("until")).transpose()?;
    if let Some(until) = until_ms
        && until <= since_ms
    {
        return Err(ApiError::invalid("`until` must be later than `since`"));
    }
    let filter = match input.status.as_deref() {
        None => ReplayFilter::Failed,
        Some(status) => ReplayFilter::parse(status).ok_or_else(|| {
            ApiError::invalid(format!(
                "`status` must be one of {} (got `{}`); pending deliveries are still being sent",
                ReplayFilter::NAMES.join(", "),
                excerpt(status)
            ))
        })?,
    };
    let now = now_ms();
    let job = state
        .store
        .create_replay_job(NewReplayJob {
            id: new_id(
                IdKind::Replay,
                u64::try_from(now).unwrap_or(0),
                rand::random::<u128>(),
            ),
            client_id: client.id,
            webhook_id: id,
            since_ms,
            until_ms,
            filter,
            now_ms: now,
        })
        .await??;
    let location = HeaderValue::from_str(&format!("/v2/replays/{}", job.id))
        .map_err(|_| ApiError::from(hookd_store::StoreError::Corrupt("job id".to_owned())))?;
    let mut response = (StatusCode::ACCEPTED, Json(ReplayJobView::of(&job))).into_response();
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// A bulk replay job: its window, filter, state and progress.
#[utoipa::path(
    get,
    path = "/v2/replays/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "Replay job id (`rpl_…`)")),
    responses(
        (status = 200, description = "The job", body = ReplayJobView),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such job of this client", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn show_job(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
) -> Result<Json<ReplayJobView>, ApiError> {
    check_id(&id, "replay job")?;
    let job = state
        .store
        .get_replay_job(&client.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("replay job"))?;
    Ok(Json(ReplayJobView::of(&job)))
}

/// A webhook's bulk replay jobs, newest first.
#[utoipa::path(
    get,
    path = "/v2/webhooks/{id}/replays",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)"), PageParams),
    responses(
        (status = 200, description = "A page of the webhook's replay jobs", body = ReplayJobPage),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such webhook of this client", body = ErrorBody),
        (status = 422, description = "Bad `limit` or `cursor`", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn list_jobs(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ReplayJobPage>, ApiError> {
    check_id(&id, "webhook")?;
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let page = state
        .store
        .list_replay_jobs(&client.id, &id, params.to_request()?)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Json(ReplayJobPage {
        data: page.data.iter().map(ReplayJobView::of).collect(),
        next_cursor: page.next_cursor,
    }))
}
