//! The engine's metrics. Handles are looked up once, when the engine starts, so recording
//! an attempt costs a few atomic operations (no registry lookup, no lock). Without an
//! installed recorder (as in `hookd bench`) they do nothing.

use hookd_store::model::{FinishedAttempt, NextStep};
use metrics::{Counter, Histogram};

/// Finished attempts, by `outcome`: `succeeded` (2xx), `retry` (another attempt is
/// scheduled) or `failed` (no more attempts).
pub const ATTEMPTS: &str = "hookd_attempts_total";
/// One attempt, from sending the request to judging the response (or the error).
pub const ATTEMPT_DURATION: &str = "hookd_attempt_duration_seconds";
/// From the event's receipt (`POST /v2/events` stored it) to the end of a successful
/// first attempt: the pipeline's latency as a receiver sees it.
pub const DELIVERY_LATENCY: &str = "hookd_delivery_latency_seconds";

/// Bucket bounds (seconds) for [`ATTEMPT_DURATION`] (the default timeout is 30 s).
pub const ATTEMPT_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Bucket bounds (seconds) for [`DELIVERY_LATENCY`].
pub const DELIVERY_LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Registers the help texts of the metrics the engine records.
pub fn describe_metrics() {
    metrics::describe_counter!(
        ATTEMPTS,
        "Finished delivery attempts by outcome: succeeded, retry (another attempt is scheduled), failed (no more attempts)."
    );
    metrics::describe_histogram!(
        ATTEMPT_DURATION,
        metrics::Unit::Seconds,
        "Duration of one delivery attempt: request sent to response judged."
    );
    metrics::describe_histogram!(
        DELIVERY_LATENCY,
        metrics::Unit::Seconds,
        "From an event's receipt to the end of its successful first attempt, per delivery."
    );
}

pub(crate) struct EngineMetrics {
    succeeded: Counter,
    retry: Counter,
    failed: Counter,
    attempt_duration: Histogram,
    delivery_latency: Histogram,
}

impl EngineMetrics {
    pub(crate) fn new() -> EngineMetrics {
        EngineMetrics {
            succeeded: metrics::counter!(ATTEMPTS, "outcome" => "succeeded"),
            retry: metrics::counter!(ATTEMPTS, "outcome" => "retry"),
            failed: metrics::counter!(ATTEMPTS, "outcome" => "failed"),
            attempt_duration: metrics::histogram!(ATTEMPT_DURATION),
            delivery_latency: metrics::histogram!(DELIVERY_LATENCY),
        }
    }

    /// Records a finished attempt of an event received at `received_at_ms`.
    pub(crate) fn attempt_finished(&self, attempt: &FinishedAttempt, received_at_ms: i64) {
        self.attempt_duration.record(seconds(attempt.duration_ms));
        match attempt.next {
            NextStep::Succeeded => {
                self.succeeded.increment(1);
                if attempt.attempt_number == 1 {
                    let finished_ms = attempt.started_at_ms.saturating_add(attempt.duration_ms);
                    self.delivery_latency
                        .record(seconds(finished_ms.saturating_sub(received_at_ms).max(0)));
                }
            }
            NextStep::RetryAt { .. } => self.retry.increment(1),
            NextStep::Failed { .. } => self.failed.increment(1),
        }
    }
}

#[allow(clippy::cast_precision_loss)]
fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}
