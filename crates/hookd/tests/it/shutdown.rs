//! SIGTERM: hookd stops taking work, lets the attempts under way finish and stores their
//! outcomes, gives back what it had not started, and exits 0.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use hookd_testkit::receiver::{Receiver, Reply};
use hookd_testkit::server::{ServeOptions, delivery_status};
use hookd_testkit::{Backend, PATIENCE, backend_tests};

use crate::{start, start_with};

backend_tests!(
    sigterm_lets_attempts_under_way_finish_and_exits_0,
    sigterm_gives_back_what_was_not_started,
);

async fn sigterm_lets_attempts_under_way_finish_and_exits_0(backend: Backend) {
    let mut hookd = start(backend).await;
    let receiver = Receiver::start(|_| Reply::After(Duration::from_millis(1500), 200)).await;
    hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let id = hookd.publish("payment.completed", json!({"n": 1})).await;
    receiver.wait_for(1, PATIENCE).await;

    // The attempt is under way: SIGTERM waits for it and stores its outcome.
    let base = hookd.base_url.clone();
    assert_eq!(hookd.terminate(PATIENCE).await, Some(0));
    let after = hookd_testkit::server::http_client()
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(after.is_err(), "still answering after SIGTERM: {after:?}");
    hookd.restart().await;
    let event = hookd
        .wait_for_event(&id, |e| delivery_status(e) == "succeeded")
        .await;
    assert_eq!(event["deliveries"][0]["attempts"], 1, "{event}");
    assert_eq!(hookd.attempts(&id).await.len(), 1, "attempted once");
    assert_eq!(receiver.requests().len(), 1, "nothing was sent again");
}

/// On PostgreSQL a node's leases outlive the test unless it gives them back, so this
/// shows the give-back; on SQLite a restart takes the leases back anyway.
async fn sigterm_gives_back_what_was_not_started(backend: Backend) {
    let mut hookd = start_with(ServeOptions {
        backend,
        extra_args: vec!["--max-in-flight-per-webhook".into(), "2".into()],
        ..ServeOptions::default()
    })
    .await;
    let receiver = Receiver::start(|_| Reply::After(Duration::from_millis(500), 200)).await;
    hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let mut published = HashSet::new();
    for n in 0..20 {
        published.insert(hookd.publish("payment.completed", json!({"n": n})).await);
    }
    // Two under way, the rest handed to the engine and waiting for the webhook's room.
    receiver.wait_for(1, PATIENCE).await;
    assert_eq!(hookd.terminate(PATIENCE).await, Some(0));

    // A node started afterwards finds the rest due at once, not when leases run out.
    hookd.restart().await;
    let got = receiver.wait_for(20, PATIENCE).await;
    let delivered: HashSet<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(delivered, published);
    assert_eq!(got.len(), 20, "nothing was sent twice");
}
