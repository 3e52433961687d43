//! `hookd listen`: local development without a tunnel. Opens a listening session on a
//! running server (`GET /v2/listen`, a Server-Sent Events stream), prints the session's
//! signing secret, and POSTs every delivery the server streams to the `--forward-to` URL
//! with exactly the headers and body hookd would have sent, printing one line each; the
//! local answer goes back to the server (`POST /v2/listen/{id}/results`) as the attempt's
//! response, so retries and the attempt log work as for any webhook. A lost stream is
//! reconnected with backoff, resuming the same session (same secret) while the server
//! still has it. Ctrl-C or SIGTERM deletes the session.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use eventsource_stream::{Event, Eventsource};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use url::Url;

use hookd_engine::{error_chain, read_logged_body};

use crate::api_client::{Api, error_of};
use crate::cli::{ListenArgs, ServerArgs};

/// Longest wait for one answer of the server (other than the stream).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the local endpoint, as the server waits for a real one by default.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// The server sends a keep-alive comment every 15 s; this much silence means the stream
/// is dead even if the connection does not say so.
const STREAM_SILENCE: Duration = Duration::from_secs(45);
/// Pauses between reconnection attempts: doubling from the first to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_LAST: Duration = Duration::from_secs(5);

pub(crate) async fn run(args: ListenArgs) -> anyhow::Result<ExitCode> {
    // reqwest is built without a crypto provider of its own (https servers).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let forward_to = match Url::parse(&args.forward_to) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => url,
        _ => {
            eprintln!(
                "hookd: --forward-to `{}` is not an http(s) URL",
                args.forward_to
            );
            return Ok(ExitCode::from(2));
        }
    };
    let server = Server::new(&args.server)?;
    // The local endpoint is the developer's own: no address rules, but no redirects
    // followed either, as for real deliveries.
    let forwarder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FORWARD_TIMEOUT)
        .no_proxy()
        .build()
        .context("cannot build the HTTP client")?;
    let mut listener = Listener {
        server,
        forwarder,
        forward_to,
        args,
        session: None,
    };
    let stop = crate::serve::shutdown_signal();
    tokio::pin!(stop);
    let outcome = tokio::select! {
        outcome = listener.listen() => outcome,
        () = &mut stop => Ok(()),
    };
    listener.close().await;
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// The session as the stream's first message describes it.
#[derive(Clone, Deserialize)]
struct Session {
    webhook_id: String,
    secret: String,
    events: Vec<String>,
    format: String,
    signature_header: String,
    resumed: bool,
}

/// One attempt to forward.
#[derive(Deserialize)]
struct Delivery {
    attempt_id: String,
    event_id: String,
    event_type: String,
    attempt_number: u32,
    headers: Map<String, Value>,
    body: String,
}

/// Why the stream could not be opened.
enum OpenError {
    /// The server refused to resume the session (it is gone): open a new one.
    SessionGone,
    /// The server said no for good (credentials, filters): stop.
    Refused(anyhow::Error),
    /// The server could not be reached or failed: try again later.
    Unavailable(anyhow::Error),
}

struct Listener {
    server: Server,
    forwarder: reqwest::Client,
    forward_to: Url,
    args: ListenArgs,
    session: Option<Session>,
}

