//! The retry schedule: how long to wait before each attempt.
//!
//! `0s,1m,5m,30m,2h` (the seeds' schedule) means attempt 1 right away, attempt 2 one
//! minute after attempt 1 failed, and so on; after the last step a delivery fails.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Delays before attempts 1, 2, 3, …; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    /// The seeds' schedule: immediately, 1 min, 5 min, 30 min, 2 h.
    pub fn seeds() -> RetrySchedule {
        RetrySchedule(
            [0, 60, 300, 1800, 7200]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }

    pub fn new(delays: Vec<Duration>) -> Result<RetrySchedule, ScheduleError> {
        if delays.is_empty() {
            return Err(ScheduleError::Empty);
        }
        Ok(RetrySchedule(delays))
    }

    /// How many attempts a delivery gets in all.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }

    /// The delay before attempt `attempt_number` (1-based), or `None` past the last step.
    pub fn delay_before(&self, attempt_number: u32) -> Option<Duration> {
        let index = usize::try_from(attempt_number.checked_sub(1)?).ok()?;
        self.0.get(index).copied()
    }
}

impl Default for RetrySchedule {
    fn default() -> RetrySchedule {
        RetrySchedule::seeds()
    }
}

impl FromStr for RetrySchedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<RetrySchedule, ScheduleError> {
        let delays = text
            .split(',')
            .map(str::trim)
            .map(|step| {
                humantime::parse_duration(step).map_err(|e| ScheduleError::BadStep {
                    step: step.to_owned(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        RetrySchedule::new(delays)
    }
}

impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let steps: Vec<String> = self
            .0
            .iter()
            .map(|d| humantime::format_duration(*d).to_string())
            .collect();
        f.write_str(&steps.join(","))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("the retry schedule needs at least one step")]
    Empty,
    #[error(
        "retry schedule step `{step}` is not a duration ({reason}); write e.g. 0s,1m,5m,30m,2h"
    )]
    BadStep { step: String, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_schedule_parses_from_its_spelling() {
        let parsed: RetrySchedule = "0s,1m,5m,30m,2h".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed, RetrySchedule::seeds());
        assert_eq!(parsed.max_attempts(), 5);
        assert_eq!(parsed.delay_before(1), Some(Duration::ZERO));
        assert_eq!(parsed.delay_before(2), Some(Duration::from_secs(60)));
        assert_eq!(parsed.delay_before(5), Some(Duration::from_secs(7200)));
        assert_eq!(parsed.delay_before(6), None);
        assert_eq!(parsed.delay_before(0), None);
    }

    #[test]
    fn compressed_schedules_and_errors() {
        let parsed: RetrySchedule = "0s, 200ms ,400ms".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.delay_before(3), Some(Duration::from_millis(400)));
        assert!(matches!(
            "".parse::<RetrySchedule>(),
            Err(ScheduleError::BadStep { .. })
        ));
        assert!(matches!(
            "0s,soon".parse::<RetrySchedule>(),
            Err(ScheduleError::BadStep { .. })
        ));
    }
}
