//! The dispatcher: claims due deliveries in batches and runs one task per attempt,
//! within the global and per-webhook limits; a recorder stores finished attempts in
//! batches and only then frees their slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookd_store::Store;
use hookd_store::model::{ClaimRequest, ClaimedDelivery, FinishedAttempt};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, sleep, sleep_until};

use crate::EngineConfig;
use crate::attempt::{AttemptContext, millis, now_ms, perform};

/// Extra lease time beyond the attempt timeout, for recording the outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// Pause after a store error before claiming again.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);
/// Most finished attempts stored in one write.
const RECORD_BATCH: usize = 1024;

/// Attempts in flight per webhook key, shared by the dispatcher and the recorder.
#[derive(Default)]
struct InFlight(Mutex<HashMap<i64, usize>>);

impl InFlight {
    fn add(&self, webhook_key: i64) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(webhook_key).or_default() += 1;
        }
    }

    /// Counts one more attempt for the webhook unless it is at `max` already.
    fn try_add(&self, webhook_key: i64, max: usize) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return false;
        };
        let n = map.entry(webhook_key).or_default();
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn remove(&self, webhook_key: i64) {
        if let Ok(mut map) = self.0.lock()
            && let Some(n) = map.get_mut(&webhook_key)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&webhook_key);
            }
        }
    }

    fn snapshot(&self) -> Vec<(i64, usize)> {
        self.0
            .lock()
            .map(|map| map.iter().map(|(k, n)| (*k, *n)).collect())
            .unwrap_or_default()
    }
}

/// An attempt that has been made and waits to be stored.
struct Finished {
    attempt: FinishedAttempt,
    webhook_key: i64,
    /// Its slot in the global pool, held until the outcome is stored.
    permit: OwnedSemaphorePermit,
}

pub(crate) async fn run(
    store: Arc<dyn Store>,
    config: EngineConfig,
    http: reqwest::Client,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let ctx = Arc::new(AttemptContext {
        http,
        schedule: config.schedule.clone(),
        policy: config.target_policy,
        user_agent: config.user_agent.clone(),
    });
    let slots = Arc::new(Semaphore::new(config.max_in_flight));
    let in_flight = Arc::new(InFlight::default());
    let freed = Arc::new(Notify::new());
    let due = store.due_signal();
    let lease_ms = millis(config.attempt_timeout + LEASE_MARGIN);
    // Bounded by the pool: at most `max_in_flight` attempts can be waiting to be stored.
    let (finished_tx, finished_rx) = mpsc::channel(config.max_in_flight.max(1));
    // New deliveries come straight from publishing, already leased to this process.
    let mut fresh = store.hand_off_new_deliveries(lease_ms, config.max_in_flight);
    let recorder = tokio::spawn(record(
        Arc::clone(&store),
        finished_rx,
        Arc::clone(&in_flight),
        Arc::clone(&freed),
    ));
    let pool = Pool {
        store: Arc::clone(&store),
        ctx: Arc::clone(&ctx),
        slots: Arc::clone(&slots),
        in_flight: Arc::clone(&in_flight),
        finished: finished_tx.clone(),
        max_per_webhook: config.max_in_flight_per_webhook,
    };
    tokio::pin!(shutdown);

    loop {
        // Handed-off deliveries first: their leases are already running.
        if let Ok(delivery) = fresh.try_recv() {
            take_handed_off(&mut fresh, delivery, &pool).await;
        }
        let room = slots.available_permits().min(config.claim_batch);
        if room == 0 {
            tokio::select! {
                Some(delivery) = fresh.recv() => take_handed_off(&mut fresh, delivery, &pool).await,
                () = freed.notified() => {}
                () = &mut shutdown => break,
            }
            continue;
        }
        let claim = ClaimRequest {
            now_ms: now_ms(),
            lease_ms,
            limit: room,
            max_per_webhook: config.max_in_flight_per_webhook,
            in_flight: in_flight.snapshot(),
        };
        let claimed = match store.claim_due_deliveries(claim).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("claiming deliveries failed: {e}");
                tokio::select! {
                    () = sleep(ERROR_BACKOFF) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let full_batch = claimed.len() == room;
        for delivery in claimed {
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                // Cannot happen: only this loop takes permits, and it counted them. The
                // delivery stays leased and is retried when the lease ends.
                tracing::error!("no attempt slot for a claimed delivery");
                continue;
            };
            in_flight.add(delivery.webhook_key);
            start_attempt(&ctx, &finished_tx, delivery, permit);
        }
        if full_batch {
            continue;
        }
        // Nothing more is due now: sleep until new work, a freed slot (a webhook that was
        // at its limit may have more), the next retry, or the poll interval.
        let wake_at = next_wake(&*store, config.poll_interval).await;
        tokio::select! {
            Some(delivery) = fresh.recv() => take_handed_off(&mut fresh, delivery, &pool).await,
            () = due.notified() => {}
            () = freed.notified() => {}
            () = sleep_until(wake_at) => {}
            () = &mut shutdown => break,
        }
    }

    // Let attempts in flight finish and be recorded, within their timeout.
    drop(finished_tx);
    drop(pool);
    let all = u32::try_from(config.max_in_flight).unwrap_or(u32::MAX);
    let grace = config.attempt_timeout + Duration::from_secs(1);
    let _ = tokio::time::timeout(grace, slots.acquire_many(all)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), recorder).await;
}

