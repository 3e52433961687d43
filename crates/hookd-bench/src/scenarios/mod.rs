//! The scenarios, each a module with one `run` that measures into a [`ScenarioReport`],
//! and what they share: the run's context, a hookd (one or more nodes) + receiver + API
//! client set-up, and how figures such as latency and CPU are written down.

mod backlog;
mod ceiling;
mod cluster;
mod fanout;
mod ingest;
mod isolation;
mod latency;
mod retry_storm;
mod throughput;

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http::StatusCode;

use crate::api_client::{ApiClient, event_body};
use crate::database::Databases;
use crate::hookd::{HookdSettings, InProcessHookd};
use crate::latency::{Epoch, LatencySummary};
use crate::load::{LoadPlan, LoadResult, Pace};
use crate::receiver::{Behaviour, Receiver};
use crate::report::{ScenarioReport, Status};
use crate::system::{self, CpuSnapshot, CpuUse};
use crate::{BenchError, BenchOptions, Scenario};

/// The ceiling's headline figure, which other rates are divided by.
pub(crate) const CEILING_METRIC: &str = "requests";

/// How long a `/hang/` request is held at most (the receiver's stop ends it sooner).
const HANG_FOR: Duration = Duration::from_secs(120);

/// What scenarios share during one run.
pub(crate) struct Context<'a> {
    pub(crate) options: &'a BenchOptions,
    pub(crate) epoch: Epoch,
    /// Where each store is made, and what removes them after the scenario.
    pub(crate) databases: &'a Databases,
    /// The `throughput` scenario's end-to-end deliveries/s, for `backlog` to compare with.
    pub(crate) empty_queue_delivered_per_s: Option<f64>,
}

impl Context<'_> {
    /// How long to wait for deliveries after publishing stopped.
    pub(crate) fn drain_patience(&self) -> Duration {
        (self.options.duration * 10).max(Duration::from_secs(30))
    }

    /// CPU used so far by hookd's threads and, on a local PostgreSQL, by the server.
    pub(crate) fn cpu_snapshot(&self) -> CpuSnapshot {
        CpuSnapshot::take(!self.databases.is_postgres(), self.databases.postmaster())
    }
}

