//! The load generator: POSTs over a number of HTTP/1.1 keep-alive connections, either as
//! fast as the server answers (closed loop) or at a fixed rate (open loop).
//!
//! At a fixed rate, request `n` is due at `start + n / rate` whichever connection sends
//! it; its latency — and the publish time written into its body — is taken from that
//! due time, not from when a connection was free to send it, so a slow server cannot
//! hide its stalls by slowing the generator down (coordinated omission).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderValue, Method, StatusCode};
use tokio::task::JoinSet;

use crate::http_conn::HttpConnection;
use crate::latency::{Epoch, new_histogram, record};

/// Makes a request body from its publish time (nanoseconds since the epoch).
pub(crate) type BodyMaker = Arc<dyn Fn(u64) -> Bytes + Send + Sync>;

/// Asked before each closed-loop request with the number accepted so far; while it says
/// no, the connection waits (used to bound the work queued inside hookd).
pub(crate) type Gate = Arc<dyn Fn(u64) -> bool + Send + Sync>;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Pace {
    /// Each connection sends its next request as soon as the previous one is answered.
    FlatOut,
    /// Requests per second, across all connections.
    Rate(f64),
}

pub(crate) struct LoadPlan {
    /// Connection `n` goes to `targets[n % len]` (several hookd nodes share the load).
    pub(crate) targets: Vec<SocketAddr>,
    pub(crate) path: String,
    pub(crate) auth: Option<HeaderValue>,
    pub(crate) connections: usize,
    /// No request is started after this long.
    pub(crate) duration: Duration,
    pub(crate) pace: Pace,
    /// Stop after this many requests, if sooner than `duration`.
    pub(crate) max_requests: Option<u64>,
    /// The status that counts as accepted.
    pub(crate) expect: StatusCode,
    pub(crate) body: BodyMaker,
    pub(crate) gate: Option<Gate>,
}

pub(crate) struct LoadResult {
    pub(crate) accepted: u64,
    /// Answered with another status.
    pub(crate) rejected: u64,
    /// No answer: connection errors and timeouts.
    pub(crate) errors: u64,
    /// The first rejection or error, for the report's notes.
    pub(crate) first_problem: Option<String>,
    /// When the run started, in nanoseconds since the epoch.
    pub(crate) started_ns: u64,
    /// From the start to the last answer.
    pub(crate) elapsed: Duration,
    /// Request → answer (from the due time, at a fixed rate).
    pub(crate) latency: Histogram<u64>,
}

impl LoadResult {
    /// Accepted requests per second over the run.
    pub(crate) fn accepted_per_second(&self) -> f64 {
        per_second(self.accepted, self.elapsed)
    }
}

pub(crate) fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

struct Shared {
    plan: LoadPlan,
    epoch: Epoch,
    start: Instant,
    deadline: Instant,
    next_request: AtomicU64,
    accepted: AtomicU64,
}

#[derive(Default)]
struct ConnectionStats {
    accepted: u64,
    rejected: u64,
    errors: u64,
    first_problem: Option<String>,
    last_answer: Option<Instant>,
    latency: Option<Histogram<u64>>,
}

/// Runs the plan on the current runtime and waits for every connection to finish.
pub(crate) async fn run(epoch: Epoch, plan: LoadPlan) -> LoadResult {
    let start = Instant::now();
    let connections = plan.connections.max(1);
    let shared = Arc::new(Shared {
        deadline: start + plan.duration,
        plan,
        epoch,
        start,
        next_request: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
    });
    let mut tasks = JoinSet::new();
    for n in 0..connections {
        tasks.spawn(connection_loop(Arc::clone(&shared), n));
    }
    let mut result = LoadResult {
        accepted: 0,
        rejected: 0,
        errors: 0,
        first_problem: None,
        started_ns: epoch.nanos_at(start),
        elapsed: Duration::ZERO,
        latency: new_histogram(),
    };
    let mut last_answer = start;
    while let Some(joined) = tasks.join_next().await {
        let Ok(stats) = joined else {
            result.errors += 1;
            continue;
        };
        result.accepted += stats.accepted;
        result.rejected += stats.rejected;
        result.errors += stats.errors;
        if result.first_problem.is_none() {
            result.first_problem = stats.first_problem;
        }
        if let Some(at) = stats.last_answer {
            last_answer = last_answer.max(at);
        }
        if let Some(latency) = stats.latency {
            let _ = result.latency.add(&latency);
        }
    }
    result.elapsed = last_answer.saturating_duration_since(start);
    result
}

async fn connection_loop(shared: Arc<Shared>, n: usize) -> ConnectionStats {
    let plan = &shared.plan;
    let mut stats = ConnectionStats {
        latency: Some(new_histogram()),
        ..ConnectionStats::default()
    };
    let Some(&target) = plan.targets.get(n % plan.targets.len().max(1)) else {
        stats.errors += 1;
        stats.note_problem("the load plan has no target".to_owned());
        return stats;
    };
    let mut connection: Option<HttpConnection> = None;
    loop {
        if Instant::now() >= shared.deadline {
            break;
        }
        if let (Pace::FlatOut, Some(gate)) = (plan.pace, &plan.gate)
            && !gate(shared.accepted.load(Ordering::Relaxed))
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let n = shared.next_request.fetch_add(1, Ordering::Relaxed);
        if plan.max_requests.is_some_and(|max| n >= max) {
            break;
        }
        let due = match plan.pace {
            Pace::FlatOut => None,
            Pace::Rate(per_second) => {
                let due = shared.start + Duration::from_secs_f64(n as f64 / per_second.max(1e-9));
                if due >= shared.deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                Some(due)
            }
        };
        let conn = match connection.as_mut() {
            Some(c) => c,
            None => match HttpConnection::open(target).await {
                Ok(c) => connection.insert(c),
                Err(e) => {
                    stats.note_problem(e.to_string());
                    stats.errors += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let sent = due.unwrap_or_else(Instant::now);
        let body = (plan.body)(shared.epoch.nanos_at(sent));
        match conn
            .send(Method::POST, &plan.path, plan.auth.as_ref(), body)
            .await
        {
            Ok((status, answer)) => {
                let now = Instant::now();
                stats.last_answer = Some(now);
                if status == plan.expect {
                    stats.accepted += 1;
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    if let Some(latency) = stats.latency.as_mut() {
                        record(latency, now.saturating_duration_since(sent));
                    }
                } else {
                    stats.rejected += 1;
                    let excerpt: String =
                        String::from_utf8_lossy(&answer).chars().take(200).collect();
                    stats.note_problem(format!("{} answered {status}: {excerpt}", plan.path));
                }
            }
            Err(e) => {
                stats.errors += 1;
                stats.note_problem(e.to_string());
                // The connection's state is unknown: start a new one.
                connection = None;
            }
        }
    }
    stats
}

impl ConnectionStats {
    fn note_problem(&mut self, problem: String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(problem);
        }
    }
}
