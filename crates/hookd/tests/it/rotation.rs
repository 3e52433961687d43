//! `POST /v2/webhooks/{id}/rotate-secret`: during the grace period the Standard Webhooks
//! header carries the new and the old signature and the hex header the new one; after it
//! (or with `grace_seconds: 0`) only the new secret signs. Checked with the independent
//! verifier in hookd-testkit.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use hookd_testkit::receiver::{Receiver, Recorded, Reply};
use hookd_testkit::server::{Hookd, ServeOptions};
use hookd_testkit::signatures::{expected_hex, expected_standard};
use hookd_testkit::{Backend, PATIENCE, backend_tests};

use crate::{start, start_with};

backend_tests!(
    during_the_grace_period_both_secrets_sign_and_the_hex_header_uses_the_new_one,
    the_old_secret_stops_signing_when_the_grace_period_ends,
    rotation_input_is_validated_and_unknown_webhooks_are_404,
);

/// The `webhook-signature` entries of a request, in order.
fn standard_signatures(r: &Recorded) -> Vec<String> {
    r.header("webhook-signature")
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// What the Standard Webhooks header must be for these secrets (newest first).
fn expected_signatures(r: &Recorded, secrets: &[&str]) -> Vec<String> {
    secrets
        .iter()
        .map(|s| {
            expected_standard(
                s,
                r.header("webhook-id"),
                r.header("webhook-timestamp"),
                &r.body,
            )
        })
        .collect()
}

/// Asserts that `r` is signed with exactly `secrets` (newest first): the hex header with
/// the newest alone, the Standard Webhooks header with each of them.
fn assert_signed_by(r: &Recorded, secrets: &[&str]) {
    let newest = secrets[0];
    assert_eq!(
        r.header("x-nextpay-signature"),
        expected_hex(newest, &r.body),
        "the hex header is the newest secret's"
    );
    assert_eq!(
        standard_signatures(r),
        expected_signatures(r, secrets),
        "webhook-signature: {}",
        r.header("webhook-signature")
    );
}

async fn rotate(hookd: &Hookd, webhook_id: &str, body: Value) -> String {
    let (status, rotated) = hookd
        .post(&format!("/v2/webhooks/{webhook_id}/rotate-secret"), &body)
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["id"], webhook_id, "{rotated}");
    let secret = rotated["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{rotated}");
    secret
}

async fn during_the_grace_period_both_secrets_sign_and_the_hex_header_uses_the_new_one(
    backend: Backend,
) {
    let hookd = start(backend).await;
    // The first attempt of the first event fails, so its retry comes from a claim rather
    // than the hand-off at publish: both paths must carry the old secret.
    let receiver = Receiver::start(|n| Reply::Status(if n == 0 { 500 } else { 200 })).await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/hooks"), "events": ["*"]}))
        .await;
    let id = webhook["id"].as_str().unwrap();
    let first = webhook["secret"].as_str().unwrap().to_owned();

    let second = rotate(&hookd, id, json!({"grace_seconds": 3600})).await;
    assert_ne!(second, first);
    let (status, shown) = hookd.get(&format!("/v2/webhooks/{id}")).await;
    assert_eq!(status, 200, "{shown}");
    assert!(
        shown.get("secret").is_none(),
        "GET never shows the secret: {shown}"
    );
    let (_, listed) = hookd.get("/v2/webhooks").await;
    assert!(listed["data"][0].get("secret").is_none(), "{listed}");

    hookd.publish("payment_intent.paid", json!({"n": 1})).await;
    let got = receiver.wait_for(2, PATIENCE).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    for r in &got {
        assert_signed_by(r, &[&second, &first]);
        assert_ne!(
            r.header("x-nextpay-signature"),
            expected_hex(&first, &r.body)
        );
    }

    // Rotating again during the grace period: only one previous secret is kept.
    let third = rotate(&hookd, id, json!({"grace_seconds": 3600})).await;
    assert!(third != first && third != second);
    hookd.publish("payment_intent.paid", json!({"n": 2})).await;
    let got = receiver.wait_for(3, PATIENCE).await;
    assert_signed_by(&got[2], &[&third, &second]);

    // No grace period: the replaced secret stops signing at once.
    let fourth = rotate(&hookd, id, json!({"grace_seconds": 0})).await;
    hookd.publish("payment_intent.paid", json!({"n": 3})).await;
    let got = receiver.wait_for(4, PATIENCE).await;
    assert_signed_by(&got[3], &[&fourth]);
    assert_eq!(standard_signatures(&got[3]).len(), 1);

    // No body at all means the default grace period (24 h): both sign again.
    let (status, rotated) = hookd
        .post_raw(&format!("/v2/webhooks/{id}/rotate-secret"), Vec::new(), &[])
        .await;
    assert_eq!(status, 200, "{rotated}");
    let fifth = rotated["secret"].as_str().unwrap().to_owned();
    hookd.publish("payment_intent.paid", json!({"n": 4})).await;
    let got = receiver.wait_for(5, PATIENCE).await;
    assert_signed_by(&got[4], &[&fifth, &fourth]);
}

