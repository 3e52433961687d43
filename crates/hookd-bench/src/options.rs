//! What a benchmark run is asked to do: which scenarios, on which database, for how long.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use hookd_store::sealing::SecretKeys;

use crate::BenchError;

/// One measured situation; each runs against its own fresh hookd and store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    Ceiling,
    Ingest,
    Throughput,
    Latency,
    Fanout,
    Backlog,
    Isolation,
    RetryStorm,
    /// Two hookd nodes on one PostgreSQL schema against one node (skipped on SQLite).
    Cluster,
}

impl Scenario {
    /// Every scenario, in the order they run (the ceiling first, so others can be
    /// compared to it).
    pub const ALL: [Scenario; 9] = [
        Scenario::Ceiling,
        Scenario::Ingest,
        Scenario::Throughput,
        Scenario::Latency,
        Scenario::Fanout,
        Scenario::Backlog,
        Scenario::Isolation,
        Scenario::RetryStorm,
        Scenario::Cluster,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Ceiling => "ceiling",
            Scenario::Ingest => "ingest",
            Scenario::Throughput => "throughput",
            Scenario::Latency => "latency",
            Scenario::Fanout => "fanout",
            Scenario::Backlog => "backlog",
            Scenario::Isolation => "isolation",
            Scenario::RetryStorm => "retry-storm",
            Scenario::Cluster => "cluster",
        }
    }

    /// Parses names given one by one or comma-separated; empty means all. The result is
    /// in run order, without repeats.
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<Scenario>, BenchError> {
        let mut chosen = Vec::new();
        for item in items {
            for name in item.as_ref().split(',').map(str::trim) {
                if name.is_empty() {
                    continue;
                }
                if name == "all" {
                    chosen.extend(Scenario::ALL);
                } else {
                    chosen.push(name.parse::<Scenario>()?);
                }
            }
        }
        if chosen.is_empty() {
            chosen.extend(Scenario::ALL);
        }
        chosen.sort();
        chosen.dedup();
        Ok(chosen)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = BenchError;

    fn from_str(name: &str) -> Result<Scenario, BenchError> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                BenchError::Usage(format!(
                    "unknown scenario `{name}`; known: {}",
                    known.join(", ")
                ))
            })
    }
}

/// Where each scenario's store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseChoice {
    /// A fresh SQLite file in a new directory under the system's temporary directory.
    TempSqlite,
    /// A fresh SQLite file in a new directory under this one (to choose the disk).
    SqliteUnder(PathBuf),
    /// A PostgreSQL database (libpq URL, as given): each store is a fresh schema in it,
    /// made for the scenario and dropped (`CASCADE`) after it.
    Postgres(String),
}

impl DatabaseChoice {
    /// `None` or `sqlite://` for the default; `sqlite://DIR` for files under `DIR`;
    /// `postgres://…` or `postgresql://…` for fresh schemas in that database.
    pub fn parse(url: Option<&str>) -> Result<DatabaseChoice, BenchError> {
        let Some(url) = url else {
            return Ok(DatabaseChoice::TempSqlite);
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let config: tokio_postgres::Config = url
                .parse()
                .map_err(|e| BenchError::Usage(format!("database `{}`: {e}", redact(url))))?;
            // The bench selects each store's schema through `options` (search_path); a
            // second `options` parameter would silently replace the caller's.
            if config.get_options().is_some() {
                return Err(BenchError::Usage(format!(
                    "database `{}`: leave out `options`; the bench sets the search_path of each fresh schema itself",
                    redact(url)
                )));
            }
            return Ok(DatabaseChoice::Postgres(url.to_owned()));
        }
        match url.strip_prefix("sqlite://") {
            Some("") => Ok(DatabaseChoice::TempSqlite),
            Some(dir) => Ok(DatabaseChoice::SqliteUnder(PathBuf::from(dir))),
            None => Err(BenchError::Usage(format!(
                "database `{url}` is not supported: use sqlite://DIR (each scenario gets a fresh file in a new directory under DIR) or postgres://… (each scenario gets fresh schemas in that database)"
            ))),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseChoice::Postgres(_))
    }
}

