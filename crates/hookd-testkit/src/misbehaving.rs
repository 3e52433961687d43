//! A receiver on raw TCP (127.0.0.1) that reads each request whole, records it, and then
//! answers as told — including the ways real endpoints break HTTP: never answering,
//! resetting the connection mid-response, an endless body, bytes that are not HTTP, and a
//! response dribbled out a byte at a time. A well-behaved mode ([`Behaviour::Ok`]) makes
//! it a cheap counting receiver for runs of many thousand deliveries.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How the receiver answers every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// `200` with an empty body, connection kept alive.
    Ok,
    /// Holds every request until [`MisbehavingReceiver::release`], then answers like `Ok`
    /// (attempts stay in flight, so the sender writes nothing about them meanwhile).
    OkOnceReleased,
    /// Never answers; the connection stays open until the client gives up.
    Hang,
    /// Sends the start of a `200` (status line and part of a header), then resets the
    /// connection (`SO_LINGER` 0: an RST, not an orderly close).
    ResetMidResponse,
    /// A `200` with a chunked body that never ends: 64 KiB chunks until the client closes.
    EndlessBody,
    /// Bytes that are not an HTTP response, then an orderly close.
    Garbage,
    /// A complete `200` response (`ok` body), one byte per interval, status line included.
    Trickle(Duration),
    /// `200` and its headers at once, then a 16-byte body one byte per interval.
    TrickleBody(Duration),
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The `webhook-id` header (the event id), empty if absent.
    pub webhook_id: String,
    pub body_len: usize,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Received>>,
    count: AtomicUsize,
    arrived: Notify,
    /// Bytes of response written, per answered request, in answer order.
    sent: Mutex<Vec<u64>>,
    released: AtomicBool,
    release: Notify,
}

pub struct MisbehavingReceiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// The part of the endless body written per chunk.
const CHUNK: usize = 64 * 1024;
/// Requests larger than this are refused (hookd's envelopes are far smaller).
const MAX_REQUEST: usize = 16 * 1024 * 1024;

impl MisbehavingReceiver {
    pub async fn start(behaviour: Behaviour) -> MisbehavingReceiver {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("cannot bind a receiver: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("receiver has no address: {e}"),
        };
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                // Connection tasks end with the runtime or when their peer goes away.
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, behaviour, Arc::clone(&shared)));
                }
            }
        });
        MisbehavingReceiver { addr, shared, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests arrived so far (cheap: no copy).
    pub fn count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Received> {
        match self.shared.requests.lock() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Bytes of response written for each answered request (for [`Behaviour::EndlessBody`]:
    /// how much the client took before it hung up).
    pub fn bytes_sent(&self) -> Vec<u64> {
        match self.shared.sent.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Answers the requests held by [`Behaviour::OkOnceReleased`], and later ones at once.
    pub fn release(&self) {
        self.shared.released.store(true, Ordering::SeqCst);
        self.shared.release.notify_waiters();
    }

    /// Waits until at least `n` requests arrived, or panics after `patience`.
    pub async fn wait_for(&self, n: usize, patience: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let notified = self.shared.arrived.notified();
            tokio::pin!(notified);
            // Registered before looking, so an arrival in between is not missed.
            notified.as_mut().enable();
            if self.count() >= n {
                return self.requests();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {n} requests at {}, got {} within {patience:?}",
                    self.addr,
                    self.count()
                );
            }
        }
    }
}

impl Drop for MisbehavingReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, behaviour: Behaviour, shared: Arc<Shared>) {
    let mut buffer = Vec::with_capacity(8 * 1024);
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        {
            let mut requests = match shared.requests.lock() {
                Ok(r) => r,
                Err(p) => p.into_inner(),
            };
            requests.push(request);
            shared.count.fetch_add(1, Ordering::SeqCst);
        }
        shared.arrived.notify_waiters();
        if behaviour == Behaviour::OkOnceReleased {
            wait_for_release(&shared).await;
        }
        let (sent, keep_alive) = answer(&mut stream, behaviour).await;
        if let Ok(mut s) = shared.sent.lock() {
            s.push(sent);
        }
        if !keep_alive {
            return;
        }
    }
}

/// Writes the answer; returns the bytes written and whether the connection can carry
/// another request.
async fn answer(stream: &mut TcpStream, behaviour: Behaviour) -> (u64, bool) {
    match behaviour {
        Behaviour::Ok | Behaviour::OkOnceReleased => {
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
            let ok = stream.write_all(head).await.is_ok();
            (len(head), ok)
        }
        Behaviour::Hang => {
            // Hold the connection until the client closes it (its attempt timed out).
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            (0, false)
        }
        Behaviour::ResetMidResponse => {
            let part = b"HTTP/1.1 200 OK\r\ncontent-type: text/pl";
            let _ = stream.write_all(part).await;
            let _ = stream.flush().await;
            // Dropping the socket with a zero linger sends an RST.
            let _ = stream.set_zero_linger();
            (len(part), false)
        }
        Behaviour::EndlessBody => {
            let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head).await.is_err() {
                return (0, false);
            }
            let mut chunk = format!("{CHUNK:x}\r\n").into_bytes();
            chunk.extend(std::iter::repeat_n(b'x', CHUNK));
            chunk.extend_from_slice(b"\r\n");
            let mut sent = len(head);
            while stream.write_all(&chunk).await.is_ok() {
                sent += len(&chunk);
            }
            (sent, false)
        }
        Behaviour::Garbage => {
            let garbage = b"\x16\x03\x01 this is not HTTP \xff\xfe\r\n\r\n";
            let _ = stream.write_all(garbage).await;
            let _ = stream.shutdown().await;
            (len(garbage), false)
        }
        Behaviour::Trickle(interval) => {
            let response = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            let sent = trickle(stream, response, interval).await;
            (sent, sent == len(response))
        }
        Behaviour::TrickleBody(interval) => {
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n";
            if stream.write_all(head).await.is_err() {
                return (0, false);
            }
            let body = b"slow but certain";
            let sent = trickle(stream, body, interval).await;
            (len(head) + sent, sent == len(body))
        }
    }
}

async fn wait_for_release(shared: &Shared) {
    loop {
        let notified = shared.release.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if shared.released.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }
}

/// Writes `bytes` one at a time, `interval` apart; stops when the client is gone.
async fn trickle(stream: &mut TcpStream, bytes: &[u8], interval: Duration) -> u64 {
    let mut sent = 0;
    for byte in bytes {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(interval).await;
    }
    sent
}

fn len(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

/// Reads one request (head and `content-length` body) from `stream`; `buffer` keeps what
/// arrived beyond it. `None` when the client closed or sent something unusable.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Received> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(buffer) {
            Ok(httparse::Status::Complete(head_len)) => {
                let header = |name: &str| {
                    request
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                };
                let body_len: usize = header("content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let webhook_id = header("webhook-id").unwrap_or_default();
                let total = head_len.checked_add(body_len)?;
                if total > MAX_REQUEST {
                    return None;
                }
                while buffer.len() < total {
                    if read_more(stream, buffer).await == 0 {
                        return None;
                    }
                }
                buffer.drain(..total);
                return Some(Received {
                    webhook_id,
                    body_len,
                });
            }
            Ok(httparse::Status::Partial) => {
                if buffer.len() > MAX_REQUEST || read_more(stream, buffer).await == 0 {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            n
        }
        Err(_) => 0,
    }
}
