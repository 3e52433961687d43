//! Fuzzing the API's request decoders over real HTTP: generated bodies (arbitrary bytes,
//! arbitrary JSON, objects with each route's own fields holding hostile values, byte
//! mutations of valid bodies), query strings, path ids and headers go to a running
//! server. Every answer must be a success or a 4xx in the `{"error":{"code","message"}}`
//! shape, never a 5xx, and its status must be one the operation documents in
//! `/openapi.json`.
//!
//! A few hundred requests per route, generated from a seed printed at the start
//! (`HOOKD_FUZZ_SEED=… ` replays a run). The server's retry schedule starts in ten years:
//! nothing the fuzzing registers or publishes is ever attempted during the test.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use hookd_testkit::receiver::Receiver;
use hookd_testkit::server::{Hookd, ServeOptions, http_client};
use hookd_testkit::{Backend, backend_tests};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

use crate::start_with;

backend_tests!(request_decoders_answer_every_input_with_a_documented_status);

/// Generated inputs per route with a JSON body, per list's query string, per path and per
/// header.
const BODIES_PER_ROUTE: usize = 300;
const QUERIES_PER_ROUTE: usize = 100;
const IDS_PER_ROUTE: usize = 40;
const HEADERS: usize = 100;

/// The server's default `max_event_bytes`.
const MAX_BODY_BYTES: usize = 256 * 1024;

