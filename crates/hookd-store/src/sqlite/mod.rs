//! The embedded backend: one SQLite file in WAL mode, zero set-up.
//!
//! One writer thread batches all writes into group transactions (see `connection.rs`);
//! reads run on a small pool of read-only connections. One `hookd serve` owns a database
//! file at a time (a lock file beside it says so), which lets a restart release the
//! leases of the previous run at once instead of waiting for them to expire.

mod connection;
mod due_index;
mod health;
mod listen;
mod queries;
mod replay;
mod sealing;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc};

use crate::model::{
    AttemptLog, ClaimRequest, ClaimedDelivery, ClientRecord, EventDetail, EventQuery, EventRecord,
    EventTypeRecord, FinishedAttempt, HealthPolicy, NewClient, NewEvent, NewEventType, NewWebhook,
    NextStep, Page, PageRequest, Published, SecretRotation, WebhookChanges, WebhookRecord,
};
use crate::sealing::SecretKeys;
use crate::{Store, StoreError};
use connection::{AfterCommit, Durability, HandoffSlot, ReadPool, Wake, Writer};
use due_index::DueIndex;
use queries::Handoff;

/// Read connections kept open.
const READERS: usize = 4;

pub struct SqliteStore {
    writer: Writer,
    readers: ReadPool,
    due: Arc<Notify>,
    lease_tokens: Arc<AtomicI64>,
    /// The due index's earliest time, published by the writer (`i64::MAX`: none).
    next_due: Arc<AtomicI64>,
    handoff: HandoffSlot,
    /// Notified when a replay job is stored.
    replays: Arc<Notify>,
    /// What webhook secrets are sealed and opened with.
    keys: SecretKeys,
    /// Held for the store's life when serving; dropping it releases the lock.
    _serve_lock: Option<File>,
}

impl SqliteStore {
    /// Turns a `sqlite://path` URL (or a bare path) into a file path.
    pub fn path_from_url(url: &str) -> PathBuf {
        PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url))
    }

    /// Opens (creating if needed) the database for short-lived use, such as a CLI command
    /// next to a running server. Webhook secrets are kept in clear; a database holding
    /// encrypted ones is refused.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_keys(path, SecretKeys::none())
    }

    /// [`SqliteStore::open`], with webhook secrets sealed and opened with `keys`. Every
    /// stored secret is checked (a missing or wrong key fails here, with
    /// [`StoreError::Sealing`]) and brought to the form `keys` asks for first.
    pub fn open_with_keys(path: &Path, keys: SecretKeys) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_inner(path, None, None, keys)
    }

    /// Opens the database for `hookd serve`: takes the serve lock, so a second server on the
    /// same file is refused, and makes deliveries leased by a previous, killed run due now.
    pub fn open_for_serving(path: &Path, now_ms: i64) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_for_serving_with_keys(path, now_ms, SecretKeys::none())
    }

    /// [`SqliteStore::open_for_serving`], with webhook secrets sealed and opened with
    /// `keys` (see [`SqliteStore::open_with_keys`]).
    pub fn open_for_serving_with_keys(
        path: &Path,
        now_ms: i64,
        keys: SecretKeys,
    ) -> Result<SqliteStore, StoreError> {
        create_parent(path)?;
        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".serve-lock");
        let lock_path = PathBuf::from(lock_name);
        let lock = File::create(&lock_path).map_err(|e| {
            StoreError::Database(format!("cannot create {}: {e}", lock_path.display()))
        })?;
        lock.try_lock().map_err(|_| {
            StoreError::Database(format!(
                "another hookd serve is using {} (lock file {})",
                path.display(),
                lock_path.display()
            ))
        })?;
        let store = SqliteStore::open_inner(path, Some(lock), Some(now_ms), keys)?;
        Ok(store)
    }

    /// Opens the file; with `release_leases_at`, first makes every leased delivery due at
    /// that time (before the writer reads which webhooks have due work).
    fn open_inner(
        path: &Path,
        serve_lock: Option<File>,
        release_leases_at: Option<i64>,
        keys: SecretKeys,
    ) -> Result<SqliteStore, StoreError> {
        create_parent(path)?;
        let conn = connection::open_writer(path)?;
        // Before anything else: with a missing or wrong key, nothing starts.
        sealing::reseal_all(&conn, &keys)?;
        if let Some(now_ms) = release_leases_at {
            let released = queries::release_all_leases(&conn, now_ms)?;
            if released > 0 {
                tracing::info!(
                    released,
                    "made deliveries leased by a previous run due again"
                );
            }
        }
        let lease_tokens = Arc::new(AtomicI64::new(queries::first_lease_token(&conn, now_ms())?));
        let due_index = DueIndex::load(&conn)?;
        // Known before the writer thread runs, so `next_due_at` is right from the start.
        let next_due = Arc::new(AtomicI64::new(due_index.earliest().unwrap_or(i64::MAX)));
        let due = Arc::new(Notify::new());
        let readers = ReadPool::open(path, READERS)?;
        let handoff = HandoffSlot::default();
        Ok(SqliteStore {
            writer: Writer::start(
                conn,
                due_index,
                Arc::clone(&due),
                Arc::clone(&next_due),
                Arc::clone(&handoff),
                keys.clone(),
            ),
            readers,
            due,
            lease_tokens,
            next_due,
            handoff,
            replays: Arc::new(Notify::new()),
            keys,
            _serve_lock: serve_lock,
        })
    }
}

