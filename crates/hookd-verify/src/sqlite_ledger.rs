//! [`SqliteLedger`]: the handled event ids in a SQLite table, so duplicates are caught
//! across restarts and between processes that share the file.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use crate::idempotency::{DEFAULT_LEDGER_RETENTION, EventLedger};

/// The table the ledger keeps its ids in (created if missing).
pub const LEDGER_TABLE: &str = "hookd_seen_events";

/// Expired rows are deleted after this many first sightings, so the table stays about
/// the size of one retention period without a purge on every call.
const PURGE_EVERY: u32 = 1_000;

/// An [`EventLedger`] in a SQLite table (`hookd_seen_events`: the id and when it was
/// recorded, unix seconds). One `INSERT … ON CONFLICT` per call decides atomically, so
/// processes sharing the file never both see "first time" for one id. Ids older than
/// the retention (default [`DEFAULT_LEDGER_RETENTION`]) count as new again, and are
/// deleted from time to time (or with [`SqliteLedger::purge_expired`]).
///
/// ```
/// use hookd_verify::{EventLedger, SqliteLedger};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("receiver.db");
/// let mut ledger = SqliteLedger::open(&path)?;
/// assert!(ledger.first_time("evt_01j9", 1_700_000_000)?);
/// assert!(!ledger.first_time("evt_01j9", 1_700_000_060)?);
///
/// // Another process (or a restart) sees the same records.
/// let mut again = SqliteLedger::open(&path)?;
/// assert!(!again.first_time("evt_01j9", 1_700_000_120)?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SqliteLedger {
    connection: Connection,
    retention: Option<Duration>,
    since_purge: u32,
}

/// Why a [`SqliteLedger`] could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteLedgerError {
    /// The database failed (cannot open or write the file, busy past the timeout, …).
    #[error("event ledger database: {0}")]
    Database(#[from] rusqlite::Error),
}

impl SqliteLedger {
    /// Opens (or creates) the database file at `path` and the ledger's table in it. The
    /// file is put in WAL mode, and a busy database is waited on for up to 5 s.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or the table cannot be created.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteLedger, SqliteLedgerError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_secs(5))?;
        // WAL lets readers of the receiver's own tables go on while an id is written.
        connection.pragma_update(None, "journal_mode", "WAL")?;
        SqliteLedger::with_connection(connection)
    }

    /// Keeps the ledger's table in a connection the receiver already has (its own
    /// database), creating the table if missing. [`SqliteLedger::connection`] gives the
    /// connection back for the receiver's own queries.
    ///
    /// # Errors
    ///
    /// The table cannot be created.
    pub fn with_connection(connection: Connection) -> Result<SqliteLedger, SqliteLedgerError> {
        connection.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
                 event_id TEXT PRIMARY KEY NOT NULL,
                 recorded_at INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS {LEDGER_TABLE}_recorded_at
                 ON {LEDGER_TABLE} (recorded_at);"
        ))?;
        Ok(SqliteLedger {
            connection,
            retention: Some(DEFAULT_LEDGER_RETENTION),
            since_purge: 0,
        })
    }

    /// Sets how long after it was recorded an id is remembered (`None`: for ever).
    #[must_use]
    pub fn with_retention(mut self, retention: Option<Duration>) -> SqliteLedger {
        self.retention = retention;
        self
    }

    /// The connection, for the receiver's own statements.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Deletes the ids whose records are older than the retention at `now`, and returns
    /// how many went (none without a retention).
    ///
    /// # Errors
    ///
    /// The delete failed.
    pub fn purge_expired(&mut self, now: i64) -> Result<usize, SqliteLedgerError> {
        self.since_purge = 0;
        let Some(cutoff) = self.cutoff(now) else {
            return Ok(0);
        };
        let deleted = self.connection.execute(
            &format!("DELETE FROM {LEDGER_TABLE} WHERE recorded_at < ?1"),
            params![cutoff],
        )?;
        Ok(deleted)
    }

    /// Records made before this time have expired at `now`.
    fn cutoff(&self, now: i64) -> Option<i64> {
        let retention = i64::try_from(self.retention?.as_secs()).unwrap_or(i64::MAX);
        Some(now.saturating_sub(retention))
    }
}

impl EventLedger for SqliteLedger {
    type Error = SqliteLedgerError;

