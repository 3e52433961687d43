//! An HTTP receiver on 127.0.0.1 that records every request and answers as its plan says.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// The sender's end of the connection (tells which process sent it).
    pub peer: SocketAddr,
}

impl Recorded {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON: {e}"))
    }
}

/// How to answer one request.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// Status, extra headers and body.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Answer with this status after a pause (a receiver that takes its time).
    After(Duration, u16),
    /// Never answer (until the receiver is dropped).
    Hang,
}

type Plan = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
    arrived: Arc<Notify>,
    plan: Plan,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers every request with 200.
    pub async fn ok() -> Receiver {
        Receiver::start(|_| Reply::Status(200)).await
    }

    /// `plan(n)` decides the answer to the n-th request (0-based).
    pub async fn start(plan: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("cannot bind a receiver: {e}"),
        };
        Receiver::serve(listener, Arc::new(plan))
    }

    /// Starts on a given address (to bring a receiver "back up" where it was down).
    pub async fn start_on(
        addr: SocketAddr,
        plan: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => panic!("cannot bind a receiver on {addr}: {e}"),
        };
        Receiver::serve(listener, Arc::new(plan))
    }

    /// An address where nothing listens: connections are refused.
    pub async fn down_address() -> SocketAddr {
        match TcpListener::bind("127.0.0.1:0")
            .await
            .and_then(|l| l.local_addr())
        {
            Ok(addr) => addr,
            Err(e) => panic!("cannot find a free port: {e}"),
        }
    }

    fn serve(listener: TcpListener, plan: Plan) -> Receiver {
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("receiver has no address: {e}"),
        };
        let shared = Shared {
            requests: Arc::default(),
            arrived: Arc::new(Notify::new()),
            plan,
        };
        let app = Router::new().fallback(record).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, shared, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Waits until at least `n` requests arrived, or panics after `patience`.
    pub async fn wait_for(&self, n: usize, patience: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let notified = self.shared.arrived.notified();
            tokio::pin!(notified);
            // Registered before looking, so an arrival in between is not missed.
            notified.as_mut().enable();
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {n} requests at {}, got {} within {patience:?}",
                    self.addr,
                    self.requests().len()
                );
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = {
        let mut requests = match shared.requests.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        requests.push(Recorded {
            path: uri.path().to_owned(),
            headers,
            body,
            at: Instant::now(),
            peer,
        });
        requests.len() - 1
    };
    shared.arrived.notify_waiters();
    match (shared.plan)(n) {
        Reply::Status(status) => status_of(status).into_response(),
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut response = (status_of(status), body).into_response();
            for (name, value) in headers {
                if let (Ok(n), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(name.as_bytes()),
                    axum::http::HeaderValue::from_str(&value),
                ) {
                    response.headers_mut().insert(n, v);
                }
            }
            response
        }
        Reply::After(pause, status) => {
            tokio::time::sleep(pause).await;
            status_of(status).into_response()
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
    }
}

fn status_of(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
