//! The HTTP API's contract: auth, tenancy, webhooks, events, errors.

use reqwest::Method;
use serde_json::{Value, json};

use hookd_testkit::receiver::Receiver;
use hookd_testkit::server::{Credentials, delivery_status};
use hookd_testkit::{Backend, backend_tests};

use crate::start;

backend_tests!(
    requests_without_valid_basic_auth_get_a_json_401,
    one_client_never_sees_another_clients_data,
    webhooks_crud_pagination_and_secret_shown_once,
    unknown_event_types_are_refused_with_the_valid_ones_listed,
    bad_input_gets_the_right_4xx_never_a_5xx,
    publishing_answers_202_and_the_same_key_never_delivers_twice,
    batch_publish_is_all_or_nothing,
);

async fn requests_without_valid_basic_auth_get_a_json_401(backend: Backend) {
    let hookd = start(backend).await;
    let wrong = Credentials {
        client_id: hookd.credentials.client_id.clone(),
        client_secret: "hks_wrong".to_owned(),
    };
    let unknown = Credentials {
        client_id: "cl_nobody".to_owned(),
        client_secret: "x".to_owned(),
    };
    for credentials in [None, Some(&wrong), Some(&unknown)] {
        let (status, body) = hookd
            .request_as(credentials, Method::GET, "/v2/webhooks", None)
            .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(body["error"]["message"].as_str().unwrap().len() > 10);
    }
    let (status, _) = hookd.get("/v2/webhooks").await;
    assert_eq!(status, 200);
    // Health needs no auth.
    let (status, body) = hookd.request_as(None, Method::GET, "/healthz", None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, _) = hookd.request_as(None, Method::GET, "/readyz", None).await;
    assert_eq!(status, 200);
}

async fn one_client_never_sees_another_clients_data(backend: Backend) {
    let hookd = start(backend).await;
    let receiver = Receiver::ok().await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/a"), "events": ["*"]}))
        .await;
    let event_id = hookd
        .publish("payment_intent.paid", json!({"id": "pi_1"}))
        .await;
    receiver.wait_for(1, hookd_testkit::PATIENCE).await;

    let other = hookd.create_client("other").await;
    let as_other = |method: Method, path: String| {
        let other = other.clone();
        let hookd = &hookd;
        async move { hookd.request_as(Some(&other), method, &path, None).await }
    };
    let wh = webhook["id"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, format!("/v2/webhooks/{wh}")),
        (Method::PATCH, format!("/v2/webhooks/{wh}")),
        (Method::DELETE, format!("/v2/webhooks/{wh}")),
        (Method::GET, format!("/v2/events/{event_id}")),
        (Method::GET, format!("/v2/events/{event_id}/attempts")),
    ] {
        let (status, body) = if method == Method::PATCH {
            hookd
                .request_as(
                    Some(&other),
                    method,
                    &path,
                    Some(&json!({"enabled": false})),
                )
                .await
        } else {
            as_other(method, path.clone()).await
        };
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (_, list) = as_other(Method::GET, "/v2/webhooks".to_owned()).await;
    assert_eq!(list["data"], json!([]));
    let (_, list) = as_other(Method::GET, "/v2/events".to_owned()).await;
    assert_eq!(list["data"], json!([]));
    // The other client's event does not fan out to our webhook.
    let (status, _) = hookd
        .request_as(
            Some(&other),
            Method::POST,
            "/v2/events",
            Some(&json!({"type": "payment_intent.paid", "data": {}})),
        )
        .await;
    assert_eq!(status, 202);
    // And our webhook is untouched.
    let (status, still) = hookd.get(&format!("/v2/webhooks/{wh}")).await;
    assert_eq!((status, still["enabled"].as_bool()), (200, Some(true)));
    let (_, ours) = hookd.get("/v2/events").await;
    assert_eq!(ours["data"].as_array().unwrap().len(), 1);
}

