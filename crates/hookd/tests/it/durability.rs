//! Accepted events survive SIGKILL: pending, scheduled and in-flight deliveries are all
//! delivered after a restart.

use std::collections::HashSet;

use serde_json::json;

use hookd_testkit::PATIENCE;
use hookd_testkit::receiver::{Receiver, Reply};
use hookd_testkit::server::ServeOptions;

use crate::start_with;

#[tokio::test]
async fn kill_9_with_retries_scheduled_loses_nothing() {
    // Long enough steps that retries are still scheduled when the process dies.
    let mut hookd = start_with(ServeOptions {
        retry_schedule: "0s,1s,1s,1s,1s,1s,1s,1s".into(),
        ..ServeOptions::default()
    })
    .await;
    let down = Receiver::down_address().await;
    hookd
        .create_webhook(json!({"url": format!("http://{down}/"), "events": ["*"]}))
        .await;
    let mut published = HashSet::new();
    for n in 0..20 {
        published.insert(hookd.publish("payment.completed", json!({"n": n})).await);
    }
    // Wait until every delivery has failed its first attempt (so retries are scheduled).
    for id in &published {
        hookd
            .wait_for_event(id, |e| e["deliveries"][0]["attempts"].as_u64() >= Some(1))
            .await;
    }
    hookd.kill().await;
    let receiver = Receiver::start_on(down, |_| Reply::Status(200)).await;
    hookd.restart().await;
    let got = receiver.wait_for(20, PATIENCE).await;
    let delivered: HashSet<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(delivered, published);
}

#[tokio::test]
async fn kill_9_with_attempts_in_flight_loses_nothing() {
    let mut hookd = start_with(ServeOptions {
        attempt_timeout: "30s".into(),
        ..ServeOptions::default()
    })
    .await;
    // The receiver holds the first five requests open: those attempts are in flight
    // (leased) when hookd dies. Later requests get 200.
    let receiver = Receiver::start(|n| {
        if n < 5 {
            Reply::Hang
        } else {
            Reply::Status(200)
        }
    })
    .await;
    hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let mut published = HashSet::new();
    for n in 0..5 {
        published.insert(hookd.publish("payment.completed", json!({"n": n})).await);
    }
    receiver.wait_for(5, PATIENCE).await;
    hookd.kill().await;
    // The leases of the killed run would last 60 s; the restart releases them at once.
    hookd.restart().await;
    let got = receiver.wait_for(10, PATIENCE).await;
    let delivered: HashSet<String> = got[5..]
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(delivered, published);
}
