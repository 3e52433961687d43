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
mod deliveries;
mod docs;
mod event_types;
mod events;
mod health;
mod observability;
mod pagination;
mod random;
mod replay;
mod test_events;
mod time;
mod webhooks;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use hookd_core::target::TargetPolicy;
use hookd_store::Store;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

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
    let (routes, _) = api_routes().split_for_parts();
    routes
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::disable())
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
        .merge(docs::routes())
}

/// The OpenAPI document of the API, as `GET /openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
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
