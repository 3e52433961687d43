//! `hookd listen` in the engine: attempts to a listening session's temporary webhook are
//! handed to its stream in this process (`hookd_store::listen::ListenSessions`) instead of
//! being POSTed, and the CLI's report of the local answer is judged like any response.
//! Beside delivery, an upkeep task marks the sessions connected here as seen and deletes
//! the temporary webhooks nobody has kept (a `hookd listen` killed without closing, or a
//! crashed server's sessions, found at the first upkeep after start-up).

use std::sync::Arc;
use std::time::Duration;

use hookd_core::outcome::{AttemptResult, parse_retry_after_seconds};
use hookd_store::Store;
use hookd_store::listen::{ListenError, ListenSessions, ListenedRequest};
use hookd_store::model::{ClaimedDelivery, ListenUpkeep};
use tokio::sync::watch;

use crate::attempt::{Exchange, MAX_LOGGED_BODY, millis, now_ms};

/// How often the sessions connected here are marked seen and stale ones deleted.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(10);
/// A temporary webhook not seen for this long is deleted with its pending deliveries. A
/// `hookd listen` that lost its stream (a network drop, a restarted server) and reconnects
/// within it keeps its session and signing secret.
pub const LISTEN_SESSION_GRACE: Duration = Duration::from_secs(60);

/// One attempt to the session `session` (its webhook's id): handed over with exactly the
/// headers and body a POST would have carried, then the CLI's report.
pub(crate) async fn hand_over(
    sessions: &ListenSessions,
    session: &str,
    attempt_id: &str,
    delivery: &ClaimedDelivery,
    headers: &[(String, String)],
    body: String,
    timeout: Duration,
) -> Exchange {
    let request = ListenedRequest {
        attempt_id: attempt_id.to_owned(),
        event_id: delivery.event.id.clone(),
        event_type: delivery.event.event_type.clone(),
        attempt_number: delivery.attempt_number,
        headers: headers.to_vec(),
        body,
    };
    let failed = |result, error: String| Exchange {
        result,
        response_headers: Vec::new(),
        response_body: None,
        error: Some(error),
    };
    let reply = match sessions.deliver(session, request, timeout).await {
        Ok(reply) => reply,
        Err(e @ ListenError::TimedOut(_)) => return failed(AttemptResult::Timeout, e.to_string()),
        Err(e) => return failed(AttemptResult::Error, e.to_string()),
    };
    let Some(status) = reply.status else {
        let why = reply.error.as_deref().unwrap_or("no answer");
        return failed(
            AttemptResult::Error,
            format!("hookd listen could not reach the local endpoint: {why}"),
        );
    };
    let retry_after = reply
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, value)| parse_retry_after_seconds(value));
    Exchange {
        result: AttemptResult::Response {
            status,
            retry_after,
        },
        response_headers: reply.headers,
        response_body: reply.body.map(|b| cut(b, MAX_LOGGED_BODY)),
        error: reply.error,
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Marks the sessions connected here as seen and deletes stale ones, at once and then
/// every [`UPKEEP_INTERVAL`], until `stop` says so. A connected session whose webhook was
/// deleted meanwhile (through the API) has its stream closed.
pub(crate) async fn keep(
    store: Arc<dyn Store>,
    sessions: Arc<ListenSessions>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = tick.tick() => {}
        }
        let now = now_ms();
        let upkeep = ListenUpkeep {
            connected: sessions.connected(),
            now_ms: now,
            stale_before_ms: now.saturating_sub(millis(LISTEN_SESSION_GRACE)),
        };
        match store.keep_listen_webhooks(upkeep).await {
            Ok(gone) => {
                for webhook_id in gone {
                    sessions.close(&webhook_id);
                }
            }
            Err(e) => tracing::warn!("keeping hookd listen sessions failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_bodies_are_cut_at_a_character_boundary() {
        assert_eq!(cut("abc".to_owned(), 4), "abc");
        assert_eq!(cut("abcdef".to_owned(), 4), "abcd");
        assert_eq!(cut("aé".to_owned(), 2), "a");
    }
}
