//! Time as hookd stores it: unix milliseconds. Converting is pure; reading the clock is
//! left to the callers at the edges.

use std::time::{SystemTime, UNIX_EPOCH};

/// `at` in unix milliseconds (0 before 1970, saturating far in the future).
pub fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn converts_and_clamps() {
        assert_eq!(
            unix_ms(UNIX_EPOCH + Duration::from_millis(1_705_312_200_123)),
            1_705_312_200_123
        );
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
