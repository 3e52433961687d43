//! `/v2/listen`: the stream of `hookd listen` (Server-Sent Events) and its reports.
//!
//! Opening the stream makes a listening session: a temporary webhook of the client (URL
//! `hookd-listen://<id>`, a fresh signing secret, the filters asked for), stored like any
//! webhook so fan-out, retries and attempt logs work unchanged. Its first message tells
//! the CLI the session and the secret; then every attempt the engine makes to it comes as
//! one message with the exact headers and body a POST would have carried. The CLI posts
//! each one to the local endpoint and reports the answer to `POST
//! /v2/listen/{id}/results`, which becomes the attempt's response. The session ends when the
//! CLI deletes its webhook (`DELETE /v2/webhooks/{id}`, as `hookd listen` does on Ctrl-C)
//! or, should it vanish without doing so, once nobody has kept it for a grace period; a
//! CLI that lost its stream reconnects with `session=` and keeps its secret.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};
use hookd_core::envelope::EnvelopeFormat;
use hookd_core::ids::{IdKind, new_id};
use hookd_core::signing::{SECRET_RANDOM_BYTES, new_webhook_secret};
use hookd_store::listen::{
    ListenConnection, ListenError, ListenReply, ListenedRequest, listen_url,
};
use hookd_store::model::{NewWebhook, WebhookRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Client;
use crate::body::{check_id, check_text, read_json};
use crate::error::{ApiError, ErrorBody, excerpt};
use crate::event_types::check_filters;
use crate::random::fill_random;
use crate::time::now_ms;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(listen))
        .routes(routes!(report))
}

/// A comment line this often keeps proxies from closing an idle stream, and tells the
/// server soon when the CLI is gone.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The temporary webhook's description.
const SESSION_DESCRIPTION: &str = "hookd listen session (temporary)";
/// Most headers a report may carry.
const MAX_REPORTED_HEADERS: usize = 100;
/// Longest `error` of a report, in characters.
const MAX_REPORTED_ERROR_CHARS: usize = 1024;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListenParams {
    /// Event types to listen to, comma-separated; `*` and prefix wildcards such as
    /// `payout_request.*` as for webhooks (default `*`).
    events: Option<String>,
    /// Envelope format: `typed` (default) or `event`.
    format: Option<String>,
    /// Resume this session (`wh_…`, from the stream's first message) after losing the
    /// stream: same webhook, same secret; `events` and `format` are then ignored.
    session: Option<String>,
}

/// The stream's first message (`event: session`).
#[derive(Serialize, ToSchema)]
struct SessionView {
    /// The session's temporary webhook (`wh_…`).
    webhook_id: String,
    /// Signs every delivery of the session, as a webhook's secret does.
    secret: String,
    events: Vec<String>,
    #[schema(value_type = String, example = "typed")]
    format: &'static str,
    signature_header: String,
    /// Whether this stream took over an existing session (`session=`).
    resumed: bool,
}

/// One attempt to forward (`event: delivery`, with the attempt id as the message id).
#[derive(Serialize, ToSchema)]
struct DeliveryView {
    attempt_id: String,
    event_id: String,
    event_type: String,
    attempt_number: u32,
    /// The headers of the request, signatures among them, in the order they are sent.
    #[schema(value_type = Object)]
    headers: Map<String, Value>,
    /// The body, byte for byte (a JSON envelope, as a string).
    body: String,
}

/// What the local endpoint answered, as `hookd listen` saw it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ListenResult {
    /// The `attempt_id` of the delivery message.
    attempt_id: String,
    /// The local endpoint's HTTP status; absent when there was none (see `error`).
    status: Option<u16>,
    /// The local endpoint's response headers (string values).
    #[schema(value_type = Option<Object>)]
    headers: Option<Map<String, Value>>,
    /// The start of the local endpoint's response body.
    body: Option<String>,
    /// Why there is no status, e.g. the local endpoint refused the connection.
    error: Option<String>,
}

