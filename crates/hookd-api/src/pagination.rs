//! Cursor pagination parameters shared by every list: a page holds 1 to [`MAX_LIMIT`]
//! items, and a cursor is a short opaque string the server handed out.

use hookd_store::model::PageRequest;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;

pub(crate) const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 250;
/// Longest cursor looked at; the server's own are a few dozen characters.
pub(crate) const MAX_CURSOR_LEN: usize = 256;

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// Page size, 1 to 250 (default 50).
    pub(crate) limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
}

impl PageParams {
    pub(crate) fn to_request(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::invalid(format!(
                "`limit` must be between 1 and {MAX_LIMIT}"
            )));
        }
        if self
            .cursor
            .as_ref()
            .is_some_and(|c| c.len() > MAX_CURSOR_LEN)
        {
            return Err(ApiError::invalid(
                "`cursor` is not a cursor this server handed out; use next_cursor from a previous page",
            ));
        }
        Ok(PageRequest {
            limit,
            cursor: self.cursor.clone().filter(|c| !c.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_hold_1_to_250_items_and_cursors_are_short() {
        let page = |limit: Option<usize>, cursor: Option<&str>| {
            PageParams {
                limit,
                cursor: cursor.map(str::to_owned),
            }
            .to_request()
            .map(|r| r.limit)
            .map_err(|e| e.status().as_u16())
        };
        assert_eq!(page(None, None), Ok(DEFAULT_LIMIT));
        assert_eq!(page(Some(1), None), Ok(1));
        assert_eq!(page(Some(MAX_LIMIT), Some("abc")), Ok(MAX_LIMIT));
        assert_eq!(page(Some(0), None), Err(422));
        assert_eq!(page(Some(MAX_LIMIT + 1), None), Err(422));
        let long = "c".repeat(MAX_CURSOR_LEN + 1);
        assert_eq!(page(None, Some(&long)), Err(422));
    }
}
