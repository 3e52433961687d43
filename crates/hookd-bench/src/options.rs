//! What a benchmark run is asked to do: which scenarios, on which database, for how long.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

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
}

impl Scenario {
    /// Every scenario, in the order they run (the ceiling first, so others can be
    /// compared to it).
    pub const ALL: [Scenario; 8] = [
        Scenario::Ceiling,
        Scenario::Ingest,
        Scenario::Throughput,
        Scenario::Latency,
        Scenario::Fanout,
        Scenario::Backlog,
        Scenario::Isolation,
        Scenario::RetryStorm,
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
}

impl DatabaseChoice {
    /// `None` or `sqlite://` for the default; `sqlite://DIR` for files under `DIR`.
    /// PostgreSQL is refused until hookd has that backend.
    pub fn parse(url: Option<&str>) -> Result<DatabaseChoice, BenchError> {
        let Some(url) = url else {
            return Ok(DatabaseChoice::TempSqlite);
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(BenchError::Usage(format!(
                "database `{url}`: hookd has no PostgreSQL backend yet, so it cannot be benchmarked; use sqlite://DIR or leave --database out"
            )));
        }
        match url.strip_prefix("sqlite://") {
            Some("") => Ok(DatabaseChoice::TempSqlite),
            Some(dir) => Ok(DatabaseChoice::SqliteUnder(PathBuf::from(dir))),
            None => Err(BenchError::Usage(format!(
                "database `{url}` is not supported: use sqlite://DIR (each scenario gets a fresh file in a new directory under DIR)"
            ))),
        }
    }

    /// The directory under which scenario directories are made.
    pub(crate) fn parent_dir(&self) -> PathBuf {
        match self {
            DatabaseChoice::TempSqlite => std::env::temp_dir(),
            DatabaseChoice::SqliteUnder(dir) => dir.clone(),
        }
    }
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
    }

    #[test]
    fn postgres_is_refused_for_now() {
        let refused = DatabaseChoice::parse(Some("postgres://u@h/db"));
        assert!(matches!(refused, Err(BenchError::Usage(m)) if m.contains("PostgreSQL")));
        assert_eq!(
            DatabaseChoice::parse(Some("sqlite:///var/tmp")).ok(),
            Some(DatabaseChoice::SqliteUnder(PathBuf::from("/var/tmp")))
        );
        assert_eq!(
            DatabaseChoice::parse(None).ok(),
            Some(DatabaseChoice::TempSqlite)
        );
    }
}
