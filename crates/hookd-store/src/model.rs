//! The records a store reads and writes. Times are unix milliseconds unless named
//! otherwise; public ids are the `wh_…`/`evt_…` strings, internal keys never leave the store
//! except inside claims.

use std::fmt;
use std::time::Duration;

use hookd_core::envelope::EnvelopeFormat;
pub use hookd_core::health::WebhookHealth;
use hookd_core::json::CanonicalJson;

#[derive(Clone, Debug)]
pub struct NewClient {
    pub id: String,
    pub name: String,
    pub secret_sha256: [u8; 32],
    pub now_ms: i64,
}

#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    pub secret_sha256: [u8; 32],
    pub created_at_ms: i64,
}

/// Records holding signing secrets show them as `"…"` in `Debug`, so a record that ends up
/// in a log line (`?delivery`) cannot leak one.
#[derive(Clone)]
pub struct NewWebhook {
    pub id: String,
    pub client_id: String,
    pub url: String,
    /// Filters as accepted by `EventFilter::parse`, in their text form.
    pub events: Vec<String>,
    pub format: EnvelopeFormat,
    pub signature_header: String,
    pub enabled: bool,
    pub description: Option<String>,
    /// A JSON object.
    pub metadata: serde_json::Value,
    pub secret: String,
    pub now_ms: i64,
}

#[derive(Clone)]
pub struct WebhookRecord {
    pub id: String,
    pub client_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub format: EnvelopeFormat,
    pub signature_header: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub description: Option<String>,
    pub metadata: serde_json::Value,
    pub secret: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Its attempts so far: counters kept as attempts are recorded.
    pub health: WebhookHealth,
}

/// What recording attempts does to webhooks that keep failing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthPolicy {
    /// A webhook whose attempts have all failed for this long is disabled (and its client
    /// told with a `webhook.disabled` event); `None` never disables for that.
    pub disable_after: Option<Duration>,
}

/// A new signing secret for a webhook (`POST /v2/webhooks/{id}/rotate-secret`).
#[derive(Clone)]
pub struct SecretRotation {
    pub secret: String,
    /// Until when (unix ms) the secret being replaced still signs too; at or before
    /// `now_ms` it is dropped at once. Any older previous secret is dropped either way.
    pub previous_valid_until_ms: i64,
    pub now_ms: i64,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub format: Option<EnvelopeFormat>,
    pub signature_header: Option<String>,
    pub enabled: Option<bool>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub metadata: Option<serde_json::Value>,
    pub now_ms: i64,
}

#[derive(Clone, Debug)]
pub struct NewEventType {
    pub client_id: String,
    pub name: String,
    pub description: Option<String>,
    pub now_ms: i64,
}

#[derive(Clone, Debug)]
pub struct EventTypeRecord {
    pub name: String,
    pub description: Option<String>,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug)]
pub struct NewEvent {
    /// The public id: generated, or the client's own.
    pub id: String,
    /// Whether the client chose `id` (then a second event with it is a repeat).
    pub id_from_client: bool,
    pub idempotency_key: Option<String>,
    pub event_type: String,
    pub data: CanonicalJson,
    pub now_ms: i64,
    /// When the first attempt of each delivery is due (the schedule's first step).
    pub first_attempt_at_ms: i64,
    /// A test event (`POST /v2/webhooks/{id}/test`): stored marked, and every attempt of
    /// its deliveries carries the test header.
    pub test: bool,
    /// Deliver to this webhook (public id) alone, if it is enabled and its filters match,
    /// instead of to every matching webhook of the client.
    pub only_webhook_id: Option<String>,
}

impl NewEvent {
    /// The event as it reads once stored.
    pub fn record(&self) -> EventRecord {
        EventRecord {
            id: self.id.clone(),
            event_type: self.event_type.clone(),
            data: self.data.clone(),
            created: self.now_ms.div_euclid(1000),
            received_at_ms: self.now_ms,
            test: self.test,
        }
    }

    /// Whether this event goes to `webhook_id` (given that its filters match the type).
    pub fn goes_to(&self, webhook_id: &str) -> bool {
        self.only_webhook_id
            .as_deref()
            .is_none_or(|only| only == webhook_id)
    }
}

#[derive(Clone, Debug)]
pub struct EventRecord {
    pub id: String,
    pub event_type: String,
    pub data: CanonicalJson,
    /// Unix seconds, as in the envelope.
    pub created: i64,
    pub received_at_ms: i64,
    /// A test event (`POST /v2/webhooks/{id}/test`): its attempts carry the test header.
    pub test: bool,
}

