//! `/metrics` (Prometheus text, no authentication) and the logs: JSON lines with
//! `--log-format json`, and no secret in them even at debug level.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use hookd_testkit::PATIENCE;
use hookd_testkit::receiver::{Receiver, Reply};
use hookd_testkit::server::{Hookd, ServeOptions, delivery_status};
use hookd_testkit::{Backend, backend_tests};

use crate::{start, start_with};

backend_tests!(
    metrics_count_events_attempts_and_latency,
    metrics_show_the_queue_while_receivers_are_down,
    json_logs_of_a_full_run_at_debug_level_reveal_no_secret,
);

/// `GET /metrics` without credentials: 200 and the text.
async fn scrape(hookd: &Hookd) -> String {
    let (status, body) = hookd
        .request_as(None, reqwest::Method::GET, "/metrics", None)
        .await;
    assert_eq!(status, 200, "{body}");
    match body {
        Value::String(text) => text,
        other => panic!("/metrics is not text: {other}"),
    }
}

/// The value of one series (`name` or `name{labels}`), if the text has it.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

async fn metrics_count_events_attempts_and_latency(backend: Backend) {
    const N: usize = 5;
    let hookd = start(backend).await;
    let receiver = Receiver::ok().await;
    hookd
        .create_webhook(json!({"url": receiver.url("/hook"), "events": ["payment.completed"]}))
        .await;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(hookd.publish("payment.completed", json!({ "n": i })).await);
    }
    receiver.wait_for(N, PATIENCE).await;
    for id in &ids {
        hookd
            .wait_for_event(id, |e| delivery_status(e) == "succeeded")
            .await;
    }
    let text = scrape(&hookd).await;
    let n = N as f64;
    assert!(value(&text, "hookd_events_accepted_total") >= n, "{text}");
    assert!(
        value(&text, "hookd_deliveries_created_total") >= n,
        "{text}"
    );
    assert!(
        value(&text, r#"hookd_attempts_total{outcome="succeeded"}"#) >= n,
        "{text}"
    );
    assert_eq!(
        value(&text, r#"hookd_attempts_total{outcome="failed"}"#),
        0.0
    );
    assert!(
        value(&text, "hookd_delivery_latency_seconds_count") >= n,
        "{text}"
    );
    assert!(
        value(&text, "hookd_attempt_duration_seconds_count") >= n,
        "{text}"
    );
    assert!(
        value(&text, r#"hookd_attempt_duration_seconds_bucket{le="+Inf"}"#) >= n,
        "{text}"
    );
    assert!(text.contains("# TYPE hookd_delivery_latency_seconds histogram"));
    assert_eq!(value(&text, "hookd_deliveries_pending"), 0.0, "{text}");
    assert_eq!(value(&text, "hookd_deliveries_due"), 0.0, "{text}");
    assert_eq!(
        value(&text, "hookd_oldest_pending_delivery_age_seconds"),
        0.0
    );

    // The same event id again is the original event: not counted twice.
    let accepted = value(&text, "hookd_events_accepted_total");
    let event = json!({"type": "payment.completed", "data": {}, "id": "evt_client_1"});
    for _ in 0..2 {
        let (status, body) = hookd.post("/v2/events", &event).await;
        assert_eq!(status, 202, "{body}");
    }
    let text = scrape(&hookd).await;
    assert_eq!(
        value(&text, "hookd_events_accepted_total"),
        accepted + 1.0,
        "{text}"
    );
}

async fn metrics_show_the_queue_while_receivers_are_down(backend: Backend) {
    let hookd = start_with(ServeOptions {
        backend,
        // A refused attempt is retried an hour later; one hanging attempt per webhook
        // leaves the webhook's other deliveries due and waiting.
        retry_schedule: "0s,1h".to_owned(),
        extra_args: vec!["--max-in-flight-per-webhook".into(), "1".into()],
        ..ServeOptions::default()
    })
    .await;
    let down = Receiver::down_address().await;
    hookd
        .create_webhook(
            json!({"url": format!("http://{down}/hook"), "events": ["payment.completed"]}),
        )
        .await;
    let hanging = Receiver::start(|_| Reply::Hang).await;
    hookd
        .create_webhook(json!({"url": hanging.url("/hook"), "events": ["payment.expired"]}))
        .await;
    let refused = hookd.publish("payment.completed", json!({})).await;
    for i in 0..4 {
        hookd.publish("payment.expired", json!({ "n": i })).await;
    }
    hookd
        .wait_for_event(&refused, |e| e["deliveries"][0]["attempts"] == 1)
        .await;
    hanging.wait_for(1, PATIENCE).await;

    let deadline = tokio::time::Instant::now() + PATIENCE;
    let text = loop {
        let text = scrape(&hookd).await;
        let age = value(&text, "hookd_oldest_pending_delivery_age_seconds");
        if age > 0.0 || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(value(&text, "hookd_deliveries_pending"), 5.0, "{text}");
    assert!(value(&text, "hookd_deliveries_due") >= 1.0, "{text}");
    assert!(
        value(&text, "hookd_oldest_pending_delivery_age_seconds") > 0.0,
        "{text}"
    );
    assert!(
        value(&text, r#"hookd_attempts_total{outcome="retry"}"#) >= 1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, r#"hookd_attempts_total{outcome="succeeded"}"#),
        0.0
    );
}

/// A full run at debug level, with secrets sealed at rest: a webhook created, events
/// published and delivered (one attempt failing first), a secret rotation, a replay, a
/// request with a wrong client secret. None of the secrets appears in the logs: not the
/// client secret (nor the Basic auth headers that carry it), not the webhook's secrets old
/// or new, not the encryption key.
async fn json_logs_of_a_full_run_at_debug_level_reveal_no_secret(backend: Backend) {
    let encryption_key = crate::secrets::new_key();
    let hookd = start_with(ServeOptions {
        backend,
        log_filter: Some("debug".to_owned()),
        capture_stderr: true,
        extra_args: vec!["--log-format".into(), "json".into()],
        env: vec![("HOOKD_ENCRYPTION_KEY".to_owned(), encryption_key.clone())],
        ..ServeOptions::default()
    })
    .await;
    let receiver = Receiver::start(|n| Reply::Status(if n == 0 { 500 } else { 200 })).await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/hook"), "events": ["payment.completed"]}))
        .await;
    let webhook_id = webhook["id"].as_str().unwrap().to_owned();
    let first_secret = webhook["secret"].as_str().unwrap().to_owned();
    let first = hookd
        .publish("payment.completed", json!({"amount": 1}))
        .await;
    receiver.wait_for(2, PATIENCE).await;
    hookd
        .wait_for_event(&first, |e| delivery_status(e) == "succeeded")
        .await;

    let (status, rotated) = hookd
        .post(
            &format!("/v2/webhooks/{webhook_id}/rotate-secret"),
            &json!({"grace_seconds": 60}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let second_secret = rotated["secret"].as_str().unwrap().to_owned();
    hookd
        .publish("payment.completed", json!({"amount": 2}))
        .await;
    let (status, replayed) = hookd
        .post(&format!("/v2/events/{first}/replay"), &json!({}))
        .await;
    assert_eq!(status, 202, "{replayed}");
    receiver.wait_for(4, PATIENCE).await;
    let wrong = hookd_testkit::server::Credentials {
        client_id: hookd.credentials.client_id.clone(),
        client_secret: format!("{}x", hookd.credentials.client_secret),
    };
    let (status, _) = hookd
        .request_as(Some(&wrong), reqwest::Method::GET, "/v2/webhooks", None)
        .await;
    assert_eq!(status, 401);

    // The engine logs each finished attempt at debug level: wait for all four lines.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let logs = loop {
        let logs = hookd.stderr_text();
        if logs.matches("attempt finished").count() >= 4 || tokio::time::Instant::now() > deadline {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };

    let mut messages = Vec::new();
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(parsed["level"].is_string(), "{line}");
        assert!(parsed["timestamp"].is_string(), "{line}");
        messages.push(parsed["message"].as_str().unwrap_or_default().to_owned());
    }
    assert!(messages.iter().any(|m| m == "hookd started"), "{logs}");
    assert_eq!(
        messages.iter().filter(|m| *m == "attempt finished").count(),
        4,
        "{logs}"
    );

    let basic = |c: &hookd_testkit::server::Credentials| {
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.client_id, c.client_secret))
    };
    let needles = [
        ("the first webhook secret", first_secret.clone()),
        (
            "the first webhook secret's key",
            first_secret.trim_start_matches("whsec_").to_owned(),
        ),
        ("the rotated webhook secret", second_secret.clone()),
        (
            "the rotated webhook secret's key",
            second_secret.trim_start_matches("whsec_").to_owned(),
        ),
        ("any webhook secret", "whsec_".to_owned()),
        ("the client secret", hookd.credentials.client_secret.clone()),
        ("the client's Basic auth header", basic(&hookd.credentials)),
        ("the wrong Basic auth header", basic(&wrong)),
        ("the encryption key", encryption_key),
    ];
    for (what, needle) in needles {
        assert!(!needle.is_empty());
        assert!(!logs.contains(&needle), "{what} is in the logs:\n{logs}");
    }
}
