//! The real `hookd` binary, started on 127.0.0.1:0 with a fresh database (a SQLite file,
//! or a PostgreSQL schema), plus a client created through its CLI and a small JSON API
//! client.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::postgres::TestSchema;
use crate::{Backend, PATIENCE};

/// Flags for `hookd serve`. The defaults suit tests: SQLite, a compressed schedule and
/// loopback receivers allowed.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub backend: Backend,
    /// Use this `--database` instead of a fresh one of `backend` (e.g. a test's own
    /// schema, reached through a [`crate::proxy::TcpProxy`]).
    pub database_url: Option<String>,
    pub retry_schedule: String,
    pub attempt_timeout: String,
    pub allow_private_targets: bool,
    pub allow_http: bool,
    pub extra_args: Vec<String>,
    /// `HOOKD_LOG` of the server (default `warn`).
    pub log_filter: Option<String>,
    /// Collect the server's stderr (its logs) for [`Hookd::stderr_text`] instead of
    /// passing it through.
    pub capture_stderr: bool,
    /// Environment variables for `serve` and `clients create` (e.g. `HOOKD_ENCRYPTION_KEY`);
    /// the encryption keys of the test's own environment are never passed on.
    pub env: Vec<(String, String)>,
    /// A soft `RLIMIT_FSIZE` (bytes) for `serve`, which runs with `SIGXFSZ` ignored: a write
    /// past it fails with `EFBIG` as on a full disk (see [`Hookd::set_file_size_limit`]).
    pub file_size_limit: Option<u64>,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            backend: Backend::Sqlite,
            database_url: None,
            retry_schedule: "0s,200ms,400ms".to_owned(),
            attempt_timeout: "5s".to_owned(),
            allow_private_targets: true,
            allow_http: true,
            extra_args: Vec::new(),
            log_filter: None,
            capture_stderr: false,
            env: Vec::new(),
            file_size_limit: None,
        }
    }
}

/// API credentials of one client.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
}

pub struct Hookd {
    bin: PathBuf,
    dir: TempDir,
    options: ServeOptions,
    child: Option<Child>,
    pub base_url: String,
    pub credentials: Credentials,
    http: reqwest::Client,
    /// After `child`, so the server is killed before its schema is dropped.
    schema: Option<TestSchema>,
    /// Set on further nodes of a cluster: the database another `Hookd` owns.
    shared_database: Option<String>,
    /// What the server wrote to stderr, with `ServeOptions::capture_stderr`.
    stderr: Arc<Mutex<String>>,
}

