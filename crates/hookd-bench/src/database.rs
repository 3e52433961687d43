//! Where each in-process hookd keeps its data, and the clean-up afterwards.
//!
//! SQLite: every store is a fresh file in a new directory, made and removed by the hookd
//! that uses it (see `hookd.rs`). PostgreSQL: every store is a fresh schema
//! (`hookd_bench_<unix ms, hex>_<random>`) in the chosen database, created here on a
//! connection of the benchmark's own, selected through the URL's `search_path`, and
//! dropped (`CASCADE`) when the scenario that made it is over — whether it went well or
//! not. A schema left behind by a run that was killed can be told by its name and age.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::config::Host;
use tokio_postgres::{Client, NoTls};

use crate::options::redact;
use crate::system;
use crate::{BenchError, DatabaseChoice};

/// Every schema the benchmark makes starts with this.
pub const SCHEMA_PREFIX: &str = "hookd_bench_";

/// How long a `DROP SCHEMA` waits for locks held by sessions that did not end (a hookd
/// that would not shut down) before giving up.
const DROP_LOCK_TIMEOUT: &str = "10s";

/// Where one store lives.
#[derive(Clone, Debug)]
pub(crate) enum StoreLocation {
    /// A fresh SQLite file in a new directory under this one.
    SqliteUnder(PathBuf),
    /// A PostgreSQL URL whose `search_path` is a fresh, empty schema.
    Postgres { url: String },
}

enum Backend {
    Sqlite {
        parent_dir: PathBuf,
    },
    Postgres {
        server_url: String,
        /// The postmaster's process id, when the server runs on this machine and its
        /// processes can be read in `/proc`.
        postmaster: Option<u32>,
    },
}

/// The run's database: hands out a fresh location per store and removes what it made.
pub(crate) struct Databases {
    backend: Backend,
    /// The `database:` line of the report.
    description: String,
    /// Schemas made and not yet dropped.
    pending: Mutex<Vec<String>>,
    /// Every schema made during the run, in order.
    made: Mutex<Vec<String>>,
}

