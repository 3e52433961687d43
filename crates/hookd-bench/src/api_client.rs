//! The few API calls a scenario makes besides publishing: registering webhooks and
//! reading an event's delivery states, over the real HTTP API.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use crate::BenchError;
use crate::http_conn::HttpConnection;

/// The event type every benchmark event has (one of the seeds' catalogue).
pub(crate) const EVENT_TYPE: &str = "payout_request.completed";

pub(crate) struct ApiClient {
    connection: HttpConnection,
    auth: HeaderValue,
}

impl ApiClient {
    pub(crate) async fn connect(
        addr: SocketAddr,
        auth: HeaderValue,
    ) -> Result<ApiClient, BenchError> {
        Ok(ApiClient {
            connection: HttpConnection::open(addr).await?,
            auth,
        })
    }

    /// Registers a webhook for every event type; returns its id.
    pub(crate) async fn create_webhook(&mut self, url: &str) -> Result<String, BenchError> {
        let body = json!({ "url": url, "events": ["*"], "description": "hookd bench" });
        let created = self
            .call(Method::POST, "/v2/webhooks", StatusCode::CREATED, &body)
            .await?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BenchError::Other(format!("webhook creation answered {created}")))
    }

    /// The delivery states (`pending`, `succeeded`, …) of one event, one per webhook.
    pub(crate) async fn delivery_states(
        &mut self,
        event_id: &str,
    ) -> Result<Vec<String>, BenchError> {
        let event = self
            .call(
                Method::GET,
                &format!("/v2/events/{event_id}"),
                StatusCode::OK,
                &Value::Null,
            )
            .await?;
        Ok(event["deliveries"]
            .as_array()
            .map(|deliveries| {
                deliveries
                    .iter()
                    .filter_map(|d| d["status"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        expect: StatusCode,
        body: &Value,
    ) -> Result<Value, BenchError> {
        let bytes = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        };
        let request = format!("{method} {path}");
        let (status, answer) = self
            .connection
            .send(method, path, Some(&self.auth), bytes)
            .await?;
        if status != expect {
            return Err(BenchError::Api {
                request,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&answer).chars().take(300).collect(),
            });
        }
        serde_json::from_slice(&answer)
            .map_err(|e| BenchError::Other(format!("{request} answered unreadable JSON: {e}")))
    }
}

/// One event for `POST /v2/events`, carrying its publish time.
pub(crate) fn event_body(sent_ns: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"type":"{EVENT_TYPE}","data":{{"t":{sent_ns}}}}}"#
    ))
}

/// `count` events for `POST /v2/events/batch`, all carrying the same publish time.
pub(crate) fn batch_body(sent_ns: u64, count: usize) -> Bytes {
    let one = format!(r#"{{"type":"{EVENT_TYPE}","data":{{"t":{sent_ns}}}}}"#);
    let mut body = String::with_capacity(12 + count * (one.len() + 1));
    body.push_str(r#"{"events":["#);
    for n in 0..count {
        if n > 0 {
            body.push(',');
        }
        body.push_str(&one);
    }
    body.push_str("]}");
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_with_the_publish_time() {
        let one: Value = serde_json::from_slice(&event_body(42)).unwrap_or_default();
        assert_eq!(one["data"]["t"], 42);
        let batch: Value = serde_json::from_slice(&batch_body(7, 3)).unwrap_or_default();
        assert_eq!(batch["events"].as_array().map(Vec::len), Some(3));
        assert_eq!(batch["events"][2]["type"], EVENT_TYPE);
    }
}
