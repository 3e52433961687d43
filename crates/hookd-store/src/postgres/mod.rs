//! The cluster backend: PostgreSQL, shared by any number of `hookd serve` processes.
//!
//! Nodes coordinate only through the database. A delivery is worked on by the node that
//! holds its lease (`lease_token`, with `next_attempt_at` as the lease's end); claims take
//! due rows with `FOR UPDATE SKIP LOCKED`, so nodes never wait on each other, and a dead
//! node's leases simply run out. New deliveries are leased at insert to the node that
//! accepted the event (the first attempt needs no claim); what that node has no room for
//! is announced with `NOTIFY`, which every node `LISTEN`s for.
//!
//! Two connection pools: one for what a client is told is stored (events, webhooks,
//! clients), committed with PostgreSQL's default `synchronous_commit`, and one for leases
//! and attempt outcomes with `synchronous_commit = off` — losing the last of those in a
//! database crash means an attempt is made again, never that an event is lost (the same
//! trade as the SQLite backend's `synchronous=NORMAL` for them).

mod health;
mod listen;
mod listener;
mod migrate;
mod publish;
mod queries;
mod replay;
mod sealing;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

use crate::model::{
    AttemptLog, ClaimRequest, ClaimedDelivery, ClientRecord, EventDetail, EventQuery, EventRecord,
    EventTypeRecord, FinishedAttempt, HealthPolicy, NewClient, NewEvent, NewEventType, NewWebhook,
    NextStep, Page, PageRequest, Published, SecretRotation, WebhookChanges, WebhookRecord,
};
use crate::sealing::SecretKeys;
use crate::{Store, StoreError};
use publish::Publisher;

/// Connections for client-facing reads and writes.
const CLIENT_CONNECTIONS: usize = 16;
/// Tasks storing publishes, each one batch (one commit) at a time.
const PUBLISH_WORKERS: usize = 4;
/// Connections for the engine's claims, outcomes and releases.
const ENGINE_CONNECTIONS: usize = 4;
/// How long a request waits for a connection (or for a new one to be made) before the
/// database counts as unavailable: an answer (503) beats a hang.
const CONNECTION_WAIT: Duration = Duration::from_secs(5);
/// How long outcomes are retried through an outage: well inside the engine's lease margin.
const OUTCOME_PATIENCE: Duration = Duration::from_secs(15);

pub struct PostgresStore {
    /// Default durability: a commit is on disk before the answer.
    clients: Pool,
    /// `synchronous_commit = off`: leases and outcomes.
    engine: Pool,
    /// The `NOTIFY` channel of this schema ("a delivery is due now").
    channel: String,
    due: Arc<Notify>,
    handoff: Arc<Mutex<Option<Handoff>>>,
    publisher: Publisher,
    listener: JoinHandle<()>,
    /// Notified when this node stores a replay job.
    replays: Arc<Notify>,
    /// What webhook secrets are sealed and opened with.
    keys: SecretKeys,
    /// This node among the cluster's: it alone claims the deliveries of the `hookd listen`
    /// sessions whose streams are connected to it.
    node: String,
}

