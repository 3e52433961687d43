//! The errors a store reports.

/// A store failure. `Conflict` is the caller's fault (a duplicate name); the rest are the
/// server's and must never be shown to clients in detail.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("`{0}` is not a cursor this server handed out")]
    InvalidCursor(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("the store has shut down")]
    Closed,
    #[error("too many writes are waiting; try again shortly")]
    Busy,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Database(e.to_string())
    }
}