impl EventRecord {
    /// The same event, marked as a test event or not (as its `test` column says).
    pub(crate) fn with_test(mut self, test: bool) -> EventRecord {
        self.test = test;
        self
    }
}

#[derive(Clone, Debug)]
pub enum Published {
    /// Stored now, with this many deliveries.
    New {
        event: EventRecord,
        deliveries: usize,
    },
    /// Already stored earlier under the same idempotency key or id.
    Existing { event: EventRecord },
}

impl Published {
    pub fn event(&self) -> &EventRecord {
        match self {
            Published::New { event, .. } | Published::Existing { event } => event,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    pub event_type: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct PageRequest {
    pub limit: usize,
    /// Opaque, from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Succeeded,
    Failed,
    Cancelled,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    pub(crate) fn code(self) -> i64 {
        match self {
            DeliveryState::Pending => 0,
            DeliveryState::Succeeded => 1,
            DeliveryState::Failed => 2,
            DeliveryState::Cancelled => 3,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<DeliveryState> {
        match code {
            0 => Some(DeliveryState::Pending),
            1 => Some(DeliveryState::Succeeded),
            2 => Some(DeliveryState::Failed),
            3 => Some(DeliveryState::Cancelled),
            _ => None,
        }
    }
}

/// One webhook's view of an event.
#[derive(Clone, Debug)]
pub struct DeliveryRecord {
    pub webhook_id: String,
    pub state: DeliveryState,
    pub attempts: u32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at_ms: Option<i64>,
    pub last_response_status: Option<u16>,
    pub updated_at_ms: i64,
}

/// Which of a webhook's deliveries `Store::list_webhook_deliveries` lists.
#[derive(Clone, Debug, Default)]
pub struct DeliveryQuery {
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
    /// Only events received at or after this time (unix ms).
    pub since_ms: Option<i64>,
    /// Only events received before this time (unix ms).
    pub until_ms: Option<i64>,
}

/// One delivery of a webhook's log, with the event it carries (without its data).
#[derive(Clone, Debug)]
pub struct WebhookDelivery {
    pub event_id: String,
    pub event_type: String,
    pub event_received_at_ms: i64,
    pub delivery: DeliveryRecord,
}

impl WebhookDelivery {
    /// The event's `created` (unix seconds), as in the envelope.
    pub fn event_created(&self) -> i64 {
        self.event_received_at_ms.div_euclid(1000)
    }
}

#[derive(Clone, Debug)]
pub struct EventDetail {
    pub event: EventRecord,
    pub deliveries: Vec<DeliveryRecord>,
}

/// What the engine needs to send one attempt.
#[derive(Clone)]
pub struct ClaimedDelivery {
    pub delivery_key: i64,
    pub lease_token: i64,
    /// 1-based number of the attempt about to be made.
    pub attempt_number: u32,
    pub webhook_key: i64,
    pub webhook_id: String,
    pub url: String,
    pub format: EnvelopeFormat,
    pub signature_header: String,
    /// The current signing secret.
    pub secret: String,
    /// The secret it replaced, while the rotation's grace period had not ended when the
    /// delivery was claimed or handed off.
    pub previous_secret: Option<PreviousSecret>,
    pub event: EventRecord,
}

impl ClaimedDelivery {
    /// The secrets an attempt starting at `now_ms` signs with, newest first: the current
    /// one, then the previous one if its grace period has not ended by then.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let Some(previous) = &self.previous_secret
            && previous.valid_at(now_ms)
        {
            secrets.push(previous.secret.as_str());
        }
        secrets
    }
}

/// A webhook's previous signing secret during a rotation's grace period.
#[derive(Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: String,
    /// When the grace period ends (unix ms); from then on the secret is not used.
    pub valid_until_ms: i64,
}

impl PreviousSecret {
    /// The previous secret from its stored columns, if it is still valid at `now_ms`.
    pub fn current(
        secret: Option<String>,
        valid_until_ms: Option<i64>,
        now_ms: i64,
    ) -> Option<PreviousSecret> {
        let previous = PreviousSecret {
            secret: secret?,
            valid_until_ms: valid_until_ms?,
        };
        previous.valid_at(now_ms).then_some(previous)
    }

    pub fn valid_at(&self, now_ms: i64) -> bool {
        now_ms < self.valid_until_ms
    }
}

#[derive(Clone, Debug)]
pub struct ClaimRequest {
    pub now_ms: i64,
    /// How long a claimed delivery stays invisible to other claims.
    pub lease_ms: i64,
    pub limit: usize,
    /// Most attempts in flight to one webhook; more of its deliveries are left due.
    pub max_per_webhook: usize,
    /// Attempts the caller already has in flight, per webhook key.
    pub in_flight: Vec<(i64, usize)>,
}

/// What becomes of a delivery after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextStep {
    Succeeded,
    /// No more attempts; with `disable_webhook_reason` the webhook is disabled too (and its
    /// client told with a `webhook.disabled` event).
    Failed {
        disable_webhook_reason: Option<String>,
    },
    RetryAt {
        at_ms: i64,
    },
}

#[derive(Clone, Debug)]
pub struct FinishedAttempt {
    pub id: String,
    pub delivery_key: i64,
    pub lease_token: i64,
    /// The delivery's webhook, whose health counters the attempt moves.
    pub webhook_key: i64,
    pub attempt_number: u32,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub format: EnvelopeFormat,
    pub request_headers: Vec<(String, String)>,
    pub response_status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub next: NextStep,
}

/// A logged attempt. The request body is not stored: it is a pure function of the event
/// and `format` (see `hookd_core::envelope`), rebuilt when read.
#[derive(Clone, Debug)]
pub struct AttemptLog {
    pub id: String,
    pub webhook_id: String,
    pub attempt_number: u32,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub format: EnvelopeFormat,
    pub request_headers: Vec<(String, String)>,
    pub response_status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

/// The delivery queue at one moment, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Deliveries in state `pending` (due, scheduled for a retry, or leased to an attempt).
    pub pending: u64,
    /// Of those, how many were due at the time asked (`next_attempt_at <= now`).
    pub due: u64,
    /// The earliest due time of a pending delivery (unix ms; a leased delivery counts with
    /// its lease's end), if there is one.
    pub oldest_due_at_ms: Option<i64>,
}

/// What one retention batch deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeCount {
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
}

/// Which events a bulk replay re-sends, judged by the state of each event's latest
/// delivery to the webhook (so an event whose failed delivery was since replayed with
/// success is no longer "failed"). A pending delivery never qualifies: it is still being
/// sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayFilter {
    Failed,
    Succeeded,
    Cancelled,
    /// Any finished delivery: succeeded, failed or cancelled.
    All,
}

