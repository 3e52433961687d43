//! `GET /v2/webhooks/{id}/deliveries`: a webhook's delivery log through the real binary.

use reqwest::Method;
use serde_json::{Value, json};

use hookd_testkit::receiver::{Receiver, Reply};
use hookd_testkit::server::ServeOptions;
use hookd_testkit::{Backend, backend_tests};

use crate::start_with;

backend_tests!(a_webhooks_delivery_log_filters_and_pages);

/// The event ids of a page, in order.
fn event_ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_webhooks_delivery_log_filters_and_pages(backend: Backend) {
    // One attempt per delivery: a 500 fails it for good.
    let hookd = start_with(ServeOptions {
        backend,
        retry_schedule: "0s".to_owned(),
        ..ServeOptions::default()
    })
    .await;
    // Requests 1 and 3 (the second and fourth event) fail.
    let receiver = Receiver::start(|n| Reply::Status(if n % 2 == 1 { 500 } else { 200 })).await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let webhook_id = webhook["id"].as_str().unwrap();
    // Another webhook of the client, whose deliveries must not show up.
    let other_receiver = Receiver::ok().await;
    hookd
        .create_webhook(json!({"url": other_receiver.url("/"), "events": ["payment.completed"]}))
        .await;

    // Published one at a time, each settled before the next, so the receiver's n-th
    // request is the n-th event.
    let mut published = Vec::new();
    for n in 0..4 {
        let event_type = if n == 3 {
            "payment.completed"
        } else {
            "payment_intent.paid"
        };
        let id = hookd.publish(event_type, json!({"n": n})).await;
        hookd
            .wait_for_event(&id, |e| {
                e["deliveries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|d| d["state"] != "pending")
            })
            .await;
        published.push(id);
    }
    let newest_first: Vec<String> = published.iter().rev().cloned().collect();
    let path = format!("/v2/webhooks/{webhook_id}/deliveries");

    // Everything, newest first, shaped like the event detail's deliveries plus the event.
    let (status, all) = hookd.get(&path).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(event_ids(&all), newest_first);
    assert_eq!(all["next_cursor"], Value::Null);
    let newest = &all["data"][0];
    let (_, event) = hookd.get(&format!("/v2/events/{}", published[3])).await;
    let shown = event["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["webhook_id"] == webhook_id)
        .unwrap();
    for field in [
        "webhook_id",
        "state",
        "status",
        "attempts",
        "next_attempt_at",
        "last_response_status",
        "updated_at",
    ] {
        assert_eq!(newest[field], shown[field], "{field}: {newest} vs {shown}");
    }
    assert_eq!(newest["event_type"], "payment.completed");
    assert_eq!(newest["event_created"], event["created"]);
    assert_eq!(newest["status"], "failed");
    assert_eq!(newest["last_response_status"], 500);
    assert_eq!(newest["attempts"], 1);
    assert_eq!(all["data"][1]["event_type"], "payment_intent.paid");
    assert_eq!(all["data"][1]["status"], "succeeded");
    assert_eq!(all["data"][1]["last_response_status"], 200);

    // Only the failed ones.
    let (status, failed) = hookd.get(&format!("{path}?status=failed")).await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(
        event_ids(&failed),
        [published[3].clone(), published[1].clone()]
    );
    assert!(
        failed["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "failed" && d["status"] == "failed")
    );
    let (_, succeeded) = hookd.get(&format!("{path}?status=succeeded")).await;
    assert_eq!(
        event_ids(&succeeded),
        [published[2].clone(), published[0].clone()]
    );
    let (_, pending) = hookd.get(&format!("{path}?status=pending")).await;
    assert_eq!(event_ids(&pending), Vec::<String>::new());

    // A receipt-time window (unix seconds or RFC 3339): everything was received just now.
    let created = event["created"].as_i64().unwrap();
    let (status, window) = hookd
        .get(&format!(
            "{path}?status=failed&since={}&until={}",
            created - 60,
            created + 60
        ))
        .await;
    assert_eq!(status, 200, "{window}");
    assert_eq!(event_ids(&window), event_ids(&failed));
    let (_, later) = hookd
        .get(&format!("{path}?since=2999-01-01T00:00:00Z"))
        .await;
    assert_eq!(event_ids(&later), Vec::<String>::new());
    let (_, earlier) = hookd.get(&format!("{path}?until=1000000000")).await;
    assert_eq!(event_ids(&earlier), Vec::<String>::new());

    // Pages of one, following next_cursor.
    let mut seen = Vec::new();
    let mut next = format!("{path}?limit=1");
    loop {
        let (status, page) = hookd.get(&next).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
        seen.extend(event_ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => next = format!("{path}?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
    // And with the status filter.
    let (_, first) = hookd.get(&format!("{path}?status=failed&limit=1")).await;
    assert_eq!(event_ids(&first), [published[3].clone()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = hookd
        .get(&format!("{path}?status=failed&limit=1&cursor={cursor}"))
        .await;
    assert_eq!(event_ids(&second), [published[1].clone()]);
    assert_eq!(second["next_cursor"], Value::Null);

    // Mistakes.
    for bad in [
        "status=done",
        "status=FAILED",
        "since=yesterday",
        "until=soon",
        "limit=0",
        "limit=251",
        "cursor=garbage",
    ] {
        let (status, body) = hookd.get(&format!("{path}?{bad}")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("validation_failed")),
            "{bad}: {body}"
        );
        assert!(body["error"]["message"].is_string(), "{bad}: {body}");
    }
    let (status, body) = hookd.get("/v2/webhooks/wh_nope/deliveries").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    // Another client's webhook is unknown to it.
    let other = hookd.create_client("other").await;
    let (status, body) = hookd
        .request_as(Some(&other), Method::GET, &path, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = hookd.request_as(None, Method::GET, &path, None).await;
    assert_eq!(status, 401);
    // A deleted webhook is gone, as GET /v2/webhooks/{id} says.
    let (status, _) = hookd.delete(&format!("/v2/webhooks/{webhook_id}")).await;
    assert_eq!(status, 204);
    let (status, _) = hookd.get(&format!("/v2/webhooks/{webhook_id}")).await;
    assert_eq!(status, 404);
    let (status, body) = hookd.get(&path).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}
