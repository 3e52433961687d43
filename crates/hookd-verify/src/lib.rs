//! Verify webhooks sent by hookd, drop duplicates, and parse their bodies. This crate is
//! the receiver library and also the single home of hookd's signing code (the sender
//! reuses it), so both sides can never disagree about the contract.
//!
//! hookd signs every delivery two ways:
//!
//! * **Standard Webhooks** (<https://www.standardwebhooks.com>):
//!   `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature`
//!   (space-separated `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//!   several during secret rotation), keyed with the base64-decoded part of
//!   the `whsec_...` secret. Preferred: the timestamp limits replays.
//! * **Hex scheme**: one header (default `x-nextpay-signature`, `X-Webhook-Signature`
//!   for the `event` format) holding the lowercase hex HMAC-SHA256 of the body, keyed
//!   with the full secret string.
//!
//! [`verify`] checks either, in constant time, with a timestamp tolerance (default
//! 5 minutes), and says why a delivery is refused ([`VerifyError`]: missing header, bad
//! format, stale timestamp, mismatch). [`EventLedger`] drops repeated event ids
//! ([`MemoryLedger`], and `SqliteLedger` with the `sqlite` feature). [`TypedEnvelope`],
//! [`EventEnvelope`] and [`Envelope`] (feature `serde`, on by default) are the bodies.
//!
//! The crate does no I/O (but `SqliteLedger`'s), reads no clock (`now` is always passed
//! in) and depends on no web framework: hand it the headers and the *exact* body bytes.
//!
//! | feature | default | adds |
//! | --- | --- | --- |
//! | `serde` | yes | the envelope types (serde, serde_json) |
//! | `sqlite` | no | `SqliteLedger` (rusqlite with bundled SQLite) |
//!
//! # Receiving
//!
//! ```
//! use hookd_verify::{Delivery, EventLedger, MemoryLedger, VerifiedScheme, VerifyOptions, verify};
//!
//! # fn main() -> Result<(), hookd_verify::VerifyError> {
//! // From your HTTP framework: header pairs and the *exact* body bytes
//! // (verify before parsing JSON; re-serialized JSON will not match).
//! let body = br#"{"test": 2432232314}"#;
//! let delivery = Delivery::new(body)
//!     .with_header("Webhook-Id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
//!     .with_header("Webhook-Timestamp", "1614265330")
//!     .with_header("Webhook-Signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//!
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let now = 1614265330 + 42; // e.g. SystemTime::now() as unix seconds
//! let scheme = verify(&delivery, secret, &VerifyOptions::new(now))?;
//! assert_eq!(scheme, VerifiedScheme::StandardWebhooks);
//!
//! // Deliveries are at-least-once: skip events already handled.
//! let mut seen = MemoryLedger::new(10_000);
//! let id = delivery.header("webhook-id").unwrap_or_default();
//! let Ok(first) = seen.first_time(id, now);
//! assert!(first);
//! let Ok(again) = seen.first_time(id, now);
//! assert!(!again);
//!
//! // A tampered body is rejected, with a message fit for a log or CLI.
//! let tampered = Delivery::new(br#"{"test": 1}"#)
//!     .with_header("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
//!     .with_header("webhook-timestamp", "1614265330")
//!     .with_header("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//! let err = verify(&tampered, secret, &VerifyOptions::new(now)).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "webhook-signature does not match this secret and body (wrong secret or modified body)"
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # With axum
//!
//! Take the body as [`Bytes`](https://docs.rs/bytes) (not `Json<…>`, which would parse
//! before verifying), verify, drop duplicates, parse, answer at once.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! use axum::Router;
//! use axum::body::Bytes;
//! use axum::extract::State;
//! use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
//! use axum::routing::post;
//! use hookd_verify::{
//!     Delivery, Envelope, EventLedger, MemoryLedger, SignatureHeaders, VerifyOptions,
//!     WebhookSecret, verify,
//! };
//!
//! struct Receiver {
//!     secret: String,
//!     seen: Mutex<MemoryLedger>,
//! }
//!
//! async fn webhooks(
//!     State(receiver): State<Arc<Receiver>>,
//!     headers: HeaderMap,
//!     body: Bytes,
//! ) -> (StatusCode, &'static str) {
//!     let now = unix_now();
//!     let delivery = Delivery::from_headers(&headers, &body);
//!     if let Err(err) = verify(&delivery, &receiver.secret, &VerifyOptions::new(now)) {
//!         eprintln!("rejected: {err}");
//!         return (StatusCode::UNAUTHORIZED, "invalid signature");
//!     }
//!     let Ok(envelope) = serde_json::from_slice::<Envelope>(&body) else {
//!         return (StatusCode::BAD_REQUEST, "not an envelope");
//!     };
//!     // `webhook-id` is the event id, the same on every retry and replay.
//!     let Some(event_id) = delivery.header("webhook-id").or(envelope.event_id()) else {
//!         return (StatusCode::BAD_REQUEST, "no event id");
//!     };
//!     let Ok(mut seen) = receiver.seen.lock() else {
//!         return (StatusCode::INTERNAL_SERVER_ERROR, "ledger unavailable");
//!     };
//!     let Ok(first) = seen.first_time(event_id, now);
//!     if !first {
//!         return (StatusCode::OK, "duplicate");
//!     }
//!     // Hand the event to a queue or task here and answer at once: hookd waits for
//!     // the answer (30 s at most) before it counts the attempt as failed.
//!     println!("{} {event_id}", envelope.event_type());
//!     (StatusCode::OK, "ok")
//! }
//!
//! fn unix_now() -> i64 {
//!     let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
//!     i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
//! }
//!
//! fn router(receiver: Arc<Receiver>) -> Router {
//!     Router::new().route("/webhooks", post(webhooks)).with_state(receiver)
//! }
//!
//! /// How it runs for real (not called here: the example makes no connections).
//! async fn serve(receiver: Arc<Receiver>) -> std::io::Result<()> {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, router(receiver)).await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = Arc::new(Receiver {
//!     secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
//!     seen: Mutex::new(MemoryLedger::new(10_000)),
//! });
//! let _app = router(receiver.clone());
//!
//! // A delivery as hookd sends it, signed here with the same code hookd uses.
//! let body = Bytes::from_static(
//!     br#"{"id":"evt_1","created":1705312200,"type":"payment_intent.paid","data":{"amount":100}}"#,
//! );
//! let secret = WebhookSecret::parse(&receiver.secret)?;
//! let mut headers = HeaderMap::new();
//! for (name, value) in
//!     SignatureHeaders::compute(&[&secret], "x-nextpay-signature", "evt_1", unix_now(), &body)
//! {
//!     headers.insert(HeaderName::try_from(name)?, HeaderValue::try_from(value)?);
//! }
//! let call = |headers: HeaderMap, body: Bytes| webhooks(State(receiver.clone()), headers, body);
//!
//! assert_eq!(call(headers.clone(), body.clone()).await, (StatusCode::OK, "ok"));
//! assert_eq!(call(headers.clone(), body.clone()).await, (StatusCode::OK, "duplicate"));
//! // The body parsed and re-serialized (spaces, key order, …) no longer verifies.
//! let reformatted = Bytes::from(serde_json::to_vec_pretty(&serde_json::from_slice::<
//!     serde_json::Value,
//! >(&body)?)?);
//! assert_eq!(call(headers, reformatted).await.0, StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! # With a plain hyper service
//!
//! Read the body whole (bounded), then the same steps. The handler is generic over the
//! body type, so it serves hyper's `Incoming` and can be called with a `Full` body.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! use http_body_util::{BodyExt, Full, Limited};
//! use hyper::body::{Body, Bytes};
//! use hyper::{Request, Response, StatusCode};
//! use hookd_verify::{Delivery, TypedEnvelope, VerifyOptions, sign_hex, verify};
//!
//! /// Larger bodies are refused before they are read whole.
//! const MAX_BODY_BYTES: usize = 1024 * 1024;
//!
//! async fn handle<B>(request: Request<B>, secret: &str) -> Result<Response<Full<Bytes>>, Infallible>
//! where
//!     B: Body,
//!     B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
//! {
//!     let (parts, body) = request.into_parts();
//!     let Ok(body) = Limited::new(body, MAX_BODY_BYTES).collect().await.map(|b| b.to_bytes())
//!     else {
//!         return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large or cut short".into()));
//!     };
//!     let delivery = Delivery::from_headers(&parts.headers, &body);
//!     if let Err(err) = verify(&delivery, secret, &VerifyOptions::new(unix_now())) {
//!         return Ok(reply(StatusCode::UNAUTHORIZED, err.to_string()));
//!     }
//!     match serde_json::from_slice::<TypedEnvelope>(&body) {
//!         Ok(event) => Ok(reply(StatusCode::OK, format!("{} {}", event.event_type, event.id))),
//!         Err(err) => Ok(reply(StatusCode::BAD_REQUEST, err.to_string())),
//!     }
//! }
//!
//! fn reply(status: StatusCode, text: String) -> Response<Full<Bytes>> {
//!     let mut response = Response::new(Full::new(Bytes::from(text)));
//!     *response.status_mut() = status;
//!     response
//! }
//!
//! fn unix_now() -> i64 {
//!     let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
//!     i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
//! }
//!
//! /// How it runs for real: one task per connection (not called here).
//! async fn serve(listener: tokio::net::TcpListener, secret: &'static str) -> std::io::Result<()> {
//!     loop {
//!         let (stream, _) = listener.accept().await?;
//!         let service = hyper::service::service_fn(move |request| handle(request, secret));
//!         tokio::spawn(
//!             hyper::server::conn::http1::Builder::new()
//!                 .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
//!         );
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let body = r#"{"id":"evt_2","created":1705312200,"type":"payout_request.completed","data":{}}"#;
//! // The hex scheme alone (the seeds' `x-nextpay-signature`).
//! let request = |signature: String| {
//!     Request::post("/webhooks")
//!         .header("x-nextpay-signature", signature)
//!         .body(Full::new(Bytes::from_static(body.as_bytes())))
//! };
//!
//! let response = handle(request(sign_hex(secret, body.as_bytes()))?, secret).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "payout_request.completed evt_2");
//!
//! let response = handle(request(sign_hex("whsec_another", body.as_bytes()))?, secret).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! # Sending
//!
//! ```
//! use hookd_verify::{SignatureHeaders, WebhookSecret};
//!
//! let secret = WebhookSecret::from_random_bytes(&[7u8; 32]); // use a CSPRNG
//! let headers = SignatureHeaders::compute(
//!     &[&secret],
//!     "x-nextpay-signature",
//!     "msg_1",
//!     1_700_000_000,
//!     b"{}",
//! );
//! let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
//! assert_eq!(
//!     names,
//!     ["x-nextpay-signature", "webhook-id", "webhook-timestamp", "webhook-signature"]
//! );
//! ```

mod delivery;
#[cfg(feature = "serde")]
mod envelope;
mod error;
mod headers;
mod hex_scheme;
mod idempotency;
mod mac;
mod secret;
#[cfg(feature = "sqlite")]
mod sqlite_ledger;
mod standard;
mod verify;

pub use delivery::Delivery;
#[cfg(feature = "serde")]
pub use envelope::{Envelope, EventEnvelope, TypedEnvelope};
pub use error::VerifyError;
pub use headers::SignatureHeaders;
pub use hex_scheme::{NEXTPAY_SIGNATURE_HEADER, X_WEBHOOK_SIGNATURE_HEADER, sign_hex};
pub use idempotency::{DEFAULT_LEDGER_RETENTION, EventLedger, MemoryLedger};
pub use secret::{MIN_SECRET_BYTES, SECRET_PREFIX, SecretError, WebhookSecret};
#[cfg(feature = "sqlite")]
pub use sqlite_ledger::{LEDGER_TABLE, SqliteLedger, SqliteLedgerError};
pub use standard::{
    WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER, sign_standard,
};
pub use verify::{DEFAULT_TOLERANCE, VerifiedScheme, VerifyOptions, verify};