impl ReplayFilter {
    pub const NAMES: [&'static str; 4] = ["failed", "succeeded", "cancelled", "all"];

    pub fn as_str(self) -> &'static str {
        match self {
            ReplayFilter::Failed => "failed",
            ReplayFilter::Succeeded => "succeeded",
            ReplayFilter::Cancelled => "cancelled",
            ReplayFilter::All => "all",
        }
    }

    pub fn parse(text: &str) -> Option<ReplayFilter> {
        [
            ReplayFilter::Failed,
            ReplayFilter::Succeeded,
            ReplayFilter::Cancelled,
            ReplayFilter::All,
        ]
        .into_iter()
        .find(|f| f.as_str() == text)
    }

    /// Whether a latest delivery in `state` makes its event part of the replay.
    pub fn admits(self, state: DeliveryState) -> bool {
        match self {
            ReplayFilter::Failed => state == DeliveryState::Failed,
            ReplayFilter::Succeeded => state == DeliveryState::Succeeded,
            ReplayFilter::Cancelled => state == DeliveryState::Cancelled,
            ReplayFilter::All => state != DeliveryState::Pending,
        }
    }

    /// The delivery state codes it admits, as a bit mask (bit `code` set), for SQL.
    pub(crate) fn state_mask(self) -> i64 {
        [
            DeliveryState::Pending,
            DeliveryState::Succeeded,
            DeliveryState::Failed,
            DeliveryState::Cancelled,
        ]
        .into_iter()
        .filter(|s| self.admits(*s))
        .fold(0, |mask, s| mask | (1 << s.code()))
    }
}

/// Where a bulk replay job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayState {
    /// Batches are still being made.
    Running,
    /// Every event of the window was dealt with.
    Completed,
    /// Stopped because the webhook was disabled or deleted.
    Cancelled,
}

