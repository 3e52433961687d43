//! `POST /v2/webhooks/{id}/test`: a sandbox test event, with sample data for its type,
//! delivered to that one webhook only and marked as a test (the `webhook-test: true`
//! header on every attempt; the body is the usual envelope, byte for byte).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookd_core::event_type::{EventFilter, any_matches};
use hookd_core::ids::{IdKind, new_id};
use hookd_core::sample::{default_test_type, sample_data};
use hookd_store::model::{NewEvent, Published};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Client;
use crate::body::{check_id, read_optional_json};
use crate::error::{ApiError, ErrorBody};
use crate::event_types::{catalogue, check_publishable};
use crate::time::now_ms;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(send_test))
}

/// `POST /v2/webhooks/{id}/test`; the body may be absent.
#[derive(Default, Deserialize, ToSchema)]
struct SendTest {
    /// The event type to send; one the webhook's `events` match. Default: the first type
    /// the webhook subscribes to (for `*` or a prefix, the first matching catalogue type).
    #[serde(rename = "type")]
    #[schema(example = "payout_request.completed")]
    event_type: Option<String>,
}

/// The test event, stored and with its delivery committed.
#[derive(Serialize, ToSchema)]
struct TestEventAccepted {
    #[schema(example = "evt_01m822p1gcz71t5e4t5cz89g9j")]
    id: String,
    /// Unix seconds.
    created: i64,
    #[serde(rename = "type")]
    event_type: String,
    /// Always `true`: a test event.
    test: bool,
    /// The webhook it goes to (and no other).
    webhook_id: String,
}

/// Sends a test event with realistic sample data to this webhook alone. Its delivery is
/// made, retried and logged like any other; every attempt carries `webhook-test: true`.
#[utoipa::path(
    post,
    path = "/v2/webhooks/{id}/test",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)")),
    request_body(content = SendTest, description = "Optional: an empty body (or `{}`) sends the default type"),
    responses(
        (status = 202, description = "The test event is stored and its delivery committed", body = TestEventAccepted),
        (status = 400, description = "Not JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such webhook of this client", body = ErrorBody),
        (status = 409, description = "The webhook is disabled (code `webhook_disabled`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "`type` unknown or not matched by the webhook's `events`", body = ErrorBody),
        (status = 503, description = "The store is overloaded or unreachable", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn send_test(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<TestEventAccepted>), ApiError> {
    check_id(&id, "webhook")?;
    let input: SendTest = read_optional_json(body, state.config.max_event_bytes).await?;
    let webhook = state
        .store
        .get_webhook(&client.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    if !webhook.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "webhook_disabled",
            "the webhook is disabled; enable it (`PATCH {\"enabled\": true}`) to send a test event",
        ));
    }
    let filters: Vec<EventFilter> = webhook
        .events
        .iter()
        .map(|f| EventFilter::from_stored(f))
        .collect();
    let event_type = match input.event_type {
        Some(event_type) => {
            check_publishable(&state, &client.id, &event_type).await?;
            if !any_matches(&filters, &event_type) {
                return Err(ApiError::invalid(format!(
                    "the webhook does not subscribe to `{event_type}`; its `events` are: {}",
                    webhook.events.join(", ")
                )));
            }
            event_type
        }
        None => {
            let all = catalogue(&state, &client.id).await?;
            default_test_type(&filters, all.iter().map(String::as_str)).ok_or_else(|| {
                ApiError::invalid(
                    "none of the webhook's `events` names a type of the catalogue; pass `type`",
                )
            })?
        }
    };
    let now = now_ms();
    let event = NewEvent {
        id: new_id(
            IdKind::Event,
            u64::try_from(now).unwrap_or(0),
            rand::random::<u128>(),
        ),
        id_from_client: false,
        idempotency_key: None,
        data: sample_data(&event_type, now.div_euclid(1000)),
        event_type,
        now_ms: now,
        first_attempt_at_ms: now.saturating_add(
            i64::try_from(state.config.first_attempt_delay.as_millis()).unwrap_or(i64::MAX),
        ),
        test: true,
        only_webhook_id: Some(webhook.id.clone()),
    };
    let mut published = state.store.publish_events(&client.id, vec![event]).await?;
    let event = match published.pop() {
        Some(Published::New { event, .. }) => event,
        _ => {
            return Err(ApiError::from(hookd_store::StoreError::Database(
                "publishing a test event returned no new event".into(),
            )));
        }
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(TestEventAccepted {
            id: event.id,
            created: event.created,
            event_type: event.event_type,
            test: event.test,
            webhook_id: webhook.id,
        }),
    ))
}
