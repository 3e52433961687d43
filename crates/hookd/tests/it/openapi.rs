//! `GET /openapi.json` and `GET /docs` (no authentication) against the real binary.
//!
//! Plain `#[tokio::test]`s on SQLite only: the document and the page do not depend on
//! the storage backend. The routes checked come from `hookd_api::route_list()`, the route
//! table the server's router is built from, not from a list kept here.

use std::collections::BTreeSet;

use serde_json::Value;

use hookd_testkit::Backend;
use hookd_testkit::server::{Hookd, http_client};

use crate::start;

/// Routes anyone may call; every other route needs HTTP Basic authentication.
const OPEN: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/{file}",
];

async fn fetch(hookd: &Hookd, path: &str) -> (u16, String, String) {
    let response = http_client()
        .get(format!("{}{path}", hookd.base_url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

async fn document(hookd: &Hookd) -> Value {
    let (status, content_type, body) = fetch(hookd, "/openapi.json").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let doc: Value = serde_json::from_str(&body).expect("/openapi.json is not JSON");
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi version {version:?}");
    // The document describes this server, so it carries the binary's version.
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    doc
}

/// Follows `$ref`s within the document.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external $ref {reference}"));
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
            resolve(doc, target)
        }
        None => schema,
    }
}

/// The properties of an object schema, `allOf` parts merged.
fn properties<'a>(doc: &'a Value, schema: &'a Value) -> serde_json::Map<String, Value> {
    let schema = resolve(doc, schema);
    let mut out = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(properties(doc, part));
    }
    out
}

fn json_schema<'a>(operation: &'a Value, what: &str) -> &'a Value {
    let schema = &operation
        .pointer(what)
        .unwrap_or_else(|| panic!("no {what} in {operation:#}"))["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "no JSON schema at {what} in {operation:#}"
    );
    schema
}

#[tokio::test]
async fn openapi_json_lists_every_route_the_server_serves() {
    let hookd = start(Backend::Sqlite).await;
    let doc = document(&hookd).await;
    let routes: BTreeSet<(String, String)> = hookd_api::route_list().into_iter().collect();
    assert!(
        routes.contains(&("POST".to_owned(), "/v2/events".to_owned())),
        "{routes:?}"
    );

    // What the document lists is exactly the route table.
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("no paths") {
        for method in [
            "get", "put", "post", "delete", "patch", "head", "options", "trace",
        ] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert_eq!(
        documented, routes,
        "/openapi.json differs from the route table"
    );

    let schemes = &doc["components"]["securitySchemes"];
    let basic = schemes
        .as_object()
        .and_then(|s| s.iter().find(|(_, v)| v["scheme"] == "basic"))
        .map(|(name, _)| name.clone())
        .expect("no HTTP Basic security scheme");

    for (method, path) in &routes {
        let operation = &doc["paths"][path][method.to_lowercase()];
        let secured = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get(&basic).is_some()));
        let open = OPEN.contains(&path.as_str());
        assert_eq!(secured, !open, "{method} {path}: security {operation:#}");

        // The server really serves it, and asks for credentials exactly where the
        // document says so.
        let concrete = path.replace("{id}", "nope").replace("{file}", "nope");
        let method_ = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (status, body) = hookd.request_as(None, method_, &concrete, None).await;
        assert_ne!(status, 405, "{method} {path} is not served: {body}");
        assert_ne!(
            body["error"]["message"], "route not found",
            "{method} {path} is not served"
        );
        if open {
            assert_ne!(status, 401, "{method} {path} wants credentials: {body}");
        } else {
            assert_eq!(status, 401, "{method} {path} without credentials: {body}");
        }
    }
}

