//! A webhook receiver for hookd, with axum and hookd-verify.
//!
//! ```sh
//! HOOKD_WEBHOOK_SECRET=whsec_… cargo run -p hookd-example-axum -- 3000
//! ```
//!
//! `POST /webhooks`: verifies the signature over the raw body (Standard Webhooks when its
//! headers are there, else the hex header `x-nextpay-signature` / `X-Webhook-Signature`),
//! drops events it has handled before (by `webhook-id`, in a SQLite ledger that survives
//! restarts: `LEDGER_DB`, default `./hookd-receiver.db`), answers at once and prints one
//! line per delivery:
//!
//! ```text
//! verified payment_intent.paid evt_01… (standard-webhooks)
//! duplicate evt_01…
//! rejected: webhook-signature does not match this secret and body (wrong secret or modified body)
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hookd_verify::{
    Delivery, Envelope, EventLedger, SqliteLedger, VerifiedScheme, VerifyOptions, verify,
};

/// What every request needs: the secret and the ledger of handled event ids.
struct Receiver {
    secret: String,
    ledger: Mutex<SqliteLedger>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("HOOKD_WEBHOOK_SECRET")
        .map_err(|_| "set HOOKD_WEBHOOK_SECRET to the webhook's signing secret (whsec_…)")?;
    let port: u16 = match std::env::args().nth(1) {
        Some(port) => port
            .parse()
            .map_err(|_| format!("`{port}` is not a port"))?,
        None => 3000,
    };
    let ledger_path =
        std::env::var("LEDGER_DB").unwrap_or_else(|_| "./hookd-receiver.db".to_owned());
    let receiver = Arc::new(Receiver {
        secret,
        ledger: Mutex::new(SqliteLedger::open(&ledger_path)?),
    });

    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on http://{}/webhooks", listener.local_addr()?);
    axum::serve(listener, router(receiver))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn router(receiver: Arc<Receiver>) -> Router {
    Router::new()
        .route("/webhooks", post(webhooks))
        .with_state(receiver)
}

/// Takes the body as raw bytes: a signature covers the exact bytes sent, so JSON is
/// parsed only after verifying.
async fn webhooks(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let now = unix_now();
    let delivery = Delivery::from_headers(&headers, &body);
    let scheme = match verify(&delivery, &receiver.secret, &VerifyOptions::new(now)) {
        Ok(VerifiedScheme::StandardWebhooks) => "standard-webhooks".to_owned(),
        Ok(VerifiedScheme::Hex { header }) => header,
        // A 4xx is final for hookd: no retry of a delivery this receiver will never accept.
        Err(err) => {
            println!("rejected: {err}");
            return (StatusCode::UNAUTHORIZED, "invalid signature");
        }
    };
    let envelope: Envelope = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(err) => {
            println!("rejected: the body is not a hookd envelope: {err}");
            return (StatusCode::BAD_REQUEST, "not a hookd envelope");
        }
    };
    // `webhook-id` is the event id on every delivery; the `typed` body has it too.
    let Some(event_id) = delivery
        .header("webhook-id")
        .or(envelope.event_id())
        .map(str::to_owned)
    else {
        println!("rejected: no event id");
        return (StatusCode::BAD_REQUEST, "no event id");
    };

    // SQLite writes block: off the async threads.
    let ledger_receiver = receiver.clone();
    let ledger_id = event_id.clone();
    let first = tokio::task::spawn_blocking(move || {
        let mut ledger = ledger_receiver
            .ledger
            .lock()
            .map_err(|_| "ledger lock poisoned".to_owned())?;
        ledger
            .first_time(&ledger_id, now)
            .map_err(|err| err.to_string())
    })
    .await
    .map_err(|err| err.to_string())
    .and_then(|result| result);
    match first {
        Ok(true) => {}
        Ok(false) => {
            println!("duplicate {event_id}");
            return (StatusCode::OK, "duplicate");
        }
        // A 5xx makes hookd retry later.
        Err(err) => {
            println!("error: {err}");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    }
    // Real work goes to a queue or a task here, so the answer is not held up by it.
    println!("verified {} {event_id} ({scheme})", envelope.event_type());
    (StatusCode::OK, "ok")
}

fn unix_now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}