async fn the_old_secret_stops_signing_when_the_grace_period_ends(backend: Backend) {
    // The retry comes 1.5 s after the first attempt: after the 1 s grace period.
    let hookd = start_with(ServeOptions {
        backend,
        retry_schedule: "0s,1500ms".to_owned(),
        ..ServeOptions::default()
    })
    .await;
    let receiver = Receiver::start(|n| Reply::Status(if n == 0 { 500 } else { 200 })).await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/hooks"), "events": ["*"]}))
        .await;
    let id = webhook["id"].as_str().unwrap();
    let old = webhook["secret"].as_str().unwrap().to_owned();

    let asked = Instant::now();
    let new = rotate(&hookd, id, json!({"grace_seconds": 1})).await;
    let answered = Instant::now();
    // The grace period ends between these two instants (the server's clock is read while
    // the request is under way).
    let (earliest_end, latest_end) = (
        asked + Duration::from_secs(1),
        answered + Duration::from_secs(1),
    );

    hookd.publish("payment_intent.paid", json!({"n": 1})).await;
    let got = receiver.wait_for(1, PATIENCE).await;
    assert!(
        got[0].at < earliest_end,
        "the first attempt came too late to test the grace period"
    );
    assert_signed_by(&got[0], &[&new, &old]);

    // The retry is claimed and sent after the end: the new secret alone.
    let got = receiver.wait_for(2, PATIENCE).await;
    assert!(got[1].at > latest_end);
    assert_signed_by(&got[1], &[&new]);

    // A new event after the end (handed off at publish): the new secret alone.
    tokio::time::sleep_until(latest_end.into()).await;
    hookd.publish("payment_intent.paid", json!({"n": 2})).await;
    let got = receiver.wait_for(3, PATIENCE).await;
    assert_signed_by(&got[2], &[&new]);
}

async fn rotation_input_is_validated_and_unknown_webhooks_are_404(backend: Backend) {
    let hookd = start(backend).await;
    let webhook = hookd
        .create_webhook(json!({"url": "http://127.0.0.1:9/hooks", "events": ["*"]}))
        .await;
    let id = webhook["id"].as_str().unwrap();
    let path = format!("/v2/webhooks/{id}/rotate-secret");

    for bad in [
        json!(-1),
        json!(1.5),
        json!("60"),
        json!(604_801),
        json!(true),
        json!({}),
    ] {
        let (status, body) = hookd.post(&path, &json!({ "grace_seconds": bad })).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("grace_seconds"),
            "{body}"
        );
    }
    let (status, body) = hookd.post_raw(&path, b"{\"grace".to_vec(), &[]).await;
    assert_eq!(status, 400, "{body}");
    // A refused rotation changed nothing; the limits themselves are accepted.
    for good in [json!(604_800), json!(0), json!(null)] {
        let (status, body) = hookd.post(&path, &json!({ "grace_seconds": good })).await;
        assert_eq!(status, 200, "{good}: {body}");
    }

    let (status, body) = hookd
        .post(
            "/v2/webhooks/wh_01m822p0xrrpw3y1mdpe98qrbt/rotate-secret",
            &json!({}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    // An unknown id is a 404 even with a bad body.
    let (status, _) = hookd
        .post(
            "/v2/webhooks/wh_nope/rotate-secret",
            &json!({"grace_seconds": -1}),
        )
        .await;
    assert_eq!(status, 404);

    // Another client's webhook is unknown to this one.
    let other = hookd.create_client("other").await;
    let (status, body) = hookd
        .request_as(Some(&other), reqwest::Method::POST, &path, Some(&json!({})))
        .await;
    assert_eq!(status, 404, "{body}");

    // A deleted webhook too.
    let (status, _) = hookd.delete(&format!("/v2/webhooks/{id}")).await;
    assert_eq!(status, 204);
    let (status, _) = hookd.post(&path, &json!({})).await;
    assert_eq!(status, 404);
}
