//! Reading JSON request bodies with our own limits and error shapes: over the limit is a
//! 413, not JSON is a 400, JSON of the wrong shape is a 422.

use axum::body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::ApiError;

pub(crate) async fn read_json<T: DeserializeOwned>(
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    read_json_or(body, limit, None).await
}

/// Like [`read_json`], but an empty body (the request had nothing to say) is `T::default()`.
pub(crate) async fn read_optional_json<T: DeserializeOwned + Default>(
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    read_json_or(body, limit, Some(T::default)).await
}

async fn read_json_or<T: DeserializeOwned>(
    body: Body,
    limit: usize,
    when_empty: Option<fn() -> T>,
) -> Result<T, ApiError> {
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(ApiError::too_large(limit)),
        Err(e) => {
            return Err(ApiError::unparseable(format!(
                "the request body could not be read: {e}"
            )));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if let Some(default) = when_empty {
            return Ok(default());
        }
        return Err(ApiError::unparseable(
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let unparseable = |e: serde_json::Error| {
            ApiError::unparseable(format!("the request body is not valid JSON: {e}"))
        };
        match e.classify() {
            // A shape error may be reported before a syntax error further on: a broken
            // body is a 400 whatever its start looks like, so check the syntax on its own.
            Category::Data => match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                Ok(_) => ApiError::invalid(e.to_string()),
                Err(syntax) => unparseable(syntax),
            },
            Category::Syntax | Category::Eof | Category::Io => unparseable(e),
        }
    })
}

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub(crate) fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}
