//! `POST /v2/webhooks/{id}/test`: a sandbox test event with sample data for its type goes
//! to that webhook alone, as the seeds' envelope (byte for byte, signed as usual) with the
//! `webhook-test: true` header on every attempt, retries included; it is listed and logged
//! like any event, marked `"test": true`.

use serde_json::{Value, json};

use hookd_testkit::receiver::{Receiver, Recorded, Reply};
use hookd_testkit::server::delivery_status;
use hookd_testkit::signatures::{expected_hex, expected_standard};
use hookd_testkit::{Backend, PATIENCE, backend_tests};

use crate::start;

backend_tests!(
    a_test_event_goes_to_that_webhook_alone_marked_by_a_header,
    retries_of_a_test_event_carry_the_header_too,
    test_types_must_be_subscribed_and_webhooks_known_and_enabled,
);

fn assert_signed(r: &Recorded, secret: &str) {
    assert_eq!(
        r.header("x-nextpay-signature"),
        expected_hex(secret, &r.body)
    );
    assert_eq!(
        r.header("webhook-signature"),
        expected_standard(
            secret,
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            &r.body
        )
    );
}

async fn a_test_event_goes_to_that_webhook_alone_marked_by_a_header(backend: Backend) {
    let hookd = start(backend).await;
    let other = Receiver::ok().await;
    let target = Receiver::ok().await;
    hookd
        .create_webhook(json!({"url": other.url("/hooks"), "events": ["*"]}))
        .await;
    let webhook = hookd
        .create_webhook(json!({"url": target.url("/hooks"), "events": ["*"]}))
        .await;
    let id = webhook["id"].as_str().unwrap();
    let secret = webhook["secret"].as_str().unwrap();

    let (status, accepted) = hookd
        .post(
            &format!("/v2/webhooks/{id}/test"),
            &json!({"type": "payout_request.completed"}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["type"], "payout_request.completed");
    assert_eq!(accepted["test"], true);
    let event_id = accepted["id"].as_str().unwrap().to_owned();
    assert!(event_id.starts_with("evt_"), "{accepted}");
    let created = accepted["created"].as_i64().unwrap();

    let got = target.wait_for(1, PATIENCE).await;
    let r = &got[0];
    assert_eq!(r.header("webhook-test"), "true");
    assert_eq!(r.header("webhook-id"), event_id);
    assert_signed(r, secret);
    // The body is the seeds' envelope, keys in their order, with the sample payout.
    let body = std::str::from_utf8(&r.body).unwrap();
    let data = r.json()["data"].clone();
    let processed_at = data["processed_at"].as_str().unwrap();
    assert!(processed_at.ends_with('Z'), "{data}");
    assert_eq!(
        body,
        format!(
            r#"{{"id":"{event_id}","created":{created},"type":"payout_request.completed","data":{{"id":"pr_test_xyz789","amount":10000,"currency":"PHP","status":"completed","account_id":"acc_test_456","processed_at":"{processed_at}"}}}}"#
        )
    );

    // A regular event afterwards reaches both; the other receiver never saw the test.
    let live = hookd.publish("payment_intent.paid", json!({"n": 1})).await;
    let other_got = other.wait_for(1, PATIENCE).await;
    let target_got = target.wait_for(2, PATIENCE).await;
    hookd
        .wait_for_event(&live, |e| {
            e["deliveries"]
                .as_array()
                .is_some_and(|d| d.len() == 2 && d.iter().all(|d| d["state"] == "succeeded"))
        })
        .await;
    assert_eq!(other.requests().len(), 1);
    assert_eq!(other_got[0].header("webhook-id"), live);
    assert_eq!(other_got[0].header("webhook-test"), "");
    assert_eq!(
        target_got[1].header("webhook-test"),
        "",
        "live events are not tests"
    );
    assert_eq!(target.requests().len(), 2);

    // Listed and logged like any event, marked as a test.
    let event = hookd
        .wait_for_event(&event_id, |e| delivery_status(e) == "succeeded")
        .await;
    assert_eq!(event["test"], true, "{event}");
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 1, "{event}");
    assert_eq!(event["deliveries"][0]["webhook_id"], id);
    assert_eq!(event["data"], data);
    let (status, listed) = hookd.get("/v2/events").await;
    assert_eq!(status, 200, "{listed}");
    let marks: Vec<(Value, Value)> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].clone(),
                e.get("test").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(
        marks,
        [(json!(live), Value::Null), (json!(event_id), json!(true))]
    );
    let attempts = hookd.attempts(&event_id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["request_headers"]["webhook-test"], "true");
    assert_eq!(attempts[0]["request_body"], body);

    // Without a type: the webhook's first subscribed type (for `*`, the catalogue's first).
    let (status, accepted) = hookd
        .post_raw(&format!("/v2/webhooks/{id}/test"), Vec::new(), &[])
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["type"], "payout_request.initiated");
    let got = target.wait_for(3, PATIENCE).await;
    assert_eq!(got[2].json()["data"]["status"], "initiated");
    assert_eq!(got[2].header("webhook-test"), "true");
    assert_eq!(other.requests().len(), 1);
}