impl Databases {
    /// Checks that the database can be used (the directory exists; the server answers)
    /// and reads the facts the report shows about it.
    pub(crate) async fn open(choice: &DatabaseChoice) -> Result<Databases, BenchError> {
        let (backend, description) = match choice {
            DatabaseChoice::TempSqlite => sqlite(std::env::temp_dir())?,
            DatabaseChoice::SqliteUnder(dir) => sqlite(dir.clone())?,
            DatabaseChoice::Postgres(url) => postgres(url).await?,
        };
        Ok(Databases {
            backend,
            description,
            pending: Mutex::new(Vec::new()),
            made: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    /// The local PostgreSQL server's postmaster, whose process tree's CPU time counts as
    /// the server's.
    pub(crate) fn postmaster(&self) -> Option<u32> {
        match self.backend {
            Backend::Postgres { postmaster, .. } => postmaster,
            Backend::Sqlite { .. } => None,
        }
    }

    /// Every schema made so far (all dropped again, unless a note says otherwise).
    pub(crate) fn schemas_made(&self) -> Vec<String> {
        self.made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A place for one new, empty store.
    pub(crate) async fn fresh_location(&self) -> Result<StoreLocation, BenchError> {
        match &self.backend {
            Backend::Sqlite { parent_dir } => Ok(StoreLocation::SqliteUnder(parent_dir.clone())),
            Backend::Postgres { server_url, .. } => {
                let name = schema_name()?;
                // Recorded first: if the connection breaks after the server made it,
                // the clean-up still tries (`IF EXISTS`).
                self.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(name.clone());
                self.made
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(name.clone());
                let client = connect(server_url).await?;
                client
                    .batch_execute(&format!("CREATE SCHEMA \"{name}\""))
                    .await
                    .map_err(|e| {
                        BenchError::Database(format!("creating schema {name}: {}", pg_error(&e)))
                    })?;
                Ok(StoreLocation::Postgres {
                    url: with_search_path(server_url, &name),
                })
            }
        }
    }

    /// Drops every schema made since the last call. Call it only once the hookds using
    /// them are shut down. Returns what could not be dropped.
    pub(crate) async fn drop_schemas(&self) -> Vec<String> {
        let Backend::Postgres { server_url, .. } = &self.backend else {
            return Vec::new();
        };
        let names =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if names.is_empty() {
            return Vec::new();
        }
        let mut problems = Vec::new();
        let client = match connect(server_url).await {
            Ok(c) => c,
            Err(e) => {
                let problems = vec![format!(
                    "could not drop schemas {}: {e}; drop them by hand",
                    names.join(", ")
                )];
                self.keep_pending(names);
                return problems;
            }
        };
        let mut left = Vec::new();
        for name in names {
            if let Err(e) = client.batch_execute(&drop_statement(&name)).await {
                problems.push(format!(
                    "could not drop schema {name}: {}; drop it by hand",
                    pg_error(&e)
                ));
                left.push(name);
            }
        }
        self.keep_pending(left);
        problems
    }

    fn keep_pending(&self, names: Vec<String>) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(names);
    }
}

impl Drop for Databases {
    /// The last resort (a panic, or an error between scenarios): drops what is left,
    /// outside any async runtime, on a thread of its own, waited for with a limit.
    fn drop(&mut self) {
        let Backend::Postgres { server_url, .. } = &self.backend else {
            return;
        };
        let names = std::mem::take(
            self.pending
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if names.is_empty() {
            return;
        }
        let server_url = server_url.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let listed = names.join(", ");
        let spawned = std::thread::Builder::new()
            .name("bench-drop-schemas".to_owned())
            .spawn(move || {
                let outcome = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|runtime| {
                        runtime.block_on(async {
                            let client = connect(&server_url).await.map_err(|e| e.to_string())?;
                            for name in &names {
                                client
                                    .batch_execute(&drop_statement(name))
                                    .await
                                    .map_err(|e| pg_error(&e))?;
                            }
                            Ok(())
                        })
                    });
                let _ = done_tx.send(outcome);
            });
        let outcome = match spawned {
            Ok(_) => done_rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| Err(e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = outcome {
            tracing::warn!("could not drop benchmark schemas {listed}: {e}; drop them by hand");
        }
    }
}

fn sqlite(parent_dir: PathBuf) -> Result<(Backend, String), BenchError> {
    if !parent_dir.is_dir() {
        return Err(BenchError::Usage(format!(
            "database directory {} does not exist",
            parent_dir.display()
        )));
    }
    let filesystem = system::filesystem_of(&parent_dir).unwrap_or_else(|| "unknown".to_owned());
    let description = format!(
        "SQLite (WAL, synchronous=FULL) on {filesystem}, under {}",
        parent_dir.display()
    );
    Ok((Backend::Sqlite { parent_dir }, description))
}

async fn postgres(url: &str) -> Result<(Backend, String), BenchError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| BenchError::Usage(format!("database `{}`: {e}", redact(url))))?;
    let client = connect(url).await?;
    let show = |setting: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(&format!("SHOW {setting}"), &[])
                .await
                .and_then(|row| row.try_get::<_, String>(0))
                .map_err(|e| {
                    BenchError::Database(format!(
                        "SHOW {setting} on {}: {}",
                        redact(url),
                        pg_error(&e)
                    ))
                })
        }
    };
    let version = show("server_version").await?;
    let fsync = show("fsync").await?;
    let synchronous_commit = show("synchronous_commit").await?;
    let backend_pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| BenchError::Database(format!("pg_backend_pid(): {}", pg_error(&e))))?;
    let postmaster = if is_local(&config) {
        u32::try_from(backend_pid)
            .ok()
            .and_then(system::postgres_postmaster_of)
    } else {
        None
    };
    let server_cpu = match postmaster {
        Some(pid) => format!(
            "server CPU read from /proc (postmaster {pid} and its processes; other clients' work included)"
        ),
        None => "server CPU not measured (the server's processes are not visible on this machine)"
            .to_owned(),
    };
    let description = format!(
        "PostgreSQL {version} at {} (fsync={fsync}, synchronous_commit={synchronous_commit}); a fresh schema {SCHEMA_PREFIX}… per store, dropped after each scenario; {server_cpu}",
        server_of(&config),
    );
    Ok((
        Backend::Postgres {
            server_url: url.to_owned(),
            postmaster,
        },
        description,
    ))
}

