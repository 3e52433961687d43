//! `/v2/webhooks`: registering, listing, changing and deleting endpoints.

use std::net::IpAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use hookd_core::envelope::EnvelopeFormat;
use hookd_core::ids::{IdKind, new_id};
use hookd_core::signing::{SECRET_RANDOM_BYTES, new_webhook_secret};
use hookd_core::target::ResolveError;
use hookd_store::listen::{LISTEN_SCHEME, listen_session};
use hookd_store::model::{
    NewWebhook, SecretRotation, WebhookChanges, WebhookHealth, WebhookRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Client;
use crate::body::{check_id, check_text, double_option, read_json, read_optional_json};
use crate::error::{ApiError, ErrorBody, excerpt};
use crate::event_types::check_filters;
use crate::pagination::PageParams;
use crate::random::fill_random;
use crate::time::{now_ms, rfc3339};
use crate::{ApiConfig, AppState};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(rotate_secret))
}

/// Headers hookd sets itself; a webhook's signature header may not shadow them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "user-agent",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    hookd_core::sample::TEST_EVENT_HEADER,
    "transfer-encoding",
    "connection",
];
const MAX_DESCRIPTION_CHARS: usize = 1024;
const MAX_METADATA_BYTES: usize = 4096;
/// Deepest nesting of `metadata`, as for an event's `data`.
const MAX_METADATA_DEPTH: usize = 64;
/// Longest `signature_header` name.
const MAX_SIGNATURE_HEADER_LEN: usize = 64;
/// How long the replaced secret keeps signing after a rotation, unless `grace_seconds`
/// says otherwise (as Svix does).
const DEFAULT_ROTATION_GRACE_SECONDS: u64 = 24 * 60 * 60;
/// The longest grace period a rotation may ask for (7 days).
const MAX_ROTATION_GRACE_SECONDS: u64 = 7 * 24 * 60 * 60;
/// How long registration waits for DNS before leaving the check to connect time.
const REGISTRATION_DNS_TIMEOUT: Duration = Duration::from_secs(2);

/// A webhook (endpoint registration).
#[derive(Serialize, ToSchema)]
struct WebhookView {
    #[schema(example = "wh_01m822p0xrrpw3y1mdpe98qrbt")]
    id: String,
    url: String,
    /// Event types, `*` or prefix wildcards such as `payout_request.*`.
    events: Vec<String>,
    /// Envelope format: `typed` or `event`.
    #[schema(value_type = String, example = "typed")]
    format: &'static str,
    signature_header: String,
    enabled: bool,
    disabled_reason: Option<String>,
    description: Option<String>,
    #[schema(value_type = Object)]
    metadata: Value,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    updated_at: String,
    /// The signing secret (`whsec_…`): only in the answers to creation and rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    health: HealthView,
    /// A `hookd listen` session's webhook (URL `hookd-listen://…`): not listed, not
    /// changeable, deleted when the session ends.
    temporary: bool,
}

/// How the webhook's endpoint has been answering: counts of every attempt made to it.
/// A webhook whose attempts have all failed for `HOOKD_DISABLE_AFTER` (default 5 days) is
/// disabled, as is one that answers `410 Gone`.
#[derive(Serialize, ToSchema)]
struct HealthView {
    /// Succeeded attempts over all attempts (0 to 1); `null` before the first attempt.
    success_rate: Option<f64>,
    attempts_succeeded: i64,
    attempts_failed: i64,
    /// Failed attempts since the last success.
    consecutive_failures: i64,
    /// RFC 3339.
    last_success_at: Option<String>,
    /// RFC 3339.
    last_failure_at: Option<String>,
    /// When the current run of failures began (RFC 3339); `null` unless failing.
    failing_since: Option<String>,
}

impl HealthView {
    fn from_record(h: &WebhookHealth) -> HealthView {
        HealthView {
            success_rate: h.success_rate(),
            attempts_succeeded: h.attempts_succeeded,
            attempts_failed: h.attempts_failed,
            consecutive_failures: h.consecutive_failures,
            last_success_at: h.last_success_at_ms.map(rfc3339),
            last_failure_at: h.last_failure_at_ms.map(rfc3339),
            failing_since: h.failing_since_ms.map(rfc3339),
        }
    }
}

