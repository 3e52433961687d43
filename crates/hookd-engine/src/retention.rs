//! Retention: deletes events (with their deliveries and attempt logs) older than the
//! configured age, in small batches, so the store is never held for long and delivery
//! never waits behind a purge. Events with a pending delivery are kept by the store.

use std::sync::Arc;
use std::time::Duration;

use hookd_store::Store;
use hookd_store::model::PurgeCount;
use tokio::sync::watch;

use crate::attempt::{millis, now_ms};

/// Events deleted in one store call: one short write.
const BATCH: usize = 1_000;
/// Bounds on the pause between rounds: a quarter of the retention, within these.
const MIN_PERIOD: Duration = Duration::from_secs(1);
const MAX_PERIOD: Duration = Duration::from_secs(60);

/// How long to wait between purge rounds for a given retention.
fn period(retention: Duration) -> Duration {
    (retention / 4).clamp(MIN_PERIOD, MAX_PERIOD)
}

/// Purges every [`period`] until `stop` says so (or its sender is gone).
pub(crate) async fn run(
    store: Arc<dyn Store>,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let retention_ms = millis(retention);
    let mut tick = tokio::time::interval(period(retention));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = tick.tick() => {}
        }
        let round = purge_round(&*store, now_ms().saturating_sub(retention_ms));
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = round => {}
        }
    }
}

/// Purges batch after batch until one comes back short, yielding between batches.
async fn purge_round(store: &dyn Store, cutoff_ms: i64) {
    let mut total = PurgeCount::default();
    loop {
        match store.purge_events_received_before(cutoff_ms, BATCH).await {
            Ok(batch) => {
                total.events += batch.events;
                total.deliveries += batch.deliveries;
                total.attempts += batch.attempts;
                if batch.events < u64::try_from(BATCH).unwrap_or(u64::MAX) {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!("purging old events failed (tried again later): {e}");
                break;
            }
        }
        tokio::task::yield_now().await;
    }
    if total.events > 0 {
        tracing::info!(
            events = total.events,
            deliveries = total.deliveries,
            attempts = total.attempts,
            cutoff_ms,
            "purged events past retention"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_is_a_quarter_of_the_retention_within_bounds() {
        assert_eq!(period(Duration::from_secs(2)), MIN_PERIOD);
        assert_eq!(period(Duration::from_secs(20)), Duration::from_secs(5));
        assert_eq!(period(Duration::from_secs(30 * 24 * 3600)), MAX_PERIOD);
    }
}
