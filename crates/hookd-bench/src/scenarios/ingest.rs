//! `ingest`: how many events per second hookd accepts durably (each `202` after its
//! commit) when no webhook subscribes: single-event POSTs over many keep-alive
//! connections, then `POST /v2/events/batch` with 1 000 events per call.

use std::sync::Arc;

use http::StatusCode;

use super::{Context, Setup, note_load_problems, write_cpu, write_latency_brief};
use crate::BenchError;
use crate::api_client::batch_body;
use crate::hookd::HookdSettings;
use crate::load::{self, LoadPlan, Pace, per_second};
use crate::report::ScenarioReport;

/// Events per batch call (the API's maximum).
pub(super) const BATCH_SIZE: usize = 1000;
/// Batch calls are large; a few connections keep hookd busy.
const BATCH_CONNECTIONS: usize = 4;

pub(super) async fn run(
    ctx: &mut Context<'_>,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    let setup = Setup::start(ctx, &HookdSettings::default()).await?;
    let result = measure(ctx, &setup, report).await;
    setup.finish(report).await;
    result
}

async fn measure(
    ctx: &Context<'_>,
    setup: &Setup,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    let cpu_before = ctx.cpu_snapshot();
    let single = load::run(
        ctx.epoch,
        setup.publish_plan(ctx, Pace::FlatOut, ctx.options.connections),
    )
    .await;
    let cpu = ctx.cpu_snapshot().since(&cpu_before);
    report.rate(
        "single: events accepted",
        single.accepted_per_second(),
        "ev/s",
    );
    write_latency_brief(report, "single: publish → 202", &single.latency);
    write_cpu(report, "events", cpu, single.accepted, single.elapsed);
    note_load_problems(report, "single", &single);

    let cpu_before = ctx.cpu_snapshot();
    let batch = load::run(
        ctx.epoch,
        LoadPlan {
            path: "/v2/events/batch".to_owned(),
            connections: BATCH_CONNECTIONS.min(ctx.options.connections),
            body: Arc::new(|sent_ns| batch_body(sent_ns, BATCH_SIZE)),
            expect: StatusCode::ACCEPTED,
            ..setup.publish_plan(ctx, Pace::FlatOut, BATCH_CONNECTIONS)
        },
    )
    .await;
    let cpu = ctx.cpu_snapshot().since(&cpu_before);
    let events = batch.accepted * BATCH_SIZE as u64;
    report.rate(
        "batch: events accepted",
        per_second(events, batch.elapsed),
        "ev/s",
    );
    write_latency_brief(report, "batch: call → 202", &batch.latency);
    write_cpu(report, "batched events", cpu, events, batch.elapsed);
    note_load_problems(report, "batch", &batch);

    if single.accepted == 0 || batch.accepted == 0 {
        report.incomplete("hookd accepted nothing in one of the phases");
    }
    Ok(())
}