impl WebhookView {
    fn from_record(w: WebhookRecord, with_secret: bool) -> WebhookView {
        WebhookView {
            temporary: listen_session(&w.url).is_some(),
            secret: with_secret.then_some(w.secret),
            id: w.id,
            url: w.url,
            events: w.events,
            format: w.format.as_str(),
            signature_header: w.signature_header,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            description: w.description,
            metadata: w.metadata,
            created_at: rfc3339(w.created_at_ms),
            updated_at: rfc3339(w.updated_at_ms),
            health: HealthView::from_record(&w.health),
        }
    }
}

/// A page of webhooks.
#[derive(Serialize, ToSchema)]
struct WebhookPage {
    data: Vec<WebhookView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// `POST /v2/webhooks`.
#[derive(Deserialize, ToSchema)]
struct CreateWebhook {
    url: String,
    /// Event types, `*` or prefix wildcards such as `payout_request.*`.
    events: Vec<String>,
    description: Option<String>,
    /// Default `true`.
    enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// `typed` (default) or `event`.
    format: Option<String>,
    /// Default `x-nextpay-signature` for `typed`, `X-Webhook-Signature` for `event`.
    signature_header: Option<String>,
}

/// `POST /v2/webhooks/{id}/rotate-secret`; the body may be absent.
#[derive(Default, Deserialize, ToSchema)]
struct RotateSecret {
    /// How long the replaced secret keeps signing: 0 to 604800 seconds (default 86400).
    // Checked by hand, so that `-1`, `1.5` or `"60"` get a clear message.
    #[schema(value_type = Option<u64>)]
    grace_seconds: Option<Value>,
}

/// `PATCH /v2/webhooks/{id}`: only the fields given change.
#[derive(Deserialize, ToSchema)]
struct UpdateWebhook {
    url: Option<String>,
    events: Option<Vec<String>>,
    /// `null` removes the description.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    format: Option<String>,
    signature_header: Option<String>,
}

/// Registers a webhook; the answer carries its signing secret (shown only here).
#[utoipa::path(
    post,
    path = "/v2/webhooks",
    tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created, with its `secret`", body = WebhookView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid URL, unknown event type, missing or mistyped field", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn create(
    State(state): State<AppState>,
    client: Client,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    let input: CreateWebhook = read_json(body, state.config.max_event_bytes).await?;
    check_url(&state.config, &input.url).await?;
    check_filters(&state, &client.id, &input.events).await?;
    let format = parse_format(input.format.as_deref())?.unwrap_or_default();
    let signature_header = match input.signature_header {
        Some(h) => check_signature_header(h)?,
        None => format.default_signature_header().to_owned(),
    };
    check_description(input.description.as_deref())?;
    let metadata = check_metadata(input.metadata)?.unwrap_or_else(|| Value::Object(Map::new()));
    let now = now_ms();
    let mut random = [0u8; SECRET_RANDOM_BYTES];
    fill_random(&mut random)?;
    let mut id_random = [0u8; 16];
    fill_random(&mut id_random)?;
    let record = state
        .store
        .create_webhook(NewWebhook {
            id: new_id(
                IdKind::Webhook,
                u64::try_from(now).unwrap_or(0),
                u128::from_le_bytes(id_random),
            ),
            client_id: client.id,
            url: input.url,
            events: input.events,
            format,
            signature_header,
            enabled: input.enabled.unwrap_or(true),
            description: input.description,
            metadata,
            secret: new_webhook_secret(&random),
            now_ms: now,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookView::from_record(record, true)),
    ))
}

/// Lists the client's webhooks (without secrets; `hookd listen` sessions are not listed).
#[utoipa::path(
    get,
    path = "/v2/webhooks",
    tag = "webhooks",
    params(PageParams),
    responses(
        (status = 200, description = "A page of webhooks", body = WebhookPage),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Bad `limit` or `cursor`", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn list(
    State(state): State<AppState>,
    client: Client,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WebhookPage>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let page = state
        .store
        .list_webhooks(&client.id, params.to_request()?)
        .await?;
    let data: Vec<WebhookView> = page
        .data
        .into_iter()
        .map(|w| WebhookView::from_record(w, false))
        .collect();
    Ok(Json(WebhookPage {
        data,
        next_cursor: page.next_cursor,
    }))
}

