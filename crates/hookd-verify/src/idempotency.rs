//! Receiver-side deduplication: hookd delivers at least once, so the same
//! event can arrive more than once (retries, rotation, replays within the
//! tolerance). `SeenEvents` is a small in-memory helper for that.

use std::collections::{HashSet, VecDeque};

/// A bounded set of event ids seen recently, evicting the oldest first (FIFO).
///
/// Suitable for tests, demos and single-process receivers. It forgets on
/// restart and is not shared between processes: production receivers should
/// record processed event ids (e.g. `webhook-id`) in their database, ideally
/// in the same transaction as the work the event triggers, with a unique
/// constraint on the id.
#[derive(Debug, Clone)]
pub struct SeenEvents {
    capacity: usize,
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenEvents {
    /// Remembers up to `capacity` ids (a capacity of 0 is treated as 1).
    pub fn new(capacity: usize) -> SeenEvents {
        let capacity = capacity.max(1);
        SeenEvents {
            capacity,
            ids: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Returns `true` the first time `id` is seen (and remembers it), `false`
    /// if it is still remembered. Seeing an id again does not refresh it.
    #[must_use = "a `false` result means the event is a duplicate and should be skipped"]
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }

    /// Whether `id` is currently remembered.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Number of ids currently remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Maximum number of ids remembered.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_time_then_duplicate() {
        let mut seen = SeenEvents::new(8);
        assert!(seen.is_empty());
        assert!(seen.first_time("evt_1"));
        assert!(!seen.first_time("evt_1"));
        assert!(seen.first_time("evt_2"));
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn evicts_oldest_first() {
        let mut seen = SeenEvents::new(2);
        assert!(seen.first_time("a"));
        assert!(seen.first_time("b"));
        // Re-seeing "a" does not refresh it.
        assert!(!seen.first_time("a"));
        assert!(seen.first_time("c")); // evicts "a"
        assert!(!seen.contains("a"));
        assert!(seen.contains("b") && seen.contains("c"));
        assert_eq!(seen.len(), 2);
        assert!(seen.first_time("a")); // forgotten, so new again; evicts "b"
        assert!(!seen.contains("b"));
        assert!(!seen.first_time("c"));
    }

    #[test]
    fn zero_capacity_is_one() {
        let mut seen = SeenEvents::new(0);
        assert_eq!(seen.capacity(), 1);
        assert!(seen.first_time("a"));
        assert!(!seen.first_time("a"));
        assert!(seen.first_time("b"));
        assert!(seen.first_time("a"));
    }
}