#[tokio::test]
async fn openapi_json_has_request_response_and_error_schemas() {
    let hookd = start(Backend::Sqlite).await;
    let doc = document(&hookd).await;
    let paths = &doc["paths"];

    // POST /v2/events: `type` and `data` required.
    let publish = &paths["/v2/events"]["post"];
    let request = resolve(&doc, json_schema(publish, "/requestBody"));
    let fields = properties(&doc, request);
    assert!(
        fields.contains_key("type") && fields.contains_key("data"),
        "{request:#}"
    );
    let required: Vec<&str> = request["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        required.contains(&"type") && required.contains(&"data"),
        "{request:#}"
    );
    let accepted = properties(&doc, json_schema(publish, "/responses/202"));
    for field in ["id", "created", "type"] {
        assert!(
            accepted.contains_key(field),
            "202 of POST /v2/events: {accepted:?}"
        );
    }

    // Errors are {"error":{"code","message"}}.
    let error = properties(&doc, json_schema(publish, "/responses/422"));
    let detail = properties(&doc, &error["error"]);
    assert!(
        detail.contains_key("code") && detail.contains_key("message"),
        "{error:?}"
    );

    // GET /v2/events/{id}: the event with its deliveries.
    let show = json_schema(&paths["/v2/events/{id}"]["get"], "/responses/200");
    let event = properties(&doc, show);
    for field in ["id", "created", "type", "data", "deliveries"] {
        assert!(
            event.contains_key(field),
            "GET /v2/events/{{id}}: {event:?}"
        );
    }
    let delivery = properties(&doc, &event["deliveries"]["items"]);
    for field in ["webhook_id", "status", "attempts"] {
        assert!(delivery.contains_key(field), "a delivery: {delivery:?}");
    }

    // POST /v2/webhooks answers with the secret; lists have next_cursor.
    let created = properties(
        &doc,
        json_schema(&paths["/v2/webhooks"]["post"], "/responses/201"),
    );
    assert!(created.contains_key("secret"), "{created:?}");
    for path in ["/v2/webhooks", "/v2/events", "/v2/events/{id}/attempts"] {
        let page = properties(&doc, json_schema(&paths[path]["get"], "/responses/200"));
        assert!(
            page.contains_key("data") && page.contains_key("next_cursor"),
            "GET {path}: {page:?}"
        );
    }
    let attempts = properties(
        &doc,
        json_schema(&paths["/v2/events/{id}/attempts"]["get"], "/responses/200"),
    );
    let attempt = properties(&doc, &attempts["data"]["items"]);
    for field in ["attempt_number", "request_body", "response_status", "error"] {
        assert!(attempt.contains_key(field), "an attempt: {attempt:?}");
    }
}

#[tokio::test]
async fn docs_is_a_page_that_needs_nothing_from_the_internet() {
    let hookd = start(Backend::Sqlite).await;
    let (status, content_type, page) = fetch(&hookd, "/docs").await;
    assert_eq!(status, 200, "{page}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let lower = page.to_lowercase();
    for external in [
        "src=\"http",
        "src='http",
        "href=\"http",
        "href='http",
        "import \"http",
        "url(http",
    ] {
        assert!(
            !lower.contains(external),
            "/docs loads from outside:\n{page}"
        );
    }
    // Every script and style sheet it loads is served by hookd itself.
    let mut loaded = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in page.match_indices(attribute) {
            let rest = &page[at + attribute.len()..];
            let target = &rest[..rest.find('"').unwrap()];
            // Relative to the page's <base href="/docs/">.
            if !target.contains(':') && !target.starts_with('/') {
                loaded.push(target.trim_start_matches("./").to_owned());
            }
        }
    }
    assert!(
        loaded.iter().any(|f| f.ends_with(".js")),
        "/docs loads no script: {page}"
    );
    for file in &loaded {
        let (status, _, body) = fetch(&hookd, &format!("/docs/{file}")).await;
        assert_eq!(status, 200, "/docs/{file}");
        assert!(
            !body.contains("src=\"http") && !body.contains("//unpkg") && !body.contains("cdn."),
            "/docs/{file} loads from outside"
        );
    }
    // The page reads this server's document.
    let (status, _, initializer) = fetch(&hookd, "/docs/swagger-initializer.js").await;
    assert_eq!(status, 200);
    assert!(initializer.contains("/openapi.json"), "{initializer}");
}
