//! Input limits and the per-client rate limit: every bound answers a 4xx with the JSON
//! error shape (status and `code` checked), and a limit's own edge is accepted. One
//! server per test, each test a table of one kind of limit.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use hookd_testkit::server::{Credentials, Hookd, ServeOptions, http_client};
use hookd_testkit::{Backend, PATIENCE, backend_tests};

use crate::{start, start_with};

backend_tests!(
    bodies_over_their_limit_are_a_413,
    json_nested_too_deep_is_a_422,
    strings_over_their_length_are_a_422,
    urls_over_their_length_are_refused,
    a_webhook_lists_at_most_256_event_filters,
    pages_hold_1_to_250_items,
    batches_hold_1_to_1000_events,
    headers_and_credentials_are_bounded,
    a_client_over_its_rate_limit_gets_429_until_retry_after_has_passed,
);

/// Bad limit settings stop start-up with one line naming the setting. A plain test: the
/// settings are checked before the database is opened.
#[tokio::test]
async fn bad_limit_settings_stop_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("hookd.db").display());
    let cases: [[&str; 2]; 5] = [
        ["--rate-limit", "fast"],
        ["--rate-limit", "0/s"],
        ["--rate-limit", "10/day"],
        ["--rate-limit-burst", "0"],
        ["--max-event-bytes", "100"],
    ];
    for args in cases {
        let run = tokio::process::Command::new(crate::bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
            .args(args)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(PATIENCE, run)
            .await
            .unwrap_or_else(|_| panic!("{args:?}: hookd started"))
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        let setting = args[0].trim_start_matches("--");
        assert!(
            stderr.starts_with(&format!("hookd: {setting}")),
            "{args:?}: {stderr}"
        );
    }
}

/// One answer: status, `Retry-After`, and the body as JSON (`Null` when empty, a string
/// when not JSON).
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

/// A request as `credentials`, with extra headers and a raw body.
async fn send(
    hookd: &Hookd,
    credentials: Option<&Credentials>,
    method: Method,
    path: &str,
    headers: &[(&str, &[u8])],
    body: Option<Vec<u8>>,
) -> Answer {
    let mut request = http_client().request(method, format!("{}{path}", hookd.base_url));
    if let Some(c) = credentials {
        request = request.basic_auth(&c.client_id, Some(&c.client_secret));
    }
    for (name, value) in headers {
        request = request.header(
            *name,
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await.unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status,
        retry_after,
        body,
    }
}

/// Sends a request head as raw bytes (for what HTTP clients refuse to send) and returns
/// the status of the answer.
async fn raw_status(hookd: &Hookd, head: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = hookd.base_url.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // The server answers and closes: read until it does.
    tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut answer))
        .await
        .expect("no answer")
        .ok();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"))
}

/// POSTs `body` (any JSON, sent as its text) as the server's own client.
async fn post(hookd: &Hookd, path: &str, body: &str) -> Answer {
    post_bytes(hookd, path, body.as_bytes().to_vec()).await
}

async fn post_bytes(hookd: &Hookd, path: &str, body: Vec<u8>) -> Answer {
    send(
        hookd,
        Some(&hookd.credentials),
        Method::POST,
        path,
        &[],
        Some(body),
    )
    .await
}

async fn get(hookd: &Hookd, path: &str) -> Answer {
    send(
        hookd,
        Some(&hookd.credentials),
        Method::GET,
        path,
        &[],
        None,
    )
    .await
}

/// Checks an answer against `(status, code)`; `code` is `None` for a success.
fn check(case: &str, answer: &Answer, status: u16, code: Option<&str>) {
    assert_eq!(answer.status, status, "{case}: {}", answer.body);
    match code {
        Some(code) => {
            assert_eq!(answer.code(), code, "{case}: {}", answer.body);
            // Short: a message never echoes an oversized input back.
            let message = answer.message();
            assert!(
                !message.is_empty() && message.len() < 2000,
                "{case}: message of {} bytes",
                message.len()
            );
        }
        None => assert!(answer.body["error"].is_null(), "{case}: {}", answer.body),
    }
}

