//! What an attempt's result means for its delivery: done, retry later, or give up.
//!
//! The seeds' rules: `2xx` succeeded; `4xx` failed for good, except `408` and `429`
//! (retried, honouring `Retry-After`); `410 Gone` also disables the webhook; `5xx`,
//! timeouts and connection errors are retried at the next step of the schedule. A `3xx`
//! is not followed; it is treated like a server error, since the endpoint's owner can fix
//! the URL before the schedule runs out.

use std::time::Duration;

use crate::schedule::RetrySchedule;

/// The longest `Retry-After` honoured; a larger one is clamped so a delivery is never
/// parked for days by a single header.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// What happened on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// The endpoint answered.
    Response {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer within the attempt timeout.
    Timeout,
    /// No connection, TLS failure, refused address, or a broken response.
    Error,
}

/// What to do with the delivery after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptVerdict {
    Succeeded,
    /// No more attempts; `disable_webhook` for `410 Gone`.
    Failed {
        disable_webhook: bool,
    },
    /// Try again after `delay`.
    Retry {
        delay: Duration,
    },
}

/// Judges attempt `attempt_number` (1-based) under `schedule`.
pub fn judge_attempt(
    result: AttemptResult,
    attempt_number: u32,
    schedule: &RetrySchedule,
) -> AttemptVerdict {
    let retry = |retry_after: Option<Duration>| match schedule.delay_before(attempt_number + 1) {
        Some(step) => {
            let honoured = retry_after.map_or(Duration::ZERO, |d| d.min(MAX_RETRY_AFTER));
            AttemptVerdict::Retry {
                delay: step.max(honoured),
            }
        }
        None => AttemptVerdict::Failed {
            disable_webhook: false,
        },
    };
    match result {
        AttemptResult::Response {
            status,
            retry_after,
        } => match status {
            200..=299 => AttemptVerdict::Succeeded,
            410 => AttemptVerdict::Failed {
                disable_webhook: true,
            },
            408 | 429 => retry(retry_after),
            400..=499 => AttemptVerdict::Failed {
                disable_webhook: false,
            },
            _ => retry(None),
        },
        AttemptResult::Timeout | AttemptResult::Error => retry(None),
    }
}

/// Reads a `Retry-After` header given in seconds. The HTTP-date form is ignored (the
/// schedule's own delay applies), which keeps this free of the clock.
pub fn parse_retry_after_seconds(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn status_rules_follow_the_seeds() {
        let schedule =
            RetrySchedule::new(vec![ms(0), ms(200), ms(400)]).unwrap_or_else(|e| panic!("{e}"));
        let response = |status| AttemptResult::Response {
            status,
            retry_after: None,
        };
        // (result, attempt number, expected verdict)
        let cases = [
            (response(200), 1, AttemptVerdict::Succeeded),
            (response(204), 3, AttemptVerdict::Succeeded),
            (
                response(400),
                1,
                AttemptVerdict::Failed {
                    disable_webhook: false,
                },
            ),
            (
                response(401),
                1,
                AttemptVerdict::Failed {
                    disable_webhook: false,
                },
            ),
            (
                response(404),
                2,
                AttemptVerdict::Failed {
                    disable_webhook: false,
                },
            ),
            (
                response(410),
                1,
                AttemptVerdict::Failed {
                    disable_webhook: true,
                },
            ),
            (response(408), 1, AttemptVerdict::Retry { delay: ms(200) }),
            (response(429), 2, AttemptVerdict::Retry { delay: ms(400) }),
            (
                response(429),
                3,
                AttemptVerdict::Failed {
                    disable_webhook: false,
                },
            ),
            (response(500), 1, AttemptVerdict::Retry { delay: ms(200) }),
            (response(503), 2, AttemptVerdict::Retry { delay: ms(400) }),
            (
                response(502),
                3,
                AttemptVerdict::Failed {
                    disable_webhook: false,
                },
            ),
            (response(302), 1, AttemptVerdict::Retry { delay: ms(200) }),
            (
                AttemptResult::Timeout,
                1,
                AttemptVerdict::Retry { delay: ms(200) },
            ),
            (
                AttemptResult::Error,
                2,
                AttemptVerdict::Retry { delay: ms(400) },
            ),
            (
                AttemptResult::Error,
                3,
                AttemptVerdict::Failed {
                    disable_webhook: false,
                },
            ),
        ];
        for (result, attempt, expected) in cases {
            assert_eq!(
                judge_attempt(result, attempt, &schedule),
                expected,
                "{result:?} #{attempt}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let schedule = RetrySchedule::seeds();
        let with = |secs| AttemptResult::Response {
            status: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            judge_attempt(with(120), 1, &schedule),
            AttemptVerdict::Retry {
                delay: Duration::from_secs(120)
            }
        );
        // A shorter Retry-After does not undercut the schedule.
        assert_eq!(
            judge_attempt(with(5), 1, &schedule),
            AttemptVerdict::Retry {
                delay: Duration::from_secs(60)
            }
        );
        assert_eq!(
            judge_attempt(with(10_000_000), 1, &schedule),
            AttemptVerdict::Retry {
                delay: MAX_RETRY_AFTER
            }
        );
        // Retry-After on a 503 is not a reason to wait longer than the schedule says.
        let on_503 = AttemptResult::Response {
            status: 503,
            retry_after: Some(Duration::from_secs(999)),
        };
        assert_eq!(
            judge_attempt(on_503, 1, &schedule),
            AttemptVerdict::Retry {
                delay: Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(
            parse_retry_after_seconds(" 3 "),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT"),
            None
        );
        assert_eq!(parse_retry_after_seconds("-1"), None);
    }
}
