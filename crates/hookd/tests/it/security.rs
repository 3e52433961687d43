//! Endpoint URL policy: https only and public addresses only, unless the flags say so.

use serde_json::json;

use hookd_testkit::server::ServeOptions;
use hookd_testkit::{Backend, backend_tests};

use crate::start_with;

backend_tests!(private_and_plain_http_targets_are_refused_by_default,);

async fn private_and_plain_http_targets_are_refused_by_default(backend: Backend) {
    let strict = start_with(ServeOptions {
        backend,
        allow_private_targets: false,
        allow_http: false,
        ..ServeOptions::default()
    })
    .await;
    // (url, what the message must mention)
    let refused = [
        ("http://93.184.216.34/hooks", "--allow-http"),
        ("https://127.0.0.1/hooks", "--allow-private-targets"),
        ("https://localhost/hooks", "--allow-private-targets"),
        ("https://10.0.0.8/hooks", "--allow-private-targets"),
        (
            "https://169.254.169.254/latest/meta-data",
            "--allow-private-targets",
        ),
        ("https://[::1]:8443/", "--allow-private-targets"),
        ("https://100.64.0.1/", "--allow-private-targets"),
    ];
    for (url, hint) in refused {
        let (status, body) = strict
            .post("/v2/webhooks", &json!({"url": url, "events": ["*"]}))
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(hint),
            "{url}: {body}"
        );
    }
    // A public https URL is fine (registering sends nothing).
    let (status, body) = strict
        .post(
            "/v2/webhooks",
            &json!({"url": "https://93.184.216.34/hooks", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let http_only = start_with(ServeOptions {
        backend,
        allow_private_targets: false,
        allow_http: true,
        ..ServeOptions::default()
    })
    .await;
    let (status, _) = http_only
        .post(
            "/v2/webhooks",
            &json!({"url": "http://127.0.0.1:9/", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, 422);
    let private_only = start_with(ServeOptions {
        backend,
        allow_private_targets: true,
        allow_http: false,
        ..ServeOptions::default()
    })
    .await;
    let (status, _) = private_only
        .post(
            "/v2/webhooks",
            &json!({"url": "http://127.0.0.1:9/", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = private_only
        .post(
            "/v2/webhooks",
            &json!({"url": "https://127.0.0.1:9/", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, 201);
}
