//! Fault injection: endpoints that break HTTP, SIGKILL during a long run, and a database
//! that cannot be written (full disk, read-only file). Everything stays on 127.0.0.1 and
//! every wait is bounded. (Clients hanging up mid-request are in `durability.rs`:
//! `clients_hanging_up_mid_request_strand_nothing`.)

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use hookd_testkit::misbehaving::{Behaviour, MisbehavingReceiver};
use hookd_testkit::receiver::{Receiver, Reply};
use hookd_testkit::resources::{ImmutableFiles, resident_bytes};
use hookd_testkit::server::{Hookd, ServeOptions, http_client};
use hookd_testkit::{Backend, PATIENCE, backend_tests};

use crate::start_with;

backend_tests!(misbehaving_endpoints_end_as_the_schedule_says_and_others_are_unaffected,);

/// Attempts per delivery under the schedule the misbehaving-endpoint test uses.
const ATTEMPTS: usize = 3;

/// Which webhook each kind of endpoint got.
struct Endpoint {
    name: &'static str,
    webhook_id: String,
}

async fn misbehaving_endpoints_end_as_the_schedule_says_and_others_are_unaffected(
    backend: Backend,
) {
    // Three attempts, 2 s each at most: an endpoint that never answers in time is decided
    // after three timeouts, seconds after a healthy one got everything.
    let hookd = start_with(ServeOptions {
        backend,
        retry_schedule: "0s,100ms,100ms".into(),
        attempt_timeout: "2s".into(),
        ..ServeOptions::default()
    })
    .await;
    let pid = hookd.pid().unwrap();
    let memory = MemoryWatch::start(pid);

    let second = Duration::from_secs(1);
    let hang = MisbehavingReceiver::start(Behaviour::Hang).await;
    let reset = MisbehavingReceiver::start(Behaviour::ResetMidResponse).await;
    let endless = MisbehavingReceiver::start(Behaviour::EndlessBody).await;
    let garbage = MisbehavingReceiver::start(Behaviour::Garbage).await;
    let trickle = MisbehavingReceiver::start(Behaviour::Trickle(second)).await;
    let trickle_body = MisbehavingReceiver::start(Behaviour::TrickleBody(second)).await;
    // Half of all answers are 500, by a seeded coin per request.
    let seed = seed();
    println!("flaky endpoint: seed {seed} (HOOKD_TEST_SEED={seed} repeats its answers)");
    let coins: Arc<Vec<bool>> = {
        let mut rng = StdRng::seed_from_u64(seed);
        Arc::new((0..1024).map(|_| rng.random_bool(0.5)).collect())
    };
    let flaky_plan = {
        let coins = Arc::clone(&coins);
        move |n: usize| if coins[n % coins.len()] { 500 } else { 200 }
    };
    let flaky = Receiver::start({
        let plan = flaky_plan.clone();
        move |n| Reply::Status(plan(n))
    })
    .await;
    let healthy = Receiver::ok().await;

    let mut endpoints = HashMap::new();
    for (name, url) in [
        ("hang", hang.url("/")),
        ("reset", reset.url("/")),
        ("endless", endless.url("/")),
        ("garbage", garbage.url("/")),
        ("trickle", trickle.url("/")),
        ("trickle_body", trickle_body.url("/")),
        ("flaky", flaky.url("/")),
        ("healthy", healthy.url("/")),
    ] {
        let webhook = hookd
            .create_webhook(json!({"url": url, "events": ["*"]}))
            .await;
        let webhook_id = webhook["id"].as_str().unwrap().to_owned();
        endpoints.insert(name, Endpoint { name, webhook_id });
    }
    let by_webhook: HashMap<String, &'static str> = endpoints
        .values()
        .map(|e| (e.webhook_id.clone(), e.name))
        .collect();

    // Round one, then round two while round one's attempts to the slow endpoints are
    // still in flight.
    const PER_ROUND: usize = 4;
    let mut events = Vec::new();
    for n in 0..PER_ROUND {
        events.push(hookd.publish("payment.completed", json!({"n": n})).await);
    }
    hang.wait_for(PER_ROUND, PATIENCE).await;
    trickle.wait_for(PER_ROUND, PATIENCE).await;
    for n in PER_ROUND..2 * PER_ROUND {
        events.push(hookd.publish("payment.completed", json!({"n": n})).await);
    }

    // Every healthy delivery succeeds while the endpoints that need three 2-second
    // timeouts are undecided: nothing waits behind them.
    let healthy_id = &endpoints["healthy"].webhook_id;
    for id in &events {
        hookd
            .wait_for_event(id, |e| state_of(e, healthy_id) == "succeeded")
            .await;
    }
    for id in &events {
        let (_, event) = hookd.get(&format!("/v2/events/{id}")).await;
        for slow in ["hang", "trickle"] {
            assert_eq!(
                state_of(&event, &endpoints[slow].webhook_id),
                "pending",
                "the {slow} endpoint was decided before the healthy one got everything: {event}"
            );
        }
    }

    // Every delivery ends, as the schedule says.
    for id in &events {
        hookd
            .wait_for_event(id, |e| {
                e["deliveries"]
                    .as_array()
                    .is_some_and(|d| d.iter().all(|d| d["state"] != "pending"))
            })
            .await;
    }
    let stopped = memory.stop().await;
    // Each event's attempts per endpoint, in order.
    let mut attempts: HashMap<(&str, &str), Vec<Value>> = HashMap::new();
    for id in &events {
        let (_, event) = hookd.get(&format!("/v2/events/{id}")).await;
        for delivery in event["deliveries"].as_array().unwrap() {
            let name = by_webhook[delivery["webhook_id"].as_str().unwrap()];
            let expected = match name {
                "endless" | "trickle_body" | "healthy" => "succeeded",
                "flaky" => "", // checked against the receiver's answers below
                _ => "failed",
            };
            if !expected.is_empty() {
                assert_eq!(delivery["state"], expected, "{name}: {delivery}");
            }
        }
        let mut logged = hookd.attempts(id).await;
        logged.sort_by_key(|a| a["attempt_number"].as_u64());
        for attempt in logged {
            let name = by_webhook[attempt["webhook_id"].as_str().unwrap()];
            attempts
                .entry((name, id.as_str()))
                .or_default()
                .push(attempt);
        }
    }
    let errors = |name: &str| -> Vec<String> {
        events
            .iter()
            .flat_map(|id| &attempts[&(name, id.as_str())])
            .map(|a| a["error"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    for name in ["hang", "reset", "garbage", "trickle"] {
        for id in &events {
            let tried = &attempts[&(name, id.as_str())];
            assert_eq!(tried.len(), ATTEMPTS, "{name}: {tried:?}");
            assert!(
                tried.iter().all(|a| a["response_status"].is_null()),
                "{name}: {tried:?}"
            );
        }
    }
    for name in ["hang", "trickle"] {
        for error in errors(name) {
            assert!(error.contains("timed out"), "{name}: {error}");
        }
    }
    for error in errors("reset") {
        assert!(
            error.contains("reset") || error.contains("closed"),
            "reset: {error}"
        );
    }
    for error in errors("garbage") {
        assert!(error.contains("invalid HTTP"), "garbage: {error}");
    }
    // An endless 200: a success after one attempt; hookd read the 4 KiB it logs and hung up.
    for id in &events {
        let tried = &attempts[&("endless", id.as_str())];
        assert_eq!(tried.len(), 1, "{tried:?}");
        assert_eq!(tried[0]["response_status"], 200);
        assert_eq!(tried[0]["response_body"].as_str().unwrap().len(), 4096);
        assert!(tried[0]["error"].is_null(), "{tried:?}");
    }
    let most_sent = endless.bytes_sent().into_iter().max().unwrap_or(0);
    assert!(
        most_sent < 64 * 1024 * 1024,
        "hookd kept reading an endless body: {most_sent} bytes"
    );
    // A 200 whose body dribbles: the status decides (success); the attempt is cut at the
    // timeout and its log says so, with what arrived.
    for id in &events {
        let tried = &attempts[&("trickle_body", id.as_str())];
        assert_eq!(tried.len(), 1, "{tried:?}");
        assert_eq!(tried[0]["response_status"], 200);
        let error = tried[0]["error"].as_str().unwrap_or("");
        assert!(
            error.contains("reading the response body") && error.contains("timed out"),
            "{error}"
        );
        let body = tried[0]["response_body"].as_str().unwrap();
        assert!("slow but certain".starts_with(body), "{body}");
    }
    // What the misbehaving receivers saw matches the log: one request per attempt.
    for (name, receiver) in [
        ("hang", &hang),
        ("reset", &reset),
        ("endless", &endless),
        ("garbage", &garbage),
        ("trickle", &trickle),
        ("trickle_body", &trickle_body),
    ] {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for request in receiver.requests() {
            *seen.entry(request.webhook_id).or_default() += 1;
        }
        for id in &events {
            assert_eq!(
                seen.get(id).copied().unwrap_or(0),
                attempts[&(name, id.as_str())].len(),
                "{name}: requests received for {id}"
            );
        }
    }
    // 500 half of the time: each delivery got the receiver's answers in order, and ended
    // succeeded at its first 200 or failed after the schedule's last attempt.
    let mut answers: HashMap<String, Vec<u16>> = HashMap::new();
    for (n, request) in flaky.requests().iter().enumerate() {
        answers
            .entry(request.header("webhook-id").to_owned())
            .or_default()
            .push(flaky_plan(n));
    }
    let (mut succeeded, mut failed) = (0, 0);
    for id in &events {
        let given = &answers[id];
        let logged: Vec<u64> = attempts[&("flaky", id.as_str())]
            .iter()
            .map(|a| a["response_status"].as_u64().unwrap())
            .collect();
        let given_u64: Vec<u64> = given.iter().map(|&s| u64::from(s)).collect();
        assert_eq!(logged, given_u64, "seed {seed}: {id}");
        let (_, event) = hookd.get(&format!("/v2/events/{id}")).await;
        let state = state_of(&event, &endpoints["flaky"].webhook_id);
        if given.last() == Some(&200) {
            assert!(given[..given.len() - 1].iter().all(|&s| s == 500));
            assert_eq!(state, "succeeded", "seed {seed}: {event}");
            succeeded += 1;
        } else {
            assert_eq!(given, &vec![500; ATTEMPTS], "seed {seed}: {id}");
            assert_eq!(state, "failed", "seed {seed}: {event}");
            failed += 1;
        }
    }
    println!("flaky endpoint (seed {seed}): {succeeded} succeeded, {failed} failed");
    // Memory stayed bounded throughout, the endless body included.
    println!(
        "hookd's resident memory: {} MiB at start, {} MiB at most",
        stopped.start >> 20,
        stopped.peak >> 20
    );
    assert!(
        stopped.peak < stopped.start + 64 * 1024 * 1024,
        "resident memory grew from {} to {} bytes",
        stopped.start,
        stopped.peak
    );
}

fn state_of<'a>(event: &'a Value, webhook_id: &str) -> &'a str {
    event["deliveries"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["webhook_id"] == webhook_id))
        .and_then(|d| d["state"].as_str())
        .unwrap_or("")
}

