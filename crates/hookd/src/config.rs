//! Configuration: flags and environment (via clap) over an optional TOML file over
//! defaults, checked once into a [`Config`] with one-line errors.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use hookd_core::schedule::RetrySchedule;
use hookd_core::target::TargetPolicy;
use hookd_core::time::unix_ms;
use hookd_store::Store;
use hookd_store::postgres::PostgresStore;
use hookd_store::sqlite::SqliteStore;
use serde::Deserialize;

use crate::cli::{ServeArgs, StoreArgs};

pub(crate) const DEFAULT_DATABASE: &str = "sqlite://./hookd-data/hookd.db";

/// The settings a `hookd.toml` may carry; the same names as the flags, with `_`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    database: Option<String>,
    // Each key also in its flag's spelling, so a file can be written either way.
    #[serde(alias = "retry-schedule")]
    retry_schedule: Option<String>,
    #[serde(alias = "attempt-timeout")]
    attempt_timeout: Option<String>,
    #[serde(alias = "allow-private-targets")]
    allow_private_targets: Option<bool>,
    #[serde(alias = "allow-http")]
    allow_http: Option<bool>,
    #[serde(alias = "max-in-flight")]
    max_in_flight: Option<usize>,
    #[serde(alias = "max-in-flight-per-webhook")]
    max_in_flight_per_webhook: Option<usize>,
    #[serde(alias = "poll-interval")]
    poll_interval: Option<String>,
    retention: Option<String>,
    #[serde(alias = "disable-after")]
    disable_after: Option<String>,
}

fn read_file(path: Option<&Path>) -> anyhow::Result<FileSettings> {
    let Some(path) = path else {
        return Ok(FileSettings::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
}

/// Where the data lives.
pub(crate) enum Database {
    Sqlite(std::path::PathBuf),
    /// A libpq-style URL, passed to the PostgreSQL backend as given.
    Postgres(String),
}

impl Database {
    /// Opens the store. `serving` takes what only a serving process may hold (the SQLite
    /// file's serve lock, which also releases a killed run's leases).
    pub(crate) async fn open(&self, serving: bool) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Database::Sqlite(path) => {
                let store = if serving {
                    SqliteStore::open_for_serving(path, unix_ms(SystemTime::now()))
                } else {
                    SqliteStore::open(path)
                };
                Arc::new(store.with_context(|| format!("opening {}", path.display()))?)
            }
            Database::Postgres(url) => Arc::new(
                PostgresStore::connect(url)
                    .await
                    .with_context(|| format!("connecting to {}", redact(url)))?,
            ),
        })
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

pub(crate) struct Config {
    pub(crate) listen: SocketAddr,
    pub(crate) database: Database,
    pub(crate) schedule: RetrySchedule,
    pub(crate) attempt_timeout: Duration,
    pub(crate) target_policy: TargetPolicy,
    pub(crate) max_in_flight: usize,
    pub(crate) max_in_flight_per_webhook: usize,
    pub(crate) poll_interval: Duration,
    /// `None`: `off`, nothing is purged.
    pub(crate) retention: Option<Duration>,
    pub(crate) disable_after: Option<Duration>,
}

pub(crate) fn database(store: &StoreArgs) -> anyhow::Result<Database> {
    let file = read_file(store.config.as_deref())?;
    parse_database(
        store
            .database
            .clone()
            .or(file.database)
            .as_deref()
            .unwrap_or(DEFAULT_DATABASE),
    )
}

fn parse_database(url: &str) -> anyhow::Result<Database> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres(url.to_owned()));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            bail!("database `{url}`: give a file path, e.g. sqlite://./hookd-data/hookd.db");
        }
        return Ok(Database::Sqlite(path.into()));
    }
    bail!("database `{url}` is not supported: use sqlite://PATH or postgres://…")
}

/// Parses a duration setting that must be longer than zero.
fn positive_duration(name: &str, text: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let text = text.unwrap_or_else(|| default.to_owned());
    let duration =
        humantime::parse_duration(&text).map_err(|e| anyhow::anyhow!("{name} `{text}`: {e}"))?;
    if duration.is_zero() {
        bail!("{name} must be longer than 0s");
    }
    Ok(duration)
}

/// A setting that is a duration longer than zero, or `off`.
fn duration_or_off(
    name: &str,
    text: Option<String>,
    default: &str,
    off_means: &str,
) -> anyhow::Result<Option<Duration>> {
    match text {
        Some(text) if text.trim() == "off" => Ok(None),
        text => positive_duration(name, text, default)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{e} (or `off` {off_means})")),
    }
}

