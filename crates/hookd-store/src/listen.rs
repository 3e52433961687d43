//! `hookd listen` sessions: the in-process hand-over of attempts between the engine and the
//! API's streams.
//!
//! A listening session is a temporary webhook (stored like any other, so fan-out, retries,
//! attempt logs and `GET /v2/events/{id}` work unchanged) whose URL is in the reserved
//! [`LISTEN_SCHEME`]. The engine does not POST its attempts: it hands each signed request
//! to [`ListenSessions::deliver`], the API's stream sends it to the connected `hookd
//! listen`, and the CLI's report of its local POST ([`ListenSessions::answer`]) becomes the
//! attempt's response. Which session is connected where is known only here, in memory:
//! the binary makes one [`ListenSessions`] per process and gives it to both the API and the
//! engine. It lives in this crate because it is the one both depend on.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

/// The URL scheme of listening sessions' webhooks; registration refuses it.
pub const LISTEN_SCHEME: &str = "hookd-listen";

/// The URL of a session's temporary webhook: `hookd-listen://<webhook id>`.
pub fn listen_url(webhook_id: &str) -> String {
    format!("{LISTEN_SCHEME}://{webhook_id}")
}

/// The session (its webhook's id) a URL of [`LISTEN_SCHEME`] names; `None` for any other URL.
pub fn listen_session(url: &str) -> Option<&str> {
    url.strip_prefix(LISTEN_SCHEME)?.strip_prefix("://")
}

/// Most attempts handed to one connection and not yet taken by its stream; the engine's
/// per-webhook cap keeps well under it.
const QUEUED_PER_CONNECTION: usize = 256;
/// Most sessions one client may have connected to one process at a time: each holds a
/// connection and a webhook.
pub const MAX_SESSIONS_PER_CLIENT: usize = 32;

/// One attempt as the engine would have POSTed it.
#[derive(Clone, Debug)]
pub struct ListenedRequest {
    pub attempt_id: String,
    pub event_id: String,
    pub event_type: String,
    pub attempt_number: u32,
    /// In the order they would have been sent, signatures among them.
    pub headers: Vec<(String, String)>,
    /// The envelope, byte for byte.
    pub body: String,
}

/// What the local endpoint answered to `hookd listen`, as the CLI reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenReply {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Why there is no status (the local endpoint refused the connection, say).
    pub error: Option<String>,
}

/// Why an attempt could not be handed over, or got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    #[error("no `hookd listen` of this session is connected to this server")]
    NotConnected,
    #[error(
        "`hookd listen` is not keeping up: {QUEUED_PER_CONNECTION} requests are waiting for it"
    )]
    Busy,
    #[error("`hookd listen` disconnected before it reported the local answer")]
    Disconnected,
    #[error("`hookd listen` reported no local answer within {0:?}")]
    TimedOut(Duration),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error(
        "this client has {MAX_SESSIONS_PER_CLIENT} `hookd listen` sessions connected to this server already; end one first"
    )]
    TooManySessions,
}

/// The listening sessions connected to this process.
#[derive(Default)]
pub struct ListenSessions {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By the session's webhook id.
    sessions: HashMap<String, Session>,
    next_connection: u64,
    shutting_down: bool,
}

struct Session {
    client_id: String,
    /// Tells this connection from a later one of the same session (a reconnect).
    connection: u64,
    /// The only sender: removing the session ends its stream.
    requests: mpsc::Sender<ListenedRequest>,
    /// Attempts handed over and waiting for the CLI's report, by attempt id.
    waiting: HashMap<String, oneshot::Sender<ListenReply>>,
}