impl ReplayState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayState::Running => "running",
            ReplayState::Completed => "completed",
            ReplayState::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<ReplayState> {
        [
            ReplayState::Running,
            ReplayState::Completed,
            ReplayState::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// `POST /v2/events/{id}/replay`: send one stored event again.
#[derive(Clone, Debug)]
pub struct EventReplay {
    pub client_id: String,
    pub event_id: String,
    /// Only to this webhook (public id); otherwise to every webhook the event has a
    /// delivery to that is still enabled and still subscribes to its type.
    pub webhook_id: Option<String>,
    pub now_ms: i64,
}

/// An event sent again: one new pending delivery (due at once, attempts counted from 1)
/// per webhook named.
#[derive(Clone, Debug)]
pub struct ReplayedEvent {
    pub event: EventRecord,
    pub webhook_ids: Vec<String>,
}

/// Why a replay was not made. Nothing was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayRefusal {
    EventNotFound,
    /// Unknown, another client's, or deleted.
    WebhookNotFound,
    WebhookDisabled,
    /// The webhook's filters do not match the event's type.
    NotSubscribed {
        event_type: String,
        filters: Vec<String>,
    },
    /// No webhook the event was delivered to is still enabled and subscribed to its type.
    NoWebhook,
}

/// A new bulk replay job (`POST /v2/webhooks/{id}/replay`).
#[derive(Clone, Debug)]
pub struct NewReplayJob {
    pub id: String,
    pub client_id: String,
    pub webhook_id: String,
    /// Events received at or after this time (unix ms)…
    pub since_ms: i64,
    /// …and before this one.
    pub until_ms: Option<i64>,
    pub filter: ReplayFilter,
    pub now_ms: i64,
}

/// A bulk replay job as clients see it.
#[derive(Clone, Debug)]
pub struct ReplayJob {
    pub id: String,
    pub webhook_id: String,
    pub since_ms: i64,
    pub until_ms: Option<i64>,
    pub filter: ReplayFilter,
    pub state: ReplayState,
    /// Events to re-send, counted when the job was made; set to `done` when it completes
    /// (deliveries may have finished or been purged meanwhile).
    pub total: u64,
    /// Events re-sent so far.
    pub done: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub completed_at_ms: Option<i64>,
}

/// A running job as the engine works on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningReplay {
    pub key: i64,
    pub id: String,
    /// Where the next batch starts (an opaque position; pass it back unchanged).
    pub cursor: i64,
}

/// One batch of a job: the next `max_events` events of the webhook's deliveries after
/// `expected_cursor`, of which those the job's filter and window admit are re-sent.
#[derive(Clone, Copy, Debug)]
pub struct ReplayBatch {
    pub job_key: i64,
    /// The job's cursor as the caller last saw it; if it has moved (another node made
    /// this batch), nothing is written.
    pub expected_cursor: i64,
    pub max_events: usize,
    pub now_ms: i64,
}

/// What one batch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayStep {
    /// `replayed` events were re-sent; the job's cursor is now `cursor` and `done` is its
    /// count so far. `completed`: that was the last batch.
    Advanced {
        replayed: u64,
        done: u64,
        cursor: i64,
        completed: bool,
    },
    /// The job was not running at `expected_cursor` any more (another node made this batch,
    /// or the job finished): nothing was written.
    Stale,
    /// The webhook was disabled or deleted: the job is now cancelled, nothing re-sent.
    Cancelled,
}

/// `Store::keep_listen_webhooks`: what this process keeps of the listening sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenUpkeep {
    /// Webhook ids of the sessions whose streams are connected to this process.
    pub connected: Vec<String>,
    pub now_ms: i64,
    /// Temporary webhooks last seen before this are deleted.
    pub stale_before_ms: i64,
}

/// Stands for a secret in `Debug` output.
const HIDDEN: &str = "…";

impl fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewWebhook")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("format", &self.format)
            .field("secret", &HIDDEN)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for WebhookRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRecord")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("format", &self.format)
            .field("enabled", &self.enabled)
            .field("secret", &HIDDEN)
            .field("updated_at_ms", &self.updated_at_ms)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SecretRotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRotation")
            .field("secret", &HIDDEN)
            .field("previous_valid_until_ms", &self.previous_valid_until_ms)
            .field("now_ms", &self.now_ms)
            .finish()
    }
}

impl fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("delivery_key", &self.delivery_key)
            .field("lease_token", &self.lease_token)
            .field("attempt_number", &self.attempt_number)
            .field("webhook_id", &self.webhook_id)
            .field("url", &self.url)
            .field("secret", &HIDDEN)
            .field("previous_secret", &self.previous_secret)
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PreviousSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreviousSecret")
            .field("secret", &HIDDEN)
            .field("valid_until_ms", &self.valid_until_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let previous = PreviousSecret {
            secret: "whsec_old".to_owned(),
            valid_until_ms: 5,
        };
        let rotation = SecretRotation {
            secret: "whsec_new".to_owned(),
            previous_valid_until_ms: 5,
            now_ms: 1,
        };
        for shown in [format!("{previous:?}"), format!("{rotation:?}")] {
            assert!(!shown.contains("whsec_"), "{shown}");
            assert!(shown.contains("valid_until_ms: 5"), "{shown}");
        }
    }
}
