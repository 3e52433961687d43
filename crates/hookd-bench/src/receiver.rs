//! The benchmark's own webhook receiver: a bare hyper HTTP/1.1 server on 127.0.0.1 that
//! answers at once and counts, so that it costs as little as possible of the machine.
//!
//! What it does with a request depends on the first part of the path: `/ok/…` answers
//! 200 and records the publish→arrival latency (the event's `data.t`), `/flaky/…` answers
//! 500 to about half of the attempts (decided by hashing the event id with the attempt's
//! number as seen here, so a run is repeatable), `/hang/…` holds the request until the
//! receiver stops or `hang_for` passes, `/down/…` drops the connection without answering.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::BenchError;
use crate::latency::{Epoch, new_histogram, record};

/// How the receiver treats requests to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behaviour {
    Ok,
    Flaky,
    Hang,
    Down,
}

impl Behaviour {
    fn prefix(self) -> &'static str {
        match self {
            Behaviour::Ok => "/ok/",
            Behaviour::Flaky => "/flaky/",
            Behaviour::Hang => "/hang/",
            Behaviour::Down => "/down/",
        }
    }

    /// The path of endpoint number `n` with this behaviour.
    pub(crate) fn path(self, n: usize) -> String {
        format!("{}{n}", self.prefix())
    }

    fn of_path(path: &str) -> Behaviour {
        [Behaviour::Flaky, Behaviour::Hang, Behaviour::Down]
            .into_iter()
            .find(|b| path.starts_with(b.prefix()))
            .unwrap_or(Behaviour::Ok)
    }
}

/// What the receiver has seen of one event at one `/flaky/` endpoint.
#[derive(Clone, Debug)]
struct FlakyDelivery {
    event_id: String,
    attempts: u32,
    succeeded: bool,
    last_seen_ns: u64,
}

struct ReceiverState {
    epoch: Epoch,
    hang_for: Duration,
    stop: watch::Receiver<bool>,
    /// 200 answers (from `/ok/` and `/flaky/`).
    ok: AtomicU64,
    /// 500 answers from `/flaky/`.
    failed: AtomicU64,
    hung: AtomicU64,
    dropped: AtomicU64,
    last_ok_ns: AtomicU64,
    /// Publish→arrival of `/ok/` requests that carry `data.t`.
    latency: Mutex<Histogram<u64>>,
    flaky: Mutex<HashMap<String, FlakyDelivery>>,
    /// The retry schedule's delays (nanoseconds), to tell how late retries come.
    schedule_ns: Mutex<Vec<u64>>,
    /// How much longer than the schedule's delay each retry came after the previous
    /// attempt's arrival (the attempt's own round trip and hookd's bookkeeping included).
    retry_lateness: Mutex<Histogram<u64>>,
}

/// Counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReceiverCounts {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) hung: u64,
    pub(crate) dropped: u64,
    /// When the latest 200 went out (nanoseconds since the epoch).
    pub(crate) last_ok_ns: Option<u64>,
}

impl ReceiverCounts {
    /// From `started_ns` to the latest 200 (zero if none came).
    pub(crate) fn ok_span_since(&self, started_ns: u64) -> Duration {
        Duration::from_nanos(
            self.last_ok_ns
                .unwrap_or(started_ns)
                .saturating_sub(started_ns),
        )
    }
}

/// The `/flaky/` endpoints' view of a retry storm.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FlakySummary {
    pub(crate) deliveries: u64,
    pub(crate) succeeded: u64,
    /// Answered 500 on every one of `max_attempts` attempts.
    pub(crate) failed: u64,
    pub(crate) attempts: u64,
    /// When the latest attempt arrived (nanoseconds since the epoch).
    pub(crate) last_attempt_ns: u64,
}

impl FlakySummary {
    pub(crate) fn finished(&self) -> u64 {
        self.succeeded + self.failed
    }
}

