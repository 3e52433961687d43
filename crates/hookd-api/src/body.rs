//! Reading request input with our own limits and error shapes: a body over its limit is a
//! 413, not JSON is a 400, JSON of the wrong shape or nested too deep is a 422, a body that
//! does not arrive in time is a 408; a path and query over [`MAX_URI_BYTES`] is a 414.

use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::BytesMut;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::ApiError;

/// Deepest nesting of objects and arrays in a request body. Below serde_json's own
/// recursion limit (127), so a deep body is a 422 that says why, never a parser error;
/// stored JSON (`data`, `metadata`) is held to 64 levels on top of this.
pub(crate) const MAX_BODY_DEPTH: usize = 100;

/// How long a request body may take to arrive (a slow sender holds a connection and a
/// buffer meanwhile).
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest path plus query string the API reads. Every id, cursor and filter fits many
/// times over; hyper itself stops at 64 KiB of request head (see `server.rs`).
pub(crate) const MAX_URI_BYTES: usize = 8 * 1024;

/// Middleware: a request whose path and query are longer than [`MAX_URI_BYTES`] is a 414
/// before routing, so no handler sees an oversized id or query parameter.
pub(crate) async fn limit_uri_length(request: Request, next: Next) -> Response {
    let length = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if length > MAX_URI_BYTES {
        return axum::response::IntoResponse::into_response(ApiError::uri_too_long(MAX_URI_BYTES));
    }
    next.run(request).await
}

/// Most of an over-limit body read (and dropped) before the 413 is sent: a client still
/// sending gets the answer instead of a connection reset, which closing a socket with
/// unread data would cause. Past this, the connection is closed anyway.
const MAX_DISCARDED_BYTES: usize = 64 * 1024 * 1024;

/// The body's bytes, if there are at most `limit`; else a 413, after reading the rest of
/// the body (up to [`MAX_DISCARDED_BYTES`]) so the client can read it.
async fn collect_within(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let unreadable =
        |e: axum::Error| ApiError::unparseable(format!("the request body could not be read: {e}"));
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(unreadable)?.into_data() else {
            continue; // trailers
        };
        if collected.len() + data.len() > limit {
            let mut discarded = collected.len() + data.len();
            while discarded <= MAX_DISCARDED_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        discarded += frame.data_ref().map_or(0, |d| d.len());
                    }
                    Some(Err(_)) | None => break,
                }
            }
            return Err(ApiError::too_large(limit));
        }
        collected.extend_from_slice(&data);
    }
    Ok(collected.freeze())
}

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
    let bytes = tokio::time::timeout(BODY_READ_TIMEOUT, collect_within(body, limit))
        .await
        .map_err(|_| ApiError::request_timeout(BODY_READ_TIMEOUT.as_secs()))??;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if let Some(default) = when_empty {
            return Ok(default());
        }
        return Err(ApiError::unparseable(
            "the request body is empty; send a JSON object",
        ));
    }
    if nests_deeper_than(&bytes, MAX_BODY_DEPTH) {
        return Err(ApiError::invalid(format!(
            "the request body nests objects/arrays deeper than {MAX_BODY_DEPTH} levels"
        )));
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

/// Longest id of any object (a client's own event ids may be this long).
pub(crate) const MAX_ID_LEN: usize = hookd_core::ids::MAX_CLIENT_KEY_LEN;

/// An id from a path or a body: one hookd could have handed out (1 to 255 printable ASCII
/// characters) or a 404 at once, so nothing else (a NUL byte, say, which PostgreSQL text
/// cannot hold) reaches the store.
pub(crate) fn check_id(id: &str, what: &str) -> Result<(), ApiError> {
    if !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ApiError::not_found(what))
    }
}

