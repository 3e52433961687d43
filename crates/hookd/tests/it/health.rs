//! Endpoint health: each webhook shows how its endpoint has been answering; one whose
//! attempts have all failed for `--disable-after` is disabled, as is one answering
//! `410 Gone`, and the client's webhooks that subscribe to `webhook.disabled` are told,
//! signed like any delivery. `*` does not match hookd's own events; clients cannot publish
//! them. Re-enabling (PATCH) ends the failure streak.

use serde_json::{Value, json};

use hookd_testkit::receiver::{Receiver, Recorded, Reply};
use hookd_testkit::server::{Hookd, ServeOptions};
use hookd_testkit::signatures::expected_standard;
use hookd_testkit::{Backend, PATIENCE, backend_tests};

use crate::{start, start_with};

backend_tests!(
    a_webhook_failing_for_too_long_is_disabled_and_the_client_told,
    gone_disables_at_once_and_the_client_is_told,
    hookds_own_event_types_are_reserved_and_named_explicitly,
);

async fn webhook(hookd: &Hookd, id: &str) -> Value {
    let (status, shown) = hookd.get(&format!("/v2/webhooks/{id}")).await;
    assert_eq!(status, 200, "{shown}");
    shown
}

/// The one `webhook.disabled` notice `ops` got, checked to be signed with `secret`.
fn notice(got: &[Recorded], secret: &str) -> Value {
    assert_eq!(got.len(), 1, "one notice");
    let r = &got[0];
    assert_eq!(
        r.header("webhook-signature"),
        expected_standard(
            secret,
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            &r.body
        )
    );
    let body = r.json();
    assert_eq!(body["type"], "webhook.disabled", "{body}");
    assert_eq!(body["id"], r.header("webhook-id"));
    body
}

