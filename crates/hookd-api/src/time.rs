//! Time at the API edge: the clock, RFC 3339 output, and `since`/`until` input given as
//! unix seconds or RFC 3339.

use std::time::{Duration, UNIX_EPOCH};

use crate::error::ApiError;

pub(crate) fn now_ms() -> i64 {
    hookd_core::time::unix_ms(std::time::SystemTime::now())
}

/// RFC 3339 with milliseconds, in UTC.
pub(crate) fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

/// Parses the optional `since`/`until` query parameters of the lists, in unix ms.
pub(crate) fn parse_window(
    since: Option<&str>,
    until: Option<&str>,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    Ok((
        since.map(|s| parse_instant("since", s)).transpose()?,
        until.map(|s| parse_instant("until", s)).transpose()?,
    ))
}

/// Parses `since`/`until`: unix seconds, or an RFC 3339 time.
pub(crate) fn parse_instant(name: &str, text: &str) -> Result<i64, ApiError> {
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds
            .checked_mul(1000)
            .ok_or_else(|| ApiError::invalid(format!("`{name}` is out of range")));
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "`{name}` must be unix seconds or an RFC 3339 time such as 2024-01-15T10:30:00Z"
            ))
        })
}