/// Where new deliveries go when this node's engine takes them directly.
#[derive(Clone)]
struct Handoff {
    sender: mpsc::Sender<ClaimedDelivery>,
    lease_ms: i64,
    /// To open the secrets of the webhooks deliveries are handed off to.
    keys: SecretKeys,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`, libpq URL syntax; `options=-c search_path=…`
    /// selects a schema), brings the schema up to date and starts listening for due work.
    /// Webhook secrets are kept in clear; a database holding encrypted ones is refused.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with_keys(url, SecretKeys::none()).await
    }

    /// [`PostgresStore::connect`], with webhook secrets sealed and opened with `keys`.
    /// Every stored secret is checked (a missing or wrong key fails here, with
    /// [`StoreError::Sealing`]) and brought to the form `keys` asks for first. Every node
    /// of a cluster needs the same keys.
    pub async fn connect_with_keys(
        url: &str,
        keys: SecretKeys,
    ) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Database(format!("database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECTION_WAIT);
        }
        if config.get_application_name().is_none() {
            config.application_name("hookd");
        }
        let clients = pool(&config, CLIENT_CONNECTIONS, SESSION_SETUP)?;
        let engine = pool(
            &config,
            ENGINE_CONNECTIONS,
            &format!("{SESSION_SETUP}; SET synchronous_commit = off"),
        )?;
        let schema = migrate::apply(&mut *clients.get().await?).await?;
        // Before anything else: with a missing or wrong key, nothing starts.
        sealing::reseal_all(&clients.get().await?, &keys).await?;
        let channel = notify_channel(&schema);
        let due = Arc::new(Notify::new());
        let handoff = Arc::new(Mutex::new(None));
        // The publish statement inserts and reads only its own rows, whatever the tables'
        // size, so its connections keep the server's plan cache (re-planning it for every
        // batch showed in the server's profile).
        let publisher = Publisher::start(
            pool(&config, PUBLISH_WORKERS, "")?,
            channel.clone(),
            Arc::clone(&handoff),
            PUBLISH_WORKERS,
        );
        let listener = listener::spawn(config, channel.clone(), Arc::clone(&due));
        Ok(PostgresStore {
            clients,
            engine,
            channel,
            due,
            handoff,
            publisher,
            listener,
            replays: Arc::new(Notify::new()),
            keys,
            node: node_id()?,
        })
    }

    /// Wakes every node's dispatcher. Sent after a commit, a failure is only logged:
    /// dispatchers also poll.
    async fn notify_due(&self, c: &impl deadpool_postgres::GenericClient) {
        if let Err(e) = queries::notify_due(c, &self.channel).await {
            tracing::warn!("announcing due deliveries failed: {e}");
        }
    }
}

/// A random name for this node (this store), unique among the cluster's.
fn node_id() -> Result<String, StoreError> {
    let mut random = [0u8; 12];
    getrandom::fill(&mut random)
        .map_err(|e| StoreError::Database(format!("no randomness for the node id: {e}")))?;
    Ok(hex::encode(random))
}

impl PostgresStore {
    async fn try_record_attempts(
        &self,
        attempts: &[FinishedAttempt],
        policy: HealthPolicy,
    ) -> Result<(), StoreError> {
        let mut client = self.engine.get().await?;
        let retry_now = |decided: &HashSet<i64>| {
            attempts.iter().any(|a| {
                matches!(a.next, NextStep::RetryAt { at_ms } if at_ms <= a.started_at_ms + a.duration_ms)
                    && decided.contains(&a.delivery_key)
            })
        };
        let asks_to_disable = attempts
            .iter()
            .any(|a| crate::health::Disabling::asked_by(a).is_some());
        let mut due_now = false;
        if asks_to_disable {
            let tx = client.transaction().await?;
            let decided = queries::record_attempts(&tx, attempts).await?;
            let mut disabling: Vec<_> = attempts
                .iter()
                .filter(|a| decided.contains(&a.delivery_key))
                .filter_map(crate::health::Disabling::asked_by)
                .collect();
            disabling.extend(health::count_attempts(&tx, attempts, policy).await?);
            due_now |= health::disable(&tx, &disabling).await?;
            tx.commit().await?;
            due_now |= retry_now(&decided);
        } else {
            // The common case: the log and the counters are two statements sent together
            // (pipelined), each atomic; no transaction needed.
            let (decided, disabling) = tokio::try_join!(
                queries::record_attempts(&client, attempts),
                health::count_attempts(&client, attempts, policy),
            )?;
            if !disabling.is_empty() {
                let tx = client.transaction().await?;
                due_now |= health::disable(&tx, &disabling).await?;
                tx.commit().await?;
            }
            due_now |= retry_now(&decided);
        }
        if due_now {
            self.notify_due(&client).await;
        }
        Ok(())
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Every session plans each statement for the tables as they are now. A prepared
/// statement otherwise switches, after five runs, to a generic plan made once and kept
/// for the connection's life: made while the tables were small (every fresh start), it
/// joined each batch of outcomes and claims to a sequential scan of `deliveries` or
/// `events` — every write then read the whole table, and grew slower with it (the
/// PostgreSQL server spent ~0.4 s of CPU per 1 000 deliveries). Planning a statement
/// costs far less than one such scan.
const SESSION_SETUP: &str = "SET plan_cache_mode = force_custom_plan";

fn pool(
    config: &tokio_postgres::Config,
    size: usize,
    session_setup: &str,
) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            // A connection the server dropped is noticed (closed) and replaced.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let mut builder = Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECTION_WAIT))
        .create_timeout(Some(CONNECTION_WAIT))
        .recycle_timeout(Some(CONNECTION_WAIT));
    if !session_setup.is_empty() {
        let sql = session_setup.to_owned();
        builder = builder.post_create(Hook::async_fn(move |client, _| {
            let sql = sql.clone();
            Box::pin(async move { client.batch_execute(&sql).await.map_err(HookError::Backend) })
        }));
    }
    builder
        .build()
        .map_err(|e| StoreError::Database(format!("connection pool: {e}")))
}

/// Channel names are identifiers of at most 63 bytes; a digest of the schema name keeps
/// clusters on different schemas of one database from waking each other.
fn notify_channel(schema: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(schema.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("hookd_due_{hex}")
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_client(&self, client: NewClient) -> Result<ClientRecord, StoreError> {
        queries::insert_client(&self.clients.get().await?, &client).await
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        queries::find_client(&self.clients.get().await?, client_id).await
    }

    async fn create_webhook(&self, mut webhook: NewWebhook) -> Result<WebhookRecord, StoreError> {
        webhook.secret = self.keys.seal(&webhook.id, &webhook.secret)?;
        let created = queries::insert_webhook(&self.clients.get().await?, &webhook).await?;
        Ok(self.keys.open_webhook(created)?)
    }

    async fn list_webhooks(
        &self,
        client_id: &str,
        page: PageRequest,
    ) -> Result<Page<WebhookRecord>, StoreError> {
        let mut listed =
            queries::list_webhooks(&self.clients.get().await?, client_id, &page).await?;
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
        let found = queries::get_webhook(&self.clients.get().await?, client_id, webhook_id).await?;
        Ok(found.map(|w| self.keys.open_webhook(w)).transpose()?)
    }

    async fn update_webhook(
        &self,
        client_id: &str,
        webhook_id: &str,
        changes: WebhookChanges,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let mut client = self.clients.get().await?;
        let tx = client.transaction().await?;
        let updated = queries::update_webhook(&tx, client_id, webhook_id, &changes).await?;
        tx.commit().await?;
        Ok(updated.map(|w| self.keys.open_webhook(w)).transpose()?)
    }

    async fn rotate_webhook_secret(
        &self,
        client_id: &str,
        webhook_id: &str,
        mut rotation: SecretRotation,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        rotation.secret = self.keys.seal(webhook_id, &rotation.secret)?;
        let rotated = queries::rotate_webhook_secret(
            &self.clients.get().await?,
            client_id,
            webhook_id,
            &rotation,
        )
        .await?;
        Ok(rotated.map(|w| self.keys.open_webhook(w)).transpose()?)
    }

    async fn delete_webhook(
        &self,
        client_id: &str,
        webhook_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut client = self.clients.get().await?;
        let tx = client.transaction().await?;
        let deleted = queries::delete_webhook(&tx, client_id, webhook_id, now_ms).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn list_event_types(&self, client_id: &str) -> Result<Vec<EventTypeRecord>, StoreError> {
        queries::list_event_types(&self.clients.get().await?, client_id).await
    }

    async fn create_event_type(
        &self,
        event_type: NewEventType,
    ) -> Result<EventTypeRecord, StoreError> {
        queries::insert_event_type(&self.clients.get().await?, &event_type).await
    }

    async fn publish_events(
        &self,
        client_id: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Published>, StoreError> {
        self.publisher.publish(client_id, events).await
    }

    async fn list_events(
        &self,
        client_id: &str,
        query: EventQuery,
        page: PageRequest,
    ) -> Result<Page<EventRecord>, StoreError> {
        queries::list_events(&self.clients.get().await?, client_id, &query, &page).await
    }

    async fn get_event(
        &self,
        client_id: &str,
        event_id: &str,
    ) -> Result<Option<EventDetail>, StoreError> {
        queries::get_event(&self.clients.get().await?, client_id, event_id).await
    }

    async fn list_attempts(
        &self,
        client_id: &str,
        event_id: &str,
    ) -> Result<Option<(EventRecord, Vec<AttemptLog>)>, StoreError> {
        queries::list_attempts(&self.clients.get().await?, client_id, event_id).await
    }

    async fn list_webhook_deliveries(
        &self,
        client_id: &str,
        webhook_id: &str,
        query: crate::model::DeliveryQuery,
        page: PageRequest,
    ) -> Result<Option<Page<crate::model::WebhookDelivery>>, StoreError> {
        queries::list_webhook_deliveries(
            &self.clients.get().await?,
            client_id,
            webhook_id,
            &query,
            &page,
        )
        .await
    }

    async fn claim_due_deliveries(
        &self,
        claim: ClaimRequest,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let claimed = queries::claim_due(&self.engine.get().await?, &claim, &self.node).await?;
        Ok(self.keys.open_claimed(claimed))
    }

    async fn record_attempts(
        &self,
        attempts: Vec<FinishedAttempt>,
        policy: HealthPolicy,
    ) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        // Through a short outage, keep trying: giving up lets the leases run out and the
        // attempts be made again. The caller's slots stay taken meanwhile (backpressure).
        let deadline = tokio::time::Instant::now() + OUTCOME_PATIENCE;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.try_record_attempts(&attempts, policy).await {
                Err(StoreError::Unavailable(e)) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!("storing attempt outcomes failed, trying again: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    async fn next_due_at(&self) -> Result<Option<i64>, StoreError> {
        queries::next_due_at(&self.engine.get().await?).await
    }

    async fn queue_stats(&self, now_ms: i64) -> Result<crate::model::QueueStats, StoreError> {
        queries::queue_stats(&self.engine.get().await?, now_ms).await
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
        if let Ok(mut slot) = self.handoff.lock() {
            *slot = Some(Handoff {
                sender,
                lease_ms,
                keys: self.keys.clone(),
            });
        }
        receiver
    }

    async fn release_deliveries(
        &self,
        leases: Vec<(i64, i64)>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if leases.is_empty() {
            return Ok(());
        }
        let client = self.engine.get().await?;
        queries::release_leases(&client, &leases, now_ms).await?;
        // Any node may take them now.
        self.notify_due(&client).await;
        Ok(())
    }

    async fn purge_events_received_before(
        &self,
        cutoff_ms: i64,
        max_events: usize,
    ) -> Result<crate::model::PurgeCount, StoreError> {
        // Housekeeping, not a promise to a client: the engine pool (no synchronous commit).
        queries::purge_events_received_before(&self.engine.get().await?, cutoff_ms, max_events)
            .await
    }

    async fn replay_event(
        &self,
        replay: crate::model::EventReplay,
    ) -> Result<Result<crate::model::ReplayedEvent, crate::model::ReplayRefusal>, StoreError> {
        let mut client = self.clients.get().await?;
        let tx = client.transaction().await?;
        let replayed = replay::replay_event(&tx, &replay).await?;
        tx.commit().await?;
        if replayed.is_ok() {
            self.notify_due(&client).await;
        }
        Ok(replayed)
    }

    async fn create_replay_job(
        &self,
        job: crate::model::NewReplayJob,
    ) -> Result<Result<crate::model::ReplayJob, crate::model::ReplayRefusal>, StoreError> {
        let mut client = self.clients.get().await?;
        let tx = client.transaction().await?;
        let created = replay::create_job(&tx, &job).await?;
        tx.commit().await?;
        // This node starts on it at once; the others find it when they next look.
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
        replay::get_job(&self.clients.get().await?, client_id, job_id).await
    }

    async fn list_replay_jobs(
        &self,
        client_id: &str,
        webhook_id: &str,
        page: PageRequest,
    ) -> Result<Option<Page<crate::model::ReplayJob>>, StoreError> {
        replay::list_jobs(&self.clients.get().await?, client_id, webhook_id, &page).await
    }

    async fn running_replay_jobs(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::model::RunningReplay>, StoreError> {
        replay::running_jobs(&self.engine.get().await?, limit).await
    }

    async fn run_replay_batch(
        &self,
        batch: crate::model::ReplayBatch,
    ) -> Result<crate::model::ReplayStep, StoreError> {
        // The engine pool (no synchronous commit): the new deliveries and the cursor
        // commit together, so a batch lost in a database crash is simply made again.
        let mut client = self.engine.get().await?;
        let tx = client.transaction().await?;
        let step = replay::run_batch(&tx, &batch).await?;
        tx.commit().await?;
        if matches!(step, crate::model::ReplayStep::Advanced { replayed, .. } if replayed > 0) {
            self.notify_due(&client).await;
        }
        Ok(step)
    }

    fn replay_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.replays)
    }

    async fn create_listen_webhook(
        &self,
        mut webhook: NewWebhook,
    ) -> Result<WebhookRecord, StoreError> {
        webhook.secret = self.keys.seal(&webhook.id, &webhook.secret)?;
        let mut client = self.clients.get().await?;
        let tx = client.transaction().await?;
        let created = listen::insert(&tx, &webhook, &self.node).await?;
        tx.commit().await?;
        Ok(self.keys.open_webhook(created)?)
    }

    async fn resume_listen_webhook(
        &self,
        client_id: &str,
        webhook_id: &str,
        now_ms: i64,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let client = self.clients.get().await?;
        let resumed = listen::resume(&client, client_id, webhook_id, now_ms, &self.node).await?;
        if resumed.is_some() {
            // Its due deliveries were left to the previous node; this one claims them now.
            self.notify_due(&client).await;
        }
        Ok(resumed.map(|w| self.keys.open_webhook(w)).transpose()?)
    }

    async fn keep_listen_webhooks(
        &self,
        upkeep: crate::model::ListenUpkeep,
    ) -> Result<Vec<String>, StoreError> {
        let mut client = self.engine.get().await?;
        let tx = client.transaction().await?;
        let gone = listen::keep(&tx, &upkeep).await?;
        tx.commit().await?;
        Ok(gone)
    }
}
