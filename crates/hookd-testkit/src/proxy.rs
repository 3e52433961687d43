//! A TCP proxy on 127.0.0.1 in front of a real server, which a test can cut (every open
//! connection dropped, new ones closed at once) and restore: a database outage for the
//! processes behind it only, while other tests keep using the same server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

pub struct TcpProxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    connections: Arc<Mutex<JoinSet<()>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Forwards connections made to [`TcpProxy::addr`] to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("cannot bind a proxy: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("proxy has no address: {e}"),
        };
        let down = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<JoinSet<()>>> = Arc::default();
        let task = tokio::spawn({
            let down = Arc::clone(&down);
            let connections = Arc::clone(&connections);
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if down.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    connections.lock().await.spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            }
        });
        TcpProxy {
            addr,
            down,
            connections,
            task,
        }
    }

    /// Drops every open connection and closes new ones as soon as they are accepted.
    pub async fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.connections.lock().await.abort_all();
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
