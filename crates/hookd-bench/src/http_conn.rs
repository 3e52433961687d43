//! One HTTP/1.1 keep-alive client connection (hyper's low-level client): what the load
//! generator and the API set-up calls send requests over.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::BenchError;

/// Longest wait for one response before the request counts as failed.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct HttpConnection {
    addr: SocketAddr,
    host: HeaderValue,
    sender: SendRequest<Full<Bytes>>,
}

impl HttpConnection {
    /// Connects and starts the connection's driver task on the current runtime.
    pub(crate) async fn open(addr: SocketAddr) -> Result<HttpConnection, BenchError> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| BenchError::http(addr, "connect timed out"))?
            .map_err(|e| BenchError::http(addr, e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| BenchError::http(addr, e))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| BenchError::http(addr, e))?;
        // Ends by itself when the sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let host =
            HeaderValue::from_str(&addr.to_string()).map_err(|e| BenchError::http(addr, e))?;
        Ok(HttpConnection { addr, host, sender })
    }

    /// Sends one request and reads the whole response body.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&HeaderValue>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), BenchError> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone());
        if !body.is_empty() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(auth) = auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| BenchError::http(self.addr, e))?;
        let exchange = async {
            self.sender
                .ready()
                .await
                .map_err(|e| BenchError::http(self.addr, e))?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| BenchError::http(self.addr, e))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| BenchError::http(self.addr, e))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| BenchError::http(self.addr, "no response within 30s"))?
    }
}

/// The `Authorization` value for HTTP Basic auth.
pub(crate) fn basic_auth(user: &str, password: &str) -> Result<HeaderValue, BenchError> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|e| BenchError::Other(format!("credentials do not fit a header: {e}")))
}
