//! Endpoint URL policy (SSRF): https only and public addresses only, unless the flags say
//! so; checked at registration (also every spelling of an address, and the addresses a
//! name resolves to) and again at connect time, after DNS resolution, so that a name
//! rebinding to a private address is never called. Names resolve through a DNS server
//! the test runs on 127.0.0.1 (`--dns-server`); no test dials an address outside
//! 127.0.0.1 (public answers are only ever seen by registration, which sends nothing).

use std::net::IpAddr;

use serde_json::{Value, json};

use hookd_testkit::dns::DnsServer;
use hookd_testkit::receiver::Receiver;
use hookd_testkit::server::{Hookd, ServeOptions, delivery_status};
use hookd_testkit::{Backend, backend_tests};

use crate::start_with;

backend_tests!(
    private_and_plain_http_targets_are_refused_by_default,
    every_spelling_of_a_private_address_is_refused_at_registration,
    names_resolving_to_refused_addresses_are_refused_at_registration,
    a_name_rebinding_to_a_private_address_is_never_called,
    a_private_target_registered_earlier_is_refused_at_connect_time,
);

/// An address that counts as public. Only registration ever sees it (a DNS answer);
/// nothing connects to it.
const PUBLIC: &str = "93.184.216.34";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// `hookd serve` refusing private targets, allowing `http://`, resolving names with `dns`.
async fn strict_with_dns(backend: Backend, dns: &DnsServer) -> Hookd {
    start_with(ServeOptions {
        backend,
        allow_private_targets: false,
        allow_http: true,
        extra_args: vec!["--dns-server".into(), dns.address().to_string()],
        ..ServeOptions::default()
    })
    .await
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

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

async fn every_spelling_of_a_private_address_is_refused_at_registration(backend: Backend) {
    let strict = start_with(ServeOptions {
        backend,
        allow_private_targets: false,
        allow_http: true,
        ..ServeOptions::default()
    })
    .await;
    // (URL, what the message must name: the address it means, or the host)
    let refused = [
        ("http://2130706433/", "`127.0.0.1` is a loopback address"),
        ("http://0177.0.0.1/", "`127.0.0.1` is a loopback address"),
        ("http://0x7f.1/", "`127.0.0.1` is a loopback address"),
        (
            "http://0x7f000001:8080/",
            "`127.0.0.1` is a loopback address",
        ),
        ("http://127.1/", "`127.0.0.1` is a loopback address"),
        ("http://127.0.0.1./", "`127.0.0.1` is a loopback address"),
        (
            "http://%31%32%37.0.0.1/",
            "`127.0.0.1` is a loopback address",
        ),
        (
            "http://\u{ff11}\u{ff12}\u{ff17}.0.0.1/",
            "`127.0.0.1` is a loopback address",
        ),
        ("http://0/", "`0.0.0.0` is a this-network address"),
        ("http://0.0.0.0:9/", "`0.0.0.0` is a this-network address"),
        ("http://[::]/", "`::` is the unspecified address"),
        ("http://[::1]:8443/", "`::1` is a loopback address"),
        (
            "http://[::ffff:127.0.0.1]/",
            "`::ffff:127.0.0.1` is an IPv4-mapped IPv6 address of 127.0.0.1",
        ),
        (
            "http://[::ffff:7f00:1]/",
            "`::ffff:127.0.0.1` is an IPv4-mapped IPv6 address of 127.0.0.1",
        ),
        (
            "http://[::ffff:a9fe:a9fe]/",
            "`::ffff:169.254.169.254` is an IPv4-mapped IPv6 address of 169.254.169.254",
        ),
        ("http://[64:ff9b::a00:1]/", "a NAT64 address of 10.0.0.1"),
        (
            "http://[2002:c0a8:101::1]/",
            "a 6to4 address of 192.168.1.1",
        ),
        (
            "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
            "a Teredo tunnel address",
        ),
        ("http://[fd00:ec2::254]/", "a unique local address"),
        ("http://[fe80::1]/", "a link-local address"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "`169.254.169.254` is a link-local address",
        ),
        (
            "http://2852039166/",
            "`169.254.169.254` is a link-local address",
        ),
        ("http://100.100.100.200/", "a carrier-grade NAT address"),
        (
            "http://10.0.0.1#@example.com/",
            "`10.0.0.1` is a private address",
        ),
        ("http://192.0.0.192/", "an IETF protocol assignment"),
        ("http://198.18.0.1/", "a benchmarking address"),
        ("http://224.0.0.1/", "a multicast address"),
        ("http://localhost/", "the host `localhost`"),
        ("http://localhost./", "the host `localhost`"),
        ("http://LOCALHOST:8080/", "the host `localhost`"),
        ("http://api.localhost/", "the host `api.localhost`"),
        (
            "http://%6c%6f%63%61%6c%68%6f%73%74/",
            "the host `localhost`",
        ),
        (
            "http://metadata.google.internal/",
            "the host `metadata.google.internal`",
        ),
        ("http://printer.local/", "the host `printer.local`"),
        ("http://intranet/", "the host `intranet`"),
        ("https://a@127.0.0.1/", "credentials"),
        ("https://example.com@10.0.0.1/", "credentials"),
        ("gopher://127.0.0.1:6379/_INFO", "scheme `gopher`"),
        ("http://[fe80::1%25eth0]/", "not valid"),
    ];
    for (url, said) in refused {
        let (status, body) = strict
            .post("/v2/webhooks", &json!({"url": url, "events": ["*"]}))
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{url}: {body}");
        assert!(message(&body).contains(said), "{url}: {body}");
        assert!(message(&body).starts_with("`url`: "), "{url}: {body}");
    }
    // A change of URL is checked the same way.
    let webhook = strict
        .create_webhook(json!({"url": format!("http://{PUBLIC}/hooks"), "events": ["*"]}))
        .await;
    let id = webhook["id"].as_str().unwrap();
    let (status, body) = strict
        .patch(
            &format!("/v2/webhooks/{id}"),
            &json!({"url": "http://0x7f.1/"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(message(&body).contains("`127.0.0.1`"), "{body}");
    let (_, unchanged) = strict.get(&format!("/v2/webhooks/{id}")).await;
    assert_eq!(unchanged["url"], format!("http://{PUBLIC}/hooks"));
}

async fn names_resolving_to_refused_addresses_are_refused_at_registration(backend: Backend) {
    let dns = DnsServer::start().await;
    dns.set("private.test", &[ip("127.0.0.1")]);
    dns.set("metadata.test", &[ip("169.254.169.254")]);
    dns.set("mixed.test", &[ip(PUBLIC), ip("10.0.0.1")]);
    dns.set("loopback6.test", &[ip("::1")]);
    dns.set("mapped.test", &[ip("::ffff:192.168.0.1")]);
    dns.set("public.test", &[ip(PUBLIC)]);
    let hookd = strict_with_dns(backend, &dns).await;
    // (name, the refused address the message must name)
    let refused = [
        ("private.test", "`127.0.0.1` is a loopback address"),
        ("metadata.test", "`169.254.169.254` is a link-local address"),
        // One refused address is enough: a name mixing them is a rebinding tool.
        ("mixed.test", "`10.0.0.1` is a private address"),
        ("loopback6.test", "`::1` is a loopback address"),
        (
            "mapped.test",
            "`::ffff:192.168.0.1` is an IPv4-mapped IPv6 address of 192.168.0.1",
        ),
    ];
    for (name, said) in refused {
        let url = format!("http://{name}:8080/hooks");
        let (status, body) = hookd
            .post("/v2/webhooks", &json!({"url": url, "events": ["*"]}))
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert!(
            message(&body).contains(&format!("the host `{name}` resolves to")),
            "{url}: {body}"
        );
        assert!(message(&body).contains(said), "{url}: {body}");
        assert!(
            message(&body).contains("--allow-private-targets"),
            "{url}: {body}"
        );
        assert!(dns.queries_for(name) > 0, "{name} was not asked");
    }
    // A public answer is fine (registering sends nothing), and so is a name that does not
    // resolve yet: connect time checks it when there is something to check.
    for name in ["public.test", "not-yet.test"] {
        hookd
            .create_webhook(json!({"url": format!("http://{name}/hooks"), "events": ["*"]}))
            .await;
        assert!(dns.queries_for(name) > 0, "{name} was not asked");
    }
    let (_, list) = hookd.get("/v2/webhooks").await;
    let id = list["data"][0]["id"].as_str().unwrap();
    let (status, body) = hookd
        .patch(
            &format!("/v2/webhooks/{id}"),
            &json!({"url": "http://private.test/"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(message(&body).contains("`127.0.0.1`"), "{body}");
}

/// DNS rebinding: the name is public when registered, and loopback when hookd delivers.
/// The receiver listening on that loopback port must never hear from hookd; every attempt
/// is logged with the refused address, and the delivery fails after its schedule.
async fn a_name_rebinding_to_a_private_address_is_never_called(backend: Backend) {
    let dns = DnsServer::start().await;
    let receiver = Receiver::ok().await;
    let hookd = strict_with_dns(backend, &dns).await;
    dns.set("rebind.test", &[ip(PUBLIC)]);
    let url = format!("http://rebind.test:{}/hooks", receiver.addr.port());
    hookd
        .create_webhook(json!({"url": url, "events": ["payment.completed"]}))
        .await;
    dns.set("rebind.test", &[ip("127.0.0.1")]);
    let asked_at_registration = dns.queries_for("rebind.test");
    assert!(asked_at_registration > 0);

    let event_id = hookd.publish("payment.completed", json!({})).await;
    let event = hookd
        .wait_for_event(&event_id, |e| delivery_status(e) == "failed")
        .await;
    assert_eq!(event["deliveries"][0]["attempts"], 3, "{event}");
    let attempts = hookd.attempts(&event_id).await;
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    for attempt in &attempts {
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(attempt["response_status"].is_null(), "{attempt}");
        assert!(
            error.contains("`rebind.test` resolves only to addresses hookd refuses")
                && error.contains("`127.0.0.1` is a loopback address"),
            "{attempt}"
        );
    }
    // The engine asked DNS itself at delivery time (it did not reuse the registration's
    // answer), and what it was told kept it off the receiver.
    assert!(dns.queries_for("rebind.test") > asked_at_registration);
    assert!(
        receiver.requests().is_empty(),
        "hookd called a loopback address: {:?}",
        receiver.requests().len()
    );
}

/// A target accepted under a looser policy (an IP literal, which no resolver sees) is
/// refused at connect time once hookd runs without `--allow-private-targets`.
async fn a_private_target_registered_earlier_is_refused_at_connect_time(backend: Backend) {
    let receiver = Receiver::ok().await;
    let mut open = start_with(ServeOptions {
        backend,
        ..ServeOptions::default()
    })
    .await;
    open.create_webhook(json!({"url": receiver.url("/hooks"), "events": ["payment.completed"]}))
        .await;
    open.kill().await;
    let strict = open
        .another_node(ServeOptions {
            backend,
            allow_private_targets: false,
            allow_http: true,
            ..ServeOptions::default()
        })
        .await;
    let event_id = strict.publish("payment.completed", json!({})).await;
    strict
        .wait_for_event(&event_id, |e| delivery_status(e) == "failed")
        .await;
    let attempts = strict.attempts(&event_id).await;
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    for attempt in &attempts {
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("`127.0.0.1` is a loopback address")
                && error.contains("--allow-private-targets"),
            "{attempt}"
        );
    }
    assert!(receiver.requests().is_empty());
}

/// About the engine's HTTP client, not the store: SQLite only. An `https` endpoint is
/// spoken to over TLS, and its certificate must chain to a trusted authority: one that
/// vouches for itself is refused before a byte of the event is sent.
#[tokio::test]
async fn https_endpoints_must_present_a_trusted_certificate() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let certificate =
        CertificateDer::from_pem_slice(include_bytes!("data/self-signed.crt")).unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("data/self-signed.key")).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let handshakes = Arc::new(AtomicUsize::new(0));
    let server = tokio::spawn({
        let (connections, handshakes) = (Arc::clone(&connections), Arc::clone(&handshakes));
        async move {
            while let Ok((stream, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                if acceptor.accept(stream).await.is_ok() {
                    handshakes.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });

    let hookd = start_with(ServeOptions {
        allow_http: false,
        ..ServeOptions::default()
    })
    .await;
    hookd
        .create_webhook(json!({"url": format!("https://127.0.0.1:{port}/hooks"), "events": ["*"]}))
        .await;
    let event_id = hookd.publish("payment.completed", json!({})).await;
    hookd
        .wait_for_event(&event_id, |e| delivery_status(e) == "failed")
        .await;
    let attempts = hookd.attempts(&event_id).await;
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    for attempt in &attempts {
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(attempt["response_status"].is_null(), "{attempt}");
        assert!(error.contains("certificate"), "{attempt}");
    }
    // hookd did dial the endpoint (so TLS was tried) and broke off every handshake.
    assert!(connections.load(Ordering::SeqCst) >= 3);
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
    server.abort();
}
