//! Why a delivery failed verification. Each variant's `Display` is a single
//! line a CLI or log can show as-is; none of them include the secret.

use crate::secret::SecretError;

/// Verification failure, one variant per distinct cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No signature header of any accepted scheme is present.
    #[error("no webhook signature header found (looked for {looked_for})")]
    MissingSignature {
        /// Comma-separated header names that were looked for.
        looked_for: String,
    },
    /// `webhook-signature` is present but a companion header is missing or empty.
    #[error("webhook-signature is present but {name} is missing or empty")]
    MissingHeader {
        /// The missing header (`webhook-id` or `webhook-timestamp`).
        name: &'static str,
    },
    /// `webhook-timestamp` is not a non-negative integer of unix seconds.
    #[error("webhook-timestamp {value:?} is not a unix timestamp in seconds")]
    MalformedTimestamp {
        /// The offending value (truncated if long).
        value: String,
    },
    /// The signature is valid but the timestamp is older than the tolerance.
    #[error(
        "webhook-timestamp is {age_secs}s in the past, outside the {tolerance_secs}s tolerance (replayed or long-delayed delivery, or a wrong clock)"
    )]
    TimestampTooOld {
        /// How far `now` is past the timestamp.
        age_secs: u64,
        /// The configured tolerance.
        tolerance_secs: u64,
    },
    /// The signature is valid but the timestamp is ahead of `now` by more
    /// than the tolerance.
    #[error(
        "webhook-timestamp is {ahead_secs}s in the future, outside the {tolerance_secs}s tolerance (check the clocks)"
    )]
    TimestampInFuture {
        /// How far the timestamp is ahead of `now`.
        ahead_secs: u64,
        /// The configured tolerance.
        tolerance_secs: u64,
    },
    /// `webhook-signature` holds no `v1,` entry (only unknown versions).
    #[error("webhook-signature contains no v1 signature")]
    NoSupportedSignature,
    /// A hex-scheme header is not 64 hex characters.
    #[error("{header} is not a 64-character hex HMAC-SHA256")]
    MalformedHexSignature {
        /// The header that was checked.
        header: String,
    },
    /// The signature does not match this secret and body (wrong secret, or
    /// the body was altered, e.g. re-serialized JSON).
    #[error("{header} does not match this secret and body (wrong secret or modified body)")]
    SignatureMismatch {
        /// The header that was checked.
        header: String,
    },
    /// Standard Webhooks headers are present but the secret cannot be decoded
    /// into a key.
    #[error("cannot check webhook-signature: {0}")]
    InvalidSecret(#[from] SecretError),
}
