//! Latency histograms (HDR, microsecond resolution) and the clock they are read against.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The shared time base of a run: publishers write "now" as nanoseconds since this
/// instant into each event, and the receiver subtracts it on arrival.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Epoch(Instant);

impl Epoch {
    pub(crate) fn now() -> Epoch {
        Epoch(Instant::now())
    }

    /// Nanoseconds since the epoch.
    pub(crate) fn nanos(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Nanoseconds from the epoch to `at` (0 if `at` is earlier).
    pub(crate) fn nanos_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.0).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A histogram of latencies in microseconds, from 1 µs to an hour, 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    // Constant bounds that satisfy the constructor's rules (low ≥ 1, high ≥ 2·low,
    // 0–5 digits), so it cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid histogram bounds")
}

pub(crate) fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    histogram.saturating_record(micros);
}

/// The figures a latency line shows, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LatencySummary {
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

impl LatencySummary {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Option<LatencySummary> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(LatencySummary {
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        })
    }
}
