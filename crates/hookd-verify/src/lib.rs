//! Verify webhooks sent by hookd, and sign them: this crate is the receiver
//! library and also the single home of hookd's signing code (the sender
//! reuses it), so both sides can never disagree about the contract.
//!
//! hookd signs every delivery two ways:
//!
//! * **Standard Webhooks** (<https://www.standardwebhooks.com>):
//!   `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature`
//!   (space-separated `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//!   several during secret rotation), keyed with the base64-decoded part of
//!   the `whsec_...` secret. Preferred: the timestamp limits replays.
//! * **Hex scheme**: one header (default `x-nextpay-signature`) holding the
//!   lowercase hex HMAC-SHA256 of the body, keyed with the full secret string.
//!
//! The crate does no I/O and reads no clock: `now` is always passed in.
//!
//! # Receiving
//!
//! ```
//! use hookd_verify::{Delivery, SeenEvents, VerifiedScheme, VerifyOptions, verify};
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
//! // Deliveries are at-least-once: skip events already processed.
//! // (In production, record ids in your database instead.)
//! let mut seen = SeenEvents::new(10_000);
//! if let Some(id) = delivery.header("webhook-id") {
//!     assert!(seen.first_time(id));
//!     assert!(!seen.first_time(id));
//! }
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
mod error;
mod headers;
mod hex_scheme;
mod idempotency;
mod mac;
mod secret;
mod standard;
mod verify;

pub use delivery::Delivery;
pub use error::VerifyError;
pub use headers::SignatureHeaders;
pub use hex_scheme::{NEXTPAY_SIGNATURE_HEADER, X_WEBHOOK_SIGNATURE_HEADER, sign_hex};
pub use idempotency::SeenEvents;
pub use secret::{MIN_SECRET_BYTES, SECRET_PREFIX, SecretError, WebhookSecret};
pub use standard::{
    WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER, sign_standard,
};
pub use verify::{DEFAULT_TOLERANCE, VerifiedScheme, VerifyOptions, verify};
