//! One attempt: build the signed request, send it, capture the response, and judge it.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use hookd_core::envelope::Envelope;
use hookd_core::ids::{IdKind, new_id};
use hookd_core::outcome::{
    AttemptResult, AttemptVerdict, judge_attempt, parse_retry_after_seconds,
};
use hookd_core::sample::TEST_EVENT_HEADER;
use hookd_core::schedule::RetrySchedule;
use hookd_core::signing::signature_headers;
use hookd_core::target::TargetPolicy;
use hookd_store::listen::{ListenSessions, listen_session};
use hookd_store::model::{ClaimedDelivery, FinishedAttempt, NextStep};
use http_body_util::{BodyExt, Full};

/// Response bodies are logged up to this many bytes.
pub const MAX_LOGGED_BODY: usize = 4096;

pub(crate) struct AttemptContext {
    pub(crate) http: crate::client::HttpClient,
    pub(crate) schedule: RetrySchedule,
    pub(crate) policy: TargetPolicy,
    pub(crate) user_agent: String,
    /// Where attempts to `hookd listen` sessions go, and how long their reports may take.
    pub(crate) listen: std::sync::Arc<ListenSessions>,
    pub(crate) attempt_timeout: Duration,
}

/// What the wire gave back, before it is judged.
pub(crate) struct Exchange {
    pub(crate) result: AttemptResult,
    pub(crate) response_headers: Vec<(String, String)>,
    pub(crate) response_body: Option<String>,
    pub(crate) error: Option<String>,
}

pub(crate) async fn perform(ctx: &AttemptContext, delivery: &ClaimedDelivery) -> FinishedAttempt {
    let started_at_ms = now_ms();
    let clock = Instant::now();
    let timestamp = started_at_ms.div_euclid(1000);
    let attempt_id = new_id(
        IdKind::Attempt,
        u64::try_from(started_at_ms).unwrap_or(0),
        random_u128(),
    );
    let event = &delivery.event;
    let listening = listen_session(&delivery.url);
    let body = Envelope {
        event_id: &event.id,
        created: event.created,
        event_type: &event.event_type,
        data: &event.data,
    }
    .body(delivery.format);
    let mut request_headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("user-agent".to_owned(), ctx.user_agent.clone()),
    ];
    if event.test {
        request_headers.push((TEST_EVENT_HEADER.to_owned(), "true".to_owned()));
    }
    let exchange = match signature_headers(
        &delivery.signing_secrets(started_at_ms),
        &delivery.signature_header,
        &event.id,
        timestamp,
        body.as_bytes(),
    ) {
        Ok(signatures) => {
            request_headers.extend(signatures);
            match listening {
                Some(session) => {
                    crate::listen::hand_over(
                        &ctx.listen,
                        session,
                        &attempt_id,
                        delivery,
                        &request_headers,
                        body,
                        ctx.attempt_timeout,
                    )
                    .await
                }
                None => send(ctx, &delivery.url, &request_headers, body).await,
            }
        }
        Err(e) => Exchange {
            result: AttemptResult::Error,
            response_headers: Vec::new(),
            response_body: None,
            error: Some(format!("cannot sign: {e}")),
        },
    };
    let duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
    let finished_ms = started_at_ms.saturating_add(duration_ms);
    let next = match judge_attempt(exchange.result, delivery.attempt_number, &ctx.schedule) {
        AttemptVerdict::Succeeded => NextStep::Succeeded,
        // A `410` from the endpoint behind `hookd listen` ends that delivery but not the
        // session: the developer is at work on that endpoint.
        AttemptVerdict::Failed { disable_webhook } => NextStep::Failed {
            disable_webhook_reason: (disable_webhook && listening.is_none())
                .then(|| "the endpoint answered 410 Gone".to_owned()),
        },
        AttemptVerdict::Retry { delay } => NextStep::RetryAt {
            at_ms: finished_ms.saturating_add(millis(delay)),
        },
    };
    FinishedAttempt {
        id: attempt_id,
        delivery_key: delivery.delivery_key,
        lease_token: delivery.lease_token,
        webhook_key: delivery.webhook_key,
        attempt_number: delivery.attempt_number,
        started_at_ms,
        duration_ms,
        format: delivery.format,
        request_headers,
        response_status: match exchange.result {
            AttemptResult::Response { status, .. } => Some(status),
            _ => None,
        },
        response_headers: exchange.response_headers,
        response_body: exchange.response_body,
        error: exchange.error,
        next,
    }
}

