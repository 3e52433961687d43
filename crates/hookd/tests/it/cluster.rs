//! Several `hookd serve` processes on one PostgreSQL database: they share the work, a
//! node's death loses nothing, and a database outage is answered 503 and survived.
//! PostgreSQL only (SQLite is one process per file by design).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use hookd_testkit::postgres::{self, TestSchema};
use hookd_testkit::proxy::TcpProxy;
use hookd_testkit::receiver::{Receiver, Recorded, Reply};
use hookd_testkit::server::{Hookd, ServeOptions};
use hookd_testkit::sockets::local_tcp_ports;
use hookd_testkit::{Backend, PATIENCE};

use crate::start_with;

fn node_options(extra: &[&str]) -> ServeOptions {
    ServeOptions {
        backend: Backend::Postgres,
        extra_args: extra.iter().map(|a| (*a).to_owned()).collect(),
        ..ServeOptions::default()
    }
}

/// Publishes `count` events of `payment.completed` in batches of 1 000; their ids.
async fn publish_batches(hookd: &Hookd, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let n = (count - ids.len()).min(1000);
        let events: Vec<Value> = (0..n)
            .map(|i| json!({"type": "payment.completed", "data": {"n": ids.len() + i}}))
            .collect();
        let (status, body) = hookd
            .post("/v2/events/batch", &json!({ "events": events }))
            .await;
        assert_eq!(status, 202, "{body}");
        for accepted in body["data"].as_array().into_iter().flatten() {
            ids.push(accepted["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    ids
}

/// `(event id, path)` of each request, counted.
fn arrivals(requests: &[Recorded]) -> HashMap<(String, String), usize> {
    let mut seen = HashMap::new();
    for r in requests {
        *seen
            .entry((r.header("webhook-id").to_owned(), r.path.clone()))
            .or_insert(0) += 1;
    }
    seen
}

/// How many requests came from a socket `node` holds.
fn sent_by(node: &Hookd, requests: &[Recorded]) -> usize {
    let ports = local_tcp_ports(node.pid().unwrap());
    requests
        .iter()
        .filter(|r| ports.contains(&r.peer.port()))
        .count()
}

#[tokio::test]
async fn two_nodes_share_the_work_and_attempt_each_delivery_once() {
    if !postgres::enabled("cluster::two_nodes_share_the_work") {
        return;
    }
    // Small engines, so most deliveries go past the accepting node's hand-off and both
    // nodes claim them from the shared queue. No polling to speak of: the other node
    // learns of new work only through NOTIFY.
    let options = node_options(&["--max-in-flight", "16", "--poll-interval", "1h"]);
    let a = start_with(options.clone()).await;
    let b = a.another_node(options).await;
    let receiver = Receiver::ok().await;
    for n in 0..3 {
        a.create_webhook(json!({"url": receiver.url(&format!("/{n}")), "events": ["*"]}))
            .await;
    }
    let ids = publish_batches(&a, 5000).await;
    let got = receiver.wait_for(15_000, PATIENCE * 3).await;

    let seen = arrivals(&got);
    assert_eq!(seen.len(), 15_000, "every (event, webhook) pair arrived");
    for id in ids.iter().step_by(50) {
        let event = a
            .wait_for_event(id, |e| {
                e["deliveries"]
                    .as_array()
                    .is_some_and(|d| d.iter().all(|d| d["state"] == "succeeded"))
            })
            .await;
        for delivery in event["deliveries"].as_array().unwrap() {
            assert_eq!(delivery["attempts"], 1, "{event}");
        }
    }
    // Nothing failed, so nothing may have been attempted twice.
    let got = receiver.requests();
    let twice: Vec<_> = arrivals(&got).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(twice.is_empty(), "attempted more than once: {twice:?}");
    assert_eq!(got.len(), 15_000);

    let (by_a, by_b) = (sent_by(&a, &got), sent_by(&b, &got));
    assert!(
        by_a >= 1500 && by_b >= 1500,
        "both nodes delivered a share: {by_a} by the accepting node, {by_b} by the other"
    );
    drop(b);
}

#[tokio::test]
async fn killing_a_node_mid_run_loses_nothing() {
    if !postgres::enabled("cluster::killing_a_node_mid_run") {
        return;
    }
    // A short attempt timeout keeps the dead node's leases short (timeout + 30 s margin).
    let options = ServeOptions {
        attempt_timeout: "1s".into(),
        ..node_options(&["--max-in-flight", "16"])
    };
    let mut a = start_with(options.clone()).await;
    let b = a.another_node(options).await;
    let receiver = Receiver::start(|_| Reply::After(Duration::from_millis(20), 200)).await;
    for n in 0..3 {
        a.create_webhook(json!({"url": receiver.url(&format!("/{n}")), "events": ["*"]}))
            .await;
    }
    let mut ids = publish_batches(&a, 500).await;
    ids.extend(publish_batches(&b, 500).await);
    receiver.wait_for(300, PATIENCE).await;
    a.kill().await;

    // The dead node's leases run out and the survivor makes those attempts: every
    // delivery ends up succeeded, as the survivor reports.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(31) + PATIENCE;
    for id in &ids {
        loop {
            let (status, event) = b.get(&format!("/v2/events/{id}")).await;
            assert_eq!(status, 200, "{event}");
            let done = event["deliveries"]
                .as_array()
                .is_some_and(|d| d.len() == 3 && d.iter().all(|d| d["state"] == "succeeded"));
            if done {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not delivered after a node was killed: {event}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let seen = arrivals(&receiver.requests());
    assert_eq!(seen.len(), 3000, "every (event, webhook) pair arrived");
    // Only attempts the dead node had in flight (at most its 16 slots) may be repeated.
    let repeated: usize = seen.values().map(|n| n - 1).sum();
    assert!(repeated <= 16, "{repeated} repeated attempts");
    drop(b);
}

/// The nodes reach PostgreSQL through a proxy the test cuts: an outage for them only.
#[tokio::test]
async fn a_database_outage_is_answered_503_and_loses_nothing() {
    let Some(server_url) = postgres::server_url("cluster::a_database_outage") else {
        return;
    };
    let schema = TestSchema::create_on(&server_url).await;
    let mut url = reqwest::Url::parse(schema.url()).unwrap();
    let target: SocketAddr = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    )
    .parse()
    .unwrap();
    let proxy = TcpProxy::start(target).await;
    url.set_port(Some(proxy.addr.port())).unwrap();
    let options = ServeOptions {
        database_url: Some(url.to_string()),
        ..node_options(&[])
    };
    let a = start_with(options.clone()).await;
    let b = a.another_node(options).await;
    let receiver = Receiver::ok().await;
    a.create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;

    // Two publishers (one per node) until told to stop; every answer is kept.
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = [a.base_url.clone(), b.base_url.clone()]
        .into_iter()
        .map(|base| {
            let publisher = Publisher {
                base,
                credentials: a.credentials.clone(),
                stop: Arc::clone(&stop),
                refused: Arc::clone(&refused),
            };
            tokio::spawn(publisher.run())
        })
        .collect();
    receiver.wait_for(50, PATIENCE).await;
    proxy.cut().await;
    // Down until both nodes have answered 503 a few times.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while refused.load(Ordering::SeqCst) < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no 503 while the database was down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.restore();
    let settle = receiver.requests().len() + 50;
    receiver.wait_for(settle, PATIENCE).await;
    stop.store(true, Ordering::SeqCst);

    let mut accepted = HashSet::new();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for publisher in publishers {
        let (ids, answers) = publisher.await.unwrap();
        accepted.extend(ids);
        for status in answers {
            *statuses.entry(status).or_insert(0) += 1;
        }
    }
    assert!(
        statuses.keys().all(|s| *s == 202 || *s == 503),
        "only 202 or 503 while the database came and went: {statuses:?}"
    );
    assert!(
        statuses.get(&503).copied().unwrap_or(0) > 0,
        "the outage was answered 503: {statuses:?}"
    );
    // Everything that got a 202 is delivered.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let delivered: HashSet<String> = receiver
            .requests()
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        let missing = accepted.difference(&delivered).count();
        if missing == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} accepted events were never delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(b);
    drop(a);
}

/// Publishes one event at a time until `stop`, counting 503s in `refused`.
struct Publisher {
    base: String,
    credentials: hookd_testkit::server::Credentials,
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
}

impl Publisher {
    /// Returns the accepted ids and every status. A request that takes longer than a few
    /// seconds is a hang, and fails the test.
    async fn run(self) -> (Vec<String>, Vec<u16>) {
        let http = hookd_testkit::server::http_client();
        let mut ids = Vec::new();
        let mut statuses = Vec::new();
        let mut n = 0;
        while !self.stop.load(Ordering::SeqCst) {
            n += 1;
            let response = http
                .post(format!("{}/v2/events", self.base))
                .basic_auth(
                    &self.credentials.client_id,
                    Some(&self.credentials.client_secret),
                )
                .timeout(Duration::from_secs(15))
                .json(&json!({"type": "payment.completed", "data": {"n": n}}))
                .send()
                .await
                .unwrap_or_else(|e| panic!("publishing hung or failed: {e}"));
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            match status {
                202 => ids.push(body["id"].as_str().unwrap_or_default().to_owned()),
                503 => {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                    // Retry-After asks for a second; the outage here is short.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => {}
            }
            statuses.push(status);
        }
        (ids, statuses)
    }
}