fn now_ms() -> i64 {
    hookd_core::time::unix_ms(std::time::SystemTime::now())
}

fn create_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_client(&self, client: NewClient) -> Result<ClientRecord, StoreError> {
        self.writer
            .write(Durability::Synced, move |tx| {
                Ok((queries::insert_client(tx.conn, &client)?, Wake::Nobody))
            })
            .await
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let id = client_id.to_owned();
        self.readers
            .read(move |c| queries::find_client(c, &id))
            .await
    }

    async fn create_webhook(&self, mut webhook: NewWebhook) -> Result<WebhookRecord, StoreError> {
        webhook.secret = self.keys.seal(&webhook.id, &webhook.secret)?;
        let created = self
            .writer
            .write(Durability::Synced, move |tx| {
                tx.subscribers.clear();
                Ok((queries::insert_webhook(tx.conn, &webhook)?, Wake::Nobody))
            })
            .await?;
        Ok(self.keys.open_webhook(created)?)
    }

    async fn list_webhooks(
        &self,
        client_id: &str,
        page: PageRequest,
    ) -> Result<Page<WebhookRecord>, StoreError> {
        let id = client_id.to_owned();
        let mut listed = self
            .readers
            .read(move |c| queries::list_webhooks(c, &id, &page))
            .await?;
        listed.data = listed
            .data
            .into_iter()
            .map(|w| self.keys.open_webhook(w))
            .collect::<Result<_, _>>()?;
        Ok(listed)
    }

    async fn get_webhook(
        &self,
        client_id: &str,
        webhook_id: &str,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let (client, id) = (client_id.to_owned(), webhook_id.to_owned());
        let found = self
            .readers
            .read(move |c| queries::get_webhook(c, &client, &id))
            .await?;
        Ok(found.map(|w| self.keys.open_webhook(w)).transpose()?)
    }

    async fn update_webhook(
        &self,
        client_id: &str,
        webhook_id: &str,
        changes: WebhookChanges,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let (client, id) = (client_id.to_owned(), webhook_id.to_owned());
        let updated = self
            .writer
            .write(Durability::Synced, move |tx| {
                tx.subscribers.clear();
                Ok((
                    queries::update_webhook(tx.conn, tx.due, &client, &id, &changes)?,
                    Wake::Nobody,
                ))
            })
            .await?;
        Ok(updated.map(|w| self.keys.open_webhook(w)).transpose()?)
    }

    async fn rotate_webhook_secret(
        &self,
        client_id: &str,
        webhook_id: &str,
        mut rotation: SecretRotation,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let (client, id) = (client_id.to_owned(), webhook_id.to_owned());
        rotation.secret = self.keys.seal(webhook_id, &rotation.secret)?;
        let rotated = self
            .writer
            .write(Durability::Synced, move |tx| {
                // Hand-offs read secrets from the cache.
                tx.subscribers.clear();
                Ok((
                    queries::rotate_webhook_secret(tx.conn, &client, &id, &rotation)?,
                    Wake::Nobody,
                ))
            })
            .await?;
        Ok(rotated.map(|w| self.keys.open_webhook(w)).transpose()?)
    }

    async fn delete_webhook(
        &self,
        client_id: &str,
        webhook_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (client, id) = (client_id.to_owned(), webhook_id.to_owned());
        self.writer
            .write(Durability::Synced, move |tx| {
                tx.subscribers.clear();
                Ok((
                    queries::delete_webhook(tx.conn, tx.due, &client, &id, now_ms)?,
                    Wake::Nobody,
                ))
            })
            .await
    }

    async fn list_event_types(&self, client_id: &str) -> Result<Vec<EventTypeRecord>, StoreError> {
        let id = client_id.to_owned();
        self.readers
            .read(move |c| queries::list_event_types(c, &id))
            .await
    }

    async fn create_event_type(
        &self,
        event_type: NewEventType,
    ) -> Result<EventTypeRecord, StoreError> {
        self.writer
            .write(Durability::Synced, move |tx| {
                Ok((
                    queries::insert_event_type(tx.conn, &event_type)?,
                    Wake::Nobody,
                ))
            })
            .await
    }

    async fn publish_events(
        &self,
        client_id: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Published>, StoreError> {
        let id = client_id.to_owned();
        self.writer
            .write_with_hook(Durability::Synced, move |tx| {
                let outcome = queries::publish_events(
                    tx.conn,
                    tx.subscribers,
                    tx.due,
                    tx.handoff,
                    &id,
                    &events,
                )?;
                let wake = if outcome.due_unclaimed {
                    Wake::Dispatcher
                } else {
                    Wake::Nobody
                };
                let handed_off = outcome.handed_off;
                // Committed: the engine may start on what was leased to it.
                let hand_off: AfterCommit = Box::new(move || {
                    for (permit, delivery) in handed_off {
                        permit.send(delivery);
                    }
                });
                Ok((outcome.published, wake, Some(hand_off)))
            })
            .await
    }

    async fn list_events(
        &self,
        client_id: &str,
        query: EventQuery,
        page: PageRequest,
    ) -> Result<Page<EventRecord>, StoreError> {
        let id = client_id.to_owned();
        self.readers
            .read(move |c| queries::list_events(c, &id, &query, &page))
            .await
    }

    async fn get_event(
        &self,
        client_id: &str,
        event_id: &str,
    ) -> Result<Option<EventDetail>, StoreError> {
        let (client, id) = (client_id.to_owned(), event_id.to_owned());
        self.readers
            .read(move |c| queries::get_event(c, &client, &id))
            .await
    }

    async fn list_attempts(
        &self,
        client_id: &str,
        event_id: &str,
    ) -> Result<Option<(EventRecord, Vec<AttemptLog>)>, StoreError> {
        let (client, id) = (client_id.to_owned(), event_id.to_owned());
        self.readers
            .read(move |c| queries::list_attempts(c, &client, &id))
            .await
    }

    async fn list_webhook_deliveries(
        &self,
        client_id: &str,
        webhook_id: &str,
        query: crate::model::DeliveryQuery,
        page: PageRequest,
    ) -> Result<Option<Page<crate::model::WebhookDelivery>>, StoreError> {
        let (client, id) = (client_id.to_owned(), webhook_id.to_owned());
        self.readers
            .read(move |c| queries::list_webhook_deliveries(c, &client, &id, &query, &page))
            .await
    }

    async fn claim_due_deliveries(
        &self,
        claim: ClaimRequest,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let tokens = Arc::clone(&self.lease_tokens);
        let claimed = self
            .writer
            .write(Durability::Relaxed, move |tx| {
                let mut next = tokens.load(Ordering::Relaxed);
                let claimed = queries::claim_due(tx.conn, tx.due, &claim, &mut next)?;
                tokens.store(next, Ordering::Relaxed);
                Ok((claimed, Wake::Nobody))
            })
            .await?;
        // Opened here, not on the writer thread, which every write waits for.
        Ok(self.keys.open_claimed(claimed))
    }

    async fn record_attempts(
        &self,
        attempts: Vec<FinishedAttempt>,
        policy: HealthPolicy,
    ) -> Result<(), StoreError> {
        self.writer
            .write(Durability::Relaxed, move |tx| {
                let mut retry_now = false;
                let mut touched = Vec::new();
                let mut disabling = Vec::new();
                for attempt in &attempts {
                    let Some((webhook_key, decided)) = queries::record_attempt(tx.conn, attempt)?
                    else {
                        continue;
                    };
                    touched.push(webhook_key);
                    if decided {
                        disabling.extend(crate::health::Disabling::asked_by(attempt));
                    }
                    retry_now |= matches!(attempt.next, NextStep::RetryAt { at_ms } if at_ms <= attempt.started_at_ms + attempt.duration_ms);
                }
                // Outcomes move due times (a retry later, a finished delivery gone).
                touched.sort_unstable();
                touched.dedup();
                for webhook_key in touched {
                    tx.due.refresh(tx.conn, webhook_key)?;
                }
                disabling.extend(health::count_attempts(tx.conn, &attempts, policy)?);
                retry_now |= health::disable(tx, &disabling)?;
                Ok(((), if retry_now { Wake::Dispatcher } else { Wake::Nobody }))
            })
            .await
    }

    async fn next_due_at(&self) -> Result<Option<i64>, StoreError> {
        let next = self.next_due.load(Ordering::Relaxed);
        Ok((next != i64::MAX).then_some(next))
    }

    async fn queue_stats(&self, now_ms: i64) -> Result<crate::model::QueueStats, StoreError> {
        self.readers
            .read(move |c| queries::queue_stats(c, now_ms))
            .await
    }

    fn due_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.due)
    }

    fn hand_off_new_deliveries(
        &self,
        lease_ms: i64,
        capacity: usize,
    ) -> mpsc::Receiver<ClaimedDelivery> {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let handoff = Handoff {
            sender,
            lease_ms,
            tokens: Arc::clone(&self.lease_tokens),
        };
        if let Ok(mut slot) = self.handoff.lock() {
            *slot = Some(handoff);
        }
        receiver
    }

    async fn release_deliveries(
        &self,
        leases: Vec<(i64, i64)>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.writer
            .write(Durability::Relaxed, move |tx| {
                queries::release_leases(tx.conn, tx.due, &leases, now_ms)?;
                Ok(((), Wake::Dispatcher))
            })
            .await
    }

    async fn purge_events_received_before(
        &self,
        cutoff_ms: i64,
        max_events: usize,
    ) -> Result<crate::model::PurgeCount, StoreError> {
        // One small job (`max_events` bounds it) in the next group: the writer is never
        // held for long. Relaxed: a purge lost in a power cut is simply done again.
        // Neither cache changes: the subscriber cache holds webhooks, and the due index
        // holds pending deliveries only, which a purge never deletes.
        self.writer
            .write(Durability::Relaxed, move |tx| {
                Ok((
                    queries::purge_events_received_before(tx.conn, cutoff_ms, max_events)?,
                    Wake::Nobody,
                ))
            })
            .await
    }

    async fn replay_event(
        &self,
        replay: crate::model::EventReplay,
    ) -> Result<Result<crate::model::ReplayedEvent, crate::model::ReplayRefusal>, StoreError> {
        // Synced: the client is told the event is being sent again.
        self.writer
            .write(Durability::Synced, move |tx| {
                let replayed = replay::replay_event(tx.conn, tx.due, &replay)?;
                let wake = if replayed.is_ok() {
                    Wake::Dispatcher
                } else {
                    Wake::Nobody
                };
                Ok((replayed, wake))
            })
            .await
    }

    async fn create_replay_job(
        &self,
        job: crate::model::NewReplayJob,
    ) -> Result<Result<crate::model::ReplayJob, crate::model::ReplayRefusal>, StoreError> {
        // Counted on a reader: the writer never waits for a count over the window.
        let plan_job = job.clone();
        let plan = match self
            .readers
            .read(move |c| replay::plan_job(c, &plan_job))
            .await?
        {
            Ok(plan) => plan,
            Err(refused) => return Ok(Err(refused)),
        };
        let created = self
            .writer
            .write(Durability::Synced, move |tx| {
                Ok((replay::insert_job(tx.conn, &job, &plan)?, Wake::Nobody))
            })
            .await?;
        if created.is_ok() {
            self.replays.notify_one();
        }
        Ok(created)
    }

    async fn get_replay_job(
        &self,
        client_id: &str,
        job_id: &str,
    ) -> Result<Option<crate::model::ReplayJob>, StoreError> {
        let (client, id) = (client_id.to_owned(), job_id.to_owned());
        self.readers
            .read(move |c| replay::get_job(c, &client, &id))
            .await
    }

    async fn list_replay_jobs(
        &self,
        client_id: &str,
        webhook_id: &str,
        page: PageRequest,
    ) -> Result<Option<Page<crate::model::ReplayJob>>, StoreError> {
        let (client, id) = (client_id.to_owned(), webhook_id.to_owned());
        self.readers
            .read(move |c| replay::list_jobs(c, &client, &id, &page))
            .await
    }

    async fn running_replay_jobs(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::model::RunningReplay>, StoreError> {
        self.readers
            .read(move |c| replay::running_jobs(c, limit))
            .await
    }

    async fn run_replay_batch(
        &self,
        batch: crate::model::ReplayBatch,
    ) -> Result<crate::model::ReplayStep, StoreError> {
        // One short job in the next group. Relaxed: the new deliveries and the cursor
        // commit together, so a batch lost in a power cut is simply made again.
        self.writer
            .write(Durability::Relaxed, move |tx| {
                let step = replay::run_batch(tx.conn, tx.due, &batch)?;
                let wake = match step {
                    crate::model::ReplayStep::Advanced { replayed, .. } if replayed > 0 => {
                        Wake::Dispatcher
                    }
                    _ => Wake::Nobody,
                };
                Ok((step, wake))
            })
            .await
    }

    fn replay_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.replays)
    }

    async fn create_listen_webhook(
        &self,
        mut webhook: NewWebhook,
    ) -> Result<WebhookRecord, StoreError> {
        webhook.secret = self.keys.seal(&webhook.id, &webhook.secret)?;
        // Relaxed: a session lost in a power cut is simply opened again by `hookd listen`.
        let created = self
            .writer
            .write(Durability::Relaxed, move |tx| {
                tx.subscribers.clear();
                Ok((listen::insert(tx.conn, &webhook)?, Wake::Nobody))
            })
            .await?;
        Ok(self.keys.open_webhook(created)?)
    }

    async fn resume_listen_webhook(
        &self,
        client_id: &str,
        webhook_id: &str,
        now_ms: i64,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let (client, id) = (client_id.to_owned(), webhook_id.to_owned());
        let resumed = self
            .writer
            .write(Durability::Relaxed, move |tx| {
                Ok((listen::resume(tx.conn, &client, &id, now_ms)?, Wake::Nobody))
            })
            .await?;
        Ok(resumed.map(|w| self.keys.open_webhook(w)).transpose()?)
    }

    async fn keep_listen_webhooks(
        &self,
        upkeep: crate::model::ListenUpkeep,
    ) -> Result<Vec<String>, StoreError> {
        self.writer
            .write(Durability::Relaxed, move |tx| {
                let kept = listen::keep(tx.conn, tx.due, &upkeep)?;
                if kept.deleted > 0 {
                    tx.subscribers.clear();
                }
                Ok((kept.gone, Wake::Nobody))
            })
            .await
    }
}
