//! The errors a store reports.

/// A store failure. `Conflict` is the caller's fault (a duplicate name); the rest are the
/// server's and must never be shown to clients in detail.
#[derive(Clone, Debug, thiserror::Error)]
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
    /// The database cannot be reached (down, restarting, out of connections); the same
    /// request may well succeed a moment later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database's files cannot be written: the disk is full, a file size limit is
    /// reached, the file or file system is read-only, or the device fails. Nothing of the
    /// failed write was stored, and writes succeed again once the operator frees space.
    #[error("the database cannot be written (disk full or read-only?): {0}")]
    StorageUnavailable(String),
    /// A stored webhook secret cannot be opened with the keys this store was given.
    #[error("{0}")]
    Sealing(crate::sealing::SealingError),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            // SQLITE_FULL is ENOSPC; a file size limit (EFBIG), a read-only file or file
            // system (EPERM, EROFS) and failing hardware all come as SQLITE_IOERR.
            Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure | ErrorCode::ReadOnly) => {
                StoreError::StorageUnavailable(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        use tokio_postgres::error::SqlState;
        let Some(code) = e.code() else {
            // No SQLSTATE: the connection itself failed (refused, closed, timed out).
            return StoreError::Unavailable(e.to_string());
        };
        let transient = code.code().starts_with("08") // connection exception
            || code.code().starts_with("53") // insufficient resources
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(code);
        if transient {
            return StoreError::Unavailable(e.to_string());
        }
        if [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
        ]
        .contains(code)
        {
            return StoreError::Busy;
        }
        let detail = e.as_db_error().map_or_else(
            || e.to_string(),
            |db| format!("{}: {}", db.code().code(), db.message()),
        );
        StoreError::Database(detail)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> StoreError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::from(e),
            deadpool_postgres::PoolError::Closed => StoreError::Closed,
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_write_failures_of_the_storage_are_storage_unavailable() {
        for code in [
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_IOERR_WRITE,
            rusqlite::ffi::SQLITE_IOERR_FSYNC,
            rusqlite::ffi::SQLITE_READONLY,
        ] {
            assert!(
                matches!(
                    StoreError::from(sqlite_failure(code)),
                    StoreError::StorageUnavailable(_)
                ),
                "SQLite code {code}"
            );
        }
        assert!(matches!(
            StoreError::from(sqlite_failure(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)),
            StoreError::Database(_)
        ));
    }
}
