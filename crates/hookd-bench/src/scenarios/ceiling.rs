//! `ceiling`: the load generator POSTing a small JSON body straight to the receiver, with
//! no hookd in between: the most HTTP requests per second this machine's loopback, load
//! generator and receiver manage together in this run. Every other rate is compared to it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use super::{CEILING_METRIC, Context, HANG_FOR, note_load_problems, write_latency_brief};
use crate::BenchError;
use crate::load::{self, LoadPlan, Pace};
use crate::receiver::{Behaviour, Receiver};
use crate::report::ScenarioReport;

pub(super) async fn run(
    ctx: &mut Context<'_>,
    report: &mut ScenarioReport,
) -> Result<(), BenchError> {
    let receiver = Receiver::start(ctx.epoch, HANG_FOR).await?;
    let result = load::run(
        ctx.epoch,
        LoadPlan {
            targets: vec![receiver.addr()],
            path: Behaviour::Ok.path(0),
            auth: None,
            connections: ctx.options.connections,
            duration: ctx.options.duration,
            pace: Pace::FlatOut,
            max_requests: None,
            expect: StatusCode::OK,
            body: Arc::new(|sent_ns| Bytes::from(format!(r#"{{"t":{sent_ns}}}"#))),
            gate: None,
        },
    )
    .await;
    receiver.stop().await;
    report.rate(CEILING_METRIC, result.accepted_per_second(), "req/s");
    report.metric("total requests answered", result.accepted as f64, "");
    write_latency_brief(report, "request → answer", &result.latency);
    note_load_problems(report, "requests", &result);
    if result.accepted == 0 {
        return Err(BenchError::Other(format!(
            "the receiver answered no request within {:?}",
            ctx.options.duration + Duration::from_secs(30)
        )));
    }
    Ok(())
}
