//! The delivery engine: claims due deliveries from the store, sends each attempt, and
//! records what happened; and purges events past their retention.
//!
//! One dispatcher task per process claims work in batches and starts one task per
//! attempt. A global semaphore bounds attempts in flight, and a per-webhook cap keeps a
//! slow or dead endpoint from taking the whole pool: deliveries of a webhook at its cap
//! are left unclaimed for others to go first. Nothing here holds a database transaction
//! across an HTTP call: a claim and a recorded outcome are each one short write.
//!
//! Main types: [`Engine`] and [`EngineConfig`].

mod attempt;
mod client;
mod dispatcher;
mod listen;
mod observe;
mod replay;
mod retention;

pub use attempt::{MAX_LOGGED_BODY, error_chain, read_logged_body};
pub use client::TargetResolver;
pub use listen::LISTEN_SESSION_GRACE;
pub use observe::{
    ATTEMPT_DURATION, ATTEMPT_DURATION_BUCKETS, ATTEMPTS, DELIVERY_LATENCY,
    DELIVERY_LATENCY_BUCKETS, describe_metrics,
};

use std::sync::Arc;
use std::time::Duration;

use hookd_core::schedule::RetrySchedule;
use hookd_core::target::{ResolveHost, TargetPolicy};
use hookd_store::Store;
use hookd_store::listen::ListenSessions;

/// How the engine behaves; every field has a production default.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub schedule: RetrySchedule,
    pub attempt_timeout: Duration,
    pub target_policy: TargetPolicy,
    /// Resolves endpoint names; the policy then checks every address before it is dialled.
    pub resolver: Arc<dyn ResolveHost>,
    /// Attempts in flight in this process, across all webhooks.
    pub max_in_flight: usize,
    /// Attempts in flight to any one webhook.
    pub max_in_flight_per_webhook: usize,
    /// Most deliveries claimed in one go.
    pub claim_batch: usize,
    /// How often to look for due work when nothing wakes the dispatcher (retries becoming
    /// due are found sooner, by asking the store when the next one is due).
    pub poll_interval: Duration,
    /// The `user-agent` of every attempt.
    pub user_agent: String,
    /// Events received longer ago than this are purged with their deliveries and attempt
    /// logs, once none of their deliveries is pending; `None` keeps everything.
    pub retention: Option<Duration>,
    /// A webhook whose attempts have all failed for this long is disabled, and its client
    /// told with a `webhook.disabled` event; `None` never disables for that.
    pub disable_after: Option<Duration>,
    /// The `hookd listen` sessions connected to this process's API: give both the same.
    pub listen: Arc<ListenSessions>,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            schedule: RetrySchedule::seeds(),
            attempt_timeout: Duration::from_secs(30),
            target_policy: TargetPolicy::default(),
            resolver: Arc::new(TargetResolver::system()),
            max_in_flight: 1024,
            max_in_flight_per_webhook: 64,
            claim_batch: 256,
            poll_interval: Duration::from_secs(1),
            user_agent: "hookd".to_owned(),
            retention: Some(Duration::from_secs(30 * 24 * 60 * 60)),
            disable_after: Some(hookd_core::health::DEFAULT_DISABLE_AFTER),
            listen: ListenSessions::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
}

/// The running delivery machinery of one process.
pub struct Engine {
    store: Arc<dyn Store>,
    config: EngineConfig,
    http: crate::client::HttpClient,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, config: EngineConfig) -> Result<Engine, EngineError> {
        let http = client::build(&config)?;
        Ok(Engine {
            store,
            config,
            http,
        })
    }

    /// Delivers (and purges past retention, see [`EngineConfig::retention`], and works
    /// through bulk replay jobs) until
    /// `shutdown` completes, then waits (up to the attempt timeout) for attempts in flight
    /// to be recorded. Work not finished stays leased and is picked up again when its
    /// lease ends.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Bulk replay jobs, in batches beside delivery; stops with it.
        let replayer = tokio::spawn(replay::run(Arc::clone(&self.store), stop_rx.clone()));
        // `hookd listen` sessions: seen while connected, deleted once stale.
        let listen_upkeep = tokio::spawn(listen::keep(
            Arc::clone(&self.store),
            Arc::clone(&self.config.listen),
            stop_rx.clone(),
        ));
        let purger = self
            .config
            .retention
            .map(|age| tokio::spawn(retention::run(Arc::clone(&self.store), age, stop_rx)));
        // Retention stops with the dispatcher's shutdown (dropping `stop_tx` stops it too).
        let shutdown = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        dispatcher::run(self.store, self.config, self.http, shutdown).await;
        if let Some(purger) = purger {
            let _ = purger.await;
        }
        let _ = replayer.await;
        let _ = listen_upkeep.await;
    }
}
