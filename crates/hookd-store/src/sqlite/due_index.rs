//! Which webhooks have deliveries due, kept in memory by the writer thread.
//!
//! Claims used to rank every due delivery in SQL, which made each claim as slow as the
//! queue is long (a million queued deliveries drained at a few per second). The writer
//! thread sees every change to deliveries, so it can keep, per webhook, a time at or before
//! which that webhook's earliest pending delivery is due. A claim then probes only the
//! webhooks whose time has come, each through the `(webhook_key, next_attempt_at)` index:
//! its cost follows what it claims, not the queue's length.
//!
//! The times are lower bounds: a delivery that finished or was cancelled may leave one too
//! early, never too late. A probe that finds less than it asked for refreshes the bound.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};

use crate::StoreError;

/// A webhook's earliest pending delivery, through `deliveries_due_by_webhook`.
const REFRESH: &str = "SELECT next_attempt_at FROM deliveries WHERE webhook_key = ?1 AND state = 0 \
                       ORDER BY next_attempt_at LIMIT 1";

#[derive(Default)]
pub(super) struct DueIndex(HashMap<i64, i64>);

impl DueIndex {
    /// Reads the bounds from the table; once, when the writer starts.
    pub(super) fn load(conn: &Connection) -> Result<DueIndex, StoreError> {
        let mut stmt = conn.prepare(
            "SELECT webhook_key, MIN(next_attempt_at) FROM deliveries WHERE state = 0 GROUP BY webhook_key",
        )?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))?;
        Ok(DueIndex(rows.collect::<Result<_, _>>()?))
    }

    /// Notes that a pending delivery of `webhook_key` is due at `at_ms`.
    pub(super) fn note(&mut self, webhook_key: i64, at_ms: i64) {
        self.0
            .entry(webhook_key)
            .and_modify(|t| *t = (*t).min(at_ms))
            .or_insert(at_ms);
    }

    /// Drops a webhook whose pending deliveries were all cancelled.
    pub(super) fn forget(&mut self, webhook_key: i64) {
        self.0.remove(&webhook_key);
    }

    /// Replaces the bound with the true time of the webhook's earliest pending delivery.
    pub(super) fn refresh(
        &mut self,
        conn: &Connection,
        webhook_key: i64,
    ) -> Result<(), StoreError> {
        let earliest: Option<i64> = conn
            .prepare_cached(REFRESH)?
            .query_row([webhook_key], |row| row.get(0))
            .optional()?;
        match earliest {
            Some(at) => self.0.insert(webhook_key, at),
            None => self.0.remove(&webhook_key),
        };
        Ok(())
    }

    /// Webhooks whose bound is at or before `now_ms`, earliest first.
    pub(super) fn due_by(&self, now_ms: i64) -> Vec<i64> {
        let mut due: Vec<(i64, i64)> = self
            .0
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(key, at)| (*at, *key))
            .collect();
        due.sort_unstable();
        due.into_iter().map(|(_, key)| key).collect()
    }

    /// The earliest bound of all, if anything is pending.
    pub(super) fn earliest(&self) -> Option<i64> {
        self.0.values().copied().min()
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;
    use crate::sqlite::connection::open_writer;

    /// The refresh runs after most outcome batches; binding it again must not make SQLite
    /// compile it again (see `configure` in connection.rs).
    #[test]
    fn refreshing_reuses_the_compiled_statement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open_writer(&dir.path().join("due.db")).expect("open");
        let mut due = DueIndex::default();
        for webhook_key in [1, 2, 3, 1] {
            due.refresh(&conn, webhook_key).expect("refresh");
        }
        let stmt = conn.prepare_cached(REFRESH).expect("cached");
        assert_eq!(stmt.get_status(StatementStatus::Run), 4);
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }
}
