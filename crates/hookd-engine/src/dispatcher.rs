//! The dispatcher: claims due deliveries in batches and runs one task per attempt,
//! within the global and per-webhook limits; a recorder stores finished attempts in
//! batches and only then frees their slots.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookd_store::model::{ClaimRequest, ClaimedDelivery, FinishedAttempt, HealthPolicy, NextStep};
use hookd_store::{Store, StoreError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, sleep, sleep_until};

use crate::EngineConfig;
use crate::attempt::{AttemptContext, millis, now_ms, perform};
use crate::observe::EngineMetrics;

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
    http: crate::client::HttpClient,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let ctx = Arc::new(AttemptContext {
        http,
        schedule: config.schedule.clone(),
        policy: config.target_policy,
        user_agent: config.user_agent.clone(),
        listen: Arc::clone(&config.listen),
        attempt_timeout: config.attempt_timeout,
    });
    let slots = Arc::new(Semaphore::new(config.max_in_flight));
    let in_flight = Arc::new(InFlight::default());
    let freed = Arc::new(Notify::new());
    // The earliest retry the recorder has stored since the dispatcher last looked.
    let retry_hint = Arc::new(AtomicI64::new(i64::MAX));
    let due = store.due_signal();
    let lease_ms = millis(config.attempt_timeout + LEASE_MARGIN);
    // Bounded by the pool: at most `max_in_flight` attempts can be waiting to be stored.
    let (finished_tx, finished_rx) = mpsc::channel(config.max_in_flight.max(1));
    // New deliveries come straight from publishing, already leased to this process.
    let mut fresh = store.hand_off_new_deliveries(lease_ms, config.max_in_flight);
    let health = HealthPolicy {
        disable_after: config.disable_after,
    };
    let recorder = tokio::spawn(record(
        Arc::clone(&store),
        health,
        finished_rx,
        Arc::clone(&in_flight),
        Arc::clone(&freed),
        Arc::clone(&retry_hint),
    ));
    let mut dispatcher = Dispatcher {
        store: Arc::clone(&store),
        ctx,
        metrics: Arc::new(EngineMetrics::new()),
        slots: Arc::clone(&slots),
        in_flight,
        finished: finished_tx,
        waiting: HashMap::new(),
        waiting_total: 0,
        config: config.clone(),
        lease_ms,
    };
    tokio::pin!(shutdown);

    // The store is asked for due work only when some may be there: at start, when it says
    // so (`due`: new deliveries nobody holds, retries due now, releases, other nodes), when
    // the next due time or poll interval comes, when a stored retry falls due, and when a
    // slot frees while the last claim left due work behind (pool or webhook at its
    // limit). Deliveries handed off by publishing and finished attempts need no claim: a
    // claim per attempt was most of the PostgreSQL server's work at moderate rates.
    let mut claim_needed = true;
    let mut left_work_behind = false;
    let mut wake_at = Instant::now() + config.poll_interval;
    loop {
        // Work already leased to us first: its leases are running.
        while let Ok(delivery) = fresh.try_recv() {
            dispatcher.take_handed_off(delivery);
        }
        dispatcher.start_waiting();
        dispatcher.give_back_overflow().await;
        let retry_at_ms = retry_hint.swap(i64::MAX, Ordering::Relaxed);
        if retry_at_ms != i64::MAX {
            wake_at = wake_at.min(instant_at(retry_at_ms));
        }
        if Instant::now() >= wake_at {
            claim_needed = true;
        }
        let room = slots.available_permits().min(config.claim_batch);
        if room == 0 {
            tokio::select! {
                Some(delivery) = fresh.recv() => dispatcher.take_handed_off(delivery),
                () = freed.notified() => claim_needed |= left_work_behind,
                () = &mut shutdown => break,
            }
            continue;
        }
        if claim_needed {
            claim_needed = false;
            let claimed_at_ms = now_ms();
            let (claimed, at_limit) = match dispatcher.claim_and_start(room, claimed_at_ms).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!("claiming deliveries failed: {e}");
                    claim_needed = true;
                    tokio::select! {
                        () = sleep(ERROR_BACKOFF) => continue,
                        () = &mut shutdown => break,
                    }
                }
            };
            if claimed == room {
                claim_needed = true;
                continue;
            }
            left_work_behind = at_limit;
            wake_at = next_wake(&*store, config.poll_interval, claimed_at_ms).await;
        }
        // Nothing more is due now: sleep until new work, a freed slot (a webhook that was
        // at its limit may have more), the next retry, or the poll interval.
        tokio::select! {
            Some(delivery) = fresh.recv() => dispatcher.take_handed_off(delivery),
            () = due.notified() => claim_needed = true,
            () = freed.notified() => claim_needed |= left_work_behind,
            () = sleep_until(wake_at) => claim_needed = true,
            () = &mut shutdown => break,
        }
    }

    // Deliveries waiting for a slot, and those handed over but not yet taken, go back to
    // the store (due now, for whoever runs next); attempts in flight may finish and be
    // recorded, within their timeout. A closed hand-off takes no more: publishes still
    // finishing leave their deliveries due in the store.
    fresh.close();
    let mut untaken = Vec::new();
    while let Ok(delivery) = fresh.try_recv() {
        untaken.push(delivery);
    }
    dispatcher.give_back(untaken).await;
    dispatcher.give_back_all_waiting().await;
    drop(dispatcher);
    let all = u32::try_from(config.max_in_flight).unwrap_or(u32::MAX);
    let grace = config.attempt_timeout + Duration::from_secs(1);
    let _ = tokio::time::timeout(grace, slots.acquire_many(all)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), recorder).await;
}

