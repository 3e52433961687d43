//! Receiver-side deduplication. hookd delivers at least once: the same event can
//! arrive again (a retry after a lost answer, a replay, a crash between sending and
//! recording). Every delivery of one event carries the same `webhook-id` (the event id),
//! so a receiver that remembers the ids it has handled can drop repeats.
//!
//! [`EventLedger`] is that memory; [`MemoryLedger`] keeps it in the process (bounded,
//! least recently used evicted first) and, with the `sqlite` feature,
//! [`SqliteLedger`](crate::SqliteLedger) keeps it in a SQLite table that survives
//! restarts.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::time::Duration;

/// How long a ledger remembers an event id by default: 30 days, hookd's default
/// `--retention` (an event older than that can no longer be replayed).
pub const DEFAULT_LEDGER_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// A record of the event ids a receiver has handled.
///
/// Call [`first_time`](EventLedger::first_time) with the verified delivery's
/// `webhook-id` before acting on it: `true` means act, `false` means a duplicate
/// (answer `2xx` and do nothing). If acting fails and the receiver answers non-`2xx` so
/// that hookd retries, call [`forget`](EventLedger::forget) first, or the retry would be
/// dropped as a duplicate.
///
/// Times are unix seconds passed in by the caller (this crate reads no clock).
pub trait EventLedger {
    /// Why the ledger could not answer (never for [`MemoryLedger`]).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Records `event_id` as handled at `now` and returns `true` if it was not recorded
    /// yet (or its record is older than the ledger's retention), `false` if it was.
    ///
    /// # Errors
    ///
    /// The ledger's storage failed; nothing was recorded.
    fn first_time(&mut self, event_id: &str, now: i64) -> Result<bool, Self::Error>;

    /// Forgets `event_id`, so that its next delivery counts as the first.
    ///
    /// # Errors
    ///
    /// The ledger's storage failed.
    fn forget(&mut self, event_id: &str) -> Result<(), Self::Error>;
}

/// An in-memory [`EventLedger`] of at most `capacity` ids: when full, the id seen least
/// recently is evicted (a duplicate counts as a sighting). An id is remembered for the
/// retention (default [`DEFAULT_LEDGER_RETENTION`]) after it was recorded.
///
/// For tests, demos and single-process receivers: it forgets on restart and is not
/// shared between processes. Receivers that run several processes, or must not act twice
/// across a restart, keep the ids in their database (see `SqliteLedger`, or a table with
/// a unique key on the id, written in the same transaction as the work).
#[derive(Debug, Clone)]
pub struct MemoryLedger {
    capacity: usize,
    retention: Option<Duration>,
    /// id → when it was recorded and its place in `by_recency`.
    entries: HashMap<String, MemoryEntry>,
    /// Sighting counter → id, oldest sighting first.
    by_recency: BTreeMap<u64, String>,
    next_sighting: u64,
}

#[derive(Debug, Clone, Copy)]
struct MemoryEntry {
    recorded_at: i64,
    sighting: u64,
}

impl MemoryLedger {
    /// Remembers up to `capacity` ids (a capacity of 0 is treated as 1).
    pub fn new(capacity: usize) -> MemoryLedger {
        MemoryLedger {
            capacity: capacity.max(1),
            retention: Some(DEFAULT_LEDGER_RETENTION),
            entries: HashMap::new(),
            by_recency: BTreeMap::new(),
            next_sighting: 0,
        }
    }

    /// Sets how long after it was recorded an id is remembered (`None`: until evicted).
    #[must_use]
    pub fn with_retention(mut self, retention: Option<Duration>) -> MemoryLedger {
        self.retention = retention;
        self
    }

    /// Whether `event_id` is remembered at `now`.
    pub fn contains(&self, event_id: &str, now: i64) -> bool {
        self.entries
            .get(event_id)
            .is_some_and(|entry| !self.expired(entry.recorded_at, now))
    }

    /// Number of ids held (expired ones included until they are evicted or seen again).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Maximum number of ids held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn expired(&self, recorded_at: i64, now: i64) -> bool {
        self.retention
            .is_some_and(|retention| is_expired(recorded_at, now, retention))
    }

    fn sighting(&mut self) -> u64 {
        self.next_sighting += 1;
        self.next_sighting
    }
}

impl EventLedger for MemoryLedger {
    type Error = Infallible;