async fn send(
    ctx: &AttemptContext,
    url: &str,
    headers: &[(String, String)],
    body: String,
) -> Exchange {
    let failed = |result, error: String| Exchange {
        result,
        response_headers: Vec::new(),
        response_body: None,
        error: Some(error),
    };
    // The URL was checked at registration; check again in case the policy changed since.
    // Names are checked after resolution, in the client's resolver.
    let url = match ctx.policy.check_url(url) {
        Ok(url) => url,
        Err(e) => return failed(AttemptResult::Error, e.to_string()),
    };
    let uri: http::Uri = match url.as_str().parse() {
        Ok(uri) => uri,
        Err(e) => return failed(AttemptResult::Error, format!("unusable URL: {e}")),
    };
    let mut request = http::Request::post(uri);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = match request.body(Full::new(Bytes::from(body))) {
        Ok(r) => r,
        Err(e) => {
            return failed(
                AttemptResult::Error,
                format!("cannot build the request: {e}"),
            );
        }
    };
    // One deadline for the whole exchange: connecting, the answer's head and the part of
    // its body that is logged.
    let deadline = tokio::time::Instant::now() + ctx.attempt_timeout;
    let response = match tokio::time::timeout_at(deadline, ctx.http.request(request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return failed(AttemptResult::Error, error_chain(&e)),
        Err(_) => {
            return failed(
                AttemptResult::Timeout,
                format!("timed out: no answer within {:?}", ctx.attempt_timeout),
            );
        }
    };
    let (head, mut body) = response.into_parts();
    let status = head.status.as_u16();
    let response_headers: Vec<(String, String)> = head
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let retry_after = head
        .headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after_seconds);
    let (captured, error) = read_logged_body(&mut body, Some(deadline)).await;
    Exchange {
        result: AttemptResult::Response {
            status,
            retry_after,
        },
        response_headers,
        response_body: Some(String::from_utf8_lossy(&captured).into_owned()),
        error,
    }
}

/// The start of a response's body, as much as an attempt log keeps ([`MAX_LOGGED_BODY`]
/// bytes): a huge or endless body is cut off rather than downloaded. The error, if reading
/// failed part way or `deadline` passed, comes with what had arrived.
pub async fn read_logged_body<B>(
    body: &mut B,
    deadline: Option<tokio::time::Instant>,
) -> (Vec<u8>, Option<String>)
where
    B: hyper::body::Body + Unpin,
    B::Error: std::error::Error,
{
    let mut captured = Vec::new();
    let mut error = None;
    while captured.len() < MAX_LOGGED_BODY {
        let frame = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(frame) => frame,
                Err(_) => {
                    error = Some("reading the response body: timed out".to_owned());
                    break;
                }
            },
            None => body.frame().await,
        };
        match frame {
            // Trailers are not logged.
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    captured.put(data);
                }
            }
            None => break,
            Some(Err(e)) => {
                error = Some(format!("reading the response body: {}", error_chain(&e)));
                break;
            }
        }
    }
    captured.truncate(MAX_LOGGED_BODY);
    (captured, error)
}

/// An error with its sources, `outer: inner: …`, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub(crate) fn now_ms() -> i64 {
    hookd_core::time::unix_ms(std::time::SystemTime::now())
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// An id's randomness only avoids collisions: a thread-local generator seeded from the
/// OS, not a system call per attempt.
fn random_u128() -> u128 {
    rand::random::<u128>()
}