/// The dispatcher's state: the pool, and handed-off deliveries waiting for their webhook
/// to have room.
struct Dispatcher {
    store: Arc<dyn Store>,
    ctx: Arc<AttemptContext>,
    metrics: Arc<EngineMetrics>,
    slots: Arc<Semaphore>,
    in_flight: Arc<InFlight>,
    finished: mpsc::Sender<Finished>,
    /// Per webhook, at most `max_in_flight_per_webhook` deliveries: one more round, so
    /// none waits much longer than an attempt takes, well within its lease.
    waiting: HashMap<i64, VecDeque<ClaimedDelivery>>,
    waiting_total: usize,
    config: EngineConfig,
    lease_ms: i64,
}

impl Dispatcher {
    /// Starts a handed-off delivery now if the pool and its webhook allow, else queues it
    /// behind its webhook's attempts (overflow is given back by `give_back_overflow`).
    fn take_handed_off(&mut self, delivery: ClaimedDelivery) {
        let key = delivery.webhook_key;
        let queue_empty = self.waiting.get(&key).is_none_or(VecDeque::is_empty);
        if queue_empty && let Some(permit) = self.slot_for(key) {
            start_attempt(&self.ctx, &self.metrics, &self.finished, delivery, permit);
            return;
        }
        self.waiting.entry(key).or_default().push_back(delivery);
        self.waiting_total += 1;
    }

    /// A global slot plus room on the webhook, if both are free.
    fn slot_for(&self, webhook_key: i64) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().ok()?;
        self.in_flight
            .try_add(webhook_key, self.config.max_in_flight_per_webhook)
            .then_some(permit)
    }

    /// Starts waiting deliveries whose webhooks have room again.
    fn start_waiting(&mut self) {
        if self.waiting_total == 0 {
            return;
        }
        let keys: Vec<i64> = self.waiting.keys().copied().collect();
        for key in keys {
            loop {
                let has_waiting = self.waiting.get(&key).is_some_and(|q| !q.is_empty());
                if !has_waiting {
                    break;
                }
                let Some(permit) = self.slot_for(key) else {
                    break;
                };
                let Some(delivery) = self.waiting.get_mut(&key).and_then(VecDeque::pop_front)
                else {
                    break;
                };
                self.waiting_total -= 1;
                start_attempt(&self.ctx, &self.metrics, &self.finished, delivery, permit);
            }
            if self.waiting.get(&key).is_some_and(VecDeque::is_empty) {
                self.waiting.remove(&key);
            }
        }
    }

    /// Gives back what waits beyond one round per webhook or beyond the pool's size:
    /// claims share that work fairly once there is room.
    async fn give_back_overflow(&mut self) {
        if self.waiting_total == 0 {
            return;
        }
        let per_webhook = self.config.max_in_flight_per_webhook;
        let mut excess = Vec::new();
        for queue in self.waiting.values_mut() {
            while queue.len() > per_webhook {
                excess.extend(queue.pop_back());
            }
        }
        while self.waiting_total.saturating_sub(excess.len()) > self.config.max_in_flight {
            let Some(queue) = self.waiting.values_mut().max_by_key(|q| q.len()) else {
                break;
            };
            let Some(delivery) = queue.pop_back() else {
                break;
            };
            excess.push(delivery);
        }
        self.waiting.retain(|_, q| !q.is_empty());
        self.waiting_total -= excess.len();
        self.give_back(excess).await;
    }

    async fn give_back_all_waiting(&mut self) {
        let all: Vec<ClaimedDelivery> = self.waiting.drain().flat_map(|(_, q)| q).collect();
        self.waiting_total = 0;
        self.give_back(all).await;
    }

    async fn give_back(&self, deliveries: Vec<ClaimedDelivery>) {
        if deliveries.is_empty() {
            return;
        }
        let leases = deliveries
            .iter()
            .map(|d| (d.delivery_key, d.lease_token))
            .collect();
        if let Err(e) = self.store.release_deliveries(leases, now_ms()).await {
            tracing::error!("giving back deliveries failed (their leases will run out): {e}");
        }
    }

    /// Claims up to `room` due deliveries and starts them; returns how many it claimed,
    /// and whether a webhook was at its limit (so due work of its may have been left).
    async fn claim_and_start(
        &mut self,
        room: usize,
        now_ms: i64,
    ) -> Result<(usize, bool), StoreError> {
        // What waits counts against its webhook's room as much as what is in flight.
        let mut busy: HashMap<i64, usize> = self.in_flight.snapshot().into_iter().collect();
        for (key, queue) in &self.waiting {
            *busy.entry(*key).or_default() += queue.len();
        }
        let per_webhook = self.config.max_in_flight_per_webhook;
        let claim = ClaimRequest {
            now_ms,
            lease_ms: self.lease_ms,
            limit: room,
            max_per_webhook: per_webhook,
            in_flight: busy.iter().map(|(key, n)| (*key, *n)).collect(),
        };
        let claimed = self.store.claim_due_deliveries(claim).await?;
        let count = claimed.len();
        for delivery in claimed {
            let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
                // Cannot happen: only the dispatcher takes permits, and it counted them.
                // The delivery stays leased and is retried when the lease ends.
                tracing::error!("no attempt slot for a claimed delivery");
                continue;
            };
            self.in_flight.add(delivery.webhook_key);
            *busy.entry(delivery.webhook_key).or_default() += 1;
            start_attempt(&self.ctx, &self.metrics, &self.finished, delivery, permit);
        }
        // The store gave each webhook at most its room as of the claim's start: one that
        // got all of it (or had none) may have more due. Attempts finishing meanwhile do
        // not change that answer.
        let at_limit = busy.values().any(|&n| n >= per_webhook);
        Ok((count, at_limit))
    }
}