/// Opens a listening session and streams its deliveries (Server-Sent Events): first
/// `event: session` with the session's webhook id and signing secret, then one
/// `event: delivery` per attempt. Report each one's local answer to
/// `POST /v2/listen/{id}/results`; delete the session with `DELETE /v2/webhooks/{id}`.
#[utoipa::path(
    get,
    path = "/v2/listen",
    tag = "listen",
    params(ListenParams),
    responses(
        (status = 200, description = "The stream (`text/event-stream`): `session`, then `delivery` messages, each `data` one JSON object", content_type = "text/event-stream", body = String),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such session of this client to resume", body = ErrorBody),
        (status = 409, description = "The client has 32 sessions connected to this server already", body = ErrorBody),
        (status = 422, description = "Unknown event type, bad `format` or query", body = ErrorBody),
        (status = 503, description = "The server is shutting down", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn listen(
    State(state): State<AppState>,
    client: Client,
    params: Result<Query<ListenParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (webhook, resumed) = match params.session {
        Some(id) => {
            check_id(&id, "listening session")?;
            let found = state
                .store
                .resume_listen_webhook(&client.id, &id, now_ms())
                .await?;
            (
                found.ok_or_else(|| ApiError::not_found("listening session"))?,
                true,
            )
        }
        None => {
            // Refused before anything is stored; `connect` below has the last word.
            if !state.listen.has_room_for(&client.id) {
                return Err(refused(ListenError::TooManySessions));
            }
            (open_session(&state, &client.id, &params).await?, false)
        }
    };
    let connection = match state.listen.connect(&client.id, &webhook.id) {
        Ok(connection) => connection,
        Err(e) => {
            if !resumed {
                // Unused; gone now rather than at the next upkeep.
                state
                    .store
                    .delete_webhook(&client.id, &webhook.id, now_ms())
                    .await?;
            }
            return Err(refused(e));
        }
    };
    tracing::debug!(webhook = %webhook.id, resumed, "hookd listen connected");
    let first = json_event(
        Event::default().event("session"),
        &SessionView {
            format: webhook.format.as_str(),
            webhook_id: webhook.id,
            secret: webhook.secret,
            events: webhook.events,
            signature_header: webhook.signature_header,
            resumed,
        },
    );
    let deliveries = stream::unfold(connection, |mut connection: ListenConnection| async move {
        let request = connection.next().await?;
        Some((Ok(delivery_event(request)), connection))
    });
    let messages = stream::once(async move { Ok(first) }).chain(deliveries);
    Ok(Sse::new(messages).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// A session refused by this process: too many of the client's, or shutting down.
fn refused(e: ListenError) -> ApiError {
    match e {
        ListenError::TooManySessions => {
            ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
        }
        _ => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}

/// Stores a new session's temporary webhook.
async fn open_session(
    state: &AppState,
    client_id: &str,
    params: &ListenParams,
) -> Result<WebhookRecord, ApiError> {
    let events: Vec<String> = match &params.events {
        None => vec!["*".to_owned()],
        Some(list) => list.split(',').map(|f| f.trim().to_owned()).collect(),
    };
    if events.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "`events` must be event types separated by commas, e.g. `payout_request.*,payment.completed`",
        ));
    }
    check_filters(state, client_id, &events).await?;
    let format = match &params.format {
        None => EnvelopeFormat::default(),
        Some(f) => f
            .parse::<EnvelopeFormat>()
            .map_err(|e| ApiError::invalid(format!("`format`: {e}")))?,
    };
    let now = now_ms();
    let mut secret = [0u8; SECRET_RANDOM_BYTES];
    fill_random(&mut secret)?;
    let mut id_random = [0u8; 16];
    fill_random(&mut id_random)?;
    let id = new_id(
        IdKind::Webhook,
        u64::try_from(now).unwrap_or(0),
        u128::from_le_bytes(id_random),
    );
    let created = state
        .store
        .create_listen_webhook(NewWebhook {
            url: listen_url(&id),
            id,
            client_id: client_id.to_owned(),
            events,
            format,
            signature_header: format.default_signature_header().to_owned(),
            enabled: true,
            description: Some(SESSION_DESCRIPTION.to_owned()),
            metadata: Value::Object(Map::new()),
            secret: new_webhook_secret(&secret),
            now_ms: now,
        })
        .await?;
    Ok(created)
}

fn delivery_event(request: ListenedRequest) -> Event {
    let event = Event::default()
        .event("delivery")
        .id(request.attempt_id.as_str());
    let headers = request
        .headers
        .into_iter()
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    json_event(
        event,
        &DeliveryView {
            attempt_id: request.attempt_id,
            event_id: request.event_id,
            event_type: request.event_type,
            attempt_number: request.attempt_number,
            headers,
            body: request.body,
        },
    )
}

/// `event` with `value` as its data, one line of JSON.
fn json_event(event: Event, value: &impl Serialize) -> Event {
    match serde_json::to_string(value) {
        Ok(text) => event.data(text),
        // Strings and numbers always serialize; kept only so nothing here can panic.
        Err(e) => Event::default().comment(format!("unserializable message: {e}")),
    }
}

/// Reports what the local endpoint answered to one delivery of the session; it becomes
/// the attempt's response (status, headers, the start of the body) and is judged like one.
#[utoipa::path(
    post,
    path = "/v2/listen/{id}/results",
    tag = "listen",
    params(("id" = String, Path, description = "The session's webhook id (`wh_…`)")),
    request_body = ListenResult,
    responses(
        (status = 204, description = "Recorded as the attempt's response"),
        (status = 400, description = "Not JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such attempt waiting in a session of this client connected to this server (it timed out, was reported already, or the stream is gone)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Missing or mistyped field, a status outside 100–599, or neither `status` nor `error`", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn report(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<StatusCode, ApiError> {
    check_id(&id, "listening session")?;
    let input: ListenResult = read_json(body, state.config.max_event_bytes).await?;
    if let Some(status) = input.status
        && !(100..=599).contains(&status)
    {
        return Err(ApiError::invalid(format!(
            "`status` must be an HTTP status from 100 to 599, not {status}"
        )));
    }
    if input.status.is_none() && input.error.is_none() {
        return Err(ApiError::invalid(
            "a result needs the local `status` or, when there was none, an `error`",
        ));
    }
    if let Some(error) = &input.error {
        check_text("error", error, MAX_REPORTED_ERROR_CHARS)?;
    }
    let headers = input.headers.unwrap_or_default();
    if headers.len() > MAX_REPORTED_HEADERS {
        return Err(ApiError::invalid(format!(
            "`headers` may hold at most {MAX_REPORTED_HEADERS} entries"
        )));
    }
    let headers = headers
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(text) => Ok((name, text)),
            other => Err(ApiError::invalid(format!(
                "`headers` values must be strings; `{}` is {}",
                excerpt(&name),
                excerpt(&other.to_string())
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_id(&input.attempt_id, "attempt")?;
    let reply = ListenReply {
        status: input.status,
        headers,
        body: input.body,
        error: input.error,
    };
    if state
        .listen
        .answer(&client.id, &id, &input.attempt_id, reply)
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("attempt waiting for a report"))
    }
}
