//! Durable state of hookd behind one trait, [`Store`].
//!
//! The API and the delivery engine only speak to `dyn Store`; each backend (SQLite now,
//! PostgreSQL later) owns all of its SQL. Writes that make up one request (an event and its
//! deliveries, an attempt and its delivery's new state) commit together, and a write is
//! acknowledged only after it is committed. Backends batch concurrent writes into one
//! transaction (group commit), which is what makes durable ingest fast.
//!
//! Webhook signing secrets can be kept encrypted at rest: a backend opened with
//! [`sealing::SecretKeys`] seals them on the way in and opens them on the way out.
//!
//! Main types: [`Store`], the records in [`model`], [`sealing::SecretKeys`], and
//! [`StoreError`].

pub mod listen;
pub mod model;
pub mod postgres;
pub mod sealing;
pub mod sqlite;

mod codec;
mod error;
mod health;
mod replay;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc};

pub use error::StoreError;
use model::{
    AttemptLog, ClaimRequest, ClaimedDelivery, ClientRecord, EventDetail, EventQuery, EventRecord,
    EventTypeRecord, FinishedAttempt, HealthPolicy, NewClient, NewEvent, NewEventType, NewWebhook,
    Page, PageRequest, Published, PurgeCount, SecretRotation, WebhookChanges, WebhookRecord,
};

