//! A webhook that hangs must not hold up deliveries to others.

use serde_json::json;

use hookd_testkit::PATIENCE;
use hookd_testkit::receiver::{Receiver, Reply};
use hookd_testkit::server::ServeOptions;
use hookd_testkit::{Backend, backend_tests};

use crate::start_with;

backend_tests!(a_hanging_webhook_does_not_delay_healthy_ones,);

async fn a_hanging_webhook_does_not_delay_healthy_ones(backend: Backend) {
    // Attempts to the hanging endpoint would block for 60 s; the healthy endpoint must get
    // all of its events while they still hang. The global pool is small on purpose: without
    // the per-webhook cap the hanging webhook would take every slot.
    let hookd = start_with(ServeOptions {
        backend,
        attempt_timeout: "60s".into(),
        extra_args: vec![
            "--max-in-flight".into(),
            "8".into(),
            "--max-in-flight-per-webhook".into(),
            "4".into(),
        ],
        ..ServeOptions::default()
    })
    .await;
    let hanging = Receiver::start(|_| Reply::Hang).await;
    let healthy = Receiver::ok().await;
    hookd
        .create_webhook(json!({"url": hanging.url("/"), "events": ["payout_request.*"]}))
        .await;
    hookd
        .create_webhook(json!({"url": healthy.url("/"), "events": ["payment.*"]}))
        .await;
    for n in 0..30 {
        hookd
            .publish("payout_request.pending", json!({"n": n}))
            .await;
    }
    // The hanging endpoint has taken what it may: its cap, not more.
    hanging.wait_for(4, PATIENCE).await;
    for n in 0..30 {
        hookd.publish("payment.completed", json!({"n": n})).await;
    }
    healthy.wait_for(30, PATIENCE).await;
    assert_eq!(
        hanging.requests().len(),
        4,
        "the per-webhook cap was exceeded"
    );
}
