//! How records are encoded in columns, shared by the backends: JSON text for lists and
//! objects, opaque page cursors, and the checks that turn stored text back into records.

use hookd_core::envelope::EnvelopeFormat;
use hookd_core::json::CanonicalJson;

use crate::StoreError;
use crate::model::{EventRecord, Page, PageRequest};

pub(crate) fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// A webhook's stored filters, format and metadata, parsed.
pub(crate) fn webhook_fields(
    id: &str,
    events: &str,
    format: &str,
    metadata: &str,
) -> Result<(Vec<String>, EnvelopeFormat, serde_json::Value), StoreError> {
    let events: Vec<String> = serde_json::from_str(events)
        .map_err(|e| StoreError::Corrupt(format!("webhook {id} events: {e}")))?;
    let format: EnvelopeFormat = format.parse().map_err(StoreError::Corrupt)?;
    let metadata: serde_json::Value = serde_json::from_str(metadata)
        .map_err(|e| StoreError::Corrupt(format!("webhook {id} metadata: {e}")))?;
    Ok((events, format, metadata))
}

pub(crate) fn event_record(
    id: String,
    event_type: String,
    data: String,
    received_at_ms: i64,
) -> EventRecord {
    EventRecord {
        id,
        event_type,
        // Only canonical text is ever stored.
        data: CanonicalJson::from_canonical_unchecked(data),
        created: received_at_ms.div_euclid(1000),
        received_at_ms,
        // Read from the `test` column where it matters: see `EventRecord::with_test`.
        test: false,
    }
}

pub(crate) fn headers_text(headers: &[(String, String)]) -> String {
    json_text(&headers)
}

pub(crate) fn headers_from_text(text: &str) -> Result<Vec<(String, String)>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("attempt headers: {e}")))
}

pub(crate) fn client_digest(id: &str, digest: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(digest)
        .map_err(|_| StoreError::Corrupt(format!("client {id} has a malformed secret digest")))
}

/// The page size plus one: the extra row says whether there is a next page.
pub(crate) fn limit_plus_one(page: &PageRequest) -> i64 {
    i64::try_from(page.limit).unwrap_or(i64::MAX - 1) + 1
}

/// Cuts a page fetched with one extra row, keyed by each row's internal key.
pub(crate) fn paginate<T>(mut items: Vec<(T, i64)>, limit: usize) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|(_, key)| encode_cursor(*key))
    } else {
        None
    };
    Page {
        data: items.into_iter().map(|(item, _)| item).collect(),
        next_cursor,
    }
}

fn encode_cursor(key: i64) -> String {
    format!("k{key}")
}

pub(crate) fn decode_cursor(cursor: Option<&str>) -> Result<Option<i64>, StoreError> {
    cursor
        .map(|c| {
            c.strip_prefix('k')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| StoreError::InvalidCursor(c.to_owned()))
        })
        .transpose()
}