/// Samples a process's resident memory until stopped.
struct MemoryWatch {
    start: u64,
    peak: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

struct MemorySeen {
    start: u64,
    peak: u64,
}

impl MemoryWatch {
    fn start(pid: u32) -> MemoryWatch {
        let start = resident_bytes(pid).expect("hookd's resident memory");
        let peak = Arc::new(AtomicU64::new(start));
        let running = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn({
            let (peak, running) = (Arc::clone(&peak), Arc::clone(&running));
            async move {
                while running.load(Ordering::SeqCst) {
                    if let Some(now) = resident_bytes(pid) {
                        peak.fetch_max(now, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        MemoryWatch {
            start,
            peak,
            running,
            task,
        }
    }

    async fn stop(self) -> MemorySeen {
        self.running.store(false, Ordering::SeqCst);
        let _ = self.task.await;
        MemorySeen {
            start: self.start,
            peak: self.peak.load(Ordering::SeqCst),
        }
    }
}

/// The seed of a test's pseudo-random choices: `HOOKD_TEST_SEED` to repeat a run, else a
/// new one (printed by the test).
fn seed() -> u64 {
    match std::env::var("HOOKD_TEST_SEED") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("HOOKD_TEST_SEED must be a number, not {text:?}")),
        Err(_) => rand::random(),
    }
}

backend_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    sigkill_at_random_moments_during_20000_events_loses_none,
);

/// On SQLite a restarted server takes back the killed run's leases at once (its file lock
/// proves the previous holder is dead). On PostgreSQL they run out after
/// `--attempt-timeout` + 30 s, so there the run ends with that wait.
async fn sigkill_at_random_moments_during_20000_events_loses_none(backend: Backend) {
    const EVENTS: usize = 20_000;
    const BATCH: usize = 250;
    const PUBLISHERS: usize = 4;
    const KILLS: usize = 6;
    let seed = seed();
    println!("sigkill run: seed {seed} (HOOKD_TEST_SEED={seed} repeats its kill moments)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut hookd = start_with(ServeOptions {
        backend,
        attempt_timeout: "1s".into(),
        ..ServeOptions::default()
    })
    .await;
    let receiver = MisbehavingReceiver::start(Behaviour::Ok).await;
    hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;

    let (base_url, current_url) = tokio::sync::watch::channel(hookd.base_url.clone());
    let accepted_count = Arc::new(AtomicUsize::new(0));
    let mut publishers = tokio::task::JoinSet::new();
    for publisher in 0..PUBLISHERS {
        let (current_url, accepted_count) = (current_url.clone(), Arc::clone(&accepted_count));
        let credentials = hookd.credentials.clone();
        publishers.spawn(async move {
            let http = http_client();
            let mut accepted = Vec::new();
            for batch in (publisher..EVENTS / BATCH).step_by(PUBLISHERS) {
                // Our own ids: a batch sent again after a kill is answered with the
                // events stored the first time, if it was stored.
                let ids: Vec<String> = (batch * BATCH..(batch + 1) * BATCH)
                    .map(|n| format!("evt_kill_{seed}_{n}"))
                    .collect();
                let body = json!({"events": ids.iter().enumerate().map(|(i, id)| json!({
                    "id": id, "type": "payment.completed", "data": {"batch": batch, "i": i}
                })).collect::<Vec<_>>()});
                let mut url = current_url.clone();
                loop {
                    let base = url.borrow_and_update().clone();
                    let sent = http
                        .post(format!("{base}/v2/events/batch"))
                        .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
                        .timeout(PATIENCE)
                        .json(&body)
                        .send()
                        .await;
                    let answer = match sent {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            (status, response.json::<Value>().await.ok())
                        }
                        Err(_) => (0, None),
                    };
                    match answer {
                        (202, Some(stored)) => {
                            let stored: Vec<&str> = stored["data"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|e| e["id"].as_str().unwrap())
                                .collect();
                            assert_eq!(stored, ids, "the batch was stored under other ids");
                            accepted.extend(ids);
                            accepted_count.fetch_add(BATCH, Ordering::SeqCst);
                            break;
                        }
                        // Killed before or while answering: send the same batch again,
                        // to the restarted server once it is up.
                        (0 | 202, _) => {
                            let _ = tokio::time::timeout(Duration::from_millis(50), url.changed())
                                .await;
                        }
                        (status, body) => panic!("publishing answered {status}: {body:?}"),
                    }
                }
            }
            accepted
        });
    }

    // Kill at pseudo-random points of the run's progress (events accepted plus requests
    // received), with a random delay on top so kills do not line up with batches.
    let progress =
        |receiver: &MisbehavingReceiver| accepted_count.load(Ordering::SeqCst) + receiver.count();
    let mut kill_points: Vec<usize> = (0..KILLS)
        .map(|_| rng.random_range(1_000..2 * EVENTS - 2_000))
        .collect();
    kill_points.sort_unstable();
    let run_deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for point in &kill_points {
        while progress(&receiver) < *point {
            assert!(
                tokio::time::Instant::now() < run_deadline,
                "seed {seed}: the run stalled at {} of {point}",
                progress(&receiver)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..30))).await;
        hookd.kill().await;
        hookd.restart().await;
        base_url.send_replace(hookd.base_url.clone());
    }

