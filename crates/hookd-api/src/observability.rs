//! `GET /metrics` (no authentication): Prometheus text format.
//!
//! Counters and histograms are recorded with the `metrics` macros where things happen (here:
//! events accepted; in the engine: attempts) and rendered by whatever recorder the binary
//! installed ([`ApiConfig::metrics`](crate::ApiConfig)). The queue gauges are read from
//! the store at each scrape and appended here, so they are never stale: when the store
//! cannot answer they are left out (and a warning is logged).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use hookd_store::model::Published;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::time::now_ms;

/// Events stored by `POST /v2/events` and `/v2/events/batch` (repeats of an idempotency
/// key or id are not counted again).
pub const EVENTS_ACCEPTED: &str = "hookd_events_accepted_total";
/// Deliveries created for those events (one per matching enabled webhook).
pub const DELIVERIES_CREATED: &str = "hookd_deliveries_created_total";
/// Pending deliveries (due, waiting for a retry, or being attempted).
pub const DELIVERIES_PENDING: &str = "hookd_deliveries_pending";
/// Pending deliveries whose due time has come.
pub const DELIVERIES_DUE: &str = "hookd_deliveries_due";
/// How long the most overdue pending delivery has been due.
pub const OLDEST_PENDING_AGE: &str = "hookd_oldest_pending_delivery_age_seconds";

/// Registers the help texts of the metrics this crate records.
pub fn describe_metrics() {
    metrics::describe_counter!(
        EVENTS_ACCEPTED,
        "Events accepted and stored (repeated idempotency keys or ids are not counted again)."
    );
    metrics::describe_counter!(
        DELIVERIES_CREATED,
        "Deliveries created for accepted events (one per matching enabled webhook)."
    );
    metrics::describe_counter!(
        crate::REQUESTS_RATE_LIMITED,
        "Requests refused with 429 by the per-client rate limit."
    );
    // Shown from the start, at 0.
    metrics::counter!(EVENTS_ACCEPTED).increment(0);
    metrics::counter!(DELIVERIES_CREATED).increment(0);
    metrics::counter!(crate::REQUESTS_RATE_LIMITED).increment(0);
}

/// Counts newly stored events and their deliveries (not the repeats).
pub(crate) fn count_published<'a>(published: impl IntoIterator<Item = &'a Published>) {
    let (mut events, mut deliveries) = (0u64, 0u64);
    for p in published {
        if let Published::New { deliveries: n, .. } = p {
            events += 1;
            deliveries += u64::try_from(*n).unwrap_or(0);
        }
    }
    if events > 0 {
        metrics::counter!(EVENTS_ACCEPTED).increment(events);
    }
    if deliveries > 0 {
        metrics::counter!(DELIVERIES_CREATED).increment(deliveries);
    }
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(render))
}

/// Metrics in Prometheus text format: counters and histograms of the recorder, then the
/// queue gauges read from the store.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"))
)]
async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = match &state.config.metrics {
        Some(render) => render.render(),
        None => String::new(),
    };
    let now = now_ms();
    match state.store.queue_stats(now).await {
        Ok(stats) => {
            let age_ms = stats
                .oldest_due_at_ms
                .map_or(0, |due| now.saturating_sub(due).max(0));
            #[allow(clippy::cast_precision_loss)]
            let age = age_ms as f64 / 1000.0;
            gauge(
                &mut text,
                DELIVERIES_PENDING,
                "Pending deliveries: due, waiting for a retry, or being attempted.",
                &stats.pending.to_string(),
            );
            gauge(
                &mut text,
                DELIVERIES_DUE,
                "Pending deliveries whose due time has come (not being attempted yet).",
                &stats.due.to_string(),
            );
            gauge(
                &mut text,
                OLDEST_PENDING_AGE,
                "How long the most overdue pending delivery has been due (0 when none is).",
                &age.to_string(),
            );
        }
        Err(e) => tracing::warn!("metrics: cannot read the queue from the store: {e}"),
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

fn gauge(text: &mut String, name: &str, help: &str, value: &str) {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let _ = write!(
        text,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
    );
}