/// A libpq URL without its password, for messages: the password of `user:password@`
/// and a `password=` parameter are replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = rest_start..rest_start + at;
            if let Some(colon) = out[userinfo.clone()].find(':') {
                out.replace_range(rest_start + colon + 1..userinfo.end, "***");
            }
        }
    }
    if let Some(query_start) = out.find('?') {
        let (head, query) = out.split_at(query_start + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key == "password" => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

/// Everything a run needs. [`BenchOptions::new`] gives the defaults of `hookd bench`.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub scenarios: Vec<Scenario>,
    pub database: DatabaseChoice,
    /// How long each timed phase publishes.
    pub duration: Duration,
    /// Deliveries queued in the `backlog` scenario.
    pub backlog_size: u64,
    /// Keep-alive connections of the load generator.
    pub connections: usize,
    /// The version printed in the report (the binary's, not this crate's).
    pub hookd_version: String,
    /// What every in-process hookd seals webhook secrets with (none by default).
    pub secret_keys: SecretKeys,
}

impl BenchOptions {
    pub fn new(hookd_version: impl Into<String>) -> BenchOptions {
        BenchOptions {
            scenarios: Scenario::ALL.to_vec(),
            database: DatabaseChoice::TempSqlite,
            duration: Duration::from_secs(5),
            backlog_size: 1_000_000,
            connections: 64,
            hookd_version: hookd_version.into(),
            secret_keys: SecretKeys::none(),
        }
    }

    pub(crate) fn check(&self) -> Result<(), BenchError> {
        if self.duration < Duration::from_millis(100) {
            return Err(BenchError::Usage(
                "--duration must be at least 100ms".to_owned(),
            ));
        }
        if self.duration > Duration::from_secs(3600) {
            return Err(BenchError::Usage(
                "--duration must be at most 1h".to_owned(),
            ));
        }
        if !(1..=4096).contains(&self.connections) {
            return Err(BenchError::Usage(
                "--connections must be 1 to 4096".to_owned(),
            ));
        }
        if !(1..=100_000_000).contains(&self.backlog_size) {
            return Err(BenchError::Usage(
                "--backlog-size must be 1 to 100000000".to_owned(),
            ));
        }
        if self.scenarios.is_empty() {
            return Err(BenchError::Usage("no scenario chosen".to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_lists_accept_commas_repeats_and_all() {
        let parsed = Scenario::parse_list(&["retry-storm,ceiling", "ceiling"]);
        assert_eq!(
            parsed.ok(),
            Some(vec![Scenario::Ceiling, Scenario::RetryStorm])
        );
        assert_eq!(
            Scenario::parse_list::<&str>(&[]).ok(),
            Some(Scenario::ALL.to_vec())
        );
        assert!(Scenario::parse_list(&["ceiling,nope"]).is_err());
        // `cluster` is part of all (and skipped on SQLite when it runs).
        assert!(Scenario::ALL.contains(&Scenario::Cluster));
        assert_eq!(
            Scenario::parse_list(&["all"]).ok(),
            Some(Scenario::ALL.to_vec())
        );
        assert_eq!(
            Scenario::parse_list(&["cluster"]).ok(),
            Some(vec![Scenario::Cluster])
        );
    }

    #[test]
    fn database_urls_parse() {
        for url in [
            "postgres://u@h/db",
            "postgresql://u:pw@h:5433/db?sslmode=disable",
        ] {
            assert_eq!(
                DatabaseChoice::parse(Some(url)).ok(),
                Some(DatabaseChoice::Postgres(url.to_owned()))
            );
        }
        let own_options = DatabaseChoice::parse(Some("postgres://u@h/db?options=-c%20a%3Db"));
        assert!(matches!(own_options, Err(BenchError::Usage(m)) if m.contains("options")));
        let bad = DatabaseChoice::parse(Some("postgres://u@h/db?nonsense=1"));
        assert!(matches!(bad, Err(BenchError::Usage(_))));
        assert!(matches!(
            DatabaseChoice::parse(Some("mysql://h/db")),
            Err(BenchError::Usage(_))
        ));
        assert_eq!(
            DatabaseChoice::parse(Some("sqlite:///var/tmp")).ok(),
            Some(DatabaseChoice::SqliteUnder(PathBuf::from("/var/tmp")))
        );
        assert_eq!(
            DatabaseChoice::parse(None).ok(),
            Some(DatabaseChoice::TempSqlite)
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db?password=also&sslmode=disable"),
            "postgres://u:***@h:5432/db?password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgres:///db?host=/run/pg"),
            "postgres:///db?host=/run/pg"
        );
    }
}