/// Free text a client stores (a description): at most `max_chars` characters and no
/// control characters but tab and line breaks.
pub(crate) fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), ApiError> {
    if text.chars().count() > max_chars {
        return Err(ApiError::invalid(format!(
            "`{field}` may be at most {max_chars} characters"
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(ApiError::invalid(format!(
            "`{field}` may not contain control characters (other than tab and line breaks)"
        )));
    }
    Ok(())
}

/// Deserializes a JSON array of at most `MAX` items, refusing at item `MAX + 1` instead
/// of building the whole list first: a batch body of tiny items cannot turn into an
/// outsized vector before the count is checked.
pub(crate) fn at_most<'de, const MAX: usize, T, D>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    struct Bounded<const MAX: usize, T>(std::marker::PhantomData<T>);

    impl<'de, const MAX: usize, T: serde::Deserialize<'de>> serde::de::Visitor<'de>
        for Bounded<MAX, T>
    {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an array of at most {MAX} items")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX));
            while let Some(item) = seq.next_element()? {
                if items.len() == MAX {
                    return Err(serde::de::Error::invalid_length(MAX + 1, &self));
                }
                items.push(item);
            }
            Ok(items)
        }
    }

    deserializer.deserialize_seq(Bounded::<MAX, T>(std::marker::PhantomData))
}

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub(crate) fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

/// Whether JSON text nests objects and arrays deeper than `limit` (the outermost container
/// is level 1). Only brackets outside strings count; the text need not be valid JSON, the
/// parser judges that afterwards. One pass, no allocation.
fn nests_deeper_than(text: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings_only() {
        let cases: &[(&str, usize, bool)] = &[
            ("{}", 1, false),
            ("{}", 0, true),
            (r#"{"a":[1,{"b":[]}]}"#, 4, false),
            (r#"{"a":[1,{"b":[]}]}"#, 3, true),
            // Brackets inside strings, escaped quotes included, do not count.
            (r#"{"a":"[[[[{{{{"}"#, 1, false),
            (r#"{"a":"\"[[[["}"#, 1, false),
            (r#"{"a":"\\"}"#, 1, false),
            (r#"[[],[],[]]"#, 2, false),
        ];
        for (text, limit, deeper) in cases {
            assert_eq!(
                nests_deeper_than(text.as_bytes(), *limit),
                *deeper,
                "{text} against {limit}"
            );
        }
        let deep = format!("{}{}", "[".repeat(101), "]".repeat(101));
        assert!(nests_deeper_than(deep.as_bytes(), MAX_BODY_DEPTH));
        let fits = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(!nests_deeper_than(fits.as_bytes(), MAX_BODY_DEPTH));
    }

    #[test]
    fn a_bounded_list_stops_reading_at_the_first_item_too_many() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static BUILT: AtomicUsize = AtomicUsize::new(0);
        struct Counted;
        impl<'de> serde::Deserialize<'de> for Counted {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Counted, D::Error> {
                serde::de::IgnoredAny::deserialize(d)?;
                BUILT.fetch_add(1, Ordering::Relaxed);
                Ok(Counted)
            }
        }
        #[derive(serde::Deserialize)]
        struct Listed {
            #[serde(deserialize_with = "at_most::<3, _, _>")]
            items: Vec<Counted>,
        }
        let three: Result<Listed, _> = serde_json::from_str(r#"{"items":[1,2,3]}"#);
        assert_eq!(three.map(|l| l.items.len()).ok(), Some(3));
        BUILT.store(0, Ordering::Relaxed);
        let many = format!(r#"{{"items":[{}]}}"#, vec!["0"; 10_000].join(","));
        let refused = serde_json::from_str::<Listed>(&many).err();
        assert!(refused.is_some_and(|e| e.classify() == Category::Data));
        assert_eq!(
            BUILT.load(Ordering::Relaxed),
            4,
            "read past the first item too many"
        );
    }

    #[tokio::test]
    async fn a_deep_body_is_a_422_and_a_large_one_a_413() {
        let deep = format!("{}{}", "[".repeat(150), "]".repeat(150));
        let error = read_json::<serde_json::Value>(Body::from(deep), 1 << 20)
            .await
            .err()
            .map(|e| e.status());
        assert_eq!(error, Some(axum::http::StatusCode::UNPROCESSABLE_ENTITY));
        let error = read_json::<serde_json::Value>(Body::from(vec![b' '; 2048]), 1024)
            .await
            .err()
            .map(|e| e.status());
        assert_eq!(error, Some(axum::http::StatusCode::PAYLOAD_TOO_LARGE));
    }
}
