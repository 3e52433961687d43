//! `retry-storm`: the receiver fails about half of all attempts with 500, on a compressed
//! retry schedule; how long until every delivery is final, and how they ended, as the
//! receiver saw it and as hookd's API reports it for a sample of events.

use std::time::{Duration, Instant};

use hookd_core::schedule::RetrySchedule;

use super::{Context, Setup, note_load_problems, write_cpu, write_latency_brief};
use crate::BenchError;
use crate::hookd::HookdSettings;
use crate::load::{self, Pace};
use crate::receiver::{Behaviour, FlakySummary};
use crate::report::ScenarioReport;

const SCHEDULE: &str = "0s,50ms,100ms,200ms,400ms";
/// Events per second published (open loop) for the duration.
const RATE: f64 = 1000.0;
/// Events whose state is read back through `GET /v2/events/{id}`.
const SAMPLE: usize = 100;

pub(super) async fn run(
    ctx: &mut Context<'_>,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    let schedule: RetrySchedule = SCHEDULE
        .parse()
        .map_err(|e| BenchError::Other(format!("retry schedule {SCHEDULE}: {e}")))?;
    let settings = HookdSettings {
        schedule: schedule.clone(),
        attempt_timeout: Duration::from_secs(5),
        ..HookdSettings::default()
    };
    let mut setup = Setup::start(ctx, &settings).await?;
    let result = measure(ctx, &mut setup, &schedule, report).await;
    setup.finish(report).await;
    result
}

async fn measure(
    ctx: &Context<'_>,
    setup: &mut Setup,
    schedule: &RetrySchedule,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    let max_attempts = schedule.max_attempts();
    setup.add_webhooks(Behaviour::Flaky, 0, 1).await?;
    let delays: Vec<Duration> = (1..=max_attempts)
        .filter_map(|n| schedule.delay_before(n))
        .collect();
    setup.receiver.expect_schedule(&delays);
    let cpu_before = ctx.cpu_snapshot();
    let published = load::run(
        ctx.epoch,
        setup.publish_plan(ctx, Pace::Rate(RATE), ctx.options.connections),
    )
    .await;
    note_load_problems(report, "publishing", &published);

    // Wait until the receiver has seen every event end: a 200, or the last attempt.
    let patience = ctx.drain_patience();
    let deadline = Instant::now() + patience;
    let mut summary = setup.receiver.flaky_summary(max_attempts);
    while summary.finished() < published.accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        summary = setup.receiver.flaky_summary(max_attempts);
    }
    let cpu = ctx.cpu_snapshot().since(&cpu_before);
    if summary.finished() < published.accepted {
        report.incomplete(format!(
            "{} of {} events reached a final outcome within {patience:?}",
            summary.finished(),
            published.accepted
        ));
    }
    let completion =
        Duration::from_nanos(summary.last_attempt_ns.saturating_sub(published.started_ns));
    report.metric("total events published", published.accepted as f64, "");
    report.metric(
        "first publish → last outcome",
        completion.as_secs_f64(),
        "s",
    );
    report.metric("total attempts", summary.attempts as f64, "");
    report.metric(
        "attempts",
        crate::load::per_second(summary.attempts, completion),
        "att/s",
    );
    report.metric(
        "500 answers (receiver)",
        setup.receiver.counts().failed as f64,
        "",
    );
    report.metric("succeeded (receiver)", summary.succeeded as f64, "");
    report.metric(
        "failed after 5 attempts (receiver)",
        summary.failed as f64,
        "",
    );
    write_latency_brief(
        report,
        "retry lateness (gap − scheduled delay)",
        &setup.receiver.take_retry_lateness(),
    );
    write_cpu(report, "attempts", cpu, summary.attempts, completion);
    check_sample(setup, &summary, report).await;
    report.note(format!(
        "schedule {SCHEDULE}; {RATE} ev/s for the duration; about 1 in 32 deliveries should fail all 5 attempts"
    ));
    Ok(())
}

/// Reads a sample of events back through the API and compares with the receiver.
async fn check_sample(setup: &mut Setup, summary: &FlakySummary, report: &mut ScenarioReport) {
    let sample = setup.receiver.flaky_sample(SAMPLE);
    if sample.is_empty() || summary.deliveries == 0 {
        return;
    }
    // The last attempt's outcome is recorded just after the receiver answers it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut succeeded, mut failed, mut other, mut disagree) = (0u64, 0u64, 0u64, 0u64);
    for (event_id, succeeded_here) in &sample {
        let state = loop {
            let state = match setup.api.delivery_states(event_id).await {
                Ok(states) => states.into_iter().next().unwrap_or_default(),
                Err(e) => {
                    report.note(format!("reading {event_id} back failed: {e}"));
                    return;
                }
            };
            if state != "pending" || Instant::now() >= deadline {
                break state;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        match state.as_str() {
            "succeeded" => succeeded += 1,
            "failed" => failed += 1,
            _ => other += 1,
        }
        if (state == "succeeded") != *succeeded_here {
            disagree += 1;
        }
    }
    report.metric("sample read back via API", sample.len() as f64, "");
    report.metric("sample: succeeded (API)", succeeded as f64, "");
    report.metric("sample: failed (API)", failed as f64, "");
    if other > 0 {
        report.metric("sample: still pending or other (API)", other as f64, "");
    }
    if disagree > 0 {
        report.incomplete(format!(
            "{disagree} of {} sampled events have a different outcome in the API than at the receiver",
            sample.len()
        ));
    }
}
