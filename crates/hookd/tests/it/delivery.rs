//! What receivers see and how hookd reacts to their answers.

use std::time::Duration;

use serde_json::json;

use hookd_testkit::PATIENCE;
use hookd_testkit::receiver::{Receiver, Reply};
use hookd_testkit::server::{ServeOptions, delivery_status};
use hookd_testkit::signatures::{expected_hex, expected_standard};
use hookd_testkit::{Backend, backend_tests};

use crate::{start, start_with};

backend_tests!(
    typed_delivery_is_the_seed_envelope_signed_both_ways,
    event_format_uses_the_second_providers_shape_and_header,
    failures_retry_on_the_schedule_then_give_up,
    success_after_a_retry_stops_retrying,
    client_errors_are_final_except_408_and_429,
    retry_after_is_honoured_on_429,
    gone_disables_the_webhook,
    timeouts_redirects_and_refused_connections_are_retried,
    attempts_log_request_and_truncated_response,
    first_attempt_is_immediate_and_fans_out_to_every_match,
);

async fn typed_delivery_is_the_seed_envelope_signed_both_ways(backend: Backend) {
    let hookd = start(backend).await;
    let receiver = Receiver::ok().await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/webhooks/nextpay"), "events": ["payout_request.completed"]}))
        .await;
    let secret = webhook["secret"].as_str().unwrap();
    let data = json!({"id": "pr_xyz789", "amount": 10000, "currency": "PHP", "status": "completed",
                      "account_id": "acc_456", "processed_at": "2024-01-15T10:30:00Z"});
    let event_id = hookd.publish("payout_request.completed", data).await;
    let got = receiver.wait_for(1, PATIENCE).await;
    let r = &got[0];
    assert_eq!(r.path, "/webhooks/nextpay");
    let (_, event) = hookd.get(&format!("/v2/events/{event_id}")).await;
    let created = event["created"].as_i64().unwrap();
    let expected_body = format!(
        r#"{{"id":"{event_id}","created":{created},"type":"payout_request.completed","data":{{"id":"pr_xyz789","amount":10000,"currency":"PHP","status":"completed","account_id":"acc_456","processed_at":"2024-01-15T10:30:00Z"}}}}"#
    );
    assert_eq!(std::str::from_utf8(&r.body).unwrap(), expected_body);
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.header("user-agent").starts_with("hookd/"));
    assert_eq!(
        r.header("x-nextpay-signature"),
        expected_hex(secret, &r.body)
    );
    assert_eq!(r.header("webhook-id"), event_id);
    let timestamp = r.header("webhook-timestamp");
    assert!((timestamp.parse::<i64>().unwrap() - created).abs() <= 2);
    assert_eq!(
        r.header("webhook-signature"),
        expected_standard(secret, &event_id, timestamp, &r.body)
    );

    // The Standard Webhooks reference verifier agrees.
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    verifier.verify(&r.body, &r.headers).unwrap();

    // And so does our own CLI.
    let mut command = std::process::Command::new(crate::bin());
    command.args(["verify", "--secret", secret]);
    for name in [
        "x-nextpay-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ] {
        command.args(["--header", &format!("{name}: {}", r.header(name))]);
    }
    let output = run_with_stdin(command, &r.body);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let mut tampered = r.body.to_vec();
    tampered[10] ^= 1;
    let mut command = std::process::Command::new(crate::bin());
    command.args([
        "verify",
        "--secret",
        secret,
        "--header",
        &format!("x-nextpay-signature: {}", r.header("x-nextpay-signature")),
    ]);
    let output = run_with_stdin(command, &tampered);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid"));
}