impl ListenSessions {
    pub fn new() -> Arc<ListenSessions> {
        Arc::new(ListenSessions::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every unlock; a panic elsewhere does not spoil it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connects a stream to the session of `webhook_id`: attempts handed over from now on
    /// come out of the returned connection. A connection the session had already is ended
    /// (its attempts waiting for a report fail and are retried). Dropping the connection
    /// disconnects it.
    pub fn connect(
        self: &Arc<Self>,
        client_id: &str,
        webhook_id: &str,
    ) -> Result<ListenConnection, ListenError> {
        let mut state = self.state();
        if state.shutting_down {
            return Err(ListenError::ShuttingDown);
        }
        let others = state
            .sessions
            .iter()
            .filter(|(id, s)| s.client_id == client_id && id.as_str() != webhook_id)
            .count();
        if others >= MAX_SESSIONS_PER_CLIENT {
            return Err(ListenError::TooManySessions);
        }
        state.next_connection += 1;
        let connection = state.next_connection;
        let (sender, receiver) = mpsc::channel(QUEUED_PER_CONNECTION);
        state.sessions.insert(
            webhook_id.to_owned(),
            Session {
                client_id: client_id.to_owned(),
                connection,
                requests: sender,
                waiting: HashMap::new(),
            },
        );
        Ok(ListenConnection {
            sessions: Arc::clone(self),
            webhook_id: webhook_id.to_owned(),
            connection,
            requests: receiver,
        })
    }

    /// Hands one attempt to the session's stream and waits (at most `timeout`) for the
    /// CLI's report of what the local endpoint answered.
    pub async fn deliver(
        &self,
        webhook_id: &str,
        request: ListenedRequest,
        timeout: Duration,
    ) -> Result<ListenReply, ListenError> {
        let attempt_id = request.attempt_id.clone();
        let report = {
            let mut state = self.state();
            let session = state
                .sessions
                .get_mut(webhook_id)
                .ok_or(ListenError::NotConnected)?;
            match session.requests.try_send(request) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => return Err(ListenError::Busy),
                Err(TrySendError::Closed(_)) => return Err(ListenError::Disconnected),
            }
            let (reply, report) = oneshot::channel();
            session.waiting.insert(attempt_id.clone(), reply);
            report
        };
        match tokio::time::timeout(timeout, report).await {
            Ok(Ok(reply)) => Ok(reply),
            // The session's connection ended, and with it everything waiting on it.
            Ok(Err(_)) => Err(ListenError::Disconnected),
            Err(_) => {
                if let Some(session) = self.state().sessions.get_mut(webhook_id) {
                    session.waiting.remove(&attempt_id);
                }
                Err(ListenError::TimedOut(timeout))
            }
        }
    }

    /// The CLI's report for one attempt handed over. `false` if that client's session has
    /// no such attempt waiting (it timed out, was answered already, or is not theirs).
    pub fn answer(
        &self,
        client_id: &str,
        webhook_id: &str,
        attempt_id: &str,
        reply: ListenReply,
    ) -> bool {
        let mut state = self.state();
        let waiting = state
            .sessions
            .get_mut(webhook_id)
            .filter(|s| s.client_id == client_id)
            .and_then(|s| s.waiting.remove(attempt_id));
        match waiting {
            Some(reply_to) => reply_to.send(reply).is_ok(),
            None => false,
        }
    }

    /// Whether the client may connect one more session now.
    pub fn has_room_for(&self, client_id: &str) -> bool {
        let state = self.state();
        !state.shutting_down
            && state
                .sessions
                .values()
                .filter(|s| s.client_id == client_id)
                .count()
                < MAX_SESSIONS_PER_CLIENT
    }

    /// The webhook ids of the sessions connected now.
    pub fn connected(&self) -> Vec<String> {
        self.state().sessions.keys().cloned().collect()
    }

    /// Ends the session's stream, if it is connected (its webhook was deleted).
    pub fn close(&self, webhook_id: &str) {
        self.state().sessions.remove(webhook_id);
    }

    /// Ends every stream and refuses new ones: the server is shutting down, and its HTTP
    /// server waits for responses under way, streams among them, to finish.
    pub fn close_all(&self) {
        let mut state = self.state();
        state.shutting_down = true;
        state.sessions.clear();
    }

    fn disconnect(&self, webhook_id: &str, connection: u64) {
        let mut state = self.state();
        if state
            .sessions
            .get(webhook_id)
            .is_some_and(|s| s.connection == connection)
        {
            state.sessions.remove(webhook_id);
        }
    }
}

impl fmt::Debug for ListenSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenSessions")
            .field("connected", &self.state().sessions.len())
            .finish()
    }
}

/// One connected stream of a session: the attempts handed to it, until it is dropped.
pub struct ListenConnection {
    sessions: Arc<ListenSessions>,
    webhook_id: String,
    connection: u64,
    requests: mpsc::Receiver<ListenedRequest>,
}

impl ListenConnection {
    /// The next attempt to send to the CLI; `None` once the session was closed (its
    /// webhook deleted, a newer connection of it, or shutdown).
    pub async fn next(&mut self) -> Option<ListenedRequest> {
        self.requests.recv().await
    }
}

