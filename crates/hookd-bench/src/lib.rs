//! The benchmark behind `hookd bench`: hookd started in-process on a fresh store (a
//! SQLite file, or a schema in a PostgreSQL database), the benchmark's own receiver and a
//! load generator publishing over real HTTP, all on one machine, measured scenario by
//! scenario into a [`Report`].
//!
//! hookd runs on its own tokio runtime (threads named `hookd-…`) and the load generator
//! and receiver on another (`bench-…`), so hookd's CPU time is read per thread from
//! `/proc`; a local PostgreSQL server's CPU time is read from its processes and reported
//! apart. Every wait is bounded; a scenario that goes wrong is reported as failed or
//! incomplete and the others still run; PostgreSQL schemas are dropped after each
//! scenario either way.
//!
//! Main items: [`run`], [`BenchOptions`], [`Scenario`], [`Report`].

mod api_client;
mod database;
mod error;
mod hookd;
mod http_conn;
mod latency;
mod load;
mod options;
mod receiver;
mod report;
mod scenarios;
mod system;

use std::time::Duration;

pub use database::SCHEMA_PREFIX;
pub use error::BenchError;
pub use options::{BenchOptions, DatabaseChoice, Scenario};
pub use report::{Metric, Report, ScenarioReport, Status};
pub use system::MachineFacts;

use crate::database::Databases;
use crate::hookd::{HookdSettings, InProcessHookd};
use crate::latency::Epoch;

/// What [`run`] tells as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    Started(Scenario),
    Finished(&'a ScenarioReport),
}

/// Runs the chosen scenarios one after the other and returns their figures. Blocks the
/// calling thread, which must not be inside an async runtime (use `spawn_blocking`).
pub fn run(
    options: &BenchOptions,
    on_progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Report, BenchError> {
    options.check()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-rt")
        .build()
        .map_err(BenchError::Runtime)?;
    let epoch = Epoch::now();
    let mut report = runtime.block_on(async {
        let databases = Databases::open(&options.database).await?;
        let machine = MachineFacts::gather(&options.hookd_version, databases.description());
        let rss_before_hookd = system::rss_bytes();
        let rss_idle = idle_rss(&databases, &options.hookd_version).await?;
        let mut ctx = scenarios::Context {
            options,
            epoch,
            databases: &databases,
            empty_queue_delivered_per_s: None,
        };
        let mut done = Vec::new();
        for scenario in &options.scenarios {
            on_progress(Progress::Started(*scenario));
            let scenario_report = scenarios::run(*scenario, &mut ctx).await;
            on_progress(Progress::Finished(&scenario_report));
            done.push(scenario_report);
        }
        Ok::<_, BenchError>(Report {
            machine,
            duration_s: options.duration.as_secs_f64(),
            connections: options.connections,
            backlog_size: options.backlog_size,
            rss_before_hookd_mb: rss_before_hookd.map(scenarios::megabytes),
            rss_idle_mb: rss_idle.map(scenarios::megabytes),
            ceiling_per_s: None,
            database_schemas: databases.schemas_made(),
            scenarios: done,
        })
    })?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    report.compare_to_ceiling();
    Ok(report)
}

/// The process's resident memory with one hookd started and left idle for a moment.
async fn idle_rss(databases: &Databases, version: &str) -> Result<Option<u64>, BenchError> {
    let rss = idle_rss_of_one(databases, version).await;
    for problem in databases.drop_schemas().await {
        tracing::warn!("{problem}");
    }
    rss
}

async fn idle_rss_of_one(databases: &Databases, version: &str) -> Result<Option<u64>, BenchError> {
    let location = databases.fresh_location().await?;
    let keys = hookd_store::sealing::SecretKeys::none();
    let hookd = InProcessHookd::start(&location, &HookdSettings::default(), version, &keys).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = system::rss_bytes();
    let _ = hookd.shut_down().await;
    Ok(rss)
}