/// Which webhooks the client's one `webhook.disabled` event went to.
async fn notice_recipients(hookd: &Hookd) -> Vec<String> {
    let (status, listed) = hookd.get("/v2/events?type=webhook.disabled").await;
    assert_eq!(status, 200, "{listed}");
    let events = listed["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{listed}");
    let (_, event) = hookd
        .get(&format!("/v2/events/{}", events[0]["id"].as_str().unwrap()))
        .await;
    let mut ids: Vec<String> = event["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["webhook_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn a_webhook_failing_for_too_long_is_disabled_and_the_client_told(backend: Backend) {
    // Attempts 500 ms apart; a webhook failing for a second is disabled on its 3rd or 4th.
    let hookd = start_with(ServeOptions {
        backend,
        retry_schedule: "0s,500ms,500ms,500ms,500ms,500ms".to_owned(),
        extra_args: vec!["--disable-after".to_owned(), "1s".to_owned()],
        ..ServeOptions::default()
    })
    .await;
    let failing = Receiver::start(|_| Reply::Status(500)).await;
    let ops = Receiver::ok().await;
    let healthy = Receiver::ok().await;
    let failing_webhook = hookd
        .create_webhook(json!({"url": failing.url("/"), "events": ["payout_request.*"]}))
        .await;
    let ops_webhook = hookd
        .create_webhook(json!({"url": ops.url("/ops"), "events": ["webhook.disabled"]}))
        .await;
    let healthy_webhook = hookd
        .create_webhook(json!({"url": healthy.url("/"), "events": ["*"]}))
        .await;
    let failing_id = failing_webhook["id"].as_str().unwrap();
    let fresh = &failing_webhook["health"];
    assert_eq!(fresh["success_rate"], Value::Null, "{failing_webhook}");
    assert_eq!(fresh["attempts_failed"], 0);
    assert_eq!(fresh["failing_since"], Value::Null);

    hookd
        .publish("payout_request.failed", json!({"n": 1}))
        .await;
    let got = ops.wait_for(1, PATIENCE).await;
    let body = notice(&got, ops_webhook["secret"].as_str().unwrap());
    let data = &body["data"];
    assert_eq!(data["webhook_id"], failing_id, "{body}");
    assert_eq!(data["url"], failing.url("/"));
    let attempts = failing.requests().len();
    assert!((3..=4).contains(&attempts), "{attempts} attempts");
    assert_eq!(data["consecutive_failures"], attempts);

    let shown = webhook(&hookd, failing_id).await;
    assert_eq!(shown["enabled"], false, "{shown}");
    let reason = shown["disabled_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("every attempt failed for 1s"),
        "{reason}"
    );
    assert_eq!(data["reason"], reason);
    let health = &shown["health"];
    assert_eq!(health["success_rate"], 0.0, "{shown}");
    assert_eq!(health["attempts_failed"], attempts);
    assert_eq!(health["consecutive_failures"], attempts);
    assert!(health["failing_since"].is_string(), "{shown}");
    assert_eq!(health["last_success_at"], Value::Null);
    // `*` is for business events: the healthy webhook got the payout, not the notice.
    assert_eq!(
        notice_recipients(&hookd).await,
        [ops_webhook["id"].as_str().unwrap()]
    );
    healthy.wait_for(1, PATIENCE).await;
    let healthy_shown = webhook(&hookd, healthy_webhook["id"].as_str().unwrap()).await;
    assert_eq!(
        healthy_shown["health"]["success_rate"], 1.0,
        "{healthy_shown}"
    );
    assert!(healthy_shown["health"]["last_success_at"].is_string());

    // Re-enabled, it starts over: no streak, the counts kept.
    let (status, enabled) = hookd
        .patch(
            &format!("/v2/webhooks/{failing_id}"),
            &json!({"enabled": true}),
        )
        .await;
    assert_eq!(status, 200, "{enabled}");
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["disabled_reason"], Value::Null);
    assert_eq!(enabled["health"]["consecutive_failures"], 0, "{enabled}");
    assert_eq!(enabled["health"]["failing_since"], Value::Null);
    assert_eq!(enabled["health"]["attempts_failed"], attempts);
}

async fn gone_disables_at_once_and_the_client_is_told(backend: Backend) {
    let hookd = start(backend).await;
    let gone = Receiver::start(|_| Reply::Status(410)).await;
    let ops = Receiver::ok().await;
    let gone_webhook = hookd
        .create_webhook(json!({"url": gone.url("/"), "events": ["*"]}))
        .await;
    let ops_webhook = hookd
        .create_webhook(json!({"url": ops.url("/"), "events": ["webhook.*"]}))
        .await;
    hookd.publish("payment.completed", json!({})).await;
    let got = ops.wait_for(1, PATIENCE).await;
    let body = notice(&got, ops_webhook["secret"].as_str().unwrap());
    assert_eq!(body["data"]["webhook_id"], gone_webhook["id"]);
    assert_eq!(body["data"]["reason"], "the endpoint answered 410 Gone");
    assert_eq!(body["data"]["consecutive_failures"], 1);
    let shown = webhook(&hookd, gone_webhook["id"].as_str().unwrap()).await;
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["health"]["attempts_failed"], 1);
    assert_eq!(gone.requests().len(), 1);
}

async fn hookds_own_event_types_are_reserved_and_named_explicitly(backend: Backend) {
    let hookd = start(backend).await;
    let (status, refused) = hookd
        .post(
            "/v2/events",
            &json!({"type": "webhook.disabled", "data": {}}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reserved"),
        "{refused}"
    );
    let (status, refused) = hookd
        .post("/v2/event-types", &json!({"name": "webhook.renamed"}))
        .await;
    assert_eq!(status, 422, "{refused}");
    for filter in ["webhook.disabled", "webhook.*"] {
        let (status, created) = hookd
            .post(
                "/v2/webhooks",
                &json!({"url": "http://127.0.0.1:9/", "events": [filter]}),
            )
            .await;
        assert_eq!(status, 201, "{filter}: {created}");
    }
    let (status, refused) = hookd
        .post(
            "/v2/webhooks",
            &json!({"url": "http://127.0.0.1:9/", "events": ["webhook.nothing"]}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
}