impl Listener {
    /// Streams and forwards until the server refuses for good; reconnects otherwise.
    async fn listen(&mut self) -> anyhow::Result<()> {
        let mut pause = RECONNECT_FIRST;
        let mut ever_connected = false;
        loop {
            let resume = self.session.as_ref().map(|s| s.webhook_id.clone());
            match self.server.open(&self.args, resume.as_deref()).await {
                Ok(response) => {
                    ever_connected = true;
                    if self.stream(response).await {
                        pause = RECONNECT_FIRST;
                    }
                    eprintln!("hookd: lost the stream from the server; reconnecting");
                }
                Err(OpenError::SessionGone) => {
                    eprintln!("hookd: the server no longer has this session; opening a new one");
                    self.session = None;
                    continue;
                }
                Err(OpenError::Refused(e)) => return Err(e),
                Err(OpenError::Unavailable(e)) if !ever_connected => return Err(e),
                Err(OpenError::Unavailable(e)) => {
                    eprintln!(
                        "hookd: {e:#}; retrying in {}",
                        humantime::format_duration(pause)
                    );
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RECONNECT_LAST);
        }
    }

    /// Reads one stream until it ends; whether it delivered its session message.
    async fn stream(&mut self, response: reqwest::Response) -> bool {
        let chunks = futures_util::stream::unfold(Some(response), |response| async move {
            let mut response = response?;
            match response.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(response))),
                Ok(None) => None,
                // Reported once; the stream ends after it.
                Err(e) => Some((Err(e), None)),
            }
        });
        let mut events = std::pin::pin!(chunks.eventsource());
        let mut opened = false;
        loop {
            let event = match tokio::time::timeout(STREAM_SILENCE, events.next()).await {
                Ok(Some(Ok(event))) => event,
                Ok(Some(Err(e))) => {
                    eprintln!("hookd: reading the stream: {e}");
                    return opened;
                }
                Ok(None) | Err(_) => return opened,
            };
            match event.event.as_str() {
                "session" => {
                    opened = true;
                    self.started(&event);
                }
                "delivery" => self.deliver(&event),
                // Messages this version does not know are skipped.
                _ => {}
            }
        }
    }

    fn started(&mut self, event: &Event) {
        let session: Session = match serde_json::from_str(&event.data) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hookd: the server's session message is not understood: {e}");
                return;
            }
        };
        let same_secret = self
            .session
            .as_ref()
            .is_some_and(|s| s.secret == session.secret);
        if session.resumed && same_secret {
            println!("Reconnected to session {}.", session.webhook_id);
        } else {
            if self.session.is_some() {
                println!("A new session: the signing secret has changed.");
            }
            println!(
                "Listening for {} ({} envelopes, signed in {} and webhook-signature) as session {}, forwarding to {}",
                session.events.join(", "),
                session.format,
                session.signature_header,
                session.webhook_id,
                self.forward_to
            );
            println!(
                "Ready! Your webhook signing secret is {} (^C to quit)",
                session.secret
            );
        }
        self.session = Some(session);
    }

    /// Forwards one delivery in a task of its own: a slow local endpoint does not hold
    /// up the stream (the server limits how many are in flight).
    fn deliver(&self, event: &Event) {
        let delivery: Delivery = match serde_json::from_str(&event.data) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("hookd: a delivery message is not understood: {e}");
                return;
            }
        };
        let Some(session) = &self.session else {
            return;
        };
        let forwarder = self.forwarder.clone();
        let forward_to = self.forward_to.clone();
        let server = self.server.clone();
        let webhook_id = session.webhook_id.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = forward(&forwarder, &forward_to, &delivery).await;
            println!("{}", line(&delivery, &answer, started.elapsed()));
            if let Err(e) = server.report(&webhook_id, &delivery, &answer).await {
                eprintln!(
                    "hookd: reporting the local answer to {}: {e:#}",
                    delivery.event_id
                );
            }
        });
    }

    /// Ends the session on the server, if one was opened.
    async fn close(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        match self.server.delete_session(&session.webhook_id).await {
            Ok(()) => println!("Stopped; session {} removed.", session.webhook_id),
            Err(e) => eprintln!(
                "hookd: could not remove session {} ({e:#}); the server removes it within a minute",
                session.webhook_id
            ),
        }
    }
}

/// What the local endpoint answered, or why it did not.
struct LocalAnswer {
    status: Option<u16>,
    headers: Map<String, Value>,
    body: Option<String>,
    error: Option<String>,
}

async fn forward(forwarder: &reqwest::Client, url: &Url, delivery: &Delivery) -> LocalAnswer {
    let mut request = forwarder.post(url.clone());
    for (name, value) in &delivery.headers {
        if let Some(value) = value.as_str() {
            request = request.header(name.as_str(), value);
        }
    }
    let response = match request.body(delivery.body.clone()).send().await {
        Ok(r) => r,
        Err(e) => {
            return LocalAnswer {
                status: None,
                headers: Map::new(),
                body: None,
                error: Some(error_chain(&e)),
            };
        }
    };
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), Value::String(text))
        })
        .collect();
    let status = response.status().as_u16();
    // The same prefix an attempt log keeps of a real endpoint's answer (the client's own
    // timeout bounds the reading).
    let (body, error) = read_logged_body(&mut reqwest::Body::from(response), None).await;
    LocalAnswer {
        status: Some(status),
        headers,
        body: Some(String::from_utf8_lossy(&body).into_owned()),
        error,
    }
}

