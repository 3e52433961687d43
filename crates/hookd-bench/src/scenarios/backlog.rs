//! `backlog`: a large queue of deliveries built up while nothing delivers, then drained:
//! the drain rate compared with the empty-queue rate, and the process's peak memory.
//!
//! "Receiver down, then released" is played by not running the delivery engine while the
//! queue fills (batch ingest through the API) and starting it afterwards: what hookd then
//! does is what it does when an endpoint comes back after an outage, without the failed
//! attempts in between.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;

use super::ingest::BATCH_SIZE;
use super::{Context, Setup, megabytes, note_load_problems, throughput, write_cpu};
use crate::BenchError;
use crate::api_client::batch_body;
use crate::hookd::HookdSettings;
use crate::load::{self, LoadPlan, Pace, per_second};
use crate::receiver::Behaviour;
use crate::report::ScenarioReport;
use crate::system;

/// Batch calls in flight while filling.
const FILL_CONNECTIONS: usize = 4;
/// Longest the fill and the drain may each take, at least (24 timed phases if longer):
/// long enough for a million deliveries at the rates hookd aims for, short enough that a
/// slow drain is measured over this window instead of waited out.
const PHASE_LIMIT: Duration = Duration::from_secs(120);
/// How long a throughput run takes when `throughput` did not run before.
const SHORT_THROUGHPUT: Duration = Duration::from_secs(2);

pub(super) async fn run(
    ctx: &mut Context<'_>,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    let empty_queue_rate = match ctx.empty_queue_delivered_per_s {
        Some(rate) => {
            report.note("empty-queue rate: the throughput scenario's deliveries end to end");
            Some(rate)
        }
        None => {
            let short =
                throughput::measure(ctx, SHORT_THROUGHPUT.min(ctx.options.duration), report)
                    .await?;
            report.note(format!(
                "empty-queue rate: a {:?} throughput run measured here",
                SHORT_THROUGHPUT.min(ctx.options.duration)
            ));
            (short.delivered_per_s > 0.0).then_some(short.delivered_per_s)
        }
    };
    let settings = HookdSettings {
        engine_at_start: false,
        ..HookdSettings::default()
    };
    let mut setup = Setup::start(ctx, &settings).await?;
    let result = measure(ctx, &mut setup, empty_queue_rate, report).await;
    setup.finish(report).await;
    result
}

async fn measure(
    ctx: &Context<'_>,
    setup: &mut Setup,
    empty_queue_rate: Option<f64>,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    setup.add_webhooks(Behaviour::Ok, 0, 1).await?;
    let phase_limit = PHASE_LIMIT.max(ctx.options.duration * 24);
    let size = ctx.options.backlog_size;
    let batch = usize::try_from(size).unwrap_or(BATCH_SIZE).min(BATCH_SIZE);
    let calls = size.div_ceil(batch as u64);
    let filled = load::run(
        ctx.epoch,
        LoadPlan {
            path: "/v2/events/batch".to_owned(),
            duration: phase_limit,
            max_requests: Some(calls),
            body: Arc::new(move |sent_ns| batch_body(sent_ns, batch)),
            expect: StatusCode::ACCEPTED,
            ..setup.publish_plan(ctx, Pace::FlatOut, FILL_CONNECTIONS)
        },
    )
    .await;
    note_load_problems(report, "filling", &filled);
    let queued = filled.accepted * batch as u64;
    report.metric("deliveries queued", queued as f64, "");
    report.rate(
        "fill: events accepted (batches, 1 webhook)",
        per_second(queued, filled.elapsed),
        "ev/s",
    );
    if queued < size {
        report.incomplete(format!("only {queued} of {size} deliveries queued"));
    }
    if let Some(rss) = system::rss_bytes() {
        report.metric(
            "RSS with the queue filled, before the drain",
            megabytes(rss),
            "MB",
        );
    }

    let cpu_before = ctx.cpu_snapshot();
    let drain_started = Instant::now();
    let drain_started_ns = ctx.epoch.nanos_at(drain_started);
    setup.hookd.start_engine().await?;
    setup
        .await_deliveries(report, queued, phase_limit, "queued deliveries (drained)")
        .await;
    let cpu = ctx.cpu_snapshot().since(&cpu_before);
    let counts = setup.receiver.counts();
    let drain_time = counts.ok_span_since(drain_started_ns);
    let drain_rate = per_second(counts.ok, drain_time);
    report.rate("drain: deliveries", drain_rate, "del/s");
    report.metric("drain time", drain_time.as_secs_f64(), "s");
    if let Some(empty) = empty_queue_rate {
        report.rate("empty-queue deliveries", empty, "del/s");
        report.metric("drain rate / empty-queue rate", drain_rate / empty, "×");
    }
    write_cpu(report, "deliveries", cpu, counts.ok, drain_time);
    report.note("receiver down, then released = events queued with the engine stopped, then the engine started");
    Ok(())
}