/// What starting an attempt needs.
struct Pool {
    store: Arc<dyn Store>,
    ctx: Arc<AttemptContext>,
    slots: Arc<Semaphore>,
    in_flight: Arc<InFlight>,
    finished: mpsc::Sender<Finished>,
    max_per_webhook: usize,
}

/// Starts handed-off deliveries (`first` and whatever else is waiting) within the limits;
/// those over a limit go back to the store, where claims share fairly.
async fn take_handed_off(
    fresh: &mut mpsc::Receiver<ClaimedDelivery>,
    first: ClaimedDelivery,
    pool: &Pool,
) {
    let mut give_back = Vec::new();
    let mut next = Some(first);
    while let Some(delivery) = next {
        let permit = Arc::clone(&pool.slots).try_acquire_owned().ok();
        match permit {
            Some(permit)
                if pool
                    .in_flight
                    .try_add(delivery.webhook_key, pool.max_per_webhook) =>
            {
                start_attempt(&pool.ctx, &pool.finished, delivery, permit);
            }
            _ => give_back.push((delivery.delivery_key, delivery.lease_token)),
        }
        next = fresh.try_recv().ok();
    }
    if !give_back.is_empty()
        && let Err(e) = pool.store.release_deliveries(give_back, now_ms()).await
    {
        tracing::error!("giving back deliveries failed (their leases will run out): {e}");
    }
}

fn start_attempt(
    ctx: &Arc<AttemptContext>,
    finished: &mpsc::Sender<Finished>,
    delivery: ClaimedDelivery,
    permit: OwnedSemaphorePermit,
) {
    let (ctx, finished) = (Arc::clone(ctx), finished.clone());
    tokio::spawn(async move {
        let attempt = perform(&ctx, &delivery).await;
        tracing::debug!(
            event = %delivery.event.id,
            webhook = %delivery.webhook_id,
            attempt = attempt.attempt_number,
            status = ?attempt.response_status,
            "attempt finished"
        );
        let finished_attempt = Finished {
            attempt,
            webhook_key: delivery.webhook_key,
            permit,
        };
        // Fails only once the recorder is gone at shutdown; the lease then runs out and
        // the delivery is attempted again.
        let _ = finished.send(finished_attempt).await;
    });
}

async fn next_wake(store: &dyn Store, poll_interval: Duration) -> Instant {
    let now = Instant::now();
    let latest = now + poll_interval;
    match store.next_due_at().await {
        Ok(Some(due_ms)) => {
            let wait = u64::try_from(due_ms - now_ms()).unwrap_or(0);
            // Something due now but not claimed means its webhook is at its limit: wait
            // for a slot to free (or the poll) instead of spinning.
            if wait == 0 {
                latest
            } else {
                (now + Duration::from_millis(wait)).min(latest)
            }
        }
        _ => latest,
    }
}

/// Stores finished attempts, as many at a time as have piled up, then frees their slots.
async fn record(
    store: Arc<dyn Store>,
    mut finished: mpsc::Receiver<Finished>,
    in_flight: Arc<InFlight>,
    freed: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while finished.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let (attempts, slots): (Vec<FinishedAttempt>, Vec<(i64, OwnedSemaphorePermit)>) = batch
            .drain(..)
            .map(|f| (f.attempt, (f.webhook_key, f.permit)))
            .unzip();
        if let Err(e) = store.record_attempts(attempts).await {
            // The leases run out and the deliveries are attempted again: at least once.
            tracing::error!("recording attempts failed: {e}");
        }
        for (webhook_key, permit) in slots {
            in_flight.remove(webhook_key);
            drop(permit);
        }
        freed.notify_one();
    }
}
