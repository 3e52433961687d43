//! hookd itself, started inside this process: the store (a fresh SQLite file, or a
//! PostgreSQL schema), the API on 127.0.0.1:0 and (now or later) the delivery engine, all
//! on a runtime of their own whose threads are named `hookd-…`, so their CPU time can be
//! told apart from the load generator's and the receiver's. Several of them on one
//! PostgreSQL schema are a cluster, as several `hookd serve` processes would be.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hookd_api::ApiConfig;
use hookd_core::ids::{IdKind, new_id};
use hookd_core::schedule::RetrySchedule;
use hookd_core::target::TargetPolicy;
use hookd_engine::{Engine, EngineConfig};
use hookd_store::Store;
use hookd_store::model::NewClient;
use hookd_store::postgres::PostgresStore;
use hookd_store::sealing::SecretKeys;
use hookd_store::sqlite::SqliteStore;
use http::HeaderValue;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::BenchError;
use crate::database::StoreLocation;
use crate::http_conn::basic_auth;

/// Loopback receivers over plain HTTP are what the benchmark delivers to.
const BENCH_TARGETS: TargetPolicy = TargetPolicy {
    allow_private_targets: true,
    allow_http: true,
};

/// How the in-process hookd is configured.
#[derive(Clone, Debug)]
pub(crate) struct HookdSettings {
    pub(crate) schedule: RetrySchedule,
    pub(crate) attempt_timeout: Duration,
    /// Start the delivery engine with the API, or only when asked.
    pub(crate) engine_at_start: bool,
}

impl Default for HookdSettings {
    fn default() -> HookdSettings {
        HookdSettings {
            schedule: RetrySchedule::seeds(),
            attempt_timeout: Duration::from_secs(30),
            engine_at_start: true,
        }
    }
}

/// hookd's runtime. Dropping a runtime blocks, which panics inside async code, so one
/// dropped on an error path is let go in the background; the orderly way is
/// [`InProcessHookd::shut_down`].
struct HookdRuntime(Option<Runtime>);

impl Drop for HookdRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

pub(crate) struct InProcessHookd {
    runtime: HookdRuntime,
    store: Option<Arc<dyn Store>>,
    engine_config: EngineConfig,
    api_addr: SocketAddr,
    auth: HeaderValue,
    stop: watch::Sender<bool>,
    api_task: Option<JoinHandle<std::io::Result<()>>>,
    engine_task: Option<JoinHandle<()>>,
    /// SQLite: removed (with the database) after everything else is shut down.
    dir: Option<TempDir>,
}

impl InProcessHookd {
    /// Starts hookd on a fresh store at `location` (SQLite: a new directory under it),
    /// and creates one API client for the benchmark.
    pub(crate) async fn start(
        location: &StoreLocation,
        settings: &HookdSettings,
        version: &str,
        keys: &SecretKeys,
    ) -> Result<InProcessHookd, BenchError> {
        InProcessHookd::start_with(location, settings, version, keys, None).await
    }

    /// Starts another node on the store of a running one (PostgreSQL: the same schema),
    /// using that node's API client (`auth`), so both serve the same webhooks.
    pub(crate) async fn join(
        location: &StoreLocation,
        settings: &HookdSettings,
        version: &str,
        keys: &SecretKeys,
        auth: HeaderValue,
    ) -> Result<InProcessHookd, BenchError> {
        if !matches!(location, StoreLocation::Postgres { .. }) {
            return Err(BenchError::Other(
                "only hookds on PostgreSQL can share a store".to_owned(),
            ));
        }
        InProcessHookd::start_with(location, settings, version, keys, Some(auth)).await
    }

    async fn start_with(
        location: &StoreLocation,
        settings: &HookdSettings,
        version: &str,
        keys: &SecretKeys,
        existing_client: Option<HeaderValue>,
    ) -> Result<InProcessHookd, BenchError> {
        let keys = keys.clone();
        let built = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("hookd-rt")
            // Idle blocking threads stay, so their CPU time stays countable.
            .thread_keep_alive(Duration::from_secs(24 * 3600))
            .build()
            .map_err(BenchError::Runtime)?;
        let handle = built.handle().clone();
        let runtime = HookdRuntime(Some(built));

        let (store, dir): (Arc<dyn Store>, Option<TempDir>) = match location {
            StoreLocation::SqliteUnder(parent_dir) => {
                let dir = tempfile::Builder::new()
                    .prefix("hookd-bench-")
                    .tempdir_in(parent_dir)
                    .map_err(|e| {
                        BenchError::io(
                            format!("making a directory under {}", parent_dir.display()),
                            e,
                        )
                    })?;
                let path = dir.path().join("hookd.db");
                let store = handle
                    .spawn_blocking(move || {
                        SqliteStore::open_for_serving_with_keys(&path, now_ms(), keys)
                    })
                    .await
                    .map_err(|e| BenchError::Other(format!("opening the store: {e}")))??;
                (Arc::new(store), Some(dir))
            }
            StoreLocation::Postgres { url } => {
                // On hookd's runtime: the store's connections and its LISTEN task run
                // there, so their CPU counts as hookd's.
                let url = url.clone();
                let store = handle
                    .spawn(async move { PostgresStore::connect_with_keys(&url, keys).await })
                    .await
                    .map_err(|e| BenchError::Other(format!("connecting the store: {e}")))??;
                (Arc::new(store), None)
            }
        };

        let auth = match existing_client {
            Some(auth) => auth,
            None => create_client(&handle, &store).await?,
        };

        let router = hookd_api::router(
            Arc::clone(&store),
            ApiConfig {
                target_policy: BENCH_TARGETS,
                first_attempt_delay: settings.schedule.delay_before(1).unwrap_or_default(),
                // The load generator is one client sending as fast as hookd takes it: a
                // per-client limit would measure the limit, not hookd.
                rate_limit: None,
                ..ApiConfig::default()
            },
        );
        let (stop, stop_rx) = watch::channel(false);
        let (addr_tx, addr_rx) = oneshot::channel();
        let api_stop = stop_rx.clone();
        let api_task = handle.spawn(async move {
            let listener = match tokio::net::TcpListener::bind(("127.0.0.1", 0)).await {
                Ok(l) => l,
                Err(e) => {
                    let _ = addr_tx.send(Err(e));
                    return Ok(());
                }
            };
            let _ = addr_tx.send(listener.local_addr());
            hookd_api::serve(listener, router, stopped(api_stop)).await
        });
        let api_addr = addr_rx
            .await
            .map_err(|_| BenchError::Other("the API task ended before listening".to_owned()))?
            .map_err(|e| BenchError::io("binding the API", e))?;

        let mut hookd = InProcessHookd {
            runtime,
            store: Some(store),
            engine_config: EngineConfig {
                schedule: settings.schedule.clone(),
                attempt_timeout: settings.attempt_timeout,
                target_policy: BENCH_TARGETS,
                user_agent: format!("hookd/{version}"),
                ..EngineConfig::default()
            },
            api_addr,
            auth,
            stop,
            api_task: Some(api_task),
            engine_task: None,
            dir,
        };
        if settings.engine_at_start {
            hookd.start_engine().await?;
        }
        Ok(hookd)
    }