fn event(data: &str) -> String {
    format!(r#"{{"type":"payment.completed","data":{data}}}"#)
}

/// `{"s":"xxx…"}` of exactly `bytes` bytes.
fn object_of(bytes: usize) -> String {
    format!(r#"{{"s":"{}"}}"#, "x".repeat(bytes - 8))
}

/// `depth` nested objects around `1`.
fn nested(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

async fn webhook_id(hookd: &Hookd) -> String {
    let webhook = hookd
        .create_webhook(json!({"url": "http://127.0.0.1:9/", "events": ["*"]}))
        .await;
    webhook["id"].as_str().unwrap().to_owned()
}

async fn bodies_over_their_limit_are_a_413(backend: Backend) {
    // A small per-event limit keeps the bodies small; the default (256 KiB) is checked
    // in api.rs.
    let hookd = start_with(ServeOptions {
        backend,
        extra_args: vec!["--max-event-bytes".into(), "4096".into()],
        ..ServeOptions::default()
    })
    .await;
    // Disabled: the events published here need no delivery.
    let webhook = hookd
        .create_webhook(json!({"url": "http://127.0.0.1:9/", "events": ["*"], "enabled": false}))
        .await;
    let wh = webhook["id"].as_str().unwrap();
    let fits = event(&object_of(3000));
    let over = event(&object_of(5000));
    let big_batch_event = format!(
        r#"{{"events":[{},{}]}}"#,
        event("{}"),
        event(&object_of(5000))
    );
    // (case, path, body, status, code)
    let cases: Vec<(&str, String, String, u16, Option<&str>)> = vec![
        (
            "event under the limit",
            "/v2/events".into(),
            fits,
            202,
            None,
        ),
        (
            "event over the limit",
            "/v2/events".into(),
            over.clone(),
            413,
            Some("payload_too_large"),
        ),
        (
            "webhook over the limit",
            "/v2/webhooks".into(),
            format!(
                r#"{{"url":"http://127.0.0.1:9/","events":["*"],"description":"{}"}}"#,
                "d".repeat(5000)
            ),
            413,
            Some("payload_too_large"),
        ),
        (
            "webhook change over the limit",
            format!("/v2/webhooks/{wh}"),
            format!(r#"{{"description":"{}"}}"#, "d".repeat(5000)),
            413,
            Some("payload_too_large"),
        ),
        (
            "rotation over the limit",
            format!("/v2/webhooks/{wh}/rotate-secret"),
            format!(r#"{{"pad":"{}"}}"#, "p".repeat(5000)),
            413,
            Some("payload_too_large"),
        ),
        (
            "event type over the limit",
            "/v2/event-types".into(),
            format!(r#"{{"name":"x.y","description":"{}"}}"#, "d".repeat(5000)),
            413,
            Some("payload_too_large"),
        ),
        (
            "batch event's data over the per-event limit",
            "/v2/events/batch".into(),
            big_batch_event,
            413,
            Some("payload_too_large"),
        ),
    ];
    for (case, path, body, status, code) in cases {
        let answer = if path.starts_with("/v2/webhooks/") && !path.ends_with("rotate-secret") {
            send(
                &hookd,
                Some(&hookd.credentials),
                Method::PATCH,
                &path,
                &[],
                Some(body.into_bytes()),
            )
            .await
        } else {
            post(&hookd, &path, &body).await
        };
        check(case, &answer, status, code);
    }
    // A batch may hold 1000 events of the per-event limit (plus their envelopes): 5 MiB
    // here; 6 MiB is over.
    let event_of_4k = event(&object_of(4000));
    let batch = |count: usize| {
        format!(
            r#"{{"events":[{}]}}"#,
            vec![event_of_4k.as_str(); count].join(",")
        )
    };
    let answer = post(&hookd, "/v2/events/batch", &batch(1000)).await;
    check("1000 events of 4 KB", &answer, 202, None);
    let over = format!(
        r#"{{"events":[{}],"pad":"{}"}}"#,
        event("{}"),
        "p".repeat(6 * 1024 * 1024)
    );
    let answer = post(&hookd, "/v2/events/batch", &over).await;
    check(
        "batch body over 5 MiB",
        &answer,
        413,
        Some("payload_too_large"),
    );
    // The server is still fine.
    check("after", &get(&hookd, "/v2/events?limit=1").await, 200, None);
}

async fn json_nested_too_deep_is_a_422(backend: Backend) {
    let hookd = start(backend).await;
    let wh = webhook_id(&hookd).await;
    let webhook = |metadata: &str| {
        format!(r#"{{"url":"http://127.0.0.1:9/","events":["*"],"metadata":{metadata}}}"#)
    };
    // `nested(n)` is n levels deep.
    let cases: Vec<(&str, &str, String, u16, Option<&str>)> = vec![
        ("data 64 deep", "/v2/events", event(&nested(64)), 202, None),
        (
            "data 65 deep",
            "/v2/events",
            event(&nested(65)),
            422,
            Some("validation_failed"),
        ),
        (
            "data 5000 deep",
            "/v2/events",
            event(&nested(5000)),
            422,
            Some("validation_failed"),
        ),
        (
            "another field 5000 deep",
            "/v2/events",
            format!(
                r#"{{"type":"payment.completed","data":{{}},"x":{}}}"#,
                nested(5000)
            ),
            422,
            Some("validation_failed"),
        ),
        (
            "batch event 65 deep",
            "/v2/events/batch",
            format!(r#"{{"events":[{}]}}"#, event(&nested(65))),
            422,
            Some("validation_failed"),
        ),
        (
            "metadata 64 deep",
            "/v2/webhooks",
            webhook(&nested(64)),
            201,
            None,
        ),
        (
            "metadata 65 deep",
            "/v2/webhooks",
            webhook(&nested(65)),
            422,
            Some("validation_failed"),
        ),
        (
            "metadata 5000 deep",
            "/v2/webhooks",
            webhook(&nested(5000)),
            422,
            Some("validation_failed"),
        ),
        (
            "a test event's body 5000 deep",
            "test",
            format!(r#"{{"type":{}}}"#, nested(5000)),
            422,
            Some("validation_failed"),
        ),
        (
            "arrays 5000 deep",
            "/v2/events",
            event(&format!("{}{}", "[".repeat(5000), "]".repeat(5000))),
            422,
            Some("validation_failed"),
        ),
    ];
    let test_path = format!("/v2/webhooks/{wh}/test");
    for (case, path, body, status, code) in cases {
        let path = if path == "test" { &test_path } else { path };
        check(case, &post(&hookd, path, &body).await, status, code);
    }
    // Broken JSON stays a 400, however it starts.
    let answer = post(&hookd, "/v2/events", "{\"type\":[[[[").await;
    check("broken", &answer, 400, Some("invalid_json"));
}

async fn strings_over_their_length_are_a_422(backend: Backend) {
    let hookd = start(backend).await;
    let wh = webhook_id(&hookd).await;
    let with_id = |id: &str| format!(r#"{{"type":"payment.completed","data":{{}},"id":"{id}"}}"#);
    let webhook = |field: &str, value: &str| {
        json!({"url": "http://127.0.0.1:9/", "events": ["*"], field: value}).to_string()
    };
    let long_type = format!("a.{}", "b".repeat(127));
    let metadata = |bytes: usize| {
        json!({"url": "http://127.0.0.1:9/", "events": ["*"], "metadata": {"k": "v".repeat(bytes - 8)}})
            .to_string()
    };
    let cases: Vec<(&str, &str, String, u16, Option<&str>)> = vec![
        (
            "id of 255",
            "/v2/events",
            with_id(&"i".repeat(255)),
            202,
            None,
        ),
        (
            "id of 256",
            "/v2/events",
            with_id(&"i".repeat(256)),
            422,
            Some("validation_failed"),
        ),
        (
            "type of 129",
            "/v2/events",
            format!(r#"{{"type":"{long_type}","data":{{}}}}"#),
            422,
            Some("validation_failed"),
        ),
        (
            "type of 100 000",
            "/v2/events",
            format!(r#"{{"type":"{}","data":{{}}}}"#, "t".repeat(100_000)),
            422,
            Some("validation_failed"),
        ),
        (
            "event type name of 129",
            "/v2/event-types",
            json!({ "name": long_type }).to_string(),
            422,
            Some("validation_failed"),
        ),
        (
            "event type description of 1025",
            "/v2/event-types",
            json!({"name": "invoice.paid", "description": "d".repeat(1025)}).to_string(),
            422,
            Some("validation_failed"),
        ),
        (
            "event type description of 1024",
            "/v2/event-types",
            json!({"name": "invoice.paid", "description": "d".repeat(1024)}).to_string(),
            201,
            None,
        ),
        (
            "description of 1024",
            "/v2/webhooks",
            webhook("description", &"é".repeat(1024)),
            201,
            None,
        ),
        (
            "description of 1025",
            "/v2/webhooks",
            webhook("description", &"é".repeat(1025)),
            422,
            Some("validation_failed"),
        ),
        (
            "signature_header of 64",
            "/v2/webhooks",
            webhook("signature_header", &"h".repeat(64)),
            201,
            None,
        ),
        (
            "signature_header of 65",
            "/v2/webhooks",
            webhook("signature_header", &"h".repeat(65)),
            422,
            Some("validation_failed"),
        ),
        (
            "signature_header of 100 000",
            "/v2/webhooks",
            webhook("signature_header", &"h".repeat(100_000)),
            422,
            Some("validation_failed"),
        ),
        (
            "metadata of 4096 bytes",
            "/v2/webhooks",
            metadata(4096),
            201,
            None,
        ),
        (
            "metadata of 4097 bytes",
            "/v2/webhooks",
            metadata(4097),
            422,
            Some("validation_failed"),
        ),
        (
            "test event type of 100 000",
            "test",
            json!({ "type": "t".repeat(100_000) }).to_string(),
            422,
            Some("validation_failed"),
        ),
        (
            "grace_seconds over 7 days",
            "rotate",
            json!({ "grace_seconds": 7 * 24 * 3600 + 1 }).to_string(),
            422,
            Some("validation_failed"),
        ),
        (
            "replay status of 100 000",
            "replay",
            json!({"since": 0, "status": "s".repeat(100_000)}).to_string(),
            422,
            Some("validation_failed"),
        ),
        (
            "description with a NUL byte",
            "/v2/webhooks",
            webhook("description", "a\u{0}b"),
            422,
            Some("validation_failed"),
        ),
        (
            "url with a NUL byte",
            "/v2/webhooks",
            json!({"url": "http://127.0.0.1:9/a\u{0}b", "events": ["*"]}).to_string(),
            422,
            Some("validation_failed"),
        ),
        (
            "event type description with a NUL byte",
            "/v2/event-types",
            json!({"name": "invoice.sent", "description": "a\u{0}b"}).to_string(),
            422,
            Some("validation_failed"),
        ),
        (
            "replay to a webhook id with a NUL byte",
            "replay-event",
            json!({ "webhook_id": "wh\u{0}x" }).to_string(),
            404,
            Some("not_found"),
        ),
        (
            "replay since out of range",
            "replay",
            json!({ "since": i64::MAX }).to_string(),
            422,
            Some("validation_failed"),
        ),
    ];
    let event_id = hookd.publish("payment.completed", json!({})).await;
    let (test, rotate, replay, replay_event) = (
        format!("/v2/webhooks/{wh}/test"),
        format!("/v2/webhooks/{wh}/rotate-secret"),
        format!("/v2/webhooks/{wh}/replay"),
        format!("/v2/events/{event_id}/replay"),
    );
    for (case, path, body, status, code) in cases {
        let path = match path {
            "test" => &test,
            "rotate" => &rotate,
            "replay" => &replay,
            "replay-event" => &replay_event,
            other => other,
        };
        check(case, &post(&hookd, path, &body).await, status, code);
    }
    // Query strings: a long `status` is refused without being echoed whole.
    let answer = get(
        &hookd,
        &format!("/v2/webhooks/{wh}/deliveries?status={}", "s".repeat(5000)),
    )
    .await;
    check(
        "deliveries status of 5000",
        &answer,
        422,
        Some("validation_failed"),
    );
}

async fn urls_over_their_length_are_refused(backend: Backend) {
    let hookd = start(backend).await;
    let url_of = |bytes: usize| {
        let base = "http://127.0.0.1:9/";
        format!("{base}{}", "p".repeat(bytes - base.len()))
    };
    for (case, url, status, code) in [
        ("webhook url of 2048", url_of(2048), 201, None),
        (
            "webhook url of 2049",
            url_of(2049),
            422,
            Some("validation_failed"),
        ),
        (
            "webhook url of 100 000",
            url_of(100_000),
            422,
            Some("validation_failed"),
        ),
    ] {
        let body = json!({"url": url, "events": ["*"]}).to_string();
        check(
            case,
            &post(&hookd, "/v2/webhooks", &body).await,
            status,
            code,
        );
    }
    // The request's own path and query: up to 8 KiB is read, more is a JSON 414.
    let query = |bytes: usize| format!("/v2/events?pad={}", "p".repeat(bytes - 15));
    check(
        "request of 8 KiB",
        &get(&hookd, &query(8192)).await,
        200,
        None,
    );
    check(
        "request of 8 KiB + 1",
        &get(&hookd, &query(8193)).await,
        414,
        Some("uri_too_long"),
    );
    let long_id = format!("/v2/webhooks/wh_{}", "x".repeat(10_000));
    check(
        "path of 10 KB",
        &get(&hookd, &long_id).await,
        414,
        Some("uri_too_long"),
    );
    // Past 64 KiB of request head hyper refuses it itself (431, no body); the server
    // carries on.
    let giant = raw_status(
        &hookd,
        &format!("GET {} HTTP/1.1\r\nhost: hookd\r\n\r\n", query(100_000)),
    )
    .await;
    assert_eq!(giant, 431, "a URL of 100 KB");
    // A path segment that is not UTF-8 is a JSON 400, not axum's plain text; an id that
    // no object can have (a NUL byte, 256 characters) is a 404 without a store lookup.
    check(
        "path not UTF-8",
        &get(&hookd, "/v2/webhooks/%FF%FE").await,
        400,
        Some("bad_request"),
    );
    let long_id = "e".repeat(256);
    for path in [
        "/v2/webhooks/wh%00x".to_owned(),
        "/v2/events/evt%00x/attempts".to_owned(),
        "/v2/replays/rpl%00x".to_owned(),
        format!("/v2/events/{long_id}"),
    ] {
        check(&path, &get(&hookd, &path).await, 404, Some("not_found"));
    }
    check(
        "type with a NUL byte",
        &get(&hookd, "/v2/events?type=a%00b").await,
        422,
        Some("validation_failed"),
    );
    check("after", &get(&hookd, "/v2/events?limit=1").await, 200, None);
}

async fn a_webhook_lists_at_most_256_event_filters(backend: Backend) {
    let hookd = start(backend).await;
    let webhook =
        |events: Value| json!({"url": "http://127.0.0.1:9/", "events": events}).to_string();
    let filters = |n: usize| Value::from(vec!["payment.completed"; n]);
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        ("256 filters", webhook(filters(256)), 201, None),
        (
            "257 filters",
            webhook(filters(257)),
            422,
            Some("validation_failed"),
        ),
        (
            "100 000 filters",
            webhook(filters(100_000)),
            413,
            Some("payload_too_large"),
        ),
        (
            "no filter",
            webhook(json!([])),
            422,
            Some("validation_failed"),
        ),
        (
            "a filter of 100 000",
            webhook(json!(["f".repeat(100_000)])),
            422,
            Some("validation_failed"),
        ),
        (
            "a prefix filter of 200",
            webhook(json!([format!("{}.*", "p".repeat(200))])),
            422,
            Some("validation_failed"),
        ),
    ];
    for (case, body, status, code) in cases {
        check(
            case,
            &post(&hookd, "/v2/webhooks", &body).await,
            status,
            code,
        );
    }
    // The same bound applies to a change.
    let wh = webhook_id(&hookd).await;
    let answer = send(
        &hookd,
        Some(&hookd.credentials),
        Method::PATCH,
        &format!("/v2/webhooks/{wh}"),
        &[],
        Some(json!({ "events": filters(257) }).to_string().into_bytes()),
    )
    .await;
    check(
        "257 filters in a change",
        &answer,
        422,
        Some("validation_failed"),
    );
}

async fn pages_hold_1_to_250_items(backend: Backend) {
    let hookd = start(backend).await;
    let wh = webhook_id(&hookd).await;
    let lists = [
        "/v2/webhooks".to_owned(),
        "/v2/events".to_owned(),
        format!("/v2/webhooks/{wh}/deliveries"),
        format!("/v2/webhooks/{wh}/replays"),
    ];
    let long_cursor = format!("cursor={}", "c".repeat(300));
    let cases: [(&str, u16, Option<&str>); 8] = [
        ("limit=1", 200, None),
        ("limit=250", 200, None),
        ("limit=0", 422, Some("validation_failed")),
        ("limit=251", 422, Some("validation_failed")),
        ("limit=-1", 422, Some("validation_failed")),
        (
            "limit=99999999999999999999999",
            422,
            Some("validation_failed"),
        ),
        ("cursor=not-a-cursor", 422, Some("validation_failed")),
        (&long_cursor, 422, Some("validation_failed")),
    ];
    for list in &lists {
        for (query, status, code) in cases {
            let path = format!("{list}?{query}");
            check(&path, &get(&hookd, &path).await, status, code);
        }
    }
}

async fn batches_hold_1_to_1000_events(backend: Backend) {
    let hookd = start(backend).await;
    let batch = |count: usize| format!(r#"{{"events":[{}]}}"#, vec![event("{}"); count].join(","));
    let cases: [(&str, String, u16, Option<&str>); 5] = [
        ("1 event", batch(1), 202, None),
        ("1000 events", batch(1000), 202, None),
        ("no event", batch(0), 422, Some("validation_failed")),
        ("1001 events", batch(1001), 422, Some("validation_failed")),
        // Refused as the 1001st is read, not after a list of all of them is built.
        (
            "200 000 events",
            batch(200_000),
            422,
            Some("validation_failed"),
        ),
    ];
    for (case, body, status, code) in cases {
        let answer = post(&hookd, "/v2/events/batch", &body).await;
        check(case, &answer, status, code);
        if status == 202 {
            let accepted = answer.body["data"].as_array().map_or(0, Vec::len);
            assert!(accepted == 1 || accepted == 1000, "{case}: {accepted}");
        }
    }
    // Nothing of the refused batches was stored: 1 + 1000 events.
    let mut stored = 0;
    let mut path = "/v2/events?limit=250".to_owned();
    loop {
        let page = get(&hookd, &path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        stored += page.body["data"].as_array().map_or(0, Vec::len);
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v2/events?limit=250&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(stored, 1001);
}

async fn headers_and_credentials_are_bounded(backend: Backend) {
    let hookd = start(backend).await;
    let publish_with_key = |key: Vec<u8>| {
        let hookd = &hookd;
        async move {
            send(
                hookd,
                Some(&hookd.credentials),
                Method::POST,
                "/v2/events",
                &[("idempotency-key", &key)],
                Some(event("{}").into_bytes()),
            )
            .await
        }
    };
    let cases: [(&str, Vec<u8>, u16, Option<&str>); 5] = [
        ("key of 255", vec![b'k'; 255], 202, None),
        (
            "key of 256",
            vec![b'k'; 256],
            422,
            Some("validation_failed"),
        ),
        (
            "key of 8000",
            vec![b'k'; 8000],
            422,
            Some("validation_failed"),
        ),
        (
            "key with a space",
            b"two words".to_vec(),
            422,
            Some("validation_failed"),
        ),
        (
            "key not ASCII",
            b"caf\xc3\xa9".to_vec(),
            422,
            Some("validation_failed"),
        ),
    ];
    for (case, key, status, code) in cases {
        check(case, &publish_with_key(key).await, status, code);
    }

    // Credentials longer than any hookd issues are refused unread.
    let long_id = Credentials {
        client_id: "c".repeat(200),
        client_secret: "s".to_owned(),
    };
    let long_secret = Credentials {
        client_id: hookd.credentials.client_id.clone(),
        client_secret: "s".repeat(2000),
    };
    let nul_id = Credentials {
        client_id: "cl_\u{0}x".to_owned(),
        client_secret: "s".to_owned(),
    };
    for (case, credentials) in [
        ("client_id of 200", long_id),
        ("secret of 2000", long_secret),
        ("client_id with a NUL byte", nul_id),
    ] {
        let answer = send(
            &hookd,
            Some(&credentials),
            Method::GET,
            "/v2/webhooks",
            &[],
            None,
        )
        .await;
        check(case, &answer, 401, Some("unauthorized"));
    }

    // More than 100 headers, or a head over 64 KiB: hyper answers 431 before any handler
    // (no body), and the server carries on.
    let names: Vec<String> = (0..150).map(|n| format!("x-h{n}")).collect();
    let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"v"[..])).collect();
    let answer = send(
        &hookd,
        Some(&hookd.credentials),
        Method::GET,
        "/v2/webhooks",
        &many,
        None,
    )
    .await;
    assert_eq!(answer.status, 431, "150 headers: {}", answer.body);
    let huge = vec![b'v'; 70 * 1024];
    let answer = send(
        &hookd,
        Some(&hookd.credentials),
        Method::GET,
        "/v2/webhooks",
        &[("x-huge", &huge)],
        None,
    )
    .await;
    assert_eq!(answer.status, 431, "a header of 70 KiB: {}", answer.body);
    check("after", &get(&hookd, "/v2/webhooks").await, 200, None);
}

async fn a_client_over_its_rate_limit_gets_429_until_retry_after_has_passed(backend: Backend) {
    // One request per second, five at once: the sixth of a quick run is refused (should
    // the machine take a whole second for five, a later one is).
    let hookd = start_with(ServeOptions {
        backend,
        extra_args: vec![
            "--rate-limit".into(),
            "1/s".into(),
            "--rate-limit-burst".into(),
            "5".into(),
        ],
        ..ServeOptions::default()
    })
    .await;
    let other = hookd.create_client("other").await;
    let as_client = |credentials: Credentials| {
        let hookd = &hookd;
        async move {
            send(
                hookd,
                Some(&credentials),
                Method::GET,
                "/v2/webhooks",
                &[],
                None,
            )
            .await
        }
    };
    for n in 1..=5 {
        check(
            &format!("request {n}"),
            &as_client(hookd.credentials.clone()).await,
            200,
            None,
        );
    }
    let mut refused = None;
    for _ in 0..50 {
        let answer = as_client(hookd.credentials.clone()).await;
        if answer.status != 200 {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("no request was refused");
    check("over the limit", &refused, 429, Some("rate_limited"));
    let retry_after: u64 = refused
        .retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After: {:?}", refused.retry_after));
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    // Every authenticated route counts, publishing too (a token may have come back
    // meanwhile, but not many).
    let mut published = None;
    for _ in 0..10 {
        let answer = post(&hookd, "/v2/events", &event("{}")).await;
        if answer.status != 202 {
            published = Some(answer);
            break;
        }
    }
    let published = published.expect("no publish was refused");
    check(
        "publish over the limit",
        &published,
        429,
        Some("rate_limited"),
    );

    // Another client has its own bucket; routes without a client are never limited;
    // bad credentials are a 401, not a 429.
    check("another client", &as_client(other.clone()).await, 200, None);
    for _ in 0..10 {
        let health = send(&hookd, None, Method::GET, "/healthz", &[], None).await;
        assert_eq!(health.status, 200);
    }
    let wrong = Credentials {
        client_id: hookd.credentials.client_id.clone(),
        client_secret: "hks_wrong".to_owned(),
    };
    check(
        "wrong secret",
        &as_client(wrong).await,
        401,
        Some("unauthorized"),
    );

    // After Retry-After, requests pass again.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut wait = Duration::from_secs(retry_after);
    loop {
        tokio::time::sleep(wait).await;
        let answer = as_client(hookd.credentials.clone()).await;
        if answer.status == 200 {
            break;
        }
        check("still limited", &answer, 429, Some("rate_limited"));
        assert!(
            tokio::time::Instant::now() < deadline,
            "still refused after waiting: {}",
            answer.body
        );
        wait = Duration::from_secs(answer.retry_after.and_then(|v| v.parse().ok()).unwrap_or(1));
    }

    // The refusals are counted.
    let metrics = send(&hookd, None, Method::GET, "/metrics", &[], None).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    let counted: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{} ", hookd_api::REQUESTS_RATE_LIMITED)))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no {} in /metrics:\n{text}",
                hookd_api::REQUESTS_RATE_LIMITED
            )
        });
    assert!(counted >= 2.0, "{counted}");
}