    let mut accepted = HashSet::new();
    while let Some(published) = publishers.join_next().await {
        accepted.extend(published.unwrap());
    }
    assert_eq!(accepted.len(), EVENTS);
    // Every accepted event reaches the receiver at least once.
    loop {
        if receiver.count() >= EVENTS {
            let delivered: HashSet<String> = receiver
                .requests()
                .into_iter()
                .map(|r| r.webhook_id)
                .collect();
            if accepted.is_subset(&delivered) {
                break;
            }
        }
        if tokio::time::Instant::now() >= run_deadline {
            let delivered: HashSet<String> = receiver
                .requests()
                .into_iter()
                .map(|r| r.webhook_id)
                .collect();
            let lost = accepted.difference(&delivered).count();
            panic!("seed {seed}: {lost} accepted events were never delivered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = receiver.requests();
    let delivered: HashSet<&str> = received.iter().map(|r| r.webhook_id.as_str()).collect();
    println!(
        "sigkill run (seed {seed}): {KILLS} kills at progress {kill_points:?}; {} events accepted, \
         {} delivered, none lost; {} duplicate deliveries",
        accepted.len(),
        delivered.len(),
        received.len() - delivered.len()
    );
}

/// SQLite only (on PostgreSQL the disk is the database server's; a database that cannot
/// be reached is `cluster.rs`'s outage test). A real full disk: `hookd serve` runs with a
/// file size limit, so SQLite's writes past it fail as they would on a full disk, until
/// the test lifts the limit ("space returns").
#[tokio::test]
async fn a_full_disk_is_a_503_and_nothing_accepted_is_lost() {
    const LIMIT: u64 = 2 * 1024 * 1024;
    let mut hookd = start_with(ServeOptions {
        file_size_limit: Some(LIMIT),
        // Logs go through a pipe, which no file size limit touches.
        capture_stderr: true,
        // Every delivery stays in flight until the disk has room again (held by the
        // receiver), so the only writes while it is full are the test's.
        extra_args: vec!["--max-in-flight-per-webhook".into(), "256".into()],
        ..ServeOptions::default()
    })
    .await;
    let receiver = MisbehavingReceiver::start(Behaviour::OkOnceReleased).await;
    hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;

    // Fill the disk with large events until one is refused.
    let mut accepted = Vec::new();
    let large = "x".repeat(100 * 1024);
    for n in 0.. {
        assert!(n < 200, "the disk never filled up");
        let (status, answer) = hookd
            .post(
                "/v2/events",
                &json!({"type": "payment.completed", "data": {"n": n, "pad": large}}),
            )
            .await;
        if status != 202 {
            assert_storage_unavailable(status, &answer);
            break;
        }
        accepted.push(answer["id"].as_str().unwrap().to_owned());
    }
    assert!(!accepted.is_empty());
    // Small writes may still fit. Once an event, a batch and a webhook are refused in a
    // row (the room left cannot change between them), every kind of write is a clear 503.
    for round in 0.. {
        assert!(round < 100, "small writes never stopped fitting");
        let (status, answer) = hookd
            .post(
                "/v2/events",
                &json!({"type": "payment.completed", "data": {"round": round}}),
            )
            .await;
        let event_refused = status != 202;
        if event_refused {
            assert_storage_unavailable(status, &answer);
        } else {
            accepted.push(answer["id"].as_str().unwrap().to_owned());
        }
        let batch = json!({"events": [{"type": "payment.completed", "data": {"batch": round}}]});
        let (status, answer) = hookd.post("/v2/events/batch", &batch).await;
        let batch_refused = status != 202;
        if batch_refused {
            assert_storage_unavailable(status, &answer);
        } else {
            accepted.push(answer["data"][0]["id"].as_str().unwrap().to_owned());
        }
        // Disabled, so it adds no deliveries once writes work again.
        let webhook = json!({"url": receiver.url("/more"), "events": ["*"], "enabled": false});
        let (status, answer) = hookd.post("/v2/webhooks", &webhook).await;
        let webhook_refused = status != 201;
        if webhook_refused {
            assert_storage_unavailable(status, &answer);
        }
        if event_refused && batch_refused && webhook_refused {
            break;
        }
    }
    // Reads still work.
    let (status, event) = hookd.get(&format!("/v2/events/{}", accepted[0])).await;
    assert_eq!(status, 200, "{event}");
    assert!(
        hookd.stderr_text().contains("cannot write to the database"),
        "the log does not say what is wrong: {}",
        hookd.stderr_text()
    );

    // Space returns: publishing works at once, and everything accepted is delivered.
    hookd.set_file_size_limit(None);
    accepted.push(
        hookd
            .publish("payment.completed", json!({"after": true}))
            .await,
    );
    receiver.release();
    assert_all_delivered(&hookd, &receiver, &accepted).await;
    // Nothing refused was stored, and what was accepted survives a crash.
    hookd.kill().await;
    hookd.restart().await;
    assert_eq!(stored_event_ids(&hookd).await, set_of(&accepted));
}

/// SQLite only, as above. A database file that turns read-only under a running server:
/// the immutable flag (which stops root too, even through descriptors opened before).
#[tokio::test]
async fn a_read_only_database_file_is_a_503_until_it_is_writable_again() {
    let hookd = start_with(ServeOptions {
        capture_stderr: true,
        ..ServeOptions::default()
    })
    .await;
    let receiver = MisbehavingReceiver::start(Behaviour::Ok).await;
    hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let mut accepted = Vec::new();
    for n in 0..5 {
        accepted.push(hookd.publish("payment.completed", json!({"n": n})).await);
    }
    // Their outcomes are stored before the files freeze.
    assert_all_delivered(&hookd, &receiver, &accepted).await;

    let database = hookd.data_dir().join("hookd.db");
    let wal = hookd.data_dir().join("hookd.db-wal");
    let frozen = match ImmutableFiles::set(&[&database, &wal]) {
        Ok(frozen) => frozen,
        // The immutable flag needs root and a file system that has it (ext4, xfs, …); the
        // full-disk test covers the same error path everywhere, so this one may skip.
        Err(reason) => {
            eprintln!("skipping: cannot make the database read-only here: {reason}");
            return;
        }
    };
    for n in 0..3 {
        let (status, answer) = hookd
            .post(
                "/v2/events",
                &json!({"type": "payment.completed", "data": {"refused": n}}),
            )
            .await;
        assert_storage_unavailable(status, &answer);
    }
    let (status, event) = hookd.get(&format!("/v2/events/{}", accepted[0])).await;
    assert_eq!(status, 200, "{event}");

    drop(frozen);
    for n in 0..5 {
        accepted.push(
            hookd
                .publish("payment.completed", json!({"later": n}))
                .await,
        );
    }
    assert_all_delivered(&hookd, &receiver, &accepted).await;
    assert_eq!(stored_event_ids(&hookd).await, set_of(&accepted));
}

fn assert_storage_unavailable(status: u16, answer: &Value) {
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "storage_unavailable", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("full or read-only"), "{message}");
}

/// Waits until the receiver got every one of `events` and each delivery is `succeeded`.
async fn assert_all_delivered(hookd: &Hookd, receiver: &MisbehavingReceiver, events: &[String]) {
    receiver.wait_for(events.len(), PATIENCE).await;
    for id in events {
        hookd
            .wait_for_event(id, |e| state_of_first(e) == "succeeded")
            .await;
    }
    let delivered: HashSet<String> = receiver
        .requests()
        .into_iter()
        .map(|r| r.webhook_id)
        .collect();
    let missing: Vec<&String> = events
        .iter()
        .filter(|id| !delivered.contains(*id))
        .collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
}

fn state_of_first(event: &Value) -> &str {
    event["deliveries"][0]["state"].as_str().unwrap_or("")
}

fn set_of(ids: &[String]) -> HashSet<String> {
    ids.iter().cloned().collect()
}

async fn stored_event_ids(hookd: &Hookd) -> HashSet<String> {
    let mut stored = HashSet::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = hookd.get(&format!("/v2/events?limit=250{cursor}")).await;
        assert_eq!(status, 200, "{page}");
        for event in page["data"].as_array().unwrap() {
            stored.insert(event["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return stored,
        }
    }
}
