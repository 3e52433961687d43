//! hookd's HTTP API: an axum [`Router`] over a `dyn Store`.
//!
//! Handlers extract and validate input, make one store call, and map the result to JSON.
//! Every failure a client can cause is a 4xx with `{"error":{"code","message"}}`
//! ([`error::ApiError`]); nothing here panics on input. The API never talks to the
//! delivery engine: a published event reaches it through the store, which signals due work
//! after the commit. The one thing they share in memory is `hookd listen`'s sessions
//! (`hookd_store::listen::ListenSessions`): the engine hands their attempts to the streams
//! this API serves.

pub mod error;

mod auth;
mod body;
mod deliveries;
mod docs;
mod event_types;
mod events;
mod health;
mod listen;
mod observability;
mod pagination;
mod random;
mod rate_limit;
mod replay;
mod server;
mod test_events;
mod time;
mod webhooks;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use hookd_core::target::{ResolveHost, TargetPolicy};
use hookd_store::Store;
use hookd_store::listen::ListenSessions;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

/// Settings of the API that come from the server's configuration.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub target_policy: TargetPolicy,
    /// Resolves the names of endpoint URLs at registration (the engine checks again at
    /// connect time); `None`: the system's resolver.
    pub resolver: Option<Arc<dyn ResolveHost>>,
    /// The retry schedule's first step: when a new delivery's first attempt is due.
    pub first_attempt_delay: Duration,
    /// Largest accepted body of one event (and of any other single-object request).
    pub max_event_bytes: usize,
    /// Requests per authenticated client; `None` for no limit.
    pub rate_limit: Option<RateLimit>,
    /// What `GET /metrics` shows before the queue gauges: the text of the metrics recorder
    /// the binary installed. Without one, `/metrics` shows only the queue gauges.
    pub metrics: Option<MetricsRenderer>,
    /// The `hookd listen` sessions whose streams this API serves; the engine of the same
    /// process must get the same, since it hands their attempts over through it.
    pub listen: Arc<ListenSessions>,
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
pub use rate_limit::{REQUESTS_RATE_LIMITED, RateLimit, RateLimitError};

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            target_policy: TargetPolicy::default(),
            resolver: None,
            first_attempt_delay: Duration::ZERO,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            rate_limit: None,
            metrics: None,
            listen: ListenSessions::new(),
        }
    }
}

/// The default of [`ApiConfig::max_event_bytes`]: 256 KiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) clients: Arc<auth::ClientCache>,
    pub(crate) rate_limiter: Option<Arc<rate_limit::ClientRateLimiter>>,
    pub(crate) listen: Arc<ListenSessions>,
}

/// The whole API. Bodies are read by our own extractor, which enforces the size limits
/// with a JSON 413, so axum's default limit is lifted here. Oversized paths are a 414
/// before routing, and axum's own plain-text rejections (a path that is not UTF-8, say)
/// are turned into the JSON error shape.
pub fn router(store: Arc<dyn Store>, config: ApiConfig) -> Router {
    let state = AppState {
        store,
        rate_limiter: config
            .rate_limit
            .map(|limit| Arc::new(rate_limit::ClientRateLimiter::new(limit))),
        listen: Arc::clone(&config.listen),
        config: Arc::new(config),
        clients: Arc::new(auth::ClientCache::default()),
    };
    let (routes, _) = api_routes().split_for_parts();
    routes
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::map_response(error::json_rejections))
        .layer(axum::middleware::from_fn(body::limit_uri_length))
        .with_state(state)
}

/// Every route of the API, each registered once with `utoipa_axum::routes!`, which takes
/// the path and methods from the handler's `#[utoipa::path]`: the router [`router`] serves
/// and the document [`openapi`] describes are two views of this one table. A route added
/// here with plain `.route(…)` would be served but undocumented, so there is none.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(health::routes())
        .merge(observability::routes())
        .merge(webhooks::routes())
        .merge(deliveries::routes())
        .merge(test_events::routes())
        .merge(events::routes())
        .merge(replay::routes())
        .merge(event_types::routes())
        .merge(listen::routes())
        .merge(docs::routes())
}

/// The OpenAPI document of the API, as `GET /openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_routes().into_openapi();
    rate_limit::document(&mut doc);
    doc
}

/// Every route the API serves, as `(METHOD, path)` with OpenAPI-style path parameters
/// (`/v2/webhooks/{id}`), read from the route table [`router`] is built from.
pub fn route_list() -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for (path, item) in &api_routes().get_openapi().paths.paths {
        for method in docs::methods(item) {
            routes.push((method.to_owned(), path.clone()));
        }
    }
    routes
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests under way
/// finish. Request heads are bounded in size, header count and time (`server.rs`); every
/// connection gets `TCP_NODELAY`: answers are small and must not wait on Nagle's algorithm.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, router, shutdown).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The paths of an axum router, read from its `Debug` text (axum has no other way to
    /// list them): `Router { path_router: … Node { paths: {RouteId(0): "/healthz", …} } …,
    /// fallback_router: … }`.
    fn axum_paths(router: &Router<AppState>) -> BTreeSet<String> {
        let text = format!("{router:?}");
        let routes = text.split("fallback_router").next().unwrap_or_default();
        routes
            .split("RouteId(")
            .skip(1)
            .filter_map(|entry| {
                let quoted = entry.split_once("): \"")?.1;
                Some(quoted[..quoted.find('"')?].to_owned())
            })
            .collect()
    }

    /// Guards the "one route table" rule: a route added with plain `.route(…)` would be
    /// served by axum but missing from `route_list()` and `/openapi.json`.
    #[test]
    fn the_router_serves_exactly_the_documented_paths() {
        let (served, _) = api_routes().split_for_parts();
        let served = axum_paths(&served);
        assert!(served.contains("/v2/events/{id}"), "{served:?}");
        let listed: BTreeSet<String> = route_list().into_iter().map(|(_, path)| path).collect();
        assert_eq!(served, listed);
    }

    #[test]
    fn every_route_has_a_documented_operation() {
        let doc = openapi();
        let routes = route_list();
        assert!(routes.len() >= 19, "{routes:?}");
        for (method, path) in routes {
            assert!(doc.paths.paths.contains_key(&path), "{method} {path}");
        }
    }
}