/// One webhook (without its secret).
#[utoipa::path(
    get,
    path = "/v2/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)")),
    responses(
        (status = 200, description = "The webhook", body = WebhookView),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such webhook of this client", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn show(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    check_id(&id, "webhook")?;
    let record = state.store.get_webhook(&client.id, &id).await?;
    record
        .map(|w| Json(WebhookView::from_record(w, false)))
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// Changes the fields given.
#[utoipa::path(
    patch,
    path = "/v2/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The changed webhook", body = WebhookView),
        (status = 400, description = "Not JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such webhook of this client", body = ErrorBody),
        (status = 409, description = "A `hookd listen` session's webhook, which cannot be changed", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn update(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Json<WebhookView>, ApiError> {
    check_id(&id, "webhook")?;
    let input: UpdateWebhook = read_json(body, state.config.max_event_bytes).await?;
    // An unknown id is a 404 before any validation message about the body.
    changeable(state.store.get_webhook(&client.id, &id).await?)?;
    if let Some(url) = &input.url {
        check_url(&state.config, url).await?;
    }
    if let Some(events) = &input.events {
        check_filters(&state, &client.id, events).await?;
    }
    if let Some(Some(description)) = &input.description {
        check_description(Some(description))?;
    }
    let changes = WebhookChanges {
        url: input.url,
        events: input.events,
        format: parse_format(input.format.as_deref())?,
        signature_header: input
            .signature_header
            .map(check_signature_header)
            .transpose()?,
        enabled: input.enabled,
        description: input.description,
        metadata: check_metadata(input.metadata)?,
        now_ms: now_ms(),
    };
    let record = state.store.update_webhook(&client.id, &id, changes).await?;
    record
        .map(|w| Json(WebhookView::from_record(w, false)))
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// Gives the webhook a new signing secret (in the answer); the replaced one keeps signing
/// during the grace period.
#[utoipa::path(
    post,
    path = "/v2/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)")),
    request_body(content = RotateSecret, description = "Optional: an empty body means the default grace period"),
    responses(
        (status = 200, description = "The webhook with its new `secret`", body = WebhookView),
        (status = 400, description = "Not JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such webhook of this client", body = ErrorBody),
        (status = 409, description = "A `hookd listen` session's webhook, whose secret cannot change", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Bad `grace_seconds`", body = ErrorBody),
    ),
    security(("basic" = []))
)]
// A new secret; the replaced one keeps signing (next to it, in `webhook-signature`) for
// the grace period, and an older one still in its grace period is dropped.
async fn rotate_secret(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Json<WebhookView>, ApiError> {
    check_id(&id, "webhook")?;
    let input: RotateSecret = read_optional_json(body, state.config.max_event_bytes).await?;
    // An unknown id is a 404 before any validation message about the body.
    changeable(state.store.get_webhook(&client.id, &id).await?)?;
    let grace_seconds = parse_grace_seconds(input.grace_seconds.as_ref())?;
    let mut random = [0u8; SECRET_RANDOM_BYTES];
    fill_random(&mut random)?;
    let now = now_ms();
    let grace_ms = i64::try_from(grace_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
    let rotation = SecretRotation {
        secret: new_webhook_secret(&random),
        previous_valid_until_ms: now.saturating_add(grace_ms),
        now_ms: now,
    };
    let record = state
        .store
        .rotate_webhook_secret(&client.id, &id, rotation)
        .await?;
    record
        .map(|w| Json(WebhookView::from_record(w, true)))
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// `grace_seconds`: absent or `null` for the default, else a whole number of seconds from
/// 0 (no overlap) to 7 days.
fn parse_grace_seconds(value: Option<&Value>) -> Result<u64, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(DEFAULT_ROTATION_GRACE_SECONDS),
        Some(v) => v
            .as_u64()
            .filter(|s| *s <= MAX_ROTATION_GRACE_SECONDS)
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "`grace_seconds` must be a whole number of seconds from 0 to {MAX_ROTATION_GRACE_SECONDS} (7 days), not {v}"
                ))
            }),
    }
}

/// A webhook that exists and may be changed: a 404 if it does not exist, a 409 for a
/// `hookd listen` session's, whose URL, filters and secret the session fixed.
fn changeable(webhook: Option<WebhookRecord>) -> Result<WebhookRecord, ApiError> {
    let webhook = webhook.ok_or_else(|| ApiError::not_found("webhook"))?;
    if listen_session(&webhook.url).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this is a `hookd listen` session's temporary webhook: it cannot be changed; \
             delete it to end the session",
        ));
    }
    Ok(webhook)
}

