//! `cluster` (PostgreSQL only): two hookd nodes on one database against one node.
//!
//! Two nodes are two hookds in this process, each with its own runtime, store (its own
//! connection pools and `LISTEN` connection), API and engine, on one fresh schema, as
//! two `hookd serve` processes would be; the load generator's connections alternate
//! between their APIs, publishing flat out to one webhook at the receiver, and every
//! accepted event is waited for. One node is the same run with a single hookd on a fresh
//! schema of its own, measured first, in the same run. The figure is deliveries per
//! second end to end (first publish to last delivery) with two nodes, with one, and the
//! ratio.
//!
//! On SQLite there is nothing to measure: one database file is served by one process.

use super::throughput::{self, Throughput};
use super::{Context, write_cpu};
use crate::BenchError;
use crate::report::ScenarioReport;

/// Why the scenario is skipped on SQLite.
pub(crate) const SQLITE_SKIP_REASON: &str = "needs PostgreSQL: one SQLite file has one server";

pub(super) async fn run(
    ctx: &mut Context<'_>,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    if !ctx.databases.is_postgres() {
        report.skip(SQLITE_SKIP_REASON);
        return Ok(());
    }
    let duration = ctx.options.duration;
    let one = throughput::measure_nodes(ctx, duration, 1, Some("one node"), report).await?;
    let two = throughput::measure_nodes(ctx, duration, 2, Some("two nodes"), report).await?;

    write_phase(report, "one node", &one);
    write_phase(report, "two nodes", &two);
    if one.delivered_per_s > 0.0 {
        report.metric(
            "two nodes / one node (deliveries end to end)",
            two.delivered_per_s / one.delivered_per_s,
            "×",
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    report.note(format!(
        "two nodes = two hookds in this process (own runtime, store connections, API and engine each) on one fresh schema; the load generator's {} connections alternate between their APIs; 1 webhook",
        ctx.options.connections
    ));
    report.note(
        "one node = the same with a single hookd, on a fresh schema of its own, measured just before in this run",
    );
    report.note(format!(
        "hookd CPU counts both nodes' threads; both nodes, the load generator, the receiver and PostgreSQL share this machine's {cores} cores"
    ));
    Ok(())
}

fn write_phase(report: &mut ScenarioReport, phase: &str, figures: &Throughput) {
    report.rate(
        format!("{phase}: events accepted"),
        figures.accepted_per_s,
        "ev/s",
    );
    report.rate(
        format!("{phase}: deliveries end to end"),
        figures.delivered_per_s,
        "del/s",
    );
    report.metric(
        format!("{phase}: total events accepted"),
        figures.accepted as f64,
        "",
    );
    report.metric(
        format!("{phase}: total events delivered"),
        figures.delivered as f64,
        "",
    );
    report.metric(
        format!("{phase}: first publish → last delivery"),
        figures.span.as_secs_f64(),
        "s",
    );
    write_cpu(
        report,
        &format!("deliveries, {phase}"),
        figures.cpu,
        figures.delivered,
        figures.span,
    );
}
