//! `hookd serve`: opens the store, starts the delivery engine and the API in one process,
//! and shuts both down cleanly on Ctrl-C or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use hookd_api::ApiConfig;
use hookd_core::target::ResolveHost;
use hookd_engine::{Engine, EngineConfig, TargetResolver};
use hookd_store::listen::ListenSessions;
use tokio::sync::watch;

use crate::cli::{LogFormat, ServeArgs};
use crate::config::Config;

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    let config = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hookd: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let metrics = install_metrics_recorder()?;
    let store = config.database.open(true).await?;
    // Registration and connections resolve endpoint names separately (same server, no
    // shared cache), so what a connection dials was always resolved for that connection.
    let resolver = || -> anyhow::Result<Arc<dyn ResolveHost>> {
        Ok(Arc::new(TargetResolver::new(config.dns_server)?))
    };
    // `hookd listen` streams: the API serves them, the engine hands attempts to them.
    let listen = ListenSessions::new();
    let engine = Engine::new(
        Arc::clone(&store),
        EngineConfig {
            schedule: config.schedule.clone(),
            attempt_timeout: config.attempt_timeout,
            target_policy: config.target_policy,
            resolver: resolver()?,
            max_in_flight: config.max_in_flight,
            max_in_flight_per_webhook: config.max_in_flight_per_webhook,
            poll_interval: config.poll_interval,
            retention: config.retention,
            disable_after: config.disable_after,
            user_agent: format!("hookd/{}", env!("CARGO_PKG_VERSION")),
            listen: Arc::clone(&listen),
            ..EngineConfig::default()
        },
    )?;
    let api = hookd_api::router(
        Arc::clone(&store),
        ApiConfig {
            target_policy: config.target_policy,
            resolver: Some(resolver()?),
            first_attempt_delay: config.schedule.delay_before(1).unwrap_or_default(),
            max_event_bytes: config.max_event_bytes,
            rate_limit: config.rate_limit,
            metrics: Some(metrics),
            listen: Arc::clone(&listen),
        },
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    // Tests and scripts read this line to learn the port when listening on :0.
    println!("hookd listening on http://{address}");
    tracing::info!(%address, schedule = %config.schedule, "hookd started");

    let (stop_tx, stop_rx) = watch::channel(false);
    // On SIGTERM or Ctrl-C the API stops first (no new connections; requests under way
    // finish), then the engine: publishes that were still running hand it their
    // deliveries before it gives back what it has not started.
    let (engine_stop_tx, engine_stop_rx) = watch::channel(false);
    let engine_task = tokio::spawn(engine.run(wait_for(engine_stop_rx)));
    let server = hookd_api::serve(listener, api, wait_for(stop_rx));
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        // Streams never finish by themselves, and the server waits for responses under
        // way: end them (the sessions stay for their CLIs to resume elsewhere or later).
        listen.close_all();
    });
    let served = server.await.context("serving the API");
    let _ = engine_stop_tx.send(true);
    engine_task
        .await
        .context("the delivery engine stopped abnormally")?;
    served?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Installs the process's metrics recorder (Prometheus, rendered by `GET /metrics`; no
/// listener of its own) and keeps its histograms drained.
fn install_metrics_recorder() -> anyhow::Result<hookd_api::MetricsRenderer> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(hookd_engine::ATTEMPT_DURATION.to_owned()),
            hookd_engine::ATTEMPT_DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(hookd_engine::DELIVERY_LATENCY.to_owned()),
            hookd_engine::DELIVERY_LATENCY_BUCKETS,
        )?
        .install_recorder()
        .context("installing the metrics recorder")?;
    hookd_api::describe_metrics();
    hookd_engine::describe_metrics();
    // Recorded histogram values wait in lock-free buckets until drained: by a scrape, or
    // here, so that a server nobody scrapes does not grow.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(hookd_api::MetricsRenderer::new(move || handle.render()))
}

fn init_logging(format: LogFormat) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("HOOKD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // tokio-postgres logs every statement's parameters at debug level, and those include
    // webhook signing secrets: never below info, whatever HOOKD_LOG asks.
    if let Ok(cap) = "tokio_postgres=info".parse() {
        filter = filter.add_directive(cap);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        // Colours only for a person at a terminal, not in log files.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

pub(crate) fn now_ms() -> i64 {
    hookd_core::time::unix_ms(std::time::SystemTime::now())
}