    fn first_time(&mut self, event_id: &str, now: i64) -> Result<bool, SqliteLedgerError> {
        // An expired record is overwritten as if new; a live one is left alone, and
        // then no row changes.
        let cutoff = self.cutoff(now).unwrap_or(i64::MIN);
        let changed = self.connection.execute(
            &format!(
                "INSERT INTO {LEDGER_TABLE} (event_id, recorded_at) VALUES (?1, ?2)
                 ON CONFLICT (event_id) DO UPDATE SET recorded_at = excluded.recorded_at
                 WHERE {LEDGER_TABLE}.recorded_at < ?3"
            ),
            params![event_id, now, cutoff],
        )?;
        let first = changed == 1;
        if first {
            self.since_purge += 1;
            if self.since_purge >= PURGE_EVERY {
                self.purge_expired(now)?;
            }
        }
        Ok(first)
    }

    fn forget(&mut self, event_id: &str) -> Result<(), SqliteLedgerError> {
        self.connection.execute(
            &format!("DELETE FROM {LEDGER_TABLE} WHERE event_id = ?1"),
            params![event_id],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ledger_in(dir: &tempfile::TempDir) -> SqliteLedger {
        SqliteLedger::open(dir.path().join("ledger.db")).unwrap()
    }

    fn rows(ledger: &SqliteLedger) -> i64 {
        ledger
            .connection()
            .query_row(&format!("SELECT count(*) FROM {LEDGER_TABLE}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    }

    #[test]
    fn first_time_then_duplicate_across_connections() {
        let dir = tempfile::tempdir().unwrap();
        let mut one = ledger_in(&dir);
        let mut two = ledger_in(&dir);
        assert!(one.first_time("evt_1", 100).unwrap());
        assert!(!two.first_time("evt_1", 101).unwrap());
        assert!(two.first_time("evt_2", 102).unwrap());
        assert!(!one.first_time("evt_2", 103).unwrap());
        drop((one, two));
        // And after a restart.
        let mut reopened = ledger_in(&dir);
        assert!(!reopened.first_time("evt_1", 104).unwrap());
        assert_eq!(rows(&reopened), 2);
    }

    #[test]
    fn records_expire_after_the_retention_and_are_purged() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger_in(&dir).with_retention(Some(Duration::from_secs(60)));
        assert!(ledger.first_time("old", 1_000).unwrap());
        assert!(!ledger.first_time("old", 1_060).unwrap());
        assert!(ledger.first_time("old", 1_061).unwrap());
        assert!(!ledger.first_time("old", 1_100).unwrap());
        assert!(ledger.first_time("new", 1_100).unwrap());
        assert_eq!(ledger.purge_expired(1_122).unwrap(), 1);
        assert_eq!(rows(&ledger), 1);
        assert!(!ledger.first_time("new", 1_122).unwrap());
    }

    #[test]
    fn without_retention_nothing_expires() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger_in(&dir).with_retention(None);
        assert!(ledger.first_time("evt", i64::MIN).unwrap());
        assert!(!ledger.first_time("evt", i64::MAX).unwrap());
        assert_eq!(ledger.purge_expired(i64::MAX).unwrap(), 0);
    }

    #[test]
    fn purges_by_itself_every_thousand_new_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger_in(&dir).with_retention(Some(Duration::from_secs(10)));
        for n in 0..PURGE_EVERY - 1 {
            assert!(ledger.first_time(&format!("evt_{n}"), 0).unwrap());
        }
        assert_eq!(rows(&ledger), i64::from(PURGE_EVERY - 1));
        // The thousandth new id, long after the others expired, purges them.
        assert!(ledger.first_time("evt_late", 100).unwrap());
        assert_eq!(rows(&ledger), 1);
    }

    #[test]
    fn forget_lets_the_next_delivery_through() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger_in(&dir);
        assert!(ledger.first_time("evt_1", 1).unwrap());
        ledger.forget("evt_1").unwrap();
        assert!(ledger.first_time("evt_1", 2).unwrap());
    }

    #[test]
    fn shares_the_receivers_own_connection() {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE orders (id TEXT PRIMARY KEY)")
            .unwrap();
        let mut ledger = SqliteLedger::with_connection(connection).unwrap();
        assert!(ledger.first_time("evt_1", 1).unwrap());
        ledger
            .connection()
            .execute("INSERT INTO orders VALUES ('o_1')", [])
            .unwrap();
        assert_eq!(rows(&ledger), 1);
    }

    #[test]
    fn a_broken_database_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let err = SqliteLedger::open(dir.path()).unwrap_err();
        assert!(
            err.to_string().starts_with("event ledger database: "),
            "{err}"
        );
    }
}
