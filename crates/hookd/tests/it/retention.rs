//! Retention: delivered events are purged (with their attempt logs) once older than
//! `--retention`, in the background; an event whose delivery is still pending stays.

use std::time::Duration;

use serde_json::json;

use hookd_testkit::PATIENCE;
use hookd_testkit::receiver::Receiver;
use hookd_testkit::server::{ServeOptions, delivery_status};
use hookd_testkit::{Backend, backend_tests};

use crate::start_with;

backend_tests!(delivered_events_are_purged_and_pending_ones_kept);

async fn delivered_events_are_purged_and_pending_ones_kept(backend: Backend) {
    let hookd = start_with(ServeOptions {
        backend,
        // A failed first attempt waits an hour for the next: pending all test long.
        retry_schedule: "0s,1h".to_owned(),
        extra_args: vec!["--retention".to_owned(), "2s".to_owned()],
        log_filter: Some("info".to_owned()),
        capture_stderr: true,
        ..ServeOptions::default()
    })
    .await;
    let receiver = Receiver::ok().await;
    let down = Receiver::down_address().await;
    hookd
        .create_webhook(json!({"url": receiver.url("/ok"), "events": ["payout_request.completed"]}))
        .await;
    hookd
        .create_webhook(
            json!({"url": format!("http://{down}/down"), "events": ["payout_request.failed"]}),
        )
        .await;

    // The pending one is the older: purging walks past it.
    let pending = hookd
        .publish("payout_request.failed", json!({"n": 1}))
        .await;
    let delivered = hookd
        .publish("payout_request.completed", json!({"n": 2}))
        .await;
    hookd
        .wait_for_event(&delivered, |e| delivery_status(e) == "succeeded")
        .await;
    hookd
        .wait_for_event(&pending, |e| {
            delivery_status(e) == "pending" && e["deliveries"][0]["attempts"].as_i64() == Some(1)
        })
        .await;
    assert_eq!(hookd.attempts(&delivered).await.len(), 1);

    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, event) = hookd.get(&format!("/v2/events/{delivered}")).await;
        if status == 404 {
            break;
        }
        assert_eq!(status, 200, "{event}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivered event was never purged: {event}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, attempts) = hookd.get(&format!("/v2/events/{delivered}/attempts")).await;
    assert_eq!(status, 404, "{attempts}");

    // Purged after the pending one was older than the retention too, yet it stays.
    let (status, event) = hookd.get(&format!("/v2/events/{pending}")).await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(delivery_status(&event), "pending");
    assert_eq!(hookd.attempts(&pending).await.len(), 1);

    let logs = hookd.stderr_text();
    assert!(
        logs.contains("purged events past retention"),
        "no purge logged: {logs}"
    );
}