impl Drop for ListenConnection {
    fn drop(&mut self) {
        self.sessions.disconnect(&self.webhook_id, self.connection);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request(attempt_id: &str) -> ListenedRequest {
        ListenedRequest {
            attempt_id: attempt_id.to_owned(),
            event_id: "evt_1".to_owned(),
            event_type: "payment.completed".to_owned(),
            attempt_number: 1,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: "{}".to_owned(),
        }
    }

    #[test]
    fn listen_urls_name_their_session_and_nothing_else_does() {
        assert_eq!(listen_url("wh_1"), "hookd-listen://wh_1");
        assert_eq!(listen_session("hookd-listen://wh_1"), Some("wh_1"));
        for other in [
            "https://hookd-listen.example/wh_1",
            "hookd-listen:wh_1",
            "http://wh_1",
        ] {
            assert_eq!(listen_session(other), None, "{other}");
        }
    }

    #[tokio::test]
    async fn an_attempt_goes_to_the_stream_and_its_report_comes_back() {
        let sessions = ListenSessions::new();
        let mut connection = sessions.connect("cl_a", "wh_1").unwrap();
        let delivering = {
            let sessions = Arc::clone(&sessions);
            tokio::spawn(async move {
                sessions
                    .deliver("wh_1", request("att_1"), Duration::from_secs(20))
                    .await
            })
        };
        let handed = connection.next().await.unwrap();
        assert_eq!(handed.attempt_id, "att_1");
        let reply = ListenReply {
            status: Some(204),
            ..ListenReply::default()
        };
        // Only the session's own client may answer.
        assert!(!sessions.answer("cl_b", "wh_1", "att_1", reply.clone()));
        assert!(sessions.answer("cl_a", "wh_1", "att_1", reply.clone()));
        assert!(!sessions.answer("cl_a", "wh_1", "att_1", reply.clone()));
        assert_eq!(delivering.await.unwrap(), Ok(reply));
    }

    #[tokio::test]
    async fn a_session_not_connected_or_gone_fails_the_attempt() {
        let sessions = ListenSessions::new();
        let wait = Duration::from_secs(20);
        assert_eq!(
            sessions.deliver("wh_1", request("att_1"), wait).await,
            Err(ListenError::NotConnected)
        );
        let connection = sessions.connect("cl_a", "wh_1").unwrap();
        let delivering = {
            let sessions = Arc::clone(&sessions);
            tokio::spawn(async move { sessions.deliver("wh_1", request("att_2"), wait).await })
        };
        // Handed over (waiting for a report) before the stream goes away.
        while sessions
            .state()
            .sessions
            .get("wh_1")
            .is_none_or(|s| s.waiting.is_empty())
        {
            tokio::task::yield_now().await;
        }
        drop(connection);
        assert_eq!(delivering.await.unwrap(), Err(ListenError::Disconnected));
        assert!(sessions.connected().is_empty());
    }

    #[test]
    fn a_client_has_room_for_a_bounded_number_of_sessions() {
        let sessions = ListenSessions::new();
        let connected: Vec<ListenConnection> = (0..MAX_SESSIONS_PER_CLIENT)
            .map(|n| sessions.connect("cl_a", &format!("wh_{n}")).unwrap())
            .collect();
        assert!(!sessions.has_room_for("cl_a"));
        assert!(matches!(
            sessions.connect("cl_a", "wh_more"),
            Err(ListenError::TooManySessions)
        ));
        // Another client, and a reconnect of a session already counted, still may.
        assert!(sessions.has_room_for("cl_b"));
        assert!(sessions.connect("cl_a", "wh_0").is_ok());
        drop(connected);
        assert!(sessions.has_room_for("cl_a"));
    }

    #[tokio::test]
    async fn an_unanswered_attempt_times_out_and_a_reconnect_replaces_the_stream() {
        let sessions = ListenSessions::new();
        let mut first = sessions.connect("cl_a", "wh_1").unwrap();
        let outcome = sessions
            .deliver("wh_1", request("att_1"), Duration::from_millis(10))
            .await;
        assert_eq!(
            outcome,
            Err(ListenError::TimedOut(Duration::from_millis(10)))
        );
        let _second = sessions.connect("cl_a", "wh_1").unwrap();
        // The first stream yields what it was handed, then ends.
        assert!(first.next().await.is_some());
        assert!(first.next().await.is_none());
        // Dropping the replaced connection leaves the new one connected.
        drop(first);
        assert_eq!(sessions.connected(), vec!["wh_1".to_owned()]);
        sessions.close_all();
        assert!(sessions.connected().is_empty());
        assert!(!sessions.has_room_for("cl_a"));
        assert!(matches!(
            sessions.connect("cl_a", "wh_2"),
            Err(ListenError::ShuttingDown)
        ));
    }
}