pub(crate) struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A cheap handle to read the 200 count from elsewhere (the load generator's gate).
#[derive(Clone)]
pub(crate) struct OkCounter(Arc<ReceiverState>);

impl OkCounter {
    pub(crate) fn get(&self) -> u64 {
        self.0.ok.load(Ordering::Relaxed)
    }
}

impl Receiver {
    /// Starts on 127.0.0.1 on a free port, on the current runtime.
    pub(crate) async fn start(epoch: Epoch, hang_for: Duration) -> Result<Receiver, BenchError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| BenchError::io("binding the receiver", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::io("reading the receiver's address", e))?;
        let (stop, stop_rx) = watch::channel(false);
        let state = Arc::new(ReceiverState {
            epoch,
            hang_for,
            stop: stop_rx.clone(),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            hung: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_ok_ns: AtomicU64::new(0),
            latency: Mutex::new(new_histogram()),
            flaky: Mutex::new(HashMap::new()),
            schedule_ns: Mutex::new(Vec::new()),
            retry_lateness: Mutex::new(new_histogram()),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state), stop_rx));
        Ok(Receiver {
            addr,
            state,
            stop,
            task,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of endpoint number `n` with the given behaviour.
    pub(crate) fn url(&self, behaviour: Behaviour, n: usize) -> String {
        format!("http://{}{}", self.addr, behaviour.path(n))
    }

    pub(crate) fn ok_counter(&self) -> OkCounter {
        OkCounter(Arc::clone(&self.state))
    }

    pub(crate) fn counts(&self) -> ReceiverCounts {
        let s = &self.state;
        let last = s.last_ok_ns.load(Ordering::Relaxed);
        ReceiverCounts {
            ok: s.ok.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            hung: s.hung.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            last_ok_ns: (last != 0).then_some(last),
        }
    }

    /// The latencies recorded so far; recording starts over.
    pub(crate) fn take_latency(&self) -> Histogram<u64> {
        let mut latency = self
            .state
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *latency, new_histogram())
    }

    /// Waits until at least `target` 200s were answered, up to `patience`; true if so.
    pub(crate) async fn wait_for_ok(&self, target: u64, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if self.state.ok.load(Ordering::Relaxed) >= target {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The delays before attempt 1, 2, … that hookd was given, so retries to `/flaky/`
    /// endpoints can be timed against them.
    pub(crate) fn expect_schedule(&self, delays: &[Duration]) {
        let mut schedule = self
            .state
            .schedule_ns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *schedule = delays
            .iter()
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .collect();
    }

    /// How late retries came, compared with the schedule (see `expect_schedule`).
    pub(crate) fn take_retry_lateness(&self) -> Histogram<u64> {
        let mut lateness = self
            .state
            .retry_lateness
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *lateness, new_histogram())
    }

    /// The `/flaky/` endpoints' deliveries, judged against a schedule of `max_attempts`.
    pub(crate) fn flaky_summary(&self, max_attempts: u32) -> FlakySummary {
        let flaky = self
            .state
            .flaky
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut summary = FlakySummary::default();
        for delivery in flaky.values() {
            summary.deliveries += 1;
            summary.attempts += u64::from(delivery.attempts);
            summary.last_attempt_ns = summary.last_attempt_ns.max(delivery.last_seen_ns);
            if delivery.succeeded {
                summary.succeeded += 1;
            } else if delivery.attempts >= max_attempts {
                summary.failed += 1;
            }
        }
        summary
    }

    /// Up to `n` event ids seen at `/flaky/` endpoints, with whether they succeeded here.
    pub(crate) fn flaky_sample(&self, n: usize) -> Vec<(String, bool)> {
        let flaky = self
            .state
            .flaky
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut sample: Vec<(String, bool)> = flaky
            .values()
            .map(|d| (d.event_id.clone(), d.succeeded))
            .collect();
        sample.sort();
        let step = (sample.len() / n.max(1)).max(1);
        sample.into_iter().step_by(step).take(n).collect()
    }

    /// Stops accepting, answers hanging requests, and closes every connection.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<ReceiverState>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let state = Arc::clone(&state);
                    connections.spawn(async move {
                        let service = service_fn(move |request| answer(Arc::clone(&state), request));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Out of file descriptors or similar: give it a moment.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            () = stopped(&mut stop) => break,
        }
        while connections.try_join_next().is_some() {}
    }
    // Dropping the set aborts every open connection.
    connections.shutdown().await;
}

/// Completes once the receiver is told to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Returned to hyper to close a `/down/` connection without an answer.
#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("endpoint is down")
    }
}

impl std::error::Error for Down {}