fn run_with_stdin(mut command: std::process::Command, stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

async fn event_format_uses_the_second_providers_shape_and_header(backend: Backend) {
    let hookd = start(backend).await;
    let receiver = Receiver::ok().await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/webhooks/wickiepay"), "events": ["payment.*", "channel.*"], "format": "event"}))
        .await;
    let secret = webhook["secret"].as_str().unwrap();
    hookd
        .publish(
            "payment.completed",
            json!({"uuid": "u-1", "reference": "order-9", "amount": 12.5}),
        )
        .await;
    let got = receiver.wait_for(1, PATIENCE).await;
    assert_eq!(
        std::str::from_utf8(&got[0].body).unwrap(),
        r#"{"event":"payment.completed","data":{"uuid":"u-1","reference":"order-9","amount":12.5}}"#
    );
    assert_eq!(
        got[0].header("x-webhook-signature"),
        expected_hex(secret, &got[0].body)
    );
    assert!(got[0].headers.get("x-nextpay-signature").is_none());
    assert!(got[0].header("webhook-signature").starts_with("v1,"));
}

async fn failures_retry_on_the_schedule_then_give_up(backend: Backend) {
    let hookd = start(backend).await;
    let receiver = Receiver::start(|_| Reply::Status(500)).await;
    hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let event_id = hookd.publish("payment.completed", json!({})).await;
    let got = receiver.wait_for(3, PATIENCE).await;
    let event = hookd
        .wait_for_event(&event_id, |e| delivery_status(e) == "failed")
        .await;
    assert_eq!(event["deliveries"][0]["attempts"], 3);
    // Schedule 0s,200ms,400ms: the gaps are at least the steps.
    assert!(got[1].at - got[0].at >= Duration::from_millis(200));
    assert!(got[2].at - got[1].at >= Duration::from_millis(400));
    // Every retry carries the same webhook-id.
    assert!(got.iter().all(|r| r.header("webhook-id") == event_id));
    let attempts = hookd.attempts(&event_id).await;
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts
            .iter()
            .map(|a| a["attempt_number"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(attempts.iter().all(|a| a["response_status"] == 500));
    assert_eq!(
        receiver.requests().len(),
        3,
        "no attempt after the last step"
    );
}

async fn success_after_a_retry_stops_retrying(backend: Backend) {
    let hookd = start(backend).await;
    let receiver = Receiver::start(|n| Reply::Status(if n == 0 { 503 } else { 200 })).await;
    hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let event_id = hookd.publish("payment.completed", json!({})).await;
    let event = hookd
        .wait_for_event(&event_id, |e| delivery_status(e) == "succeeded")
        .await;
    assert_eq!(event["deliveries"][0]["attempts"], 2);
    assert_eq!(receiver.requests().len(), 2);
}

async fn client_errors_are_final_except_408_and_429(backend: Backend) {
    let hookd = start(backend).await;
    // (status answered first, expected attempts, expected final state)
    let cases = [
        (400, 1, "failed"),
        (401, 1, "failed"),
        (404, 1, "failed"),
        (408, 2, "succeeded"),
        (429, 2, "succeeded"),
    ];
    let mut receivers = Vec::new();
    let mut events = Vec::new();
    for (index, (status, _, _)) in cases.iter().enumerate() {
        let status = *status;
        let receiver =
            Receiver::start(move |n| Reply::Status(if n == 0 { status } else { 200 })).await;
        let event_type = [
            "payment.completed",
            "payment.expired",
            "payment_intent.paid",
            "payment_intent.created",
            "payment_intent.expired",
        ][index];
        hookd
            .create_webhook(json!({"url": receiver.url("/"), "events": [event_type]}))
            .await;
        events.push(hookd.publish(event_type, json!({"case": status})).await);
        receivers.push(receiver);
    }
    for ((status, attempts, state), event_id) in cases.iter().zip(&events) {
        let event = hookd
            .wait_for_event(event_id, |e| delivery_status(e) == *state)
            .await;
        assert_eq!(
            event["deliveries"][0]["attempts"], *attempts,
            "status {status}: {event}"
        );
    }
    // A final 4xx means no further request ever comes (checked after the others retried).
    for (receiver, (_, attempts, _)) in receivers.iter().zip(cases) {
        assert_eq!(receiver.requests().len(), attempts);
    }
}

async fn retry_after_is_honoured_on_429(backend: Backend) {
    let hookd = start(backend).await;
    let receiver = Receiver::start(|n| {
        if n == 0 {
            Reply::Full {
                status: 429,
                headers: vec![("retry-after".into(), "1".into())],
                body: "slow down".into(),
            }
        } else {
            Reply::Status(200)
        }
    })
    .await;
    hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    hookd.publish("payment.completed", json!({})).await;
    let got = receiver.wait_for(2, PATIENCE).await;
    // The schedule says 200 ms; Retry-After says 1 s.
    assert!(
        got[1].at - got[0].at >= Duration::from_secs(1),
        "{:?}",
        got[1].at - got[0].at
    );
}

async fn gone_disables_the_webhook(backend: Backend) {
    let hookd = start(backend).await;
    let receiver = Receiver::start(|_| Reply::Status(410)).await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let event_id = hookd.publish("payment.completed", json!({})).await;
    hookd
        .wait_for_event(&event_id, |e| delivery_status(e) == "failed")
        .await;
    let (_, shown) = hookd
        .get(&format!("/v2/webhooks/{}", webhook["id"].as_str().unwrap()))
        .await;
    assert_eq!(shown["enabled"], false);
    assert!(shown["disabled_reason"].as_str().unwrap().contains("410"));
    // A disabled webhook gets no new deliveries.
    let later = hookd.publish("payment.completed", json!({})).await;
    let (_, event) = hookd.get(&format!("/v2/events/{later}")).await;
    assert_eq!(event["deliveries"], json!([]));
    assert_eq!(receiver.requests().len(), 1);
}

async fn timeouts_redirects_and_refused_connections_are_retried(backend: Backend) {
    let hookd = start_with(ServeOptions {
        backend,
        attempt_timeout: "300ms".into(),
        ..ServeOptions::default()
    })
    .await;
    let hanging = Receiver::start(|_| Reply::Hang).await;
    let redirect_target = Receiver::ok().await;
    let target_url = redirect_target.url("/elsewhere");
    let redirecting = Receiver::start(move |_| Reply::Full {
        status: 302,
        headers: vec![("location".into(), target_url.clone())],
        body: String::new(),
    })
    .await;
    let down = Receiver::down_address().await;
    let cases = [
        ("payment.completed", hanging.url("/")),
        ("payment.expired", redirecting.url("/")),
        ("payment_intent.paid", format!("http://{down}/")),
    ];
    let mut events = Vec::new();
    for (event_type, url) in &cases {
        hookd
            .create_webhook(json!({"url": url, "events": [event_type]}))
            .await;
        events.push(hookd.publish(event_type, json!({})).await);
    }
    for event_id in &events {
        let event = hookd
            .wait_for_event(event_id, |e| delivery_status(e) == "failed")
            .await;
        assert_eq!(event["deliveries"][0]["attempts"], 3, "{event}");
    }
    let timeout_attempts = hookd.attempts(&events[0]).await;
    assert!(
        timeout_attempts
            .iter()
            .all(|a| a["response_status"].is_null() && a["error"].is_string())
    );
    let redirect_attempts = hookd.attempts(&events[1]).await;
    assert!(
        redirect_attempts
            .iter()
            .all(|a| a["response_status"] == 302)
    );
    assert!(
        redirect_target.requests().is_empty(),
        "redirects must not be followed"
    );
    let refused = hookd.attempts(&events[2]).await;
    assert!(
        refused
            .iter()
            .all(|a| a["response_status"].is_null() && a["error"].is_string())
    );
}

async fn attempts_log_request_and_truncated_response(backend: Backend) {
    let hookd = start(backend).await;
    let receiver = Receiver::start(|_| Reply::Full {
        status: 200,
        headers: vec![("x-receiver".into(), "yes".into())],
        body: "é".repeat(5000),
    })
    .await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let event_id = hookd.publish("payment.completed", json!({"k": "v"})).await;
    hookd
        .wait_for_event(&event_id, |e| delivery_status(e) == "succeeded")
        .await;
    let got = receiver.requests();
    let attempts = hookd.attempts(&event_id).await;
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert!(a["id"].as_str().unwrap().starts_with("att_"));
    assert_eq!(a["event_id"], event_id.as_str());
    assert_eq!(a["webhook_id"], webhook["id"]);
    assert_eq!(a["attempt_number"], 1);
    assert!(a["started_at"].is_string() && a["duration_ms"].is_i64());
    assert_eq!(
        a["request_body"].as_str().unwrap().as_bytes(),
        &got[0].body[..]
    );
    assert_eq!(
        a["request_headers"]["x-nextpay-signature"],
        got[0].header("x-nextpay-signature")
    );
    assert_eq!(
        a["request_headers"]["webhook-signature"],
        got[0].header("webhook-signature")
    );
    assert_eq!(a["response_status"], 200);
    assert_eq!(a["response_headers"]["x-receiver"], "yes");
    let body = a["response_body"].as_str().unwrap();
    assert!(body.len() <= 4096 && body.len() >= 4000, "{}", body.len());
    assert_eq!(a["error"], serde_json::Value::Null);
}

async fn first_attempt_is_immediate_and_fans_out_to_every_match(backend: Backend) {
    // With an hour-long poll interval, only the in-process wake-up can deliver in time.
    let hookd = start_with(ServeOptions {
        backend,
        extra_args: vec!["--poll-interval".into(), "1h".into()],
        ..ServeOptions::default()
    })
    .await;
    let all = Receiver::ok().await;
    let payouts = Receiver::ok().await;
    let payments = Receiver::ok().await;
    hookd
        .create_webhook(json!({"url": all.url("/"), "events": ["*"]}))
        .await;
    hookd
        .create_webhook(json!({"url": payouts.url("/"), "events": ["payout_request.*"]}))
        .await;
    hookd
        .create_webhook(json!({"url": payments.url("/"), "events": ["payment_intent.paid"]}))
        .await;
    hookd
        .create_webhook(json!({"url": all.url("/disabled"), "events": ["*"], "enabled": false}))
        .await;
    let event_id = hookd.publish("payout_request.failed", json!({})).await;
    all.wait_for(1, PATIENCE).await;
    payouts.wait_for(1, PATIENCE).await;
    let (_, event) = hookd.get(&format!("/v2/events/{event_id}")).await;
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 2);
    assert!(payments.requests().is_empty());
    assert!(all.requests().iter().all(|r| r.path == "/"));
}

/// About the engine's HTTP client, not the store: SQLite only.
#[tokio::test]
async fn webhooks_on_one_host_reuse_its_connections() {
    // Twenty webhooks on one receiver, each allowed 2 attempts in flight: the per-host
    // pool must keep every connection the fan-out opened, not just a per-webhook share,
    // or each round closes connections only to open them again.
    const WEBHOOKS: usize = 20;
    let hookd = start_with(ServeOptions {
        extra_args: vec!["--max-in-flight-per-webhook".into(), "2".into()],
        ..ServeOptions::default()
    })
    .await;
    // Slow enough answers that one round's attempts are all in flight together.
    let receiver = Receiver::start(|_| Reply::After(Duration::from_millis(200), 200)).await;
    for n in 0..WEBHOOKS {
        hookd
            .create_webhook(json!({"url": receiver.url(&format!("/{n}")), "events": ["*"]}))
            .await;
    }
    let all_succeeded = |event: &serde_json::Value| {
        event["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() == WEBHOOKS && d.iter().all(|d| d["state"] == "succeeded"))
    };
    for round in 0..2 {
        let event = hookd
            .publish("payment.completed", json!({"round": round}))
            .await;
        hookd.wait_for_event(&event, all_succeeded).await;
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2 * WEBHOOKS);
    // Never more than WEBHOOKS attempts are in flight at once, so that many connections
    // serve both rounds; a pool that dropped idle ones opens more for the second.
    let connections: std::collections::HashSet<_> = requests.iter().map(|r| r.peer).collect();
    assert!(
        connections.len() <= WEBHOOKS,
        "two rounds of {WEBHOOKS} attempts used {} connections",
        connections.len()
    );
}