/// Everything hookd keeps. Every read and write of tenant data names the client, so one
/// client can never reach another's rows.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn create_client(&self, client: NewClient) -> Result<ClientRecord, StoreError>;
    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;

    async fn create_webhook(&self, webhook: NewWebhook) -> Result<WebhookRecord, StoreError>;
    async fn list_webhooks(
        &self,
        client_id: &str,
        page: PageRequest,
    ) -> Result<Page<WebhookRecord>, StoreError>;
    async fn get_webhook(
        &self,
        client_id: &str,
        webhook_id: &str,
    ) -> Result<Option<WebhookRecord>, StoreError>;
    /// Applies `changes`; disabling a webhook cancels its pending deliveries.
    async fn update_webhook(
        &self,
        client_id: &str,
        webhook_id: &str,
        changes: WebhookChanges,
    ) -> Result<Option<WebhookRecord>, StoreError>;
    /// Replaces the webhook's signing secret; the one replaced stays valid (signs too)
    /// until `rotation.previous_valid_until_ms`, and any older one is dropped. `None` if
    /// the client has no such webhook.
    async fn rotate_webhook_secret(
        &self,
        client_id: &str,
        webhook_id: &str,
        rotation: SecretRotation,
    ) -> Result<Option<WebhookRecord>, StoreError>;
    /// Deletes a webhook and cancels its pending deliveries; its attempt logs stay.
    async fn delete_webhook(
        &self,
        client_id: &str,
        webhook_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// The client's own event types (the built-in catalogue lives in `hookd-core`).
    async fn list_event_types(&self, client_id: &str) -> Result<Vec<EventTypeRecord>, StoreError>;
    async fn create_event_type(
        &self,
        event_type: NewEventType,
    ) -> Result<EventTypeRecord, StoreError>;

    /// Stores events and one pending delivery per matching enabled webhook, all or nothing.
    /// An event whose idempotency key or id the client already used is not stored again:
    /// the original comes back as [`Published::Existing`].
    async fn publish_events(
        &self,
        client_id: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Published>, StoreError>;
    async fn list_events(
        &self,
        client_id: &str,
        query: EventQuery,
        page: PageRequest,
    ) -> Result<Page<EventRecord>, StoreError>;
    async fn get_event(
        &self,
        client_id: &str,
        event_id: &str,
    ) -> Result<Option<EventDetail>, StoreError>;
    async fn list_attempts(
        &self,
        client_id: &str,
        event_id: &str,
    ) -> Result<Option<(EventRecord, Vec<AttemptLog>)>, StoreError>;
    /// A webhook's deliveries, newest first (by delivery), with their events, filtered by
    /// state and by when the event was received. `None` if the client has no such webhook
    /// (or deleted it).
    async fn list_webhook_deliveries(
        &self,
        client_id: &str,
        webhook_id: &str,
        query: model::DeliveryQuery,
        page: PageRequest,
    ) -> Result<Option<Page<model::WebhookDelivery>>, StoreError>;

    /// Leases up to `claim.limit` due deliveries: each becomes invisible to other claims
    /// until its lease ends, after which it is due again (so a crashed worker strands
    /// nothing).
    async fn claim_due_deliveries(
        &self,
        claim: ClaimRequest,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;
    /// Logs attempts and moves each delivery on if its lease is still the caller's; counts
    /// every attempt in its webhook's health. A webhook is disabled, its pending deliveries
    /// cancelled and a `webhook.disabled` event published to the client's webhooks that
    /// subscribe to it, all in the same write, when an attempt says so (`410 Gone`) or when
    /// it has failed for longer than `policy` allows.
    async fn record_attempts(
        &self,
        attempts: Vec<FinishedAttempt>,
        policy: HealthPolicy,
    ) -> Result<(), StoreError>;
    /// When the earliest pending delivery becomes due (unix ms), if there is one.
    async fn next_due_at(&self) -> Result<Option<i64>, StoreError>;
    /// How many deliveries are pending, how many of them are due at `now_ms`, and the
    /// earliest due time, for `/metrics`. Reads the pending partial index (a count over
    /// every pending delivery: it costs in proportion to the backlog).
    async fn queue_stats(&self, now_ms: i64) -> Result<model::QueueStats, StoreError>;

    /// Notified after a commit that made a delivery due now, so dispatchers need not poll.
    fn due_signal(&self) -> Arc<Notify>;

    /// From now on, deliveries this process creates that are due at once are leased (for
    /// `lease_ms`) to the caller at insert and sent to the returned channel after the
    /// commit, as long as it has room; the rest wait to be claimed. This spares the first
    /// attempt a claim. Calling it again replaces the previous channel.
    fn hand_off_new_deliveries(
        &self,
        lease_ms: i64,
        capacity: usize,
    ) -> mpsc::Receiver<ClaimedDelivery>;

    /// Gives leased deliveries back (`(delivery_key, lease_token)`): due at `now_ms`,
    /// leased to no one. Deliveries whose lease has moved on are left alone.
    async fn release_deliveries(
        &self,
        leases: Vec<(i64, i64)>,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Retention: deletes at most `max_events` of the oldest events received before
    /// `cutoff_ms` (unix ms), with their deliveries and attempt logs, in one short write.
    /// An event with a pending delivery is never deleted (it waits until the delivery
    /// succeeds, fails for good or is cancelled). Their idempotency keys are forgotten with
    /// them. Fewer than `max_events` deleted means nothing more is purgeable now.
    async fn purge_events_received_before(
        &self,
        cutoff_ms: i64,
        max_events: usize,
    ) -> Result<PurgeCount, StoreError>;

    // Replay: events sent again as new deliveries (same event, same body, attempts
    // counted from 1 again); bulk replays are jobs the engine works through in batches.

    /// Sends one event again: a new pending delivery, due at once, per webhook (see
    /// [`model::EventReplay::webhook_id`]). A test event stays one.
    async fn replay_event(
        &self,
        replay: model::EventReplay,
    ) -> Result<Result<model::ReplayedEvent, model::ReplayRefusal>, StoreError>;
    /// Stores a running bulk replay job, its `total` counted now over the webhook's
    /// deliveries in the window, and wakes this process's replay worker
    /// ([`Store::replay_signal`]).
    async fn create_replay_job(
        &self,
        job: model::NewReplayJob,
    ) -> Result<Result<model::ReplayJob, model::ReplayRefusal>, StoreError>;
    async fn get_replay_job(
        &self,
        client_id: &str,
        job_id: &str,
    ) -> Result<Option<model::ReplayJob>, StoreError>;
    /// A webhook's replay jobs, newest first. `None` if the client has no such webhook
    /// (or deleted it).
    async fn list_replay_jobs(
        &self,
        client_id: &str,
        webhook_id: &str,
        page: PageRequest,
    ) -> Result<Option<Page<model::ReplayJob>>, StoreError>;
    /// Jobs still running, oldest first, of every client (at most `limit`).
    async fn running_replay_jobs(
        &self,
        limit: usize,
    ) -> Result<Vec<model::RunningReplay>, StoreError>;
    /// One batch of a job, in one short write: the next events after the cursor, those
    /// the job admits each re-sent as a new pending delivery due at once, the cursor and
    /// `done` moved on, the job completed when the batch came back short. Moves nothing
    /// if the cursor is no longer `batch.expected_cursor` (nodes running the same job
    /// take turns; no batch is made twice). Cancels the job if the webhook is disabled or
    /// deleted.
    async fn run_replay_batch(
        &self,
        batch: model::ReplayBatch,
    ) -> Result<model::ReplayStep, StoreError>;
    /// Notified when this process stores a replay job, so the replay worker need not poll
    /// for it.
    fn replay_signal(&self) -> Arc<Notify>;

    // `hookd listen`: a listening session is a temporary webhook whose URL is in the
    // reserved scheme (see [`listen`]), hidden from `list_webhooks`, owned by the process
    // its stream is connected to, and deleted once nobody has kept it for a while.

    /// Stores the temporary webhook of a new listening session (`webhook.url` is its
    /// `hookd-listen://` URL), seen now and owned by this process: on PostgreSQL, only this
    /// node claims its deliveries.
    async fn create_listen_webhook(&self, webhook: NewWebhook)
    -> Result<WebhookRecord, StoreError>;
    /// A reconnecting `hookd listen` takes its session over: the temporary webhook is
    /// owned by this process from now on and seen at `now_ms`. `None` if the client has no
    /// such temporary webhook (any more).
    async fn resume_listen_webhook(
        &self,
        client_id: &str,
        webhook_id: &str,
        now_ms: i64,
    ) -> Result<Option<WebhookRecord>, StoreError>;
    /// Upkeep of listening sessions, in one short write: the temporary webhooks of
    /// `upkeep.connected` (streams open in this process) are seen now, and every temporary
    /// webhook not seen since `upkeep.stale_before_ms` (its `hookd listen` or its server gone
    /// without closing it) is deleted, its pending deliveries cancelled. Returns those of
    /// `connected` that no longer exist (deleted meanwhile).
    async fn keep_listen_webhooks(
        &self,
        upkeep: model::ListenUpkeep,
    ) -> Result<Vec<String>, StoreError>;
}
