//! Integration tests of hookd-store's backends, through the public `Store` trait and the
//! backends' constructors only, on real databases: SQLite files in temporary directories
//! and PostgreSQL schemas.
//!
//! Behavioural tests run once per backend (`backend_tests!`): `name::sqlite` and
//! `name::postgres`, the latter on a fresh schema of `HOOKD_TEST_POSTGRES_URL` (skipped
//! when that is unset, except under `CI=true`). Plain `#[tokio::test]`s are about the
//! SQLite backend itself and say why.
//!
//! The store takes time as data (`now_ms`), so lease expiry and retries are simulated by
//! passing later times, never by sleeping. One test binary for the crate; the modules
//! group the tests by topic and share the helpers below.

#![allow(clippy::unwrap_used)]

mod claims;
mod cluster;
mod delivery_log;
mod durability;
mod fanout;
mod group_commit;
mod handoff;
mod health;
mod leases;
mod listen;
mod replay;
mod retention;
mod rotation;
mod sealing;
mod tenancy;
mod test_events;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hookd_core::envelope::EnvelopeFormat;
use hookd_core::json::{CanonicalJson, JsonLimits};
use hookd_store::model::{
    ClaimRequest, ClaimedDelivery, DeliveryState, FinishedAttempt, HealthPolicy, NewClient,
    NewEvent, NewWebhook, NextStep, Published, WebhookRecord,
};
use hookd_store::postgres::PostgresStore;
use hookd_store::sealing::SecretKeys;
use hookd_store::sqlite::SqliteStore;
use hookd_store::{Store, StoreError};
use hookd_testkit::Backend;
use hookd_testkit::postgres::TestSchema;
use tempfile::TempDir;

/// The "current time" most tests start at, in unix ms.
const T0: i64 = 1_000_000;

/// A database path inside a fresh temporary directory (kept alive by the returned guard).
fn db_path() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookd.db");
    (dir, path)
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).unwrap()
}

/// A store on a fresh database of one backend; derefs to `dyn Store`. Dropping it drops
/// the database too.
struct TestStore {
    /// Before `database`, so the store is closed before its database goes.
    store: Arc<dyn Store>,
    database: Database,
    /// What the store seals webhook secrets with.
    keys: SecretKeys,
}

enum Database {
    Sqlite { _dir: TempDir, path: PathBuf },
    Postgres(TestSchema),
}

impl Database {
    async fn open(&self, keys: &SecretKeys) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Database::Sqlite { path, .. } => {
                Arc::new(SqliteStore::open_with_keys(path, keys.clone())?)
            }
            Database::Postgres(schema) => {
                Arc::new(PostgresStore::connect_with_keys(schema.url(), keys.clone()).await?)
            }
        })
    }
}

impl TestStore {
    async fn new(backend: Backend) -> TestStore {
        TestStore::with_keys(backend, SecretKeys::none()).await
    }

    /// A store on a fresh database that seals webhook secrets with `keys`.
    async fn with_keys(backend: Backend, keys: SecretKeys) -> TestStore {
        let database = match backend {
            Backend::Sqlite => {
                let (dir, path) = db_path();
                Database::Sqlite { _dir: dir, path }
            }
            Backend::Postgres => Database::Postgres(TestSchema::create().await),
        };
        TestStore {
            store: database.open(&keys).await.unwrap(),
            database,
            keys,
        }
    }

    /// Closes the store, then opens the same database again, as a restarted process would
    /// (panics if the store is still shared, since then it would not be closed).
    async fn reopen(self) -> TestStore {
        let keys = self.keys.clone();
        match self.reopen_with(keys).await {
            Ok(reopened) => reopened,
            Err((e, _)) => panic!("reopening failed: {e}"),
        }
    }

    /// [`TestStore::reopen`] with other keys.
    async fn reopen_with(self, keys: SecretKeys) -> Result<TestStore, (StoreError, Database)> {
        TestStore::open_on(self.close(), keys).await
    }

    /// Closes the store and hands back its database.
    fn close(self) -> Database {
        let TestStore {
            store, database, ..
        } = self;
        assert_eq!(Arc::strong_count(&store), 1, "the store is still in use");
        drop(store);
        database
    }

    /// Opens a store on `database`; the database comes back with the error if the store
    /// refuses to open.
    async fn open_on(
        database: Database,
        keys: SecretKeys,
    ) -> Result<TestStore, (StoreError, Database)> {
        match database.open(&keys).await {
            Ok(store) => Ok(TestStore {
                store,
                database,
                keys,
            }),
            Err(e) => Err((e, database)),
        }
    }