async fn retries_of_a_test_event_carry_the_header_too(backend: Backend) {
    let hookd = start(backend).await;
    // Fails twice: the retries come from claims, not from the hand-off at publish.
    let receiver = Receiver::start(|n| Reply::Status(if n < 2 { 500 } else { 200 })).await;
    let webhook = hookd
        .create_webhook(json!({
            "url": receiver.url("/hooks"),
            "events": ["payment.completed", "payment.expired"],
            "format": "event",
        }))
        .await;
    let id = webhook["id"].as_str().unwrap();
    let secret = webhook["secret"].as_str().unwrap();
    let (status, accepted) = hookd
        .post(&format!("/v2/webhooks/{id}/test"), &json!({}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["type"], "payment.completed");
    let event_id = accepted["id"].as_str().unwrap();

    let got = receiver.wait_for(3, PATIENCE).await;
    for r in &got {
        assert_eq!(r.header("webhook-test"), "true");
        assert_eq!(r.header("webhook-id"), event_id);
        assert_eq!(r.body, got[0].body, "every attempt sends the same bytes");
        assert_eq!(
            r.header("x-webhook-signature"),
            expected_hex(secret, &r.body)
        );
    }
    let body = got[0].json();
    assert_eq!(body["event"], "payment.completed");
    assert!(body["data"]["uuid"].is_string() && body["data"]["reference"].is_string());
    let event = hookd
        .wait_for_event(event_id, |e| delivery_status(e) == "succeeded")
        .await;
    assert_eq!(event["deliveries"][0]["attempts"], 3, "{event}");
    let attempts = hookd.attempts(event_id).await;
    assert_eq!(attempts.len(), 3);
    for a in &attempts {
        assert_eq!(a["request_headers"]["webhook-test"], "true", "{a}");
    }
}

async fn test_types_must_be_subscribed_and_webhooks_known_and_enabled(backend: Backend) {
    let hookd = start(backend).await;
    let receiver = Receiver::ok().await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/hooks"), "events": ["payout_request.*"]}))
        .await;
    let id = webhook["id"].as_str().unwrap();
    let path = format!("/v2/webhooks/{id}/test");

    for body in [
        json!({"type": "payment_intent.paid"}),
        json!({"type": "payout_request.done"}),
        json!({"type": 5}),
    ] {
        let (status, error) = hookd.post(&path, &body).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert_eq!(error["error"]["code"], "validation_failed", "{error}");
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    let (status, error) = hookd
        .post(
            "/v2/webhooks/wh_nope/test",
            &json!({"type": "payout_request.completed"}),
        )
        .await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(error["error"]["code"], "not_found");

    let (status, _) = hookd
        .patch(&format!("/v2/webhooks/{id}"), &json!({"enabled": false}))
        .await;
    assert_eq!(status, 200);
    let (status, error) = hookd.post(&path, &json!({})).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], "webhook_disabled");

    // A prefix filter's default is its first built-in type; the event is stored once.
    let (status, _) = hookd
        .patch(&format!("/v2/webhooks/{id}"), &json!({"enabled": true}))
        .await;
    assert_eq!(status, 200);
    let (status, accepted) = hookd.post(&path, &json!({})).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["type"], "payout_request.initiated");
    let got = receiver.wait_for(1, PATIENCE).await;
    assert_eq!(got[0].header("webhook-test"), "true");
    let (_, listed) = hookd.get("/v2/events").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
}