/// `host:port, database D, user U`, without the password.
fn server_of(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    let user = config.get_user().unwrap_or("?");
    let database = config.get_dbname().unwrap_or(user);
    format!("{hosts}, database {database}, user {user}")
}

/// Whether every host of the URL is this machine (loopback or a Unix socket), so a
/// backend's process id means a process here.
fn is_local(config: &tokio_postgres::Config) -> bool {
    config.get_hosts().iter().all(|host| match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    })
}

/// A new, unique schema name: the time first (leftovers sort by age), then randomness.
fn schema_name() -> Result<String, BenchError> {
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).map_err(|e| {
        BenchError::Other(format!("the system random number generator failed: {e}"))
    })?;
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{SCHEMA_PREFIX}{millis:x}_{random}"))
}

fn drop_statement(schema: &str) -> String {
    format!("SET lock_timeout = '{DROP_LOCK_TIMEOUT}'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")
}

/// `url` with its sessions' `search_path` set to `schema` (libpq `options`).
pub(crate) fn with_search_path(url: &str, schema: &str) -> String {
    let separator = match url.find('?') {
        None => "?",
        Some(at) if at + 1 == url.len() || url.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

/// A connection of the benchmark's own (on the current runtime, which is the
/// benchmark's, so its CPU does not count as hookd's).
async fn connect(url: &str) -> Result<Client, BenchError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(|e| {
        BenchError::Database(format!(
            "cannot connect to {}: {}",
            redact(url),
            pg_error(&e)
        ))
    })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The server's message when there is one (tokio-postgres's `Display` says only "db
/// error"), else the client-side error.
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_is_appended_as_a_query_parameter() {
        let option = "options=-c%20search_path%3Ds";
        for (url, expected) in [
            ("postgres://h/db", format!("postgres://h/db?{option}")),
            ("postgres://h/db?", format!("postgres://h/db?{option}")),
            (
                "postgres://h/db?sslmode=disable",
                format!("postgres://h/db?sslmode=disable&{option}"),
            ),
            (
                "postgres://h/db?a=1&",
                format!("postgres://h/db?a=1&{option}"),
            ),
        ] {
            assert_eq!(with_search_path(url, "s"), expected);
        }
        let parsed: Result<tokio_postgres::Config, _> =
            with_search_path("postgres://u@h/db", "hookd_bench_1_ab").parse();
        assert_eq!(
            parsed.ok().and_then(|c| c.get_options().map(str::to_owned)),
            Some("-c search_path=hookd_bench_1_ab".to_owned())
        );
    }

    #[test]
    fn schema_names_are_unique_plain_identifiers() {
        let a = schema_name().unwrap_or_default();
        let b = schema_name().unwrap_or_default();
        assert!(a.starts_with(SCHEMA_PREFIX), "{a}");
        assert_ne!(a, b);
        assert!(a.len() <= 63, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{a}"
        );
    }

    #[test]
    fn only_loopback_and_sockets_are_local() {
        let local = |url: &str| url.parse().is_ok_and(|c| is_local(&c));
        assert!(local("postgres://u@127.0.0.1:5432/db"));
        assert!(local("postgres://u@localhost/db"));
        assert!(local("postgres://u@[::1]/db"));
        assert!(local("postgres:///db?host=/run/postgresql"));
        assert!(!local("postgres://u@db.example.com/db"));
        assert!(!local("postgres://u@10.0.0.5/db"));
    }

    #[test]
    fn the_server_is_described_without_password() {
        let config: tokio_postgres::Config = "postgres://u:secret@127.0.0.1:5433/test"
            .parse()
            .unwrap_or_default();
        let described = server_of(&config);
        assert_eq!(described, "127.0.0.1:5433, database test, user u");
    }
}