async fn request_decoders_answer_every_input_with_a_documented_status(backend: Backend) {
    let seed = std::env::var("HOOKD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    eprintln!("fuzz_api ({backend:?}): HOOKD_FUZZ_SEED={seed}");
    let server = start_with(ServeOptions {
        backend,
        retry_schedule: "3650d".to_owned(),
        // Thousands of requests a second: the rate limiter would answer most with 429.
        extra_args: vec!["--rate-limit".to_owned(), "off".to_owned()],
        ..ServeOptions::default()
    })
    .await;
    let fuzz = Fuzz::new(&server, seed).await;

    // Fixtures the routes act on. Webhooks point at a closed port on 127.0.0.1.
    let down = Receiver::down_address().await;
    let target = server
        .create_webhook(json!({"url": format!("http://{down}/target"), "events": ["*"]}))
        .await;
    let target = target["id"].as_str().unwrap().to_owned();
    // Only PATCH touches this one, so fuzzed changes never redirect a replay.
    let patched = server
        .create_webhook(json!({"url": format!("http://{down}/patched"), "events": ["payment.*"]}))
        .await;
    let patched = patched["id"].as_str().unwrap().to_owned();
    let event = server
        .publish("payment.completed", json!({"amount": 1}))
        .await;
    let down_url = format!("http://{down}/fuzzed");

    let routes: Vec<BodyRoute> = vec![
        BodyRoute::new("post", "/v2/webhooks", "/v2/webhooks".to_owned())
            .valid(json!({"url": down_url, "events": ["*"]}))
            .valid(json!({
                "url": down_url, "events": ["payment.*", "payout_request.completed"],
                "description": "d", "enabled": false, "metadata": {"k": [1, "v"]},
                "format": "event", "signature_header": "X-Sig"
            }))
            .fields(&[
                "url",
                "events",
                "description",
                "enabled",
                "metadata",
                "format",
                "signature_header",
            ]),
        BodyRoute::new(
            "patch",
            "/v2/webhooks/{id}",
            format!("/v2/webhooks/{patched}"),
        )
        .valid(json!({"description": null, "enabled": true}))
        .valid(json!({"events": ["payment.completed"], "metadata": {}, "format": "typed"}))
        .fields(&[
            "url",
            "events",
            "description",
            "enabled",
            "metadata",
            "format",
            "signature_header",
        ]),
        BodyRoute::new(
            "post",
            "/v2/webhooks/{id}/rotate-secret",
            format!("/v2/webhooks/{target}/rotate-secret"),
        )
        .valid(json!({"grace_seconds": 60}))
        .fields(&["grace_seconds"]),
        BodyRoute::new(
            "post",
            "/v2/webhooks/{id}/test",
            format!("/v2/webhooks/{target}/test"),
        )
        .valid(json!({"type": "payment.completed"}))
        .fields(&["type"]),
        BodyRoute::new(
            "post",
            "/v2/webhooks/{id}/replay",
            format!("/v2/webhooks/{target}/replay"),
        )
        .valid(json!({"since": 0, "status": "all"}))
        .valid(json!({"since": "2024-01-15T10:30:00Z", "until": 4_000_000_000_i64}))
        .fields(&["since", "until", "status"]),
        BodyRoute::new("post", "/v2/events", "/v2/events".to_owned())
            .valid(json!({"type": "payment.completed", "data": {"amount": 10, "currency": "PHP"}}))
            .valid(json!({"type": "payout_request.failed", "data": {}, "id": "order-17"}))
            .fields(&["type", "data", "id"]),
        BodyRoute::new("post", "/v2/events/batch", "/v2/events/batch".to_owned())
            .valid(json!({"events": [
                {"type": "payment.completed", "data": {"a": 1}},
                {"type": "payment.expired", "data": {"b": [true, null]}}
            ]}))
            .fields(&["events"]),
        BodyRoute::new(
            "post",
            "/v2/events/{id}/replay",
            format!("/v2/events/{event}/replay"),
        )
        .valid(json!({}))
        .valid(json!({"webhook_id": target}))
        .fields(&["webhook_id"]),
        BodyRoute::new("post", "/v2/event-types", "/v2/event-types".to_owned())
            .valid(json!({"name": "invoice.paid", "description": "An invoice was paid"}))
            .fields(&["name", "description"]),
    ];
    let ids = IdPool {
        target: target.clone(),
        event: event.clone(),
    };
    for route in &routes {
        fuzz.bodies(route, &ids).await;
    }

    let lists = [
        (
            "/v2/events",
            "/v2/events".to_owned(),
            &["type", "since", "until", "limit", "cursor"][..],
        ),
        (
            "/v2/webhooks",
            "/v2/webhooks".to_owned(),
            &["limit", "cursor"][..],
        ),
        (
            "/v2/webhooks/{id}/deliveries",
            format!("/v2/webhooks/{target}/deliveries"),
            &["status", "since", "until", "limit", "cursor"][..],
        ),
        (
            "/v2/webhooks/{id}/replays",
            format!("/v2/webhooks/{target}/replays"),
            &["limit", "cursor"][..],
        ),
    ];
    for (template, path, names) in lists {
        fuzz.queries(template, &path, names).await;
    }

    for template in [
        "/v2/webhooks/{id}",
        "/v2/webhooks/{id}/deliveries",
        "/v2/events/{id}",
        "/v2/events/{id}/attempts",
        "/v2/replays/{id}",
    ] {
        fuzz.path_ids(template).await;
    }
    fuzz.idempotency_keys().await;
    fuzz.authorization_headers().await;
    fuzz.assert_no_findings();

    // The fixtures survived whatever the fuzzing sent.
    let (status, _) = server.get(&format!("/v2/webhooks/{target}")).await;
    assert_eq!(status, 200);
    let (status, _) = server.get(&format!("/v2/events/{event}")).await;
    assert_eq!(status, 200);
    eprintln!(
        "fuzz_api ({backend:?}): {} requests, none answered 5xx or undocumented:\n{}",
        fuzz.sent.get(),
        fuzz.statuses_seen()
    );
}

/// A route with a JSON body: where it is, valid bodies to mutate, and its fields.
struct BodyRoute {
    method: &'static str,
    template: &'static str,
    path: String,
    valid: Vec<Value>,
    fields: Vec<&'static str>,
}

impl BodyRoute {
    fn new(method: &'static str, template: &'static str, path: String) -> BodyRoute {
        BodyRoute {
            method,
            template,
            path,
            valid: Vec::new(),
            fields: Vec::new(),
        }
    }

    fn valid(mut self, body: Value) -> BodyRoute {
        self.valid.push(body);
        self
    }

    fn fields(mut self, fields: &[&'static str]) -> BodyRoute {
        self.fields = fields.to_vec();
        self
    }
}

/// Real ids a fuzzed body may name, next to made-up ones.
struct IdPool {
    target: String,
    event: String,
}

struct Fuzz<'a> {
    server: &'a Hookd,
    http: reqwest::Client,
    doc: Value,
    seed: u64,
    runner: std::cell::RefCell<TestRunner>,
    sent: std::cell::Cell<usize>,
    /// How often each operation answered each status.
    seen: std::cell::RefCell<BTreeMap<String, BTreeMap<u16, usize>>>,
    /// The first example of each kind of wrong answer, by (operation, status, problem).
    findings: std::cell::RefCell<BTreeMap<(String, u16, &'static str), String>>,
}

/// One request as sent, for failure messages.
struct Sent<'b> {
    method: &'b str,
    path: &'b str,
    headers: Vec<(&'b str, Vec<u8>)>,
    body: &'b [u8],
}

impl<'a> Fuzz<'a> {
    async fn new(server: &'a Hookd, seed: u64) -> Fuzz<'a> {
        let http = http_client();
        let doc: Value = http
            .get(format!("{}/openapi.json", server.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
        Fuzz {
            server,
            http,
            doc,
            seed,
            runner: std::cell::RefCell::new(TestRunner::new_with_rng(
                ProptestConfig::default(),
                rng,
            )),
            sent: std::cell::Cell::new(0),
            findings: std::cell::RefCell::default(),
            seen: std::cell::RefCell::default(),
        }
    }

    fn generate<S: Strategy>(&self, strategy: S, count: usize) -> Vec<S::Value> {
        let mut runner = self.runner.borrow_mut();
        (0..count)
            .map(|_| strategy.new_tree(&mut runner).unwrap().current())
            .collect()
    }

    /// The statuses the document lists for an operation.
    fn documented(&self, method: &str, template: &str) -> BTreeSet<u16> {
        let responses = &self.doc["paths"][template][method]["responses"];
        let Some(responses) = responses.as_object() else {
            panic!("/openapi.json has no {method} {template}");
        };
        responses.keys().filter_map(|s| s.parse().ok()).collect()
    }

    /// Sends one request (with the client's credentials unless `headers` name
    /// `authorization`) and checks the answer.
    async fn send(&self, template: &str, request: Sent<'_>) {
        self.sent.set(self.sent.get() + 1);
        let method = reqwest::Method::from_bytes(request.method.to_uppercase().as_bytes()).unwrap();
        let mut builder = self
            .http
            .request(method, format!("{}{}", self.server.base_url, request.path))
            .body(request.body.to_vec());
        let has_auth = request.headers.iter().any(|(n, _)| *n == "authorization");
        if !has_auth {
            let c = &self.server.credentials;
            builder = builder.basic_auth(&c.client_id, Some(&c.client_secret));
        }
        for (name, value) in &request.headers {
            builder = builder.header(*name, value.as_slice());
        }
        let response = builder
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.describe(&request)));
        let status = response.status().as_u16();
        let www_authenticate = response.headers().contains_key("www-authenticate");
        let bytes = response.bytes().await.unwrap_or_default();
        let answer = String::from_utf8_lossy(&bytes);
        let documented = self.documented(request.method, template);
        let mut problems = Vec::new();
        if status >= 500 {
            problems.push("a server error");
        }
        if status < 500 && !documented.contains(&status) {
            problems.push("a status the operation does not document");
        }
        if status >= 400 {
            let error: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let shaped = error["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
                && error["error"]["message"].is_string();
            if !shaped {
                problems.push("an error without the {\"error\":{\"code\",\"message\"}} shape");
            }
            if status == 401 && !www_authenticate {
                problems.push("a 401 without WWW-Authenticate");
            }
        } else if status != 204 && serde_json::from_slice::<Value>(&bytes).is_err() {
            problems.push("a success that is not JSON");
        }
        let operation = format!("{} {template}", request.method.to_uppercase());
        *self
            .seen
            .borrow_mut()
            .entry(operation.clone())
            .or_default()
            .entry(status)
            .or_default() += 1;
        for problem in problems {
            self.findings
                .borrow_mut()
                .entry((operation.clone(), status, problem))
                .or_insert_with(|| {
                    format!(
                        "{operation}: {problem} ({status}; documented {documented:?})\n  request: {}\n  answer: {}",
                        self.describe(&request),
                        excerpt(&answer)
                    )
                });
        }
    }

    /// `POST /v2/events: 202×41 400×97 …`, one operation a line.
    fn statuses_seen(&self) -> String {
        let seen = self.seen.borrow();
        let lines: Vec<String> = seen
            .iter()
            .map(|(operation, statuses)| {
                let counts: Vec<String> =
                    statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
                format!("  {operation}: {}", counts.join(" "))
            })
            .collect();
        lines.join("\n")
    }

    /// Fails with every kind of wrong answer seen, one example each.
    fn assert_no_findings(&self) {
        let findings = self.findings.borrow();
        let report: Vec<&String> = findings.values().collect();
        assert!(
            report.is_empty(),
            "{} kinds of wrong answer in {} requests (HOOKD_FUZZ_SEED={}):\n{}",
            report.len(),
            self.sent.get(),
            self.seed,
            report
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    fn describe(&self, request: &Sent<'_>) -> String {
        let headers: Vec<String> = request
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {:?}", String::from_utf8_lossy(v)))
            .collect();
        format!(
            "{} {} {headers:?} body {:?} (HOOKD_FUZZ_SEED={})",
            request.method.to_uppercase(),
            excerpt(request.path),
            excerpt(&String::from_utf8_lossy(request.body)),
            self.seed
        )
    }

    async fn bodies(&self, route: &BodyRoute, ids: &IdPool) {
        let mut bodies: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"   ".to_vec(),
            b"null".to_vec(),
            b"[]".to_vec(),
            b"{}".to_vec(),
            "\u{feff}{}".as_bytes().to_vec(),
            b"{".to_vec(),
            vec![b' '; MAX_BODY_BYTES + 1],
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        ];
        let valid: Vec<Vec<u8>> = route
            .valid
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap())
            .collect();
        bodies.extend(valid.iter().cloned());
        // Every field of a valid body holding NUL, which PostgreSQL text cannot store.
        for field in &route.fields {
            let mut body = route.valid[0].clone();
            body[*field] = json!("a\u{0}b");
            bodies.push(serde_json::to_vec(&body).unwrap());
        }
        let shaped = shaped_object(route.fields.clone(), ids);
        let overridden = overridden_fields(route.valid.clone(), route.fields.clone(), ids);
        let mutated = (
            prop::sample::select(valid),
            any::<u8>(),
            any::<usize>(),
            any::<u8>(),
            1usize..4,
        )
            .prop_map(|(body, kind, index, byte, times)| {
                (0..times).fold(body, |b, i| {
                    mutate(
                        &b,
                        kind.wrapping_add(i as u8),
                        index.wrapping_mul(i + 1),
                        byte,
                    )
                })
            });
        let strategy = prop_oneof![
            2 => prop::collection::vec(any::<u8>(), 0..200),
            1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            3 => shaped.prop_map(String::into_bytes),
            6 => overridden.prop_map(String::into_bytes),
            3 => mutated,
        ];
        bodies.extend(self.generate(strategy, BODIES_PER_ROUTE));
        let content_types: [&[u8]; 3] = [
            b"application/json",
            b"text/plain",
            b"application/json; charset=latin1",
        ];
        for (i, body) in bodies.iter().enumerate() {
            let headers = if i % 7 == 6 {
                vec![("content-type", content_types[i % 3].to_vec())]
            } else {
                vec![("content-type", content_types[0].to_vec())]
            };
            let request = Sent {
                method: route.method,
                path: &route.path,
                headers,
                body,
            };
            self.send(route.template, request).await;
        }
    }

    async fn queries(&self, template: &str, path: &str, names: &[&'static str]) {
        let mut pool: Vec<&'static str> = names.to_vec();
        pool.extend(["x", "limit[]", "", "type", "status"]);
        let pair = (prop::sample::select(pool), query_value(), 0u8..6);
        let query = prop::collection::vec(pair, 0..5).prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(name, value, form)| match form {
                    0 => name.to_owned(),
                    1 => format!("{name}="),
                    _ => format!("{name}={value}"),
                })
                .collect::<Vec<_>>()
                .join("&")
        });
        // Each parameter holding NUL, which PostgreSQL text cannot store.
        let mut queries: Vec<String> = names.iter().map(|n| format!("{n}=a%00b")).collect();
        queries.extend(self.generate(query, QUERIES_PER_ROUTE));
        for query in queries {
            let path = format!("{path}?{query}");
            let request = Sent {
                method: "get",
                path: &path,
                headers: Vec::new(),
                body: b"",
            };
            self.send(template, request).await;
        }
    }

    async fn path_ids(&self, template: &str) {
        let id = prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 1..24).prop_map(|b| percent_encode(&b)),
            1 => "[a-z_0-9]{1,40}",
            1 => prop::sample::select(vec![
                "wh_", "evt_", "rpl_", "%2F", "..", "%2e%2e", "%00", "%FF%FE", "%C0%AF", "%",
                "%E2%80%AE", "null", "0", "-1",
            ])
            .prop_map(String::from),
            1 => (1usize..2000).prop_map(|n| "x".repeat(n)),
        ];
        let mut ids: Vec<String> = vec!["%00".to_owned(), "wh_%00".to_owned(), "%FF".to_owned()];
        ids.extend(self.generate(id, IDS_PER_ROUTE));
        for id in ids {
            let path = template.replace("{id}", &id);
            let request = Sent {
                method: "get",
                path: &path,
                headers: Vec::new(),
                body: b"",
            };
            self.send(template, request).await;
        }
    }

    async fn idempotency_keys(&self) {
        let key = prop_oneof![
            2 => prop::collection::vec(
                prop_oneof![
                    8 => 0x21u8..0x7f,
                    1 => Just(b' '),
                    1 => Just(b'\t'),
                    2 => 0x80u8..=0xff,
                ],
                1..300,
            ),
            1 => "[!-~]{1,255}".prop_map(String::into_bytes),
        ];
        let body = br#"{"type":"payment.completed","data":{"n":1}}"#;
        for key in self.generate(key, HEADERS) {
            // A value HTTP cannot carry (leading or trailing whitespace) is not sent.
            if key.first().is_some_and(|b| b.is_ascii_whitespace())
                || key.last().is_some_and(|b| b.is_ascii_whitespace())
            {
                continue;
            }
            let request = Sent {
                method: "post",
                path: "/v2/events",
                headers: vec![("idempotency-key", key)],
                body,
            };
            self.send("/v2/events", request).await;
        }
    }

    /// Wrong credentials in every shape are a 401, whatever else the request says.
    async fn authorization_headers(&self) {
        use base64::Engine as _;
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let id = &self.server.credentials.client_id;
        let secret = &self.server.credentials.client_secret;
        let mut values: Vec<Vec<u8>> = vec![
            format!("Basic {}", encode(&format!("{id}:{secret}x"))).into_bytes(),
            format!("Basic {}", encode(&format!("{id}x:{secret}"))).into_bytes(),
            format!("Basic {}", encode(&format!("{id}:"))).into_bytes(),
            format!("Basic {}", encode(id)).into_bytes(),
            format!("Basic {}", encode(&format!("{id}\u{0}:{secret}"))).into_bytes(),
            format!("Basic {}", encode(&format!("{id}:{secret}\u{0}"))).into_bytes(),
            format!("Bearer {secret}").into_bytes(),
            b"Basic".to_vec(),
            b"Basic =".to_vec(),
            b"Basic \xff\xfe".to_vec(),
        ];
        let garbage = prop_oneof![
            "Basic [A-Za-z0-9+/=]{0,80}".prop_map(String::into_bytes),
            "(Basic|basic|BASIC|Digest) .{0,40}".prop_map(|text| {
                let (scheme, rest) = text.split_once(' ').unwrap_or((&text, ""));
                format!("{scheme} {}", encode(rest)).into_bytes()
            }),
            prop::collection::vec(prop_oneof![0x21u8..0x7f, 0x80u8..=0xff], 1..80),
        ];
        values.extend(self.generate(garbage, HEADERS));
        for value in values {
            let request = Sent {
                method: "get",
                path: "/v2/event-types",
                headers: vec![("authorization", value)],
                body: b"",
            };
            self.send("/v2/event-types", request).await;
        }
        // Only these requests go to this operation, and none may get past authentication.
        let seen = self.seen.borrow();
        let statuses = &seen["GET /v2/event-types"];
        assert_eq!(
            statuses.keys().copied().collect::<Vec<u16>>(),
            [401],
            "wrong credentials answered {statuses:?} (HOOKD_FUZZ_SEED={})",
            self.seed
        );
    }
}

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(600) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text.to_owned(),
    }
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// Replaces, inserts or deletes one byte.
fn mutate(body: &[u8], kind: u8, index: usize, byte: u8) -> Vec<u8> {
    let mut out = body.to_vec();
    match kind % 3 {
        0 if !out.is_empty() => {
            let at = index % out.len();
            out[at] = byte;
        }
        1 | 0 => out.insert(index % (out.len() + 1), byte),
        _ if out.is_empty() => out.push(byte),
        _ => {
            out.remove(index % out.len());
        }
    }
    out
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((".{0,6}", inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// JSON text (not a `Value`, so numbers and escapes can be spelled any way) that is hostile
/// to a field: wrong types, edge numbers, NUL and lone surrogates, huge and deep values,
/// real and near-real ids, types, URLs and times.
fn hostile_value(ids: &IdPool) -> impl Strategy<Value = String> + use<> {
    let deep = |n: usize| format!("{{\"a\":{}0{}}}", "[".repeat(n), "]".repeat(n));
    let fixed: Vec<String> = [
        "null",
        "true",
        "false",
        "0",
        "-0",
        "-1",
        "1.5",
        "1e400",
        "-1e400",
        "1e-400",
        "9007199254740993",
        "18446744073709551616",
        "-9223372036854775809",
        "604800",
        "604801",
        "1700000000",
        "\"\"",
        "\"x\"",
        "\"\\u0000\"",
        "\"a\\u0000b\"",
        "\"\\ud800\"",
        "\"\\udc00x\"",
        "\"\\ud83d\\ude00\"",
        "\"\u{202e}\"",
        "[]",
        "{}",
        "[null]",
        "[\"*\"]",
        "[\"payment.*\"]",
        "[\"payment.completed\"]",
        "[\"webhook.*\"]",
        "[\"webhook.disabled\"]",
        "[\"no.such\"]",
        "[\"*\",\"*\"]",
        "[\"\"]",
        "[1]",
        "\"payment.completed\"",
        "\"webhook.disabled\"",
        "\"Payment.Completed\"",
        "\"invoice.paid\"",
        "\"a..b\"",
        "\"http://127.0.0.1:9/\"",
        "\"https://[::1]/\"",
        "\"ftp://127.0.0.1/\"",
        "\"http://user:pw@127.0.0.1/\"",
        "\"not a url\"",
        "\"typed\"",
        "\"event\"",
        "\"xml\"",
        "\"X-Sig\"",
        "\"content-type\"",
        "\"webhook-signature\"",
        "\"bad header\"",
        "\"all\"",
        "\"failed\"",
        "\"succeeded\"",
        "\"pending\"",
        "\"2024-01-15T10:30:00Z\"",
        "\"2024-13-45T99:99:99Z\"",
        "\"9999-12-31T23:59:59Z\"",
        "\"-1\"",
        "{\"a\":1}",
        "{\"\":{\"\":[]}}",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([
        format!("\"{}\"", ids.target),
        format!("\"{}\"", ids.event),
        format!(
            "[{{\"type\":\"payment.completed\",\"data\":{{}}}},{{\"type\":\"{}\",\"data\":[]}}]",
            "x".repeat(200)
        ),
        format!("\"{}\"", "a".repeat(5000)),
        format!("\"{}\"", "é".repeat(1100)),
        deep(70),
        deep(99),
        format!(
            "[{}]",
            ["{\"type\":\"payment.completed\",\"data\":{}}"; 3].join(",")
        ),
    ])
    .collect();
    prop_oneof![
        6 => prop::sample::select(fixed),
        1 => ".{0,20}".prop_map(|s| Value::String(s).to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:e}")),
    ]
}

/// An object with a selection of the route's fields (sometimes repeated, sometimes
/// unknown ones) holding hostile values.
fn shaped_object(fields: Vec<&'static str>, ids: &IdPool) -> impl Strategy<Value = String> {
    let mut names = fields;
    names.extend(["unknown", ""]);
    let entry = (prop::sample::select(names), hostile_value(ids));
    prop::collection::vec(entry, 0..6).prop_map(|entries| {
        let entries: Vec<String> = entries
            .into_iter()
            .map(|(name, value)| format!("{}:{value}", Value::from(name)))
            .collect();
        format!("{{{}}}", entries.join(","))
    })
}

/// A valid body with one to three of its fields (or the route's other fields) set to
/// hostile values: the rest stays valid, so validation and storage get to see them.
fn overridden_fields(
    valid: Vec<Value>,
    fields: Vec<&'static str>,
    ids: &IdPool,
) -> impl Strategy<Value = String> {
    let changes = prop::collection::vec((prop::sample::select(fields), hostile_value(ids)), 1..4);
    (prop::sample::select(valid), changes).prop_map(|(body, changes)| {
        let Value::Object(mut map) = body else {
            return body.to_string();
        };
        let mut raw: Vec<(String, String)> = Vec::new();
        for (name, value) in changes {
            map.remove(name);
            raw.retain(|(n, _)| n != name);
            raw.push((name.to_owned(), value));
        }
        let entries = map
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
            .chain(
                raw.iter()
                    .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str()))),
            );
        format!("{{{}}}", entries.collect::<Vec<_>>().join(","))
    })
}

/// A query parameter's value, percent-encoded where needed.
fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "0", "1", "-1", "50", "250", "251", "18446744073709551616", "1e3", "abc",
            "1700000000", "-9223372036854775808", "9223372036854775807",
            "2024-01-15T10:30:00Z", "2024-01-15T10%3A30%3A00%2B02%3A00", "9999-99-99",
            "pending", "failed", "succeeded", "cancelled", "all", "payment.completed",
            "webhook.*", "%00", "%FF", "%ZZ", "%", "+", "a%26b%3Dc", "cur_x", "evt_",
        ])
        .prop_map(String::from),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| percent_encode(&b)),
        1 => "[A-Za-z0-9_~-]{0,120}",
    ]
}