/// One printed line per delivery: time, event type, event id, the local status (or the
/// error), how long the local endpoint took.
fn line(delivery: &Delivery, answer: &LocalAnswer, took: Duration) -> String {
    let time = humantime::format_rfc3339_seconds(SystemTime::now());
    let attempt = if delivery.attempt_number > 1 {
        format!(" (attempt {})", delivery.attempt_number)
    } else {
        String::new()
    };
    let outcome = match (answer.status, &answer.error) {
        (Some(status), _) => status.to_string(),
        (None, Some(error)) => format!("error: {error}"),
        (None, None) => "no answer".to_owned(),
    };
    format!(
        "{time}  {}  {}{attempt}  {outcome}  {} ms",
        delivery.event_type,
        delivery.event_id,
        took.as_millis()
    )
}

/// The server's API, as this client.
#[derive(Clone)]
struct Server {
    /// Without an overall timeout: the stream lasts as long as the session.
    streaming: reqwest::Client,
    api: Arc<Api>,
}

impl Server {
    fn new(args: &ServerArgs) -> anyhow::Result<Server> {
        Ok(Server {
            streaming: reqwest::Client::builder()
                .connect_timeout(REQUEST_TIMEOUT)
                .build()
                .context("cannot build the HTTP client")?,
            api: Arc::new(Api::new(args)?),
        })
    }

    /// Opens the stream: a new session, or `resume` (a session's webhook id).
    async fn open(
        &self,
        args: &ListenArgs,
        resume: Option<&str>,
    ) -> Result<reqwest::Response, OpenError> {
        let mut url = self
            .api
            .url(&["v2", "listen"])
            .map_err(OpenError::Refused)?;
        {
            let mut query = url.query_pairs_mut();
            match resume {
                Some(id) => {
                    query.append_pair("session", id);
                }
                None => {
                    if let Some(events) = &args.events {
                        query.append_pair("events", events);
                    }
                    if let Some(format) = &args.format {
                        query.append_pair("format", format);
                    }
                }
            }
        }
        let response = self
            .api
            .authorized(self.streaming.get(url))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| {
                OpenError::Unavailable(anyhow::anyhow!(
                    "cannot reach {}: {}",
                    self.api.base(),
                    error_chain(&e)
                ))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == reqwest::StatusCode::NOT_FOUND && resume.is_some() {
            return Err(OpenError::SessionGone);
        }
        let why = error_of("GET /v2/listen", response).await;
        if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(OpenError::Refused(why))
        } else {
            Err(OpenError::Unavailable(why))
        }
    }

    /// Tells the server what the local endpoint answered to one delivery.
    async fn report(
        &self,
        webhook_id: &str,
        delivery: &Delivery,
        answer: &LocalAnswer,
    ) -> anyhow::Result<()> {
        let url = self.api.url(&["v2", "listen", webhook_id, "results"])?;
        let body = json!({
            "attempt_id": delivery.attempt_id,
            "status": answer.status,
            "headers": answer.headers,
            "body": answer.body,
            "error": answer.error,
        });
        let response = self
            .api
            .request(reqwest::Method::POST, url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.api.base()))?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(error_of("POST /v2/listen/{id}/results", response).await)
    }

    async fn delete_session(&self, webhook_id: &str) -> anyhow::Result<()> {
        let url = self.api.url(&["v2", "webhooks", webhook_id])?;
        let response = self
            .api
            .request(reqwest::Method::DELETE, url)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.api.base()))?;
        // Already gone (removed as stale, or by hand) is as good as removed.
        if response.status().is_success() || response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(error_of("DELETE /v2/webhooks/{id}", response).await)
    }
}
