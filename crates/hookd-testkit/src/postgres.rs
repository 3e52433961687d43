//! PostgreSQL for tests: a fresh schema per test in the database named by
//! `HOOKD_TEST_POSTGRES_URL`, dropped again when the test is done.
//!
//! Without that variable PostgreSQL variants of tests are skipped (with a note), except
//! under `CI=true`, where they must run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::{Client, NoTls};

/// The environment variable naming the PostgreSQL server (and database) tests may use.
pub const URL_VARIABLE: &str = "HOOKD_TEST_POSTGRES_URL";

const PREFIX: &str = "hookd_t_";
/// Schemas older than this were left by a run that was killed (no test lasts this long).
const STALE_MS: u128 = 3_600_000;

/// The configured server URL. Unset: `None` after printing that `test` is skipped, or a
/// panic under `CI=true` (so CI cannot pass by skipping).
pub fn server_url(test: &str) -> Option<String> {
    match configured_url() {
        Some(url) => Some(url),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: {URL_VARIABLE} is not set; CI must run the PostgreSQL variants")
        }
        None => {
            eprintln!("skipping {test}: {URL_VARIABLE} is not set");
            None
        }
    }
}

fn configured_url() -> Option<String> {
    std::env::var(URL_VARIABLE)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Whether the PostgreSQL variant of `test` runs (see [`server_url`]).
pub fn enabled(test: &str) -> bool {
    server_url(test).is_some()
}

/// A uniquely named, empty schema; [`TestSchema::url`] connects with it as the
/// `search_path`, so hookd creates its tables inside. Dropped (`CASCADE`) on drop.
pub struct TestSchema {
    name: String,
    server_url: String,
    url: String,
}

impl TestSchema {
    /// Creates a schema on the server of `HOOKD_TEST_POSTGRES_URL` (panics if unset).
    pub async fn create() -> TestSchema {
        let Some(server_url) = configured_url() else {
            panic!("{URL_VARIABLE} is not set (check `postgres::enabled` first)")
        };
        TestSchema::create_on(&server_url).await
    }

    /// Creates a schema in the database of `server_url`.
    pub async fn create_on(server_url: &str) -> TestSchema {
        let mut random = [0u8; 6];
        if let Err(e) = getrandom::fill(&mut random) {
            panic!("no random bytes: {e}");
        }
        let millis = now_ms();
        // The time first, so schemas leaked by killed test runs can be told apart by age.
        let name = format!("{PREFIX}{millis:x}_{}", hex::encode(random));
        let client = connect(server_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {URL_VARIABLE} ({server_url}): {e}"));
        static SWEPT: AtomicBool = AtomicBool::new(false);
        if !SWEPT.swap(true, Ordering::Relaxed) {
            drop_stale_schemas(&client, millis).await;
        }
        if let Err(e) = client
            .batch_execute(&format!("CREATE SCHEMA \"{name}\""))
            .await
        {
            panic!("cannot create schema {name}: {e}");
        }
        TestSchema {
            url: with_search_path(server_url, &name),
            name,
            server_url: server_url.to_owned(),
        }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `postgres://` URL whose sessions work in this schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every row of every table in the schema, as PostgreSQL's text form, one per line
    /// (for checking what is, or is not, stored).
    pub async fn all_rows_as_text(&self) -> String {
        let client = connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url));
        let tables = client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                &[&self.name],
            )
            .await
            .unwrap_or_else(|e| panic!("cannot list the tables of {}: {e}", self.name));
        let mut text = String::new();
        for table in tables {
            let table: String = table.get(0);
            let sql = format!("SELECT t::text FROM \"{}\".\"{table}\" t", self.name);
            let rows = client
                .query(&sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            for row in rows {
                text.push_str(row.get::<_, &str>(0));
                text.push('\n');
            }
        }
        text
    }
}

impl Drop for TestSchema {
    /// Best effort, and never inside the caller's runtime (which may be the one running
    /// an async test): a thread of its own with its own runtime, waited for with a limit.
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        // A lock timeout, so a session of a killed server that still holds locks cannot
        // hang the drop.
        let sql = format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.name
        );
        let (done, result) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("drop-test-schema".to_owned())
            .spawn(move || {
                let outcome = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(async {
                        let client = connect(&server_url).await?;
                        client.batch_execute(&sql).await
                    }),
                    Err(e) => {
                        let _ = done.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = done.send(outcome.map_err(|e| e.to_string()));
            });
        let outcome = match spawned {
            Ok(_) => result
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| Err(e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = outcome {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Best effort: drops the schemas of test runs that were killed before their drop ran.
async fn drop_stale_schemas(client: &Client, now_ms: u128) {
    let Ok(rows) = client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)",
            &[&PREFIX],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let created = name[PREFIX.len()..]
            .split('_')
            .next()
            .and_then(|hex| u128::from_str_radix(hex, 16).ok());
        if created.is_some_and(|created| created + STALE_MS < now_ms) {
            let sql = format!("SET lock_timeout = '1s'; DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
            let _ = client.batch_execute(&sql).await;
        }
    }
}

/// A connection whose driver runs on the current runtime until the client is dropped.
async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `url` with `search_path` set to `schema` through the `options` parameter.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let separator = match url.find('?') {
        None => "?",
        Some(at) if at + 1 == url.len() || url.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

#[cfg(test)]
mod tests {
    use super::with_search_path;

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
    }
}