impl Config {
    pub(crate) fn from_args(args: &ServeArgs) -> anyhow::Result<Config> {
        let file = read_file(args.store.config.as_deref())?;
        let listen = args
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen.parse().map_err(|_| {
            anyhow::anyhow!("listen `{listen}` is not an address such as 127.0.0.1:8080")
        })?;
        let schedule_text = args.retry_schedule.clone().or(file.retry_schedule);
        let schedule = match schedule_text {
            Some(text) => text
                .parse::<RetrySchedule>()
                .map_err(|e| anyhow::anyhow!("retry-schedule: {e}"))?,
            None => RetrySchedule::seeds(),
        };
        let attempt_timeout = positive_duration(
            "attempt-timeout",
            args.attempt_timeout.clone().or(file.attempt_timeout),
            "30s",
        )?;
        let poll_interval = positive_duration(
            "poll-interval",
            args.poll_interval.clone().or(file.poll_interval),
            "1s",
        )?;
        let retention = duration_or_off(
            "retention",
            args.retention.clone().or(file.retention),
            "30d",
            "to keep everything",
        )?;
        let disable_after = duration_or_off(
            "disable-after",
            args.disable_after.clone().or(file.disable_after),
            "5d",
            "to never disable a failing webhook",
        )?;
        let positive =
            |name: &str, value: Option<usize>, default: usize| -> anyhow::Result<usize> {
                match value.unwrap_or(default) {
                    0 => bail!("{name} must be at least 1"),
                    n => Ok(n),
                }
            };
        let engine_defaults = hookd_engine::EngineConfig::default();
        Ok(Config {
            listen,
            database: parse_database(
                args.store
                    .database
                    .clone()
                    .or(file.database)
                    .as_deref()
                    .unwrap_or(DEFAULT_DATABASE),
            )?,
            schedule,
            attempt_timeout,
            target_policy: TargetPolicy {
                allow_private_targets: args
                    .allow_private_targets
                    .or(file.allow_private_targets)
                    .unwrap_or(false),
                allow_http: args.allow_http.or(file.allow_http).unwrap_or(false),
            },
            max_in_flight: positive(
                "max-in-flight",
                args.max_in_flight.or(file.max_in_flight),
                engine_defaults.max_in_flight,
            )?,
            max_in_flight_per_webhook: positive(
                "max-in-flight-per-webhook",
                args.max_in_flight_per_webhook
                    .or(file.max_in_flight_per_webhook),
                engine_defaults.max_in_flight_per_webhook,
            )?,
            poll_interval,
            retention,
            disable_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec() {
        let config = Config::from_args(&ServeArgs::default()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert!(
            matches!(&config.database, Database::Sqlite(p) if p.as_path() == Path::new("./hookd-data/hookd.db"))
        );
        assert_eq!(config.schedule, RetrySchedule::seeds());
        assert_eq!(config.attempt_timeout, Duration::from_secs(30));
        assert_eq!(
            config.retention,
            Some(Duration::from_secs(30 * 24 * 60 * 60))
        );
        assert_eq!(
            config.disable_after,
            Some(Duration::from_secs(5 * 24 * 60 * 60))
        );
        assert_eq!(
            config.target_policy,
            TargetPolicy {
                allow_private_targets: false,
                allow_http: false
            }
        );
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("hookd.toml");
        std::fs::write(
            &file,
            "attempt_timeout = \"10s\"\nallow-http = true\nretry_schedule = \"0s,1s\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let args = ServeArgs {
            store: StoreArgs {
                database: None,
                config: Some(file),
            },
            attempt_timeout: Some("2s".into()),
            ..ServeArgs::default()
        };
        let config = Config::from_args(&args).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(config.attempt_timeout, Duration::from_secs(2));
        assert!(config.target_policy.allow_http);
        assert_eq!(config.schedule.max_attempts(), 2);
    }

    #[test]
    fn retention_takes_a_duration_or_off() {
        let with = |text: &str| {
            Config::from_args(&ServeArgs {
                retention: Some(text.to_owned()),
                ..ServeArgs::default()
            })
            .map(|c| c.retention)
        };
        assert_eq!(
            with("7d").ok(),
            Some(Some(Duration::from_secs(7 * 24 * 3600)))
        );
        assert_eq!(with("2s").ok(), Some(Some(Duration::from_secs(2))));
        assert_eq!(with("off").ok(), Some(None));
        for bad in ["0s", "soon", "0"] {
            let error = with(bad)
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(error.starts_with("retention"), "{bad}: {error}");
        }
    }

    #[test]
    fn disable_after_takes_a_duration_or_off() {
        let with = |text: &str| {
            Config::from_args(&ServeArgs {
                disable_after: Some(text.to_owned()),
                ..ServeArgs::default()
            })
            .map(|c| c.disable_after)
        };
        assert_eq!(with("1h").ok(), Some(Some(Duration::from_secs(3600))));
        assert_eq!(with("off").ok(), Some(None));
        let error = with("0s")
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(error.starts_with("disable-after"), "{error}");
    }
}
