//! The per-client request rate limit: a token bucket (GCRA, `governor`) per
//! authenticated client, checked right after authentication, so every authenticated
//! route counts and nothing else does. Over the limit is a `429` with `Retry-After`.
//!
//! Buckets are keyed by client id, so their number is bounded by the clients in the
//! database; idle buckets (full again, indistinguishable from new ones) are swept out
//! every [`SWEEP_EVERY`] by whichever request comes along then, so memory follows the
//! clients active in the last moments, not all that ever called.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, Object, OpenApi, Ref, ResponseBuilder, Type};

use crate::error::ApiError;

/// Counter of requests answered `429` by the per-client rate limit.
pub const REQUESTS_RATE_LIMITED: &str = "hookd_requests_rate_limited_total";

/// How often idle buckets are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// A request rate per client: `requests` per `period`, and up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: NonZeroU32,
    pub period: Duration,
    /// Requests a client that was idle may send at once.
    pub burst: NonZeroU32,
}

/// Why a rate-limit setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    #[error("`{0}` is not a rate such as 1000/s, 600/m or 10000/h (or `off`)")]
    Malformed(String),
    #[error("the rate's count must be a whole number from 1 to {max}", max = u32::MAX)]
    Count,
    #[error("the burst must be a whole number from 1 to {max}", max = u32::MAX)]
    Burst,
}

impl RateLimit {
    /// `requests` per `period` with the default burst: twice the rate's count, so a client
    /// may send two periods' worth at once after a pause.
    pub fn new(requests: NonZeroU32, period: Duration) -> RateLimit {
        RateLimit {
            requests,
            period,
            burst: requests.saturating_mul(NonZeroU32::MIN.saturating_add(1)),
        }
    }

    pub fn with_burst(self, burst: NonZeroU32) -> RateLimit {
        RateLimit { burst, ..self }
    }

    /// A sensible limit for a shared deployment (`hookd serve` has none unless asked):
    /// 1000/s with a burst of 2000. Generous for one client of one service, it stops a
    /// runaway loop; a publisher needing more sends batches of up to 1000 events.
    pub fn default_limit() -> RateLimit {
        RateLimit::new(
            NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN),
            Duration::from_secs(1),
        )
    }

    /// Parses the burst setting.
    pub fn parse_burst(text: &str) -> Result<NonZeroU32, RateLimitError> {
        text.trim()
            .parse::<NonZeroU32>()
            .map_err(|_| RateLimitError::Burst)
    }

    fn quota(&self) -> Quota {
        // One token comes back every period/requests; a period below a nanosecond per
        // request is rounded up to one nanosecond (a billion requests per second).
        let interval = (self.period / self.requests.get()).max(Duration::from_nanos(1));
        Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(self.requests))
            .allow_burst(self.burst)
    }
}

impl FromStr for RateLimit {
    type Err = RateLimitError;

    /// `COUNT/UNIT` with UNIT `s`, `m` or `h` (also `sec`, `min`, `hour`); the burst is
    /// the default one (twice COUNT).
    fn from_str(text: &str) -> Result<RateLimit, RateLimitError> {
        let malformed = || RateLimitError::Malformed(text.to_owned());
        let (count, unit) = text.trim().split_once('/').ok_or_else(malformed)?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(malformed()),
        };
        let count = count.trim();
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let requests = count
            .parse::<NonZeroU32>()
            .map_err(|_| RateLimitError::Count)?;
        Ok(RateLimit::new(requests, period))
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            60 => "m",
            3600 => "h",
            _ => "s",
        };
        write!(f, "{}/{unit} (burst {})", self.requests, self.burst)
    }
}

/// One bucket per client id.
pub(crate) struct ClientRateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    started: Instant,
    /// Milliseconds after `started` of the last sweep of idle buckets.
    last_sweep_ms: AtomicU64,
}

impl ClientRateLimiter {
    pub(crate) fn new(limit: RateLimit) -> ClientRateLimiter {
        ClientRateLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(limit.quota()),
            clock: DefaultClock::default(),
            started: Instant::now(),
            last_sweep_ms: AtomicU64::new(0),
        }
    }

    /// Takes one request from the client's bucket, or says how long until one is there.
    pub(crate) fn check(&self, client_id: &String) -> Result<(), ApiError> {
        self.sweep_now_and_then();
        match self.limiter.check_key(client_id) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                metrics::counter!(REQUESTS_RATE_LIMITED).increment(1);
                let wait = not_until.wait_time_from(self.clock.now());
                Err(ApiError::rate_limited(whole_seconds_up(wait)))
            }
        }
    }

    /// Drops idle buckets at most once per [`SWEEP_EVERY`]; the request that finds the
    /// time has come does it (one pass over the buckets, a few microseconds per thousand).
    fn sweep_now_and_then(&self) {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        let due = now_ms.saturating_sub(last) >= millis(SWEEP_EVERY);
        if due
            && self
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }

    #[cfg(test)]
    fn buckets(&self) -> usize {
        self.limiter.len()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
fn whole_seconds_up(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// Adds the `429` answer to every operation that needs a client (those with a
/// `security` requirement): the limit applies to exactly those.
pub(crate) fn document(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations: [&mut Option<Operation>; 5] = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            if operation.security.as_ref().is_none_or(Vec::is_empty) {
                continue;
            }
            let response = ResponseBuilder::new()
                .description(
                    "Too many requests from this client (code `rate_limited`); retry after `Retry-After` seconds",
                )
                .header("Retry-After", retry_after_header())
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            operation
                .responses
                .responses
                .insert("429".to_owned(), response.into());
        }
    }
}

