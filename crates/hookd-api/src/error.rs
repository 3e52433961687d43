//! The one error type of the API and its JSON shape.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookd_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answered as `{"error":{"code","message"}}`. Server faults (5xx) say nothing
/// about their cause; it is logged instead.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Whole seconds for `Retry-After` (429); 503s always say 1.
    retry_after_seconds: Option<u64>,
}

/// The body of every error answer: `{"error":{"code","message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `validation_failed`, `invalid_json`, `bad_request`,
    /// `not_found`, `unauthorized`, `payload_too_large`, `uri_too_long`,
    /// `request_timeout`, `rate_limited`, `conflict`, `method_not_allowed`, `overloaded`,
    /// `unavailable`, `storage_unavailable`, `internal`.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// For people; may change.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_seconds: None,
        }
    }

    /// 422: the request is well-formed JSON but its content is not acceptable.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }

    /// 400: the body is not JSON at all.
    pub fn unparseable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 429: the client used up its request budget; `Retry-After` says when to come back.
    pub fn rate_limited(retry_after_seconds: u64) -> ApiError {
        let seconds = retry_after_seconds.max(1);
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many requests from this client; retry after {seconds} s (see Retry-After), or send events in batches (POST /v2/events/batch)"
            ),
        );
        error.retry_after_seconds = Some(seconds);
        error
    }

    /// 414: the request's path and query are longer than the server reads.
    pub fn uri_too_long(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request's path and query are longer than {limit} bytes"),
        )
    }

    /// 408: the request body did not arrive in time.
    pub fn request_timeout(seconds: u64) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request body did not arrive within {seconds} s"),
        )
    }

    /// Prefixes the message with where the problem is, e.g. `events[3]`.
    pub fn with_context(mut self, context: &str) -> ApiError {
        self.message = format!("{context}: {}", self.message);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(what) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            StoreError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "hookd is taking in more than it can store right now; retry after a second",
            ),
            StoreError::Unavailable(detail) => {
                tracing::warn!("database unavailable: {detail}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database cannot be reached right now; retry shortly (with the same Idempotency-Key, so a retry cannot store an event twice)",
                )
            }
            StoreError::StorageUnavailable(detail) => {
                tracing::error!("cannot write to the database: {detail}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "hookd cannot write to its database right now (its disk may be full or read-only); nothing was stored; retry shortly (with the same Idempotency-Key, so a retry cannot store an event twice)",
                )
            }
            StoreError::InvalidCursor(cursor) => ApiError::invalid(format!(
                "`{cursor}` is not a cursor this server handed out; use next_cursor from a previous page"
            )),
            other => {
                tracing::error!("store failure: {other}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server could not complete the request; it has been logged",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"hookd\""),
            );
        }
        response
    }
}

/// Client text quoted in an error message, cut to a few dozen characters: a message
/// never echoes a whole oversized input back.
pub(crate) fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX_QUOTED_CHARS: usize = 64;
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]).into(),
        None => text.into(),
    }
}

/// Middleware: a 4xx that is not JSON (axum's own extractor rejections are plain text,
/// e.g. a path segment that is not UTF-8) is answered in the JSON error shape with the
/// same status and the original text as its message; JSON answers pass untouched.
pub(crate) async fn json_rejections(response: Response) -> Response {
    let status = response.status();
    if !status.is_client_error() {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    // Rejection texts are a line or two; more is cut.
    let text = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
        _ => "bad_request",
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_owned()
    } else {
        text
    };
    ApiError::new(status, code, message).into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after(response: &Response) -> Option<&str> {
        response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
    }

    #[test]
    fn an_overloaded_store_is_a_503_with_retry_after() {
        let response = ApiError::from(StoreError::Busy).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&response), Some("1"));
    }

    #[test]
    fn a_rate_limited_request_is_a_429_with_retry_after_of_at_least_one_second() {
        for (asked, said) in [(0, "1"), (1, "1"), (7, "7")] {
            let response = ApiError::rate_limited(asked).into_response();
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(retry_after(&response), Some(said));
        }
    }

    #[test]
    fn excerpts_cut_long_input() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(100);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), 65);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn unwritable_storage_is_a_503_with_retry_after_that_reveals_no_detail() {
        let error = ApiError::from(StoreError::StorageUnavailable(
            "disk I/O error in /var/lib/hookd/hookd.db-wal".into(),
        ));
        assert_eq!(error.code, "storage_unavailable");
        assert!(!error.message.contains("/var/lib"));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&response), Some("1"));
    }

    #[test]
    fn store_failures_reveal_nothing() {
        let error = ApiError::from(StoreError::Database("disk I/O error at page 7".into()));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!error.message.contains("page 7"));
    }
}
