//! hookd's HTTP API: an axum [`Router`] over a `dyn Store`.
//!
//! Handlers extract and validate input, make one store call, and map the result to JSON.
//! Every failure a client can cause is a 4xx with `{"error":{"code","message"}}`
//! ([`error::ApiError`]); nothing here panics on input. The API never talks to the
//! delivery engine: a published event reaches it through the store, which signals due work
//! after the commit.

pub mod error;

mod auth;
mod body;
mod event_types;
mod events;
mod health;
mod observability;
mod pagination;
mod random;
mod time;
mod webhooks;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use hookd_core::target::TargetPolicy;
use hookd_store::Store;

/// Settings of the API that come from the server's configuration.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub target_policy: TargetPolicy,
    /// The retry schedule's first step: when a new delivery's first attempt is due.
    pub first_attempt_delay: Duration,
    /// Largest accepted body of one event (and of any other single-object request).
    pub max_event_bytes: usize,
    /// What `GET /metrics` shows before the queue gauges: the text of the metrics recorder
    /// the binary installed. Without one, `/metrics` shows only the queue gauges.
    pub metrics: Option<MetricsRenderer>,
}

/// Renders the process's recorded metrics in Prometheus text format (for example
/// `PrometheusHandle::render`). The API does not install a recorder itself.
#[derive(Clone)]
pub struct MetricsRenderer(Arc<dyn Fn() -> String + Send + Sync>);

impl MetricsRenderer {
    pub fn new(render: impl Fn() -> String + Send + Sync + 'static) -> MetricsRenderer {
        MetricsRenderer(Arc::new(render))
    }

    pub(crate) fn render(&self) -> String {
        (self.0)()
    }
}

impl fmt::Debug for MetricsRenderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsRenderer")
    }
}

pub use observability::{
    DELIVERIES_CREATED, DELIVERIES_DUE, DELIVERIES_PENDING, EVENTS_ACCEPTED, OLDEST_PENDING_AGE,
    describe_metrics,
};

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            target_policy: TargetPolicy::default(),
            first_attempt_delay: Duration::ZERO,
            max_event_bytes: 256 * 1024,
            metrics: None,
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) clients: Arc<auth::ClientCache>,
}

/// The whole API. Bodies are read by our own extractor, which enforces the size limits
/// with a JSON 413, so axum's default limit is lifted here.
pub fn router(store: Arc<dyn Store>, config: ApiConfig) -> Router {
    let state = AppState {
        store,
        config: Arc::new(config),
        clients: Arc::new(auth::ClientCache::default()),
    };
    Router::new()
        .merge(health::routes())
        .merge(observability::routes())
        .merge(webhooks::routes())
        .merge(events::routes())
        .merge(event_types::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes. Every connection gets
/// `TCP_NODELAY`: answers are small and must not wait on Nagle's algorithm.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