async fn webhooks_crud_pagination_and_secret_shown_once(backend: Backend) {
    let hookd = start(backend).await;
    let created = hookd
        .create_webhook(json!({
            "url": "http://127.0.0.1:9/hooks",
            "events": ["payout_request.completed", "payout_request.failed", "payment_intent.paid"],
            "description": "main",
            "metadata": {"team": "payments"}
        }))
        .await;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("wh_"));
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["format"], "typed");
    assert_eq!(created["signature_header"], "x-nextpay-signature");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["disabled_reason"], Value::Null);
    assert_eq!(created["metadata"], json!({"team": "payments"}));
    for field in ["created_at", "updated_at", "description", "url", "events"] {
        assert!(!created[field].is_null(), "{field}");
    }

    let (status, shown) = hookd.get(&format!("/v2/webhooks/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        shown.get("secret").is_none(),
        "secret must only be shown at creation: {shown}"
    );
    assert_eq!(shown["events"], created["events"]);

    let (status, patched) = hookd
        .patch(
            &format!("/v2/webhooks/{id}"),
            &json!({"events": ["*"], "description": null, "enabled": false}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["events"], json!(["*"]));
    assert_eq!(patched["description"], Value::Null);
    assert_eq!(patched["enabled"], false);
    assert!(patched.get("secret").is_none());

    let event_format = hookd
        .create_webhook(
            json!({"url": "http://127.0.0.1:9/w", "events": ["payment.*"], "format": "event"}),
        )
        .await;
    assert_eq!(event_format["signature_header"], "X-Webhook-Signature");
    let custom = hookd
        .create_webhook(
            json!({"url": "http://127.0.0.1:9/c", "events": ["*"], "signature_header": "X-Sig"}),
        )
        .await;
    assert_eq!(custom["signature_header"], "X-Sig");

    // Three webhooks, pages of two.
    let (status, first) = hookd.get("/v2/webhooks?limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = hookd
        .get(&format!("/v2/webhooks?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    let mut ids: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let (status, body) = hookd.get("/v2/webhooks?cursor=garbage").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    let (status, _) = hookd.get("/v2/webhooks?limit=0").await;
    assert_eq!(status, 422);

    let (status, _) = hookd.delete(&format!("/v2/webhooks/{id}")).await;
    assert_eq!(status, 204);
    let (status, _) = hookd.get(&format!("/v2/webhooks/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = hookd.delete(&format!("/v2/webhooks/{id}")).await;
    assert_eq!(status, 404);
}

async fn unknown_event_types_are_refused_with_the_valid_ones_listed(backend: Backend) {
    let hookd = start(backend).await;
    for events in [json!(["payout_request.done"]), json!(["nope.*"]), json!([])] {
        let (status, body) = hookd
            .post(
                "/v2/webhooks",
                &json!({"url": "http://127.0.0.1:9/", "events": events}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "validation_failed");
    }
    let (_, body) = hookd
        .post(
            "/v2/webhooks",
            &json!({"url": "http://127.0.0.1:9/", "events": ["payout_request.done"]}),
        )
        .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("payout_request.completed")
            && message.contains("channel.payment.confirmed"),
        "{message}"
    );

    let (status, body) = hookd
        .post(
            "/v2/events",
            &json!({"type": "payout_request.done", "data": {}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("payment_intent.paid")
    );

    // The catalogue lists the seeds' types; a client can add its own.
    let (status, types) = hookd.get("/v2/event-types").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = types["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in [
        "payout_request.initiated",
        "payout_request.pending",
        "payout_request.processing",
        "payout_request.completed",
        "payout_request.failed",
        "payout_request.cancelled",
        "payout_request.reversed",
        "payment_intent.created",
        "payment_intent.paid",
        "payment_intent.expired",
        "payment_intent.cancelled",
        "payment.completed",
        "payment.expired",
        "channel.payment.confirmed",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let (status, _) = hookd
        .post("/v2/event-types", &json!({"name": "invoice.paid"}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = hookd
        .post("/v2/event-types", &json!({"name": "invoice.paid"}))
        .await;
    assert_eq!(status, 409);
    let (status, _) = hookd
        .post("/v2/event-types", &json!({"name": "Bad Name"}))
        .await;
    assert_eq!(status, 422);
    hookd
        .create_webhook(json!({"url": "http://127.0.0.1:9/", "events": ["invoice.*"]}))
        .await;
    hookd.publish("invoice.paid", json!({"n": 1})).await;
}

async fn bad_input_gets_the_right_4xx_never_a_5xx(backend: Backend) {
    let hookd = start(backend).await;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("/v2/events", b"{not json".to_vec(), 400),
        ("/v2/events", b"".to_vec(), 400),
        ("/v2/events", br#"{"data":{}}"#.to_vec(), 422),
        ("/v2/events", br#"{"type":5,"data":{}}"#.to_vec(), 422),
        (
            "/v2/events",
            br#"{"type":"payment.completed","data":[1]}"#.to_vec(),
            422,
        ),
        (
            "/v2/events",
            br#"{"type":"payment.completed","data":{"n":123456789012345678901}}"#.to_vec(),
            422,
        ),
        (
            "/v2/events",
            br#"{"type":"payment.completed","data":{},"id":"has space"}"#.to_vec(),
            422,
        ),
        (
            "/v2/webhooks",
            br#"{"url":"not a url","events":["*"]}"#.to_vec(),
            422,
        ),
        (
            "/v2/webhooks",
            br#"{"url":"http://127.0.0.1:9/","events":"*"}"#.to_vec(),
            422,
        ),
        (
            "/v2/webhooks",
            br#"{"url":"http://127.0.0.1:9/","events":["*"],"format":"xml"}"#.to_vec(),
            422,
        ),
        (
            "/v2/webhooks",
            br#"{"url":"http://127.0.0.1:9/","events":["*"],"signature_header":"bad header"}"#
                .to_vec(),
            422,
        ),
        ("/v2/webhooks", br#"[1,2"#.to_vec(), 400),
    ];
    for (path, body, expected) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let (status, answer) = hookd
            .post_raw(path, body, &[("content-type", "application/json")])
            .await;
        assert_eq!(status, expected, "{path} {shown}: {answer}");
        assert!(
            answer["error"]["code"].is_string() && answer["error"]["message"].is_string(),
            "{answer}"
        );
    }
    // Deeply nested data is refused, not a stack overflow.
    let deep = format!(
        r#"{{"type":"payment.completed","data":{}{}}}"#,
        "{\"a\":".repeat(100),
        "}".repeat(100)
    );
    let (status, _) = hookd.post_raw("/v2/events", deep.into_bytes(), &[]).await;
    assert!(status == 400 || status == 422, "{status}");
    // Over 256 KiB.
    let big = format!(
        r#"{{"type":"payment.completed","data":{{"x":"{}"}}}}"#,
        "a".repeat(300 * 1024)
    );
    let (status, answer) = hookd.post_raw("/v2/events", big.into_bytes(), &[]).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (status, answer) = hookd.get("/v2/nothing-here").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = hookd.get("/v2/events/evt_unknown").await;
    assert_eq!(status, 404);
    let (status, _) = hookd.get("/v2/events/evt_unknown/attempts").await;
    assert_eq!(status, 404);
    let (status, _) = hookd.get("/v2/events?since=yesterday").await;
    assert_eq!(status, 422);
    let (status, answer) = hookd.delete("/v2/events").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

async fn publishing_answers_202_and_the_same_key_never_delivers_twice(backend: Backend) {
    let hookd = start(backend).await;
    let receiver = Receiver::ok().await;
    hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["payment_intent.*"]}))
        .await;

    let (status, accepted) = hookd
        .post(
            "/v2/events",
            &json!({"type": "payment_intent.paid", "data": {"id": "pi_1"}}),
        )
        .await;
    assert_eq!(status, 202);
    let id = accepted["id"].as_str().unwrap();
    assert!(id.starts_with("evt_"));
    assert!(accepted["created"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(accepted["type"], "payment_intent.paid");

    // Idempotency-Key header.
    let send_keyed = || {
        hookd.post_raw(
            "/v2/events",
            br#"{"type":"payment_intent.created","data":{"id":"pi_2"}}"#.to_vec(),
            &[("idempotency-key", "order-42")],
        )
    };
    let (s1, first) = send_keyed().await;
    let (s2, second) = send_keyed().await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(first, second);
    // Body id.
    let with_id =
        json!({"type": "payment_intent.expired", "id": "evt_abc123", "data": {"id": "pi_3"}});
    let (_, a) = hookd.post("/v2/events", &with_id).await;
    let (_, b) = hookd.post("/v2/events", &with_id).await;
    assert_eq!(a["id"], "evt_abc123");
    assert_eq!(a, b);

    // Three distinct events, three deliveries, then nothing more.
    receiver.wait_for(3, hookd_testkit::PATIENCE).await;
    let marker = hookd.publish("payment_intent.cancelled", json!({})).await;
    let got = receiver.wait_for(4, hookd_testkit::PATIENCE).await;
    let ids: Vec<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(ids[3], marker);
    assert_eq!(ids.iter().filter(|i| *i == "evt_abc123").count(), 1);

    let (_, listed) = hookd.get("/v2/events?type=payment_intent.expired").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["data"], json!({"id": "pi_3"}));
    let (_, all) = hookd.get("/v2/events?limit=3").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 3);
    assert!(all["next_cursor"].is_string());
    // Newest first.
    assert_eq!(all["data"][0]["id"].as_str(), Some(marker.as_str()));
    let event = hookd
        .wait_for_event(&marker, |e| delivery_status(e) == "succeeded")
        .await;
    assert_eq!(event["deliveries"][0]["attempts"], 1);
    assert_eq!(event["deliveries"][0]["last_response_status"], 200);
}

async fn batch_publish_is_all_or_nothing(backend: Backend) {
    let hookd = start(backend).await;
    let (status, body) = hookd
        .post(
            "/v2/events/batch",
            &json!({"events": [
                {"type": "payment.completed", "data": {"n": 1}},
                {"type": "payment.expired", "data": {"n": 2}, "id": "evt_b2"}
            ]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][1]["id"], "evt_b2");
    let (status, body) = hookd
        .post(
            "/v2/events/batch",
            &json!({"events": [{"type": "payment.completed", "data": {}}, {"type": "bogus.type", "data": {}}]}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("events[1]")
    );
    let (_, listed) = hookd.get("/v2/events").await;
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        2,
        "nothing of the refused batch is stored"
    );
}
