//! The HTTP/1.1 server loop under the router, with bounds that `axum::serve` does not
//! set: a request head (request line and headers) must fit in [`MAX_HEAD_BYTES`] with at
//! most [`MAX_HEADERS`] headers (hyper answers `431`, or `414` for a URI beyond 64 KiB,
//! with an empty body, before any handler runs), and must arrive within
//! [`HEAD_READ_TIMEOUT`], which also closes keep-alive connections idle that long. So a
//! connection costs at most one bounded buffer, and a slow sender cannot hold it forever.

use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Largest request head hyper buffers (its default is about 400 KiB).
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most headers in one request (hyper's default).
pub(crate) const MAX_HEADERS: usize = 100;
/// How long a request head may take to arrive, and so also how long a keep-alive
/// connection may stay idle (hyper times both alike), as nginx's 60 s/75 s do.
pub(crate) const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and
/// waits for requests under way to finish (each connection closes after its current
/// request). Every connection gets `TCP_NODELAY`: answers are small and must not wait on
/// Nagle's algorithm.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_READ_TIMEOUT)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    wait_after_accept_error(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let connection =
            http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A peer that hung up before we accepted is nothing; anything else (out of file
/// descriptors, say) is logged and waited out briefly rather than spun on.
async fn wait_after_accept_error(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!("cannot accept a connection: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
