//! `isolation`: 100 webhooks, 10 of whose endpoints hang until the attempt times out;
//! events published at a fixed, moderate rate. The p99 publish→arrival latency of the 90
//! healthy webhooks is compared with a run where no endpoint hangs.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::{Context, Setup, note_load_problems, write_latency_brief};
use crate::BenchError;
use crate::hookd::HookdSettings;
use crate::latency::LatencySummary;
use crate::load::{self, Pace};
use crate::receiver::Behaviour;
use crate::report::ScenarioReport;

const WEBHOOKS: usize = 100;
const HANGING: usize = 10;
/// Events per second; each goes to all 100 webhooks.
const RATE: f64 = 10.0;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) async fn run(
    ctx: &mut Context<'_>,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    let baseline = one_run(ctx, 0, report).await?;
    let with_hangs = one_run(ctx, HANGING, report).await?;
    write_latency_brief(report, "baseline: publish → arrival", &baseline.latency);
    write_latency_brief(
        report,
        "10 hanging: healthy publish → arrival",
        &with_hangs.latency,
    );
    report.metric("baseline: total deliveries", baseline.delivered as f64, "");
    report.metric(
        "10 hanging: total healthy deliveries",
        with_hangs.delivered as f64,
        "",
    );
    report.metric(
        "10 hanging: attempts held by hanging endpoints",
        with_hangs.hung as f64,
        "",
    );
    if let (Some(base), Some(hung)) = (
        LatencySummary::of(&baseline.latency),
        LatencySummary::of(&with_hangs.latency),
    ) && base.p99_ms > 0.0
    {
        report.metric("healthy p99 / baseline p99", hung.p99_ms / base.p99_ms, "×");
    }
    report.note(format!(
        "{RATE} ev/s to {WEBHOOKS} webhooks for the duration; attempt timeout {ATTEMPT_TIMEOUT:?}; baseline has no hanging endpoint"
    ));
    Ok(())
}

struct IsolationRun {
    latency: Histogram<u64>,
    delivered: u64,
    hung: u64,
}

async fn one_run(
    ctx: &Context<'_>,
    hanging: usize,
    report: &mut ScenarioReport,
) -> Result<IsolationRun, BenchError> {
    let settings = HookdSettings {
        attempt_timeout: ATTEMPT_TIMEOUT,
        ..HookdSettings::default()
    };
    let mut setup = Setup::start(ctx, &settings).await?;
    let result = measure(ctx, &mut setup, hanging, report).await;
    setup.finish(report).await;
    result
}

async fn measure(
    ctx: &Context<'_>,
    setup: &mut Setup,
    hanging: usize,
    report: &mut ScenarioReport,
) -> Result<IsolationRun, BenchError> {
    let healthy = WEBHOOKS - hanging;
    setup.add_webhooks(Behaviour::Hang, 0, hanging).await?;
    setup.add_webhooks(Behaviour::Ok, hanging, healthy).await?;
    let label = if hanging == 0 {
        "baseline"
    } else {
        "10 hanging"
    };
    let published = load::run(
        ctx.epoch,
        setup.publish_plan(ctx, Pace::Rate(RATE), ctx.options.connections),
    )
    .await;
    note_load_problems(report, label, &published);
    let expected = published.accepted * healthy as u64;
    let patience = ctx.drain_patience();
    let what = format!("{label}: healthy deliveries");
    setup
        .await_deliveries(report, expected, patience, &what)
        .await;
    let counts = setup.receiver.counts();
    Ok(IsolationRun {
        latency: setup.receiver.take_latency(),
        delivered: counts.ok,
        hung: counts.hung,
    })
}