impl Hookd {
    /// Starts `bin serve` on a new database of `options.backend` with one client.
    pub async fn start(bin: &Path, options: ServeOptions) -> Hookd {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("cannot make a temporary directory: {e}"),
        };
        let schema = match (&options.database_url, options.backend) {
            (None, Backend::Postgres) => Some(TestSchema::create().await),
            _ => None,
        };
        let mut hookd = Hookd {
            bin: bin.to_owned(),
            dir,
            options,
            child: None,
            base_url: String::new(),
            credentials: Credentials {
                client_id: String::new(),
                client_secret: String::new(),
            },
            http: http_client(),
            schema,
            shared_database: None,
            stderr: Arc::default(),
        };
        hookd.shared_database = hookd.options.database_url.clone();
        hookd.credentials = hookd.create_client("test").await;
        hookd.spawn().await;
        hookd
    }

    pub fn backend(&self) -> Backend {
        self.options.backend
    }

    /// The `--database` this server (and its `clients create`) runs with.
    pub fn database_url(&self) -> String {
        if let Some(url) = &self.shared_database {
            return url.clone();
        }
        match &self.schema {
            Some(schema) => schema.url().to_owned(),
            None => format!("sqlite://{}", self.dir.path().join("hookd.db").display()),
        }
    }

    /// Starts one more `hookd serve` on this server's database, with the same client: a
    /// second node of a cluster (PostgreSQL). The database stays this `Hookd`'s: drop the
    /// other nodes first.
    pub async fn another_node(&self, options: ServeOptions) -> Hookd {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("cannot make a temporary directory: {e}"),
        };
        let mut node = Hookd {
            bin: self.bin.clone(),
            dir,
            options,
            child: None,
            base_url: String::new(),
            credentials: self.credentials.clone(),
            http: http_client(),
            schema: None,
            shared_database: Some(self.database_url()),
            stderr: Arc::default(),
        };
        node.spawn().await;
        node
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Runs `hookd clients create --json` against this server's database.
    pub async fn create_client(&self, name: &str) -> Credentials {
        let output = Command::new(&self.bin)
            .args([
                "clients",
                "create",
                "--name",
                name,
                "--json",
                "--database",
                &self.database_url(),
            ])
            .env_remove("HOOKD_ENCRYPTION_KEY")
            .env_remove("HOOKD_ENCRYPTION_KEY_PREVIOUS")
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run hookd clients create: {e}"));
        assert!(
            output.status.success(),
            "clients create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("clients create --json printed no JSON: {e}"));
        Credentials {
            client_id: printed["client_id"].as_str().unwrap_or_default().to_owned(),
            client_secret: printed["client_secret"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    async fn spawn(&mut self) {
        let o = &self.options;
        let mut command = match o.file_size_limit {
            None => Command::new(&self.bin),
            // Ignored signals stay ignored across exec: the shell only sets that up.
            Some(_) => {
                let mut shell = Command::new("sh");
                shell
                    .args(["-c", "trap '' XFSZ && exec \"$0\" \"$@\""])
                    .arg(&self.bin);
                shell
            }
        };
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                &self.database_url(),
            ])
            .args([
                "--retry-schedule",
                &o.retry_schedule,
                "--attempt-timeout",
                &o.attempt_timeout,
            ])
            .args(&o.extra_args)
            .env("HOOKD_LOG", o.log_filter.as_deref().unwrap_or("warn"))
            .env_remove("HOOKD_ALLOW_PRIVATE_TARGETS")
            .env_remove("HOOKD_ALLOW_HTTP")
            .env_remove("HOOKD_DNS_SERVER")
            .env_remove("HOOKD_ENCRYPTION_KEY")
            .env_remove("HOOKD_ENCRYPTION_KEY_PREVIOUS")
            .envs(o.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(if o.capture_stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .kill_on_drop(true);
        if o.allow_private_targets {
            command.arg("--allow-private-targets");
        }
        if o.allow_http {
            command.arg("--allow-http");
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start hookd: {e}"));
        if let (Some(limit), Some(pid)) = (o.file_size_limit, child.id()) {
            crate::resources::set_file_size_limit(pid, Some(limit));
        }
        if let Some(stderr) = child.stderr.take() {
            let captured = Arc::clone(&self.stderr);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut text) = captured.lock() {
                        text.push_str(&line);
                        text.push('\n');
                    }
                }
            });
        }
        let Some(stdout) = child.stdout.take() else {
            panic!("hookd has no stdout")
        };
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(PATIENCE, lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            other => panic!("hookd did not print its address: {other:?}"),
        };
        let Some(url) = line.strip_prefix("hookd listening on ") else {
            panic!("unexpected first line from hookd: {line}");
        };
        self.base_url = url.to_owned();
        self.child = Some(child);
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    }

    /// What the server has written to stderr so far (with `ServeOptions::capture_stderr`;
    /// empty otherwise).
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Changes the server's file size limit while it runs (`None`: unlimited, "space
    /// returns"), and for its restarts.
    pub fn set_file_size_limit(&mut self, bytes: Option<u64>) {
        self.options.file_size_limit = bytes;
        if let Some(pid) = self.pid() {
            crate::resources::set_file_size_limit(pid, bytes);
        }
    }

    /// The directory of the server's SQLite file (`hookd.db`, with `-wal` and `-shm`).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILL: no shutdown, no flushing, exactly like a crash.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// SIGTERM, then waits for the process to exit (at most `patience`); its exit code.
    pub async fn terminate(&mut self, patience: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = child.id()?;
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        assert!(
            sent.is_ok_and(|s| s.success()),
            "cannot send SIGTERM to {pid}"
        );
        match tokio::time::timeout(patience, child.wait()).await {
            Ok(Ok(status)) => status.code(),
            other => panic!("hookd did not exit within {patience:?} of SIGTERM: {other:?}"),
        }
    }

    /// Starts the server again on the same database (after [`Hookd::kill`] or
    /// [`Hookd::terminate`]).
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    pub async fn request_as(
        &self,
        credentials: Option<&Credentials>,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        if let Some(c) = credentials {
            request = request.basic_auth(&c.client_id, Some(&c.client_secret));
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request_as(Some(&self.credentials), reqwest::Method::GET, path, None)
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request_as(
            Some(&self.credentials),
            reqwest::Method::POST,
            path,
            Some(body),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request_as(
            Some(&self.credentials),
            reqwest::Method::PATCH,
            path,
            Some(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request_as(Some(&self.credentials), reqwest::Method::DELETE, path, None)
            .await
    }

    /// Sends raw bytes (for malformed input tests).
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .basic_auth(
                &self.credentials.client_id,
                Some(&self.credentials.client_secret),
            )
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let json = response.json().await.unwrap_or(Value::Null);
        (status, json)
    }

    /// Registers a webhook and returns it (with its secret); panics unless 201.
    pub async fn create_webhook(&self, body: Value) -> Value {
        let (status, webhook) = self.post("/v2/webhooks", &body).await;
        assert_eq!(status, 201, "creating a webhook: {webhook}");
        webhook
    }

    /// Publishes an event and returns its id; panics unless 202.
    pub async fn publish(&self, event_type: &str, data: Value) -> String {
        let (status, accepted) = self
            .post(
                "/v2/events",
                &serde_json::json!({ "type": event_type, "data": data }),
            )
            .await;
        assert_eq!(status, 202, "publishing: {accepted}");
        accepted["id"].as_str().unwrap_or_default().to_owned()
    }

    /// Polls the event until `done` holds for its JSON (with `deliveries`), or panics.
    pub async fn wait_for_event(&self, event_id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (status, event) = self.get(&format!("/v2/events/{event_id}")).await;
            assert_eq!(status, 200, "{event}");
            if done(&event) {
                return event;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "event never reached the expected state: {event}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn attempts(&self, event_id: &str) -> Vec<Value> {
        let (status, attempts) = self.get(&format!("/v2/events/{event_id}/attempts")).await;
        assert_eq!(status, 200, "{attempts}");
        attempts["data"].as_array().cloned().unwrap_or_default()
    }
}

/// A plain HTTP client for talking to hookd (reqwest is built without a bundled crypto
/// provider, so one is installed first).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => c,
        Err(e) => panic!("cannot build an HTTP client: {e}"),
    }
}

/// The state of the first delivery of an event, as `GET /v2/events/{id}` shows it
/// (panics if `state` and its alias `status` disagree).
pub fn delivery_status(event: &Value) -> &str {
    let delivery = &event["deliveries"][0];
    assert_eq!(delivery["state"], delivery["status"], "{delivery}");
    delivery["state"].as_str().unwrap_or("")
}