/// Runs one scenario; failures end up in the report, never as a panic or an error.
pub(crate) async fn run(scenario: Scenario, ctx: &mut Context<'_>) -> ScenarioReport {
    let started = Instant::now();
    let mut report = ScenarioReport::new(scenario.name());
    let peak_is_per_scenario = system::reset_peak_rss();
    let result = match scenario {
        Scenario::Ceiling => ceiling::run(ctx, &mut report).await,
        Scenario::Ingest => ingest::run(ctx, &mut report).await,
        Scenario::Throughput => throughput::run(ctx, &mut report).await,
        Scenario::Latency => latency::run(ctx, &mut report).await,
        Scenario::Fanout => fanout::run(ctx, &mut report).await,
        Scenario::Backlog => backlog::run(ctx, &mut report).await,
        Scenario::Isolation => isolation::run(ctx, &mut report).await,
        Scenario::RetryStorm => retry_storm::run(ctx, &mut report).await,
        Scenario::Cluster => cluster::run(ctx, &mut report).await,
    };
    if let Err(e) = result {
        report.fail(e.to_string());
    }
    // Every store the scenario made is shut down by now (also on failure).
    for problem in ctx.databases.drop_schemas().await {
        report.note(problem);
    }
    if report.status == Status::Skipped {
        report.seconds = started.elapsed().as_secs_f64();
        return report;
    }
    if let Some(peak) = system::peak_rss_bytes() {
        report.metric("peak RSS (whole process)", megabytes(peak), "MB");
        if !peak_is_per_scenario {
            report.note(
                "the kernel refused to reset the peak, so peak RSS is since the process started",
            );
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

pub(crate) fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// A running hookd with the benchmark's receiver and an API client (to the first node)
/// for set-up calls.
pub(crate) struct Setup {
    pub(crate) hookd: InProcessHookd,
    /// Further nodes on the same store (PostgreSQL only), sharing the client of `hookd`.
    pub(crate) peers: Vec<InProcessHookd>,
    pub(crate) receiver: Receiver,
    pub(crate) api: ApiClient,
}

impl Setup {
    /// Waits until the receiver has answered `target` deliveries with 200, or marks the
    /// scenario incomplete saying how many of which `what` arrived within `patience`.
    pub(crate) async fn await_deliveries(
        &self,
        report: &mut ScenarioReport,
        target: u64,
        patience: Duration,
        what: &str,
    ) {
        if !self.receiver.wait_for_ok(target, patience).await {
            report.incomplete(format!(
                "{} of {target} {what} arrived within {patience:?}",
                self.receiver.counts().ok
            ));
        }
    }

    /// One hookd on a fresh store.
    pub(crate) async fn start(
        ctx: &Context<'_>,
        settings: &HookdSettings,
    ) -> Result<Setup, BenchError> {
        Setup::start_nodes(ctx, settings, 1).await
    }

    /// `nodes` hookds on one fresh store (more than one needs PostgreSQL), each with
    /// its own runtime, store connections, API and engine.
    pub(crate) async fn start_nodes(
        ctx: &Context<'_>,
        settings: &HookdSettings,
        nodes: usize,
    ) -> Result<Setup, BenchError> {
        let location = ctx.databases.fresh_location().await?;
        let receiver = Receiver::start(ctx.epoch, HANG_FOR).await?;
        let version = &ctx.options.hookd_version;
        let keys = &ctx.options.secret_keys;
        let hookd = match InProcessHookd::start(&location, settings, version, keys).await {
            Ok(h) => h,
            Err(e) => {
                receiver.stop().await;
                return Err(e);
            }
        };
        let mut peers = Vec::new();
        for _ in 1..nodes {
            match InProcessHookd::join(&location, settings, version, keys, hookd.auth().clone())
                .await
            {
                Ok(peer) => peers.push(peer),
                Err(e) => {
                    for node in peers.into_iter().chain([hookd]) {
                        let _ = node.shut_down().await;
                    }
                    receiver.stop().await;
                    return Err(e);
                }
            }
        }
        match ApiClient::connect(hookd.api_addr(), hookd.auth().clone()).await {
            Ok(api) => Ok(Setup {
                hookd,
                peers,
                receiver,
                api,
            }),
            Err(e) => {
                for node in peers.into_iter().chain([hookd]) {
                    let _ = node.shut_down().await;
                }
                receiver.stop().await;
                Err(e)
            }
        }
    }

    /// Registers `count` webhooks (for every event type) at endpoints with `behaviour`,
    /// numbered from `first`.
    pub(crate) async fn add_webhooks(
        &mut self,
        behaviour: Behaviour,
        first: usize,
        count: usize,
    ) -> Result<(), BenchError> {
        for n in first..first + count {
            let url = self.receiver.url(behaviour, n);
            self.api.create_webhook(&url).await?;
        }
        Ok(())
    }

    /// Single-event publishes to this hookd (its connections alternating between the
    /// nodes' APIs when there are several).
    pub(crate) fn publish_plan(
        &self,
        ctx: &Context<'_>,
        pace: Pace,
        connections: usize,
    ) -> LoadPlan {
        LoadPlan {
            targets: std::iter::once(&self.hookd)
                .chain(&self.peers)
                .map(InProcessHookd::api_addr)
                .collect(),
            path: "/v2/events".to_owned(),
            auth: Some(self.hookd.auth().clone()),
            connections,
            duration: ctx.options.duration,
            pace,
            max_requests: None,
            expect: StatusCode::ACCEPTED,
            body: std::sync::Arc::new(event_body),
            gate: None,
        }
    }

    /// Shuts everything down; what did not stop cleanly becomes a note.
    pub(crate) async fn finish(self, report: &mut ScenarioReport) {
        drop(self.api);
        let dropped = self.receiver.counts().dropped;
        if dropped > 0 {
            report.note(format!(
                "the receiver dropped {dropped} requests unanswered"
            ));
        }
        let nodes = 1 + self.peers.len();
        for (n, node) in std::iter::once(self.hookd).chain(self.peers).enumerate() {
            for problem in node.shut_down().await {
                if nodes > 1 {
                    report.note(format!("shutdown of node {}: {problem}", n + 1));
                } else {
                    report.note(format!("shutdown: {problem}"));
                }
            }
        }
        self.receiver.stop().await;
    }
}

/// Writes p50/p95/p99/max of a latency histogram, each as a figure.
pub(crate) fn write_latency(report: &mut ScenarioReport, what: &str, histogram: &Histogram<u64>) {
    if let Some(summary) = LatencySummary::of(histogram) {
        report.metric(format!("{what} p50"), summary.p50_ms, "ms");
        report.metric(format!("{what} p95"), summary.p95_ms, "ms");
        report.metric(format!("{what} p99"), summary.p99_ms, "ms");
        report.metric(format!("{what} max"), summary.max_ms, "ms");
    }
}

/// Writes p50 and p99 only, where the whole distribution would crowd the table.
pub(crate) fn write_latency_brief(
    report: &mut ScenarioReport,
    what: &str,
    histogram: &Histogram<u64>,
) {
    if let Some(summary) = LatencySummary::of(histogram) {
        report.metric(format!("{what} p50"), summary.p50_ms, "ms");
        report.metric(format!("{what} p99"), summary.p99_ms, "ms");
    }
}

/// Writes hookd's CPU use: seconds per 1 000 units of work, and cores kept busy by all
/// of hookd and by its SQLite writer thread (near 1 core, that thread is the limit); on
/// a local PostgreSQL the same for the server's processes, apart from hookd's.
pub(crate) fn write_cpu(
    report: &mut ScenarioReport,
    what: &str,
    cpu: CpuUse,
    units: u64,
    wall: Duration,
) {
    if units > 0 {
        report.metric(
            format!("hookd CPU per 1000 {what}"),
            cpu.seconds * 1000.0 / units as f64,
            "s",
        );
    }
    let wall = wall.as_secs_f64();
    if wall > 0.0 {
        report.metric(
            format!("hookd CPU busy ({what})"),
            cpu.seconds / wall,
            "cores",
        );
        if let Some(writer) = cpu.writer_seconds {
            report.metric(
                format!("SQLite writer thread busy ({what})"),
                writer / wall,
                "cores",
            );
        }
    }
    if let Some(server) = cpu.server_seconds {
        if units > 0 {
            report.metric(
                format!("PostgreSQL server CPU per 1000 {what}"),
                server * 1000.0 / units as f64,
                "s",
            );
        }
        if wall > 0.0 {
            report.metric(
                format!("PostgreSQL server CPU busy ({what})"),
                server / wall,
                "cores",
            );
        }
    }
}

/// Notes rejected or failed requests of a load run (they are not in its rates).
pub(crate) fn note_load_problems(report: &mut ScenarioReport, what: &str, load: &LoadResult) {
    if load.rejected > 0 || load.errors > 0 {
        report.note(format!(
            "{what}: {} requests rejected, {} without answer; first: {}",
            load.rejected,
            load.errors,
            load.first_problem.as_deref().unwrap_or("?")
        ));
    }
}
