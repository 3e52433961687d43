//! `fanout`: 100 webhooks subscribed to every event; events published as fast as hookd
//! keeps up with delivering them: deliveries per second.
//!
//! Publishing is throttled so that at most [`MAX_OUTSTANDING`] deliveries wait inside
//! hookd: otherwise a fast ingest would queue minutes of deliveries in seconds, and the
//! scenario would measure a backlog rather than steady fan-out.

use std::sync::Arc;

use super::{Context, Setup, note_load_problems, write_cpu, write_latency_brief};
use crate::BenchError;
use crate::hookd::HookdSettings;
use crate::load::{self, Gate, Pace, per_second};
use crate::receiver::Behaviour;
use crate::report::ScenarioReport;

const WEBHOOKS: usize = 100;
/// Most deliveries accepted but not yet arrived while publishing.
const MAX_OUTSTANDING: u64 = 5_000;
/// Few publishers suffice: each event makes 100 deliveries.
const CONNECTIONS: usize = 16;

pub(super) async fn run(
    ctx: &mut Context<'_>,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    let mut setup = Setup::start(ctx, &HookdSettings::default()).await?;
    let result = measure(ctx, &mut setup, report).await;
    setup.finish(report).await;
    result
}

async fn measure(
    ctx: &Context<'_>,
    setup: &mut Setup,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    setup.add_webhooks(Behaviour::Ok, 0, WEBHOOKS).await?;
    let delivered = setup.receiver.ok_counter();
    let gate: Gate =
        Arc::new(move |accepted| accepted * WEBHOOKS as u64 <= delivered.get() + MAX_OUTSTANDING);
    let cpu_before = ctx.cpu_snapshot();
    let mut plan = setup.publish_plan(ctx, Pace::FlatOut, CONNECTIONS.min(ctx.options.connections));
    plan.gate = Some(gate);
    let published = load::run(ctx.epoch, plan).await;
    note_load_problems(report, "publishing", &published);
    let in_window = setup.receiver.counts().ok;
    let expected = published.accepted * WEBHOOKS as u64;
    let patience = ctx.drain_patience();
    setup
        .await_deliveries(
            report,
            expected,
            patience,
            "deliveries (after publishing stopped)",
        )
        .await;
    let cpu = ctx.cpu_snapshot().since(&cpu_before);
    let counts = setup.receiver.counts();
    let span = counts.ok_span_since(published.started_ns);
    report.rate(
        "deliveries while publishing",
        per_second(in_window, published.elapsed),
        "del/s",
    );
    report.rate(
        "deliveries end to end",
        per_second(counts.ok, span),
        "del/s",
    );
    report.metric("events accepted", published.accepted_per_second(), "ev/s");
    report.metric("total deliveries", counts.ok as f64, "");
    write_latency_brief(report, "publish → arrival", &setup.receiver.take_latency());
    write_cpu(report, "deliveries", cpu, counts.ok, span);
    report.note(format!(
        "{WEBHOOKS} webhooks on `*`; publishing pauses while {MAX_OUTSTANDING} deliveries are outstanding"
    ));
    Ok(())
}