    /// Starts the delivery engine (once; later calls do nothing).
    pub(crate) async fn start_engine(&mut self) -> Result<(), BenchError> {
        if self.engine_task.is_some() {
            return Ok(());
        }
        let (Some(runtime), Some(store)) = (&self.runtime.0, &self.store) else {
            return Err(BenchError::Other("hookd is already shut down".to_owned()));
        };
        let store = Arc::clone(store);
        let config = self.engine_config.clone();
        let stop = self.stop.subscribe();
        // Built on hookd's runtime, so its HTTP client belongs there too.
        let engine_task = runtime
            .spawn(async move {
                let engine = Engine::new(store, config)?;
                Ok::<_, BenchError>(tokio::spawn(engine.run(stopped(stop))))
            })
            .await
            .map_err(|e| BenchError::Other(format!("starting the engine: {e}")))??;
        self.engine_task = Some(engine_task);
        Ok(())
    }

    pub(crate) fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// `Authorization` for the benchmark's API client.
    pub(crate) fn auth(&self) -> &HeaderValue {
        &self.auth
    }

    /// Stops the API and the engine, waits (bounded) for them, shuts the runtime down,
    /// drops the store and removes its files. Returns what did not go cleanly.
    pub(crate) async fn shut_down(mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let _ = self.stop.send(true);
        if let Some(api) = self.api_task.take() {
            match tokio::time::timeout(Duration::from_secs(5), api).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => problems.push(format!("the API stopped with an error: {e}")),
                Ok(Err(e)) => problems.push(format!("the API task failed: {e}")),
                Err(_) => problems.push("the API did not stop within 5s".to_owned()),
            }
        }
        if let Some(engine) = self.engine_task.take() {
            // The engine waits up to one attempt timeout for attempts in flight.
            let patience = self.engine_config.attempt_timeout + Duration::from_secs(5);
            match tokio::time::timeout(patience, engine).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(format!("the engine task failed: {e}")),
                Err(_) => problems.push(format!("the engine did not stop within {patience:?}")),
            }
        }
        if let Some(runtime) = self.runtime.0.take() {
            // A runtime cannot be shut down from async code; a plain thread can.
            let (done_tx, done_rx) = oneshot::channel();
            let spawned = std::thread::Builder::new()
                .name("bench-stopper".to_owned())
                .spawn(move || {
                    runtime.shutdown_timeout(Duration::from_secs(5));
                    let _ = done_tx.send(());
                });
            match spawned {
                Ok(_) => {
                    if tokio::time::timeout(Duration::from_secs(10), done_rx)
                        .await
                        .is_err()
                    {
                        problems.push("hookd's runtime did not stop within 10s".to_owned());
                    }
                }
                Err(e) => problems.push(format!("cannot stop hookd's runtime: {e}")),
            }
        }
        // The last reference: the SQLite writer thread ends and the files close; a
        // PostgreSQL store's connections ended with the runtime.
        self.store = None;
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            problems.push(format!("cannot remove the database directory: {e}"));
        }
        problems
    }
}

/// Creates the benchmark's API client in `store` and returns its `Authorization`.
async fn create_client(
    handle: &tokio::runtime::Handle,
    store: &Arc<dyn Store>,
) -> Result<HeaderValue, BenchError> {
    let secret = format!("hks_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()?));
    let client_store = Arc::clone(store);
    let client_secret = secret.clone();
    let client = handle
        .spawn(async move {
            let now = now_ms();
            client_store
                .create_client(NewClient {
                    id: new_id(
                        IdKind::Client,
                        u64::try_from(now).unwrap_or(0),
                        u128::from_le_bytes(random_bytes::<16>()?),
                    ),
                    name: "bench".to_owned(),
                    secret_sha256: Sha256::digest(client_secret.as_bytes()).into(),
                    now_ms: now,
                })
                .await
                .map_err(BenchError::from)
        })
        .await
        .map_err(|e| BenchError::Other(format!("creating the client: {e}")))??;
    basic_auth(&client.id, &secret)
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

fn random_bytes<const N: usize>() -> Result<[u8; N], BenchError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| {
        BenchError::Other(format!("the system random number generator failed: {e}"))
    })?;
    Ok(bytes)
}

pub(crate) fn now_ms() -> i64 {
    hookd_core::time::unix_ms(std::time::SystemTime::now())
}