async fn answer(
    state: Arc<ReceiverState>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Down> {
    let behaviour = Behaviour::of_path(request.uri().path());
    let flaky_key = (behaviour == Behaviour::Flaky).then(|| {
        let event_id = request
            .headers()
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (request.uri().path().to_owned(), event_id)
    });
    let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
        state.dropped.fetch_add(1, Ordering::Relaxed);
        return Err(Down);
    };
    let arrived_ns = state.epoch.nanos();
    match behaviour {
        Behaviour::Ok => {
            state.count_ok(arrived_ns);
            if let Some(sent_ns) = sent_at(&body) {
                let mut latency = state.latency.lock().unwrap_or_else(PoisonError::into_inner);
                record(
                    &mut latency,
                    Duration::from_nanos(arrived_ns.saturating_sub(sent_ns)),
                );
            }
            Ok(status(StatusCode::OK))
        }
        Behaviour::Flaky => {
            let (path, event_id) = flaky_key.unwrap_or_default();
            if state.flaky_attempt(path, event_id, arrived_ns) {
                state.count_ok(arrived_ns);
                Ok(status(StatusCode::OK))
            } else {
                state.failed.fetch_add(1, Ordering::Relaxed);
                Ok(status(StatusCode::INTERNAL_SERVER_ERROR))
            }
        }
        Behaviour::Hang => {
            state.hung.fetch_add(1, Ordering::Relaxed);
            let mut stop = state.stop.clone();
            tokio::select! {
                () = tokio::time::sleep(state.hang_for) => {}
                () = stopped(&mut stop) => {}
            }
            Ok(status(StatusCode::OK))
        }
        Behaviour::Down => {
            state.dropped.fetch_add(1, Ordering::Relaxed);
            Err(Down)
        }
    }
}

impl ReceiverState {
    fn count_ok(&self, arrived_ns: u64) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        self.last_ok_ns.fetch_max(arrived_ns, Ordering::Relaxed);
    }

    /// Counts an attempt at a flaky endpoint and decides whether it succeeds.
    fn flaky_attempt(&self, path: String, event_id: String, arrived_ns: u64) -> bool {
        let mut flaky = self.flaky.lock().unwrap_or_else(PoisonError::into_inner);
        let key = format!("{path} {event_id}");
        let delivery = flaky.entry(key).or_insert_with(|| FlakyDelivery {
            event_id,
            attempts: 0,
            succeeded: false,
            last_seen_ns: 0,
        });
        delivery.attempts += 1;
        if delivery.attempts > 1 {
            let gap = arrived_ns.saturating_sub(delivery.last_seen_ns);
            let index = usize::try_from(delivery.attempts - 1).unwrap_or(usize::MAX);
            let scheduled = self
                .schedule_ns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(index)
                .copied()
                .unwrap_or(0);
            let mut lateness = self
                .retry_lateness
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            record(
                &mut lateness,
                Duration::from_nanos(gap.saturating_sub(scheduled)),
            );
        }
        delivery.last_seen_ns = arrived_ns;
        let succeeds = coin(&path, &delivery.event_id, delivery.attempts);
        delivery.succeeded |= succeeds;
        succeeds
    }
}

/// A fair, repeatable coin: the same event at the same endpoint gets the same sequence
/// of answers in every run.
fn coin(path: &str, event_id: &str, attempt: u32) -> bool {
    // FNV-1a over the inputs, then a SplitMix64 finaliser to spread the bits.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in path
        .bytes()
        .chain([0])
        .chain(event_id.bytes())
        .chain(attempt.to_le_bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    hash & 1 == 0
}

/// The publish time (`"t":<nanoseconds>`) written into the event's data, if present.
/// Only the digits after the first `"t":` are read; nothing else of the body is parsed.
fn sent_at(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"t\":";
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = body.get(start..)?;
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(digits.get(..end)?).ok()?.parse().ok()
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publish_time_is_found_in_an_envelope() {
        let body =
            br#"{"id":"evt_1","created":1,"type":"payout_request.completed","data":{"t":123456}}"#;
        assert_eq!(sent_at(body), Some(123_456));
        assert_eq!(sent_at(br#"{"t":9}"#), Some(9));
        assert_eq!(sent_at(br#"{"type":"x"}"#), None);
    }

    #[test]
    fn the_coin_is_fair_and_repeatable() {
        let heads = (0..10_000u32)
            .filter(|n| coin("/flaky/0", &format!("evt_{n}"), 1))
            .count();
        assert!((4_700..5_300).contains(&heads), "{heads}");
        assert_eq!(coin("/flaky/0", "evt_x", 3), coin("/flaky/0", "evt_x", 3));
    }

    #[test]
    fn paths_choose_the_behaviour() {
        assert_eq!(Behaviour::of_path("/flaky/3"), Behaviour::Flaky);
        assert_eq!(Behaviour::of_path("/hang/0"), Behaviour::Hang);
        assert_eq!(Behaviour::of_path("/ok/9"), Behaviour::Ok);
        assert_eq!(Behaviour::of_path("/anything"), Behaviour::Ok);
    }
}
