//! `throughput`: events published as fast as hookd accepts them to one webhook, then
//! every accepted event waited for at the receiver: accepted/s, and delivered/s end to
//! end (from the first publish to the last delivery).

use std::time::Duration;

use hdrhistogram::Histogram;

use super::{Context, Setup, note_load_problems, write_cpu, write_latency_brief};
use crate::BenchError;
use crate::hookd::HookdSettings;
use crate::load::{self, Pace, per_second};
use crate::receiver::Behaviour;
use crate::report::ScenarioReport;
use crate::system::CpuUse;

/// What one flat-out publish-and-deliver run found.
pub(super) struct Throughput {
    pub(super) accepted: u64,
    pub(super) accepted_per_s: f64,
    pub(super) delivered: u64,
    pub(super) delivered_per_s: f64,
    /// First publish to last delivery.
    pub(super) span: Duration,
    pub(super) latency: Histogram<u64>,
    pub(super) cpu: CpuUse,
}

pub(super) async fn run(
    ctx: &mut Context<'_>,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    let figures = measure(ctx, ctx.options.duration, report).await?;
    report.rate("events accepted", figures.accepted_per_s, "ev/s");
    report.rate("deliveries end to end", figures.delivered_per_s, "del/s");
    report.metric("total events accepted", figures.accepted as f64, "");
    report.metric("total events delivered", figures.delivered as f64, "");
    report.metric(
        "first publish → last delivery",
        figures.span.as_secs_f64(),
        "s",
    );
    write_latency_brief(report, "publish → arrival", &figures.latency);
    write_cpu(
        report,
        "deliveries",
        figures.cpu,
        figures.delivered,
        figures.span,
    );
    if figures.delivered_per_s > 0.0 {
        ctx.empty_queue_delivered_per_s = Some(figures.delivered_per_s);
    }
    Ok(())
}

/// Publishes flat out for `duration` to one webhook and waits (bounded) for every
/// accepted event to arrive. Shortfalls are written into `report`.
pub(super) async fn measure(
    ctx: &Context<'_>,
    duration: Duration,
    report: &mut ScenarioReport,
) -> Result<Throughput, BenchError> {
    measure_nodes(ctx, duration, 1, None, report).await
}

/// The same on `nodes` hookds sharing one fresh store, publishes spread over their APIs;
/// `phase` names the run in the report's notes.
pub(super) async fn measure_nodes(
    ctx: &Context<'_>,
    duration: Duration,
    nodes: usize,
    phase: Option<&str>,
    report: &mut ScenarioReport,
) -> Result<Throughput, BenchError> {
    let mut setup = Setup::start_nodes(ctx, &HookdSettings::default(), nodes).await?;
    let result = measure_on(ctx, &mut setup, duration, phase, report).await;
    setup.finish(report).await;
    result
}

async fn measure_on(
    ctx: &Context<'_>,
    setup: &mut Setup,
    duration: Duration,
    phase: Option<&str>,
    report: &mut ScenarioReport,
) -> Result<Throughput, BenchError> {
    setup.add_webhooks(Behaviour::Ok, 0, 1).await?;
    let cpu_before = ctx.cpu_snapshot();
    let mut plan = setup.publish_plan(ctx, Pace::FlatOut, ctx.options.connections);
    plan.duration = duration;
    let published = load::run(ctx.epoch, plan).await;
    let (publishing, waited_for) = match phase {
        None => (
            "publishing".to_owned(),
            "accepted events (delivered after publishing stopped)".to_owned(),
        ),
        Some(phase) => (
            format!("{phase}: publishing"),
            format!("accepted events ({phase}; delivered after publishing stopped)"),
        ),
    };
    note_load_problems(report, &publishing, &published);
    let patience = ctx.drain_patience();
    setup
        .await_deliveries(report, published.accepted, patience, &waited_for)
        .await;
    let cpu = ctx.cpu_snapshot().since(&cpu_before);
    let counts = setup.receiver.counts();
    let span = counts.ok_span_since(published.started_ns);
    Ok(Throughput {
        accepted: published.accepted,
        accepted_per_s: published.accepted_per_second(),
        delivered: counts.ok,
        delivered_per_s: per_second(counts.ok, span),
        span,
        latency: setup.receiver.take_latency(),
        cpu,
    })
}
