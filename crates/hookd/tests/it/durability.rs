//! Accepted events survive SIGKILL: pending, scheduled and in-flight deliveries are all
//! delivered after a restart.

use std::collections::HashSet;

use serde_json::json;

use hookd_testkit::PATIENCE;
use hookd_testkit::receiver::{Receiver, Reply};
use hookd_testkit::server::ServeOptions;
use hookd_testkit::{Backend, backend_tests};

use crate::{start, start_with};

backend_tests!(
    kill_9_with_retries_scheduled_loses_nothing,
    clients_hanging_up_mid_request_strand_nothing,
);

async fn kill_9_with_retries_scheduled_loses_nothing(backend: Backend) {
    // Long enough steps that retries are still scheduled when the process dies.
    let mut hookd = start_with(ServeOptions {
        backend,
        retry_schedule: "0s,1s,1s,1s,1s,1s,1s,1s".into(),
        ..ServeOptions::default()
    })
    .await;
    let down = Receiver::down_address().await;
    hookd
        .create_webhook(json!({"url": format!("http://{down}/"), "events": ["*"]}))
        .await;
    let mut published = HashSet::new();
    for n in 0..20 {
        published.insert(hookd.publish("payment.completed", json!({"n": n})).await);
    }
    // Wait until every delivery has failed its first attempt (so retries are scheduled).
    for id in &published {
        hookd
            .wait_for_event(id, |e| e["deliveries"][0]["attempts"].as_u64() >= Some(1))
            .await;
    }
    hookd.kill().await;
    let receiver = Receiver::start_on(down, |_| Reply::Status(200)).await;
    hookd.restart().await;
    let got = receiver.wait_for(20, PATIENCE).await;
    let delivered: HashSet<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(delivered, published);
}

/// SQLite only: a restarted server takes back every lease at once because the file lock
/// proves it is the only server. Servers sharing PostgreSQL cannot know a lease's holder is
/// dead, so there the leases run out (60 s, longer than the test waits).
#[tokio::test]
async fn kill_9_with_attempts_in_flight_loses_nothing() {
    let mut hookd = start_with(ServeOptions {
        attempt_timeout: "30s".into(),
        ..ServeOptions::default()
    })
    .await;
    // The receiver holds the first five requests open: those attempts are in flight
    // (leased) when hookd dies. Later requests get 200.
    let receiver = Receiver::start(|n| {
        if n < 5 {
            Reply::Hang
        } else {
            Reply::Status(200)
        }
    })
    .await;
    hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let mut published = HashSet::new();
    for n in 0..5 {
        published.insert(hookd.publish("payment.completed", json!({"n": n})).await);
    }
    receiver.wait_for(5, PATIENCE).await;
    hookd.kill().await;
    // The leases of the killed run would last 60 s; the restart releases them at once.
    hookd.restart().await;
    let got = receiver.wait_for(10, PATIENCE).await;
    let delivered: HashSet<String> = got[5..]
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(delivered, published);
}

/// Issue 3: clients that hang up mid-request must not strand what was committed. Every
/// event the store holds afterwards is delivered, promptly (well within the 60 s a lease
/// would take to run out).
async fn clients_hanging_up_mid_request_strand_nothing(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let hookd = start(backend).await;
    let receiver = Receiver::ok().await;
    hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let address = hookd.base_url.trim_start_matches("http://").to_owned();
    let auth = {
        use base64::Engine as _;
        let c = &hookd.credentials;
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.client_id, c.client_secret))
    };
    for n in 0..200 {
        let body = format!(r#"{{"type":"payment.completed","data":{{"n":{n}}}}}"#);
        let request = format!(
            "POST /v2/events HTTP/1.1\r\nhost: {address}\r\nauthorization: Basic {auth}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        if n % 2 == 0 {
            // Hang up without waiting for the answer.
            drop(stream);
        } else {
            // Wait for the 202 (so some events are surely committed), then go.
            let mut answer = [0u8; 12];
            stream.read_exact(&mut answer).await.unwrap();
            assert_eq!(&answer, b"HTTP/1.1 202");
        }
    }
    // Whatever was committed is listed; the server may still be working through the
    // requests, so look until the list stops growing, and every listed event must arrive.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut previous = HashSet::new();
    loop {
        let stored = stored_event_ids(&hookd).await;
        if !stored.is_empty() {
            let got = receiver.wait_for(stored.len(), PATIENCE).await;
            let delivered: HashSet<String> = got
                .iter()
                .map(|r| r.header("webhook-id").to_owned())
                .collect();
            let stranded: Vec<&String> = stored.difference(&delivered).collect();
            assert!(stranded.is_empty(), "stranded: {stranded:?}");
            if stored == previous {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no request got through at all"
        );
        previous = stored;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn stored_event_ids(hookd: &hookd_testkit::server::Hookd) -> HashSet<String> {
    let mut stored = HashSet::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = hookd.get(&format!("/v2/events?limit=250{cursor}")).await;
        assert_eq!(status, 200);
        for event in page["data"].as_array().unwrap() {
            stored.insert(event["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return stored,
        }
    }
}