/// Deletes a webhook; its pending deliveries are cancelled. Deleting a `hookd listen`
/// session's webhook ends the session.
#[utoipa::path(
    delete,
    path = "/v2/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such webhook of this client", body = ErrorBody),
    ),
    security(("basic" = []))
)]
async fn remove(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_id(&id, "webhook")?;
    if state
        .store
        .delete_webhook(&client.id, &id, now_ms())
        .await?
    {
        // A listening session's stream, if connected here, ends with its webhook.
        state.listen.close(&id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook"))
    }
}

/// Checks the URL's form and, when private targets are refused, the addresses its name
/// resolves to now: any refused address fails registration (connect time checks every
/// address again, against DNS rebinding). A name that does not resolve (yet) is accepted:
/// it may be set up after registration, and connect time checks it then.
async fn check_url(config: &ApiConfig, url: &str) -> Result<(), ApiError> {
    // The URL is stored as given: a control character would be stored too.
    if url.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "`url` may not contain control characters",
        ));
    }
    if url
        .get(..LISTEN_SCHEME.len() + 1)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(&format!("{LISTEN_SCHEME}:")))
    {
        return Err(ApiError::invalid(format!(
            "`url`: the `{LISTEN_SCHEME}` scheme is reserved for `hookd listen` sessions"
        )));
    }
    let policy = &config.target_policy;
    let parsed = policy
        .check_url(url)
        .map_err(|e| ApiError::invalid(format!("`url`: {e}")))?;
    if policy.allow_private_targets {
        return Ok(());
    }
    let Some(url::Host::Domain(host)) = parsed.host() else {
        return Ok(());
    };
    let lookup = async {
        match &config.resolver {
            Some(resolver) => resolver.resolve(host).await,
            None => tokio::net::lookup_host((host, 0))
                .await
                .map(|found| found.map(|a| a.ip()).collect())
                .map_err(|e| ResolveError {
                    host: host.to_owned(),
                    reason: e.to_string(),
                }),
        }
    };
    let addresses: Vec<IpAddr> = match tokio::time::timeout(REGISTRATION_DNS_TIMEOUT, lookup).await
    {
        Ok(Ok(addresses)) => addresses,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "registering a webhook whose name does not resolve yet");
            return Ok(());
        }
        Err(_) => {
            tracing::debug!(
                host,
                "registering a webhook whose name did not resolve in time"
            );
            return Ok(());
        }
    };
    for ip in addresses {
        policy.check_ip(ip).map_err(|e| {
            ApiError::invalid(format!(
                "`url`: the host `{host}` resolves to an address hookd refuses: {e}"
            ))
        })?;
    }
    Ok(())
}

fn parse_format(format: Option<&str>) -> Result<Option<EnvelopeFormat>, ApiError> {
    format
        .map(|f| {
            f.parse::<EnvelopeFormat>()
                .map_err(|e| ApiError::invalid(format!("`format`: {e}")))
        })
        .transpose()
}

fn check_signature_header(name: String) -> Result<String, ApiError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_SIGNATURE_HEADER_LEN
        && http::HeaderName::from_bytes(name.as_bytes()).is_ok()
        && !RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str());
    if valid {
        Ok(name)
    } else {
        Err(ApiError::invalid(format!(
            "`signature_header` `{}` must be an HTTP header name of at most {MAX_SIGNATURE_HEADER_LEN} characters, other than {}",
            excerpt(&name),
            RESERVED_HEADERS.join(", ")
        )))
    }
}

fn check_description(description: Option<&str>) -> Result<(), ApiError> {
    match description {
        Some(text) => check_text("description", text, MAX_DESCRIPTION_CHARS),
        None => Ok(()),
    }
}

fn check_metadata(metadata: Option<Map<String, Value>>) -> Result<Option<Value>, ApiError> {
    let Some(map) = metadata else { return Ok(None) };
    let value = Value::Object(map);
    if value.to_string().len() > MAX_METADATA_BYTES {
        return Err(ApiError::invalid(format!(
            "`metadata` may be at most {MAX_METADATA_BYTES} bytes of JSON"
        )));
    }
    if depth(&value) > MAX_METADATA_DEPTH {
        return Err(ApiError::invalid(format!(
            "`metadata` nests objects/arrays deeper than {MAX_METADATA_DEPTH} levels"
        )));
    }
    Ok(Some(value))
}

/// Nesting depth of a JSON value (a scalar is 0, `{}` is 1). Recursion is safe: the body
/// reader refuses bodies nested deeper than `MAX_BODY_DEPTH`.
fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}