fn start_attempt(
    ctx: &Arc<AttemptContext>,
    metrics: &Arc<EngineMetrics>,
    finished: &mpsc::Sender<Finished>,
    delivery: ClaimedDelivery,
    permit: OwnedSemaphorePermit,
) {
    let (ctx, metrics, finished) = (Arc::clone(ctx), Arc::clone(metrics), finished.clone());
    tokio::spawn(async move {
        let attempt = perform(&ctx, &delivery).await;
        metrics.attempt_finished(&attempt, delivery.event.received_at_ms);
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

/// When to look again: at the next due time, or at the poll interval if that is sooner
/// or if the earliest due delivery was already due at the last claim (`claimed_at_ms`) and
/// still not taken (its webhook is at its limit: a freed slot wakes the dispatcher).
async fn next_wake(store: &dyn Store, poll_interval: Duration, claimed_at_ms: i64) -> Instant {
    let latest = Instant::now() + poll_interval;
    match store.next_due_at().await {
        // Possibly already past: then the loop claims again at once.
        Ok(Some(due_ms)) if due_ms > claimed_at_ms => instant_at(due_ms).min(latest),
        _ => latest,
    }
}

/// The monotonic instant of a unix-ms time (now, if it has passed).
fn instant_at(at_ms: i64) -> Instant {
    let wait = u64::try_from(at_ms - now_ms()).unwrap_or(0);
    Instant::now() + Duration::from_millis(wait)
}

/// Stores finished attempts, as many at a time as have piled up, then frees their slots.
async fn record(
    store: Arc<dyn Store>,
    health: HealthPolicy,
    mut finished: mpsc::Receiver<Finished>,
    in_flight: Arc<InFlight>,
    freed: Arc<Notify>,
    retry_hint: Arc<AtomicI64>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while finished.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let (attempts, slots): (Vec<FinishedAttempt>, Vec<(i64, OwnedSemaphorePermit)>) = batch
            .drain(..)
            .map(|f| (f.attempt, (f.webhook_key, f.permit)))
            .unzip();
        let earliest_retry = attempts
            .iter()
            .filter_map(|a| match a.next {
                NextStep::RetryAt { at_ms } => Some(at_ms),
                _ => None,
            })
            .min();
        match store.record_attempts(attempts, health).await {
            // Stored: the dispatcher wakes for the earliest retry (the store's own signal
            // covers those due at once).
            Ok(()) => {
                if let Some(at_ms) = earliest_retry {
                    retry_hint.fetch_min(at_ms, Ordering::Relaxed);
                }
            }
            // The leases run out and the deliveries are attempted again: at least once.
            Err(e) => tracing::error!("recording attempts failed: {e}"),
        }
        for (webhook_key, permit) in slots {
            in_flight.remove(webhook_key);
            drop(permit);
        }
        freed.notify_one();
    }
}