fn retry_after_header() -> Header {
    let mut header = Header::new(Object::with_type(Type::Integer));
    header.description = Some("Seconds to wait before retrying (at least 1)".to_owned());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(text: &str) -> Result<RateLimit, RateLimitError> {
        text.parse()
    }

    #[test]
    fn rates_parse_with_their_unit_and_a_default_burst_of_twice_the_count() {
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        let cases = [
            ("1000/s", 1000, 1, 2000),
            ("5/s", 5, 1, 10),
            (" 600 / m ", 600, 60, 1200),
            ("10000/hour", 10000, 3600, 20000),
        ];
        for (text, requests, seconds, burst) in cases {
            assert_eq!(
                limit(text),
                Ok(RateLimit {
                    requests: n(requests),
                    period: Duration::from_secs(seconds),
                    burst: n(burst),
                }),
                "{text}"
            );
        }
        assert_eq!(
            limit(&format!("{}/s", u32::MAX)).map(|l| l.burst.get()),
            Ok(u32::MAX)
        );
        assert_eq!(
            RateLimit::default_limit(),
            limit("1000/s").unwrap_or_else(|e| panic!("{e}"))
        );
    }

    #[test]
    fn bad_rates_say_what_is_expected() {
        for bad in ["", "1000", "1000/d", "/s", "-5/s", "1.5/s", "off", "x/s"] {
            assert!(
                matches!(limit(bad), Err(RateLimitError::Malformed(_))),
                "{bad}: {:?}",
                limit(bad)
            );
        }
        assert_eq!(limit("0/s"), Err(RateLimitError::Count));
        assert_eq!(limit("99999999999/s"), Err(RateLimitError::Count));
        assert_eq!(RateLimit::parse_burst("0"), Err(RateLimitError::Burst));
        assert_eq!(RateLimit::parse_burst("12").map(NonZeroU32::get), Ok(12));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        for (wait, seconds) in [
            (Duration::ZERO, 1),
            (Duration::from_millis(1), 1),
            (Duration::from_millis(1000), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(59), 59),
        ] {
            assert_eq!(whole_seconds_up(wait), seconds, "{wait:?}");
        }
    }

    #[test]
    fn each_client_has_its_own_bucket() {
        let five = limit("5/h")
            .unwrap_or_else(|e| panic!("{e}"))
            .with_burst(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN));
        let limiter = ClientRateLimiter::new(five);
        let (a, b) = ("cl_a".to_owned(), "cl_b".to_owned());
        for _ in 0..5 {
            assert!(limiter.check(&a).is_ok());
        }
        let refused = limiter.check(&a).err();
        assert_eq!(
            refused.as_ref().map(ApiError::status),
            Some(axum::http::StatusCode::TOO_MANY_REQUESTS)
        );
        assert!(limiter.check(&b).is_ok(), "another client is not affected");
        assert_eq!(limiter.buckets(), 2);
    }

    #[test]
    fn the_document_lists_429_on_exactly_the_authenticated_operations() {
        let doc = crate::openapi();
        let mut secured = 0;
        for (path, item) in &doc.paths.paths {
            for operation in [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                .into_iter()
                .flatten()
            {
                let needs_client = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let lists_429 = operation.responses.responses.contains_key("429");
                assert_eq!(lists_429, needs_client, "{path}");
                secured += usize::from(needs_client);
            }
        }
        assert!(secured >= 15, "{secured} authenticated operations");
    }

    #[test]
    fn idle_buckets_are_swept() {
        // A bucket refilled within a nanosecond is idle again at once.
        let fast = RateLimit {
            requests: NonZeroU32::MAX,
            period: Duration::from_secs(1),
            burst: NonZeroU32::MIN,
        };
        let limiter = ClientRateLimiter::new(fast);
        for n in 0..100 {
            assert!(limiter.check(&format!("cl_{n}")).is_ok());
        }
        assert_eq!(limiter.buckets(), 100);
        // Pretend the last sweep was long ago.
        limiter.last_sweep_ms.store(0, Ordering::Relaxed);
        let started_long_ago = Instant::now()
            .checked_sub(SWEEP_EVERY * 2)
            .unwrap_or_else(Instant::now);
        let limiter = ClientRateLimiter {
            started: started_long_ago,
            ..limiter
        };
        assert!(limiter.check(&"cl_new".to_owned()).is_ok());
        assert!(limiter.buckets() <= 1, "{} buckets left", limiter.buckets());
    }
}
