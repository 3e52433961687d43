//! `GET /v2/webhooks/{id}/deliveries`: a webhook's delivery log, newest first, filtered by
//! state and by when the events were received.

use axum::Json;
use axum::extract::{Path, Query, State};
use hookd_store::model::{DeliveryQuery, DeliveryState, WebhookDelivery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Client;
use crate::body::check_id;
use crate::error::{ApiError, ErrorBody, excerpt};
use crate::events::DeliveryView;
use crate::pagination::PageParams;
use crate::time::parse_window;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// One delivery of a webhook: its state as `GET /v2/events/{id}` shows it, and the event
/// it carries (without its data: see `GET /v2/events/{id}`).
#[derive(Serialize, ToSchema)]
struct WebhookDeliveryView {
    #[serde(flatten)]
    delivery: DeliveryView,
    #[schema(example = "evt_01m822p1gcz71t5e4t5cz89g9j")]
    event_id: String,
    #[schema(example = "payout_request.completed")]
    event_type: String,
    /// The event's `created`: unix seconds, when hookd received it.
    event_created: i64,
}

/// A page of a webhook's deliveries.
#[derive(Serialize, ToSchema)]
struct WebhookDeliveryPage {
    data: Vec<WebhookDeliveryView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

impl WebhookDeliveryView {
    fn of(d: &WebhookDelivery) -> WebhookDeliveryView {
        WebhookDeliveryView {
            delivery: DeliveryView::of(&d.delivery),
            event_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
            event_created: d.event_created(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only deliveries in this state: `pending`, `succeeded`, `failed` or `cancelled`.
    status: Option<String>,
    /// Events received at or after: unix seconds or RFC 3339.
    since: Option<String>,
    /// Events received before: unix seconds or RFC 3339.
    until: Option<String>,
    // Not flattened: flattening makes the query parser see every value as a string.
    /// Page size, 1 to 250 (default 50).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn parse_status(status: &str) -> Result<DeliveryState, ApiError> {
    [
        DeliveryState::Pending,
        DeliveryState::Succeeded,
        DeliveryState::Failed,
        DeliveryState::Cancelled,
    ]
    .into_iter()
    .find(|s| s.as_str() == status)
    .ok_or_else(|| {
        ApiError::invalid(format!(
            "`status` must be one of pending, succeeded, failed, cancelled (got `{}`)",
            excerpt(status)
        ))
    })
}

/// Lists a webhook's deliveries, newest first, with each one's state and event.
#[utoipa::path(
    get,
    path = "/v2/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)"), ListParams),
    responses(
        (status = 200, description = "A page of the webhook's deliveries", body = WebhookDeliveryPage),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such webhook of this client", body = ErrorBody),
        (status = 422, description = "Bad `status`, `since`, `until`, `limit` or `cursor`", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn list(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WebhookDeliveryPage>, ApiError> {
    check_id(&id, "webhook")?;
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (since_ms, until_ms) = parse_window(params.since.as_deref(), params.until.as_deref())?;
    let query = DeliveryQuery {
        state: params.status.as_deref().map(parse_status).transpose()?,
        since_ms,
        until_ms,
    };
    let page_params = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let page = state
        .store
        .list_webhook_deliveries(&client.id, &id, query, page_params.to_request()?)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Json(WebhookDeliveryPage {
        data: page.data.iter().map(WebhookDeliveryView::of).collect(),
        next_cursor: page.next_cursor,
    }))
}