    fn shared(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }
}

impl Deref for TestStore {
    type Target = dyn Store;

    fn deref(&self) -> &(dyn Store + 'static) {
        &*self.store
    }
}

async fn add_client(store: &dyn Store, id: &str) {
    store
        .create_client(NewClient {
            id: id.to_owned(),
            name: format!("{id} name"),
            secret_sha256: [7; 32],
            now_ms: T0,
        })
        .await
        .unwrap();
}

fn webhook(client_id: &str, id: &str, events: &[&str]) -> NewWebhook {
    NewWebhook {
        id: id.to_owned(),
        client_id: client_id.to_owned(),
        url: format!("https://receiver.example/{id}"),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        format: EnvelopeFormat::Typed,
        signature_header: EnvelopeFormat::Typed.default_signature_header().to_owned(),
        enabled: true,
        description: None,
        metadata: serde_json::json!({}),
        secret: format!("whsec_{id}"),
        now_ms: T0,
    }
}

async fn add_webhook(
    store: &dyn Store,
    client_id: &str,
    id: &str,
    events: &[&str],
) -> WebhookRecord {
    store
        .create_webhook(webhook(client_id, id, events))
        .await
        .unwrap()
}

fn json(text: &str) -> CanonicalJson {
    CanonicalJson::parse(text, JsonLimits::default()).unwrap()
}

/// A server-generated event, due at once.
fn event(id: &str, event_type: &str, now_ms: i64) -> NewEvent {
    NewEvent {
        id: id.to_owned(),
        id_from_client: false,
        idempotency_key: None,
        event_type: event_type.to_owned(),
        data: json(r#"{"n":1}"#),
        now_ms,
        first_attempt_at_ms: now_ms,
        test: false,
        only_webhook_id: None,
    }
}

async fn publish_one(store: &dyn Store, client_id: &str, event: NewEvent) -> Published {
    let mut published = store.publish_events(client_id, vec![event]).await.unwrap();
    assert_eq!(published.len(), 1);
    published.pop().unwrap()
}

/// How many deliveries a publish created; panics unless the event is new.
fn new_deliveries(published: &Published) -> usize {
    match published {
        Published::New { deliveries, .. } => *deliveries,
        Published::Existing { event } => panic!("expected a new event, got existing {event:?}"),
    }
}

/// A claim without any per-webhook limit in play.
fn claim_at(now_ms: i64, lease_ms: i64) -> ClaimRequest {
    ClaimRequest {
        now_ms,
        lease_ms,
        limit: 100,
        max_per_webhook: 100,
        in_flight: Vec::new(),
    }
}

async fn claim(store: &dyn Store, request: ClaimRequest) -> Vec<ClaimedDelivery> {
    store.claim_due_deliveries(request).await.unwrap()
}

/// The outcome of an attempt at `claimed`, reported under `lease_token`.
fn finished(
    claimed: &ClaimedDelivery,
    lease_token: i64,
    started_at_ms: i64,
    response_status: Option<u16>,
    next: NextStep,
) -> FinishedAttempt {
    FinishedAttempt {
        id: format!("att_{}_{lease_token}", claimed.delivery_key),
        delivery_key: claimed.delivery_key,
        lease_token,
        webhook_key: claimed.webhook_key,
        attempt_number: claimed.attempt_number,
        started_at_ms,
        duration_ms: 7,
        format: claimed.format,
        request_headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        response_status,
        response_headers: vec![("server".to_owned(), "test".to_owned())],
        response_body: response_status.map(|s| format!("status {s}")),
        error: None,
        next,
    }
}

async fn record(store: &dyn Store, attempt: FinishedAttempt) {
    store
        .record_attempts(vec![attempt], HealthPolicy::default())
        .await
        .unwrap();
}

/// `(webhook id, state)` of each delivery of an event, sorted by webhook id.
async fn delivery_states(
    store: &dyn Store,
    client_id: &str,
    event_id: &str,
) -> Vec<(String, DeliveryState)> {
    let detail = store.get_event(client_id, event_id).await.unwrap().unwrap();
    let mut states: Vec<_> = detail
        .deliveries
        .into_iter()
        .map(|d| (d.webhook_id, d.state))
        .collect();
    states.sort_by(|a, b| a.0.cmp(&b.0));
    states
}

fn pair(webhook_id: &str, state: DeliveryState) -> (String, DeliveryState) {
    (webhook_id.to_owned(), state)
}
