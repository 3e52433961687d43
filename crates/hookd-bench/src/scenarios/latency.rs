//! `latency`: events published at fixed rates (open loop) to one webhook; the time from
//! each event's due publish time to its arrival at the receiver, as p50/p95/p99/max.

use super::{Context, Setup, note_load_problems, write_cpu, write_latency, write_latency_brief};
use crate::BenchError;
use crate::hookd::HookdSettings;
use crate::load::{self, Pace};
use crate::receiver::Behaviour;
use crate::report::ScenarioReport;

/// Events per second of each phase.
const RATES: [u32; 2] = [500, 2000];

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
    setup.add_webhooks(Behaviour::Ok, 0, 1).await?;
    for rate in RATES {
        let label = format!("{rate}/s");
        let delivered_before = setup.receiver.counts().ok;
        let _ = setup.receiver.take_latency();
        let cpu_before = ctx.cpu_snapshot();
        let published = load::run(
            ctx.epoch,
            setup.publish_plan(ctx, Pace::Rate(f64::from(rate)), ctx.options.connections),
        )
        .await;
        note_load_problems(report, &label, &published);
        let expected = (f64::from(rate) * ctx.options.duration.as_secs_f64()).floor() as u64;
        if published.accepted + published.rejected + published.errors < expected.saturating_sub(1) {
            report.note(format!(
                "{label}: only {} of {expected} due publishes were sent",
                published.accepted + published.rejected + published.errors
            ));
        }
        let patience = ctx.drain_patience();
        let target = delivered_before + published.accepted;
        if !setup.receiver.wait_for_ok(target, patience).await {
            report.incomplete(format!(
                "{label}: {} of {} accepted events delivered within {patience:?}",
                setup.receiver.counts().ok - delivered_before,
                published.accepted
            ));
        }
        let cpu = ctx.cpu_snapshot().since(&cpu_before);
        let delivered = setup.receiver.counts().ok - delivered_before;
        write_latency(
            report,
            &format!("{label}: publish → arrival"),
            &setup.receiver.take_latency(),
        );
        write_latency_brief(
            report,
            &format!("{label}: publish → 202"),
            &published.latency,
        );
        write_cpu(
            report,
            &format!("deliveries at {label}"),
            cpu,
            delivered,
            published.elapsed,
        );
    }
    Ok(())
}
