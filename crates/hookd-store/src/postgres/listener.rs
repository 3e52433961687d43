//! One connection per node that `LISTEN`s for "a delivery is due now", sent by whichever
//! node committed it, so every dispatcher wakes within milliseconds instead of polling.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

/// How long to wait before listening again after the connection broke.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

pub(super) fn spawn(
    config: tokio_postgres::Config,
    channel: String,
    due: Arc<Notify>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&config, &channel, &due).await {
                tracing::warn!("listening for due deliveries failed: {e}");
            }
            // Notifications may have been missed meanwhile: dispatchers look for work.
            due.notify_one();
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    })
}

async fn listen(
    config: &tokio_postgres::Config,
    channel: &str,
    due: &Notify,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    // The LISTEN only makes progress while the connection is polled.
    let statement = format!("LISTEN {channel}");
    let subscribe = client.batch_execute(&statement);
    tokio::pin!(subscribe);
    loop {
        tokio::select! {
            subscribed = &mut subscribe => {
                subscribed?;
                break;
            }
            message = messages.next() => match message {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
    due.notify_one();
    while let Some(message) = messages.next().await {
        if let AsyncMessage::Notification(_) = message? {
            due.notify_one();
        }
    }
    Ok(())
}