    fn first_time(&mut self, event_id: &str, now: i64) -> Result<bool, Infallible> {
        let sighting = self.sighting();
        if let Some(entry) = self.entries.get(event_id).copied() {
            let expired = self.expired(entry.recorded_at, now);
            self.by_recency.remove(&entry.sighting);
            self.by_recency.insert(sighting, event_id.to_owned());
            let recorded_at = if expired { now } else { entry.recorded_at };
            self.entries.insert(
                event_id.to_owned(),
                MemoryEntry {
                    recorded_at,
                    sighting,
                },
            );
            return Ok(expired);
        }
        if self.entries.len() >= self.capacity
            && let Some((_, least_recent)) = self.by_recency.pop_first()
        {
            self.entries.remove(&least_recent);
        }
        self.by_recency.insert(sighting, event_id.to_owned());
        self.entries.insert(
            event_id.to_owned(),
            MemoryEntry {
                recorded_at: now,
                sighting,
            },
        );
        Ok(true)
    }

    fn forget(&mut self, event_id: &str) -> Result<(), Infallible> {
        if let Some(entry) = self.entries.remove(event_id) {
            self.by_recency.remove(&entry.sighting);
        }
        Ok(())
    }
}

/// Whether a record made at `recorded_at` is older than `retention` at `now`.
pub(crate) fn is_expired(recorded_at: i64, now: i64, retention: Duration) -> bool {
    // i128 so that no pair of i64 values can overflow.
    i128::from(now) - i128::from(recorded_at) > i128::from(retention.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(ledger: &mut MemoryLedger, id: &str, now: i64) -> bool {
        match ledger.first_time(id, now) {
            Ok(first) => first,
            Err(never) => match never {},
        }
    }

    #[test]
    fn first_time_then_duplicate() {
        let mut ledger = MemoryLedger::new(8);
        assert!(ledger.is_empty());
        assert!(first(&mut ledger, "evt_1", 100));
        assert!(!first(&mut ledger, "evt_1", 101));
        assert!(first(&mut ledger, "evt_2", 102));
        assert_eq!(ledger.len(), 2);
        assert!(ledger.contains("evt_1", 103));
    }

    #[test]
    fn evicts_the_least_recently_seen() {
        let mut ledger = MemoryLedger::new(2);
        assert!(first(&mut ledger, "a", 1));
        assert!(first(&mut ledger, "b", 2));
        // Seeing "a" again makes "b" the least recently seen.
        assert!(!first(&mut ledger, "a", 3));
        assert!(first(&mut ledger, "c", 4)); // evicts "b"
        assert!(!ledger.contains("b", 4));
        assert!(ledger.contains("a", 4) && ledger.contains("c", 4));
        assert_eq!(ledger.len(), 2);
        assert!(first(&mut ledger, "b", 5)); // forgotten, so new again; evicts "a"
        assert!(!ledger.contains("a", 5));
        assert!(!first(&mut ledger, "c", 6));
    }

    #[test]
    fn ids_expire_after_the_retention_counted_from_their_record() {
        let mut ledger = MemoryLedger::new(8).with_retention(Some(Duration::from_secs(60)));
        assert!(first(&mut ledger, "evt_1", 1_000));
        // A duplicate does not extend the record.
        assert!(!first(&mut ledger, "evt_1", 1_050));
        assert!(!first(&mut ledger, "evt_1", 1_060));
        assert!(!ledger.contains("evt_1", 1_061));
        assert!(first(&mut ledger, "evt_1", 1_061));
        // Recorded again at 1 061.
        assert!(!first(&mut ledger, "evt_1", 1_121));
        assert!(first(&mut ledger, "evt_1", 1_122));
        assert_eq!(ledger.len(), 1);
    }

    #[test]
    fn no_retention_keeps_ids_until_evicted() {
        let mut ledger = MemoryLedger::new(1).with_retention(None);
        assert!(first(&mut ledger, "a", 0));
        assert!(!first(&mut ledger, "a", i64::MAX));
        assert!(first(&mut ledger, "b", i64::MAX));
        assert!(first(&mut ledger, "a", i64::MAX));
    }

    #[test]
    fn forget_lets_the_next_delivery_through() {
        let mut ledger = MemoryLedger::new(4);
        assert!(first(&mut ledger, "evt_1", 1));
        let Ok(()) = ledger.forget("evt_1");
        assert!(ledger.is_empty());
        assert!(first(&mut ledger, "evt_1", 2));
        let Ok(()) = ledger.forget("never-seen");
        assert_eq!(ledger.len(), 1);
    }

    #[test]
    fn zero_capacity_is_one() {
        let mut ledger = MemoryLedger::new(0);
        assert_eq!(ledger.capacity(), 1);
        assert!(first(&mut ledger, "a", 0));
        assert!(!first(&mut ledger, "a", 0));
        assert!(first(&mut ledger, "b", 0));
        assert!(first(&mut ledger, "a", 0));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let day = Duration::from_secs(86_400);
        assert!(is_expired(i64::MIN, i64::MAX, day));
        assert!(!is_expired(i64::MAX, i64::MIN, day));
    }
}
