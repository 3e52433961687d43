//! Randomness at the API edge: ids and secrets are made from bytes drawn here.

use axum::http::StatusCode;

use crate::error::ApiError;

/// Fills `buf` from the system's random source; a failure is the server's, a 500.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), ApiError> {
    getrandom::fill(buf).map_err(|e| {
        tracing::error!("the system random number generator failed: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not complete the request",
        )
    })
}
