//! Configuration: flags and environment (via clap) over an optional TOML file over
//! defaults, checked once into a [`Config`] with one-line errors.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use hookd_api::RateLimit;
use hookd_core::schedule::RetrySchedule;
use hookd_core::target::TargetPolicy;
use hookd_core::time::unix_ms;
use hookd_store::postgres::PostgresStore;
use hookd_store::sealing::{EncryptionKey, SealingError, SecretKeys};
use hookd_store::sqlite::SqliteStore;
use hookd_store::{Store, StoreError};
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
    #[serde(alias = "dns-server")]
    dns_server: Option<String>,
    #[serde(alias = "max-in-flight")]
    max_in_flight: Option<usize>,
    #[serde(alias = "max-in-flight-per-webhook")]
    max_in_flight_per_webhook: Option<usize>,
    #[serde(alias = "poll-interval")]
    poll_interval: Option<String>,
    retention: Option<String>,
    #[serde(alias = "disable-after")]
    disable_after: Option<String>,
    #[serde(alias = "rate-limit")]
    rate_limit: Option<String>,
    #[serde(alias = "rate-limit-burst")]
    rate_limit_burst: Option<u32>,
    #[serde(alias = "max-event-bytes")]
    max_event_bytes: Option<usize>,
    // No flag twins: a key on the command line would show in `ps`.
    #[serde(alias = "encryption-key")]
    encryption_key: Option<String>,
    #[serde(alias = "encryption-key-previous")]
    encryption_key_previous: Option<String>,
}

fn read_file(path: Option<&Path>) -> anyhow::Result<FileSettings> {
    let Some(path) = path else {
        return Ok(FileSettings::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
}

/// Where the data lives, and the keys its webhook signing secrets are sealed with.
pub(crate) struct Database {
    pub(crate) location: Location,
    pub(crate) keys: SecretKeys,
}

pub(crate) enum Location {
    Sqlite(std::path::PathBuf),
    /// A libpq-style URL, passed to the PostgreSQL backend as given.
    Postgres(String),
}

impl Database {
    /// Opens the store. `serving` takes what only a serving process may hold (the SQLite
    /// file's serve lock, which also releases a killed run's leases).
    pub(crate) async fn open(&self, serving: bool) -> anyhow::Result<Arc<dyn Store>> {
        let keys = self.keys.clone();
        Ok(match &self.location {
            Location::Sqlite(path) => {
                let store = if serving {
                    SqliteStore::open_for_serving_with_keys(path, unix_ms(SystemTime::now()), keys)
                } else {
                    SqliteStore::open_with_keys(path, keys)
                };
                Arc::new(
                    store
                        .map_err(key_advice)
                        .with_context(|| format!("opening {}", path.display()))?,
                )
            }
            Location::Postgres(url) => Arc::new(
                PostgresStore::connect_with_keys(url, keys)
                    .await
                    .map_err(key_advice)
                    .with_context(|| format!("connecting to {}", redact(url)))?,
            ),
        })
    }
}

/// A store error, with what to set when it is about the encryption keys.
fn key_advice(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Sealing(SealingError::NoKey { .. }) => {
            anyhow::anyhow!("the database holds encrypted secrets; set HOOKD_ENCRYPTION_KEY")
        }
        StoreError::Sealing(SealingError::WrongKey { webhook_id }) => anyhow::anyhow!(
            "HOOKD_ENCRYPTION_KEY does not decrypt the secrets in the database (webhook \
             {webhook_id}): set the key they were encrypted with (during a key rotation, the \
             old one as HOOKD_ENCRYPTION_KEY_PREVIOUS)"
        ),
        other => other.into(),
    }
}

/// The keys from `HOOKD_ENCRYPTION_KEY` / `HOOKD_ENCRYPTION_KEY_PREVIOUS`, or else the
/// file's `encryption_key` / `encryption_key_previous`. Environment and file only: a flag
/// would show the key to anyone who can list processes.
pub(crate) fn secret_keys(
    file_key: Option<String>,
    file_previous: Option<String>,
) -> anyhow::Result<SecretKeys> {
    let setting = |env: &str, file: Option<String>, file_name: &str| {
        std::env::var_os(env)
            .map(|value| (env.to_owned(), value.to_string_lossy().into_owned()))
            .or_else(|| file.map(|value| (file_name.to_owned(), value)))
            .map(|(from, text)| {
                EncryptionKey::parse(&text).map_err(|e| anyhow::anyhow!("{from}: {e}"))
            })
            .transpose()
    };
    let current = setting("HOOKD_ENCRYPTION_KEY", file_key, "encryption_key")?;
    let previous = setting(
        "HOOKD_ENCRYPTION_KEY_PREVIOUS",
        file_previous,
        "encryption_key_previous",
    )?;
    match (current, previous) {
        (Some(current), previous) => Ok(SecretKeys::new(current, previous)),
        (None, None) => Ok(SecretKeys::none()),
        (None, Some(_)) => bail!(
            "HOOKD_ENCRYPTION_KEY_PREVIOUS is set without HOOKD_ENCRYPTION_KEY: a key rotation \
             needs the new key as HOOKD_ENCRYPTION_KEY"
        ),
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
    /// `None`: the system's resolver.
    pub(crate) dns_server: Option<SocketAddr>,
    pub(crate) max_in_flight: usize,
    pub(crate) max_in_flight_per_webhook: usize,
    pub(crate) poll_interval: Duration,
    /// `None`: `off`, nothing is purged.
    pub(crate) retention: Option<Duration>,
    pub(crate) disable_after: Option<Duration>,
    /// Requests per API client; `None`: `off`.
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) max_event_bytes: usize,
}

pub(crate) fn database(store: &StoreArgs) -> anyhow::Result<Database> {
    let file = read_file(store.config.as_deref())?;
    Ok(Database {
        location: parse_database(
            store
                .database
                .clone()
                .or(file.database)
                .as_deref()
                .unwrap_or(DEFAULT_DATABASE),
        )?,
        keys: secret_keys(file.encryption_key, file.encryption_key_previous)?,
    })
}

fn parse_database(url: &str) -> anyhow::Result<Location> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Location::Postgres(url.to_owned()));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            bail!("database `{url}`: give a file path, e.g. sqlite://./hookd-data/hookd.db");
        }
        return Ok(Location::Sqlite(path.into()));
    }
    bail!("database `{url}` is not supported: use sqlite://PATH or postgres://…")
}

/// A DNS server: `IP:PORT`, or an IP alone for port 53.
fn parse_dns_server(text: &str) -> anyhow::Result<SocketAddr> {
    let text = text.trim();
    text.parse::<SocketAddr>()
        .or_else(|_| {
            text.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map_err(|_| {
            anyhow::anyhow!("dns-server `{text}` is not an address such as 10.0.0.2 or 10.0.0.2:53")
        })
}

/// `rate-limit` (`COUNT/UNIT`, or `off`, the default) with `rate-limit-burst` (ignored
/// when the limit is `off`). Off by default: the API's clients are the operator's own
/// systems, and a limit nobody chose would turn a burst of real events into 429s.
fn rate_limit(text: Option<String>, burst: Option<u32>) -> anyhow::Result<Option<RateLimit>> {
    // A burst of 0 is a bad setting even while the limit is off.
    let burst = burst
        .map(|b| {
            NonZeroU32::new(b).ok_or_else(|| anyhow::anyhow!("rate-limit-burst must be at least 1"))
        })
        .transpose()?;
    let limit = match text.as_deref().map(str::trim) {
        Some("off") | None => return Ok(None),
        Some(text) => text
            .parse::<RateLimit>()
            .map_err(|e| anyhow::anyhow!("rate-limit: {e}"))?,
    };
    Ok(Some(match burst {
        None => limit,
        Some(burst) => limit.with_burst(burst),
    }))
}

/// Smallest and largest `max-event-bytes`: below 1 KiB hardly an event fits; above
/// 16 MiB one event would not fit in a batch.
const MAX_EVENT_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=16 * 1024 * 1024;

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
        let max_event_bytes = args
            .max_event_bytes
            .or(file.max_event_bytes)
            .unwrap_or(hookd_api::DEFAULT_MAX_EVENT_BYTES);
        if !MAX_EVENT_BYTES_RANGE.contains(&max_event_bytes) {
            bail!(
                "max-event-bytes must be from {} to {} (got {max_event_bytes})",
                MAX_EVENT_BYTES_RANGE.start(),
                MAX_EVENT_BYTES_RANGE.end()
            );
        }
        let engine_defaults = hookd_engine::EngineConfig::default();
        Ok(Config {
            listen,
            database: Database {
                location: parse_database(
                    args.store
                        .database
                        .clone()
                        .or(file.database)
                        .as_deref()
                        .unwrap_or(DEFAULT_DATABASE),
                )?,
                keys: secret_keys(file.encryption_key, file.encryption_key_previous)?,
            },
            schedule,
            attempt_timeout,
            target_policy: TargetPolicy {
                allow_private_targets: args
                    .allow_private_targets
                    .or(file.allow_private_targets)
                    .unwrap_or(false),
                allow_http: args.allow_http.or(file.allow_http).unwrap_or(false),
            },
            dns_server: args
                .dns_server
                .clone()
                .or(file.dns_server)
                .map(|text| parse_dns_server(&text))
                .transpose()?,
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
            rate_limit: rate_limit(
                args.rate_limit.clone().or(file.rate_limit),
                args.rate_limit_burst.or(file.rate_limit_burst),
            )?,
            max_event_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `args` with a config file holding `text` (written to a temporary directory).
    fn from_file(text: &str, args: ServeArgs) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("hookd.toml");
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        Config::from_args(&ServeArgs {
            store: StoreArgs {
                database: None,
                config: Some(file),
            },
            ..args
        })
    }

    #[test]
    fn defaults_follow_the_spec() {
        let config = Config::from_args(&ServeArgs::default()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert!(
            matches!(&config.database.location, Location::Sqlite(p) if p.as_path() == Path::new("./hookd-data/hookd.db"))
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
    fn encryption_keys_come_from_the_file_and_are_checked() {
        if std::env::var_os("HOOKD_ENCRYPTION_KEY").is_some()
            || std::env::var_os("HOOKD_ENCRYPTION_KEY_PREVIOUS").is_some()
        {
            eprintln!("skipping: the environment sets an encryption key, which wins");
            return;
        }
        let with_file = |text: &str| {
            from_file(text, ServeArgs::default())
                .map(|c| c.database.keys.seals())
                .map_err(|e| format!("{e:#}"))
        };
        let hex_key = "00".repeat(32);
        assert_eq!(with_file(""), Ok(false));
        assert_eq!(
            with_file(&format!("encryption_key = \"{hex_key}\"")),
            Ok(true)
        );
        assert_eq!(
            with_file(&format!(
                "encryption-key = \"{hex_key}\"\nencryption_key_previous = \"{}\"",
                "11".repeat(32)
            )),
            Ok(true)
        );
        let short = with_file("encryption_key = \"c2hvcnQ=\"")
            .err()
            .unwrap_or_default();
        assert!(
            short.starts_with("encryption_key: an encryption key is 32 random bytes"),
            "{short}"
        );
        assert!(!short.contains("c2hvcnQ="), "{short}");
        let alone = with_file(&format!("encryption_key_previous = \"{hex_key}\""))
            .err()
            .unwrap_or_default();
        assert!(
            alone.starts_with("HOOKD_ENCRYPTION_KEY_PREVIOUS is set without"),
            "{alone}"
        );
    }

    #[test]
    fn flags_win_over_the_file() {
        let config = from_file(
            "attempt_timeout = \"10s\"\nallow-http = true\nretry_schedule = \"0s,1s\"\n",
            ServeArgs {
                attempt_timeout: Some("2s".into()),
                ..ServeArgs::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
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

    #[test]
    fn dns_server_takes_an_address_with_or_without_port() {
        let with = |text: &str| {
            Config::from_args(&ServeArgs {
                dns_server: Some(text.to_owned()),
                ..ServeArgs::default()
            })
            .map(|c| c.dns_server)
        };
        assert_eq!(
            with("127.0.0.1:5353").ok().flatten(),
            "127.0.0.1:5353".parse().ok()
        );
        assert_eq!(with("10.0.0.2").ok().flatten(), "10.0.0.2:53".parse().ok());
        assert_eq!(with("[::1]:53").ok().flatten(), "[::1]:53".parse().ok());
        let error = with("dns.example")
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(error.starts_with("dns-server `dns.example`"), "{error}");
        let default = Config::from_args(&ServeArgs::default()).map(|c| c.dns_server);
        assert_eq!(default.ok(), Some(None));
    }

    #[test]
    fn rate_limit_takes_a_rate_a_burst_or_off() {
        let with = |rate: Option<&str>, burst: Option<u32>| {
            Config::from_args(&ServeArgs {
                rate_limit: rate.map(str::to_owned),
                rate_limit_burst: burst,
                ..ServeArgs::default()
            })
            .map(|c| c.rate_limit.map(|l| l.to_string()))
            .map_err(|e| format!("{e:#}"))
        };
        assert_eq!(with(None, None), Ok(None));
        assert_eq!(
            with(Some("1000/s"), None),
            Ok(Some("1000/s (burst 2000)".to_owned()))
        );
        assert_eq!(
            with(Some("5/s"), Some(5)),
            Ok(Some("5/s (burst 5)".to_owned()))
        );
        assert_eq!(
            with(Some("600/m"), None),
            Ok(Some("600/m (burst 1200)".to_owned()))
        );
        assert_eq!(with(Some("off"), Some(5)), Ok(None));
        for (rate, burst) in [(Some("fast"), None), (Some("0/s"), None), (None, Some(0))] {
            let error = with(rate, burst).err().unwrap_or_default();
            assert!(
                error.starts_with("rate-limit"),
                "{rate:?} {burst:?}: {error}"
            );
        }
    }

    #[test]
    fn the_file_carries_the_limits_too() {
        let config = from_file(
            "rate-limit = \"30/m\"\nrate_limit_burst = 7\nmax_event_bytes = 65536\n",
            ServeArgs::default(),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            config.rate_limit.map(|l| l.to_string()).as_deref(),
            Some("30/m (burst 7)")
        );
        assert_eq!(config.max_event_bytes, 65536);
    }

    #[test]
    fn max_event_bytes_is_bounded() {
        let with = |bytes: usize| {
            Config::from_args(&ServeArgs {
                max_event_bytes: Some(bytes),
                ..ServeArgs::default()
            })
            .map(|c| c.max_event_bytes)
            .map_err(|e| format!("{e:#}"))
        };
        assert_eq!(
            Config::from_args(&ServeArgs::default())
                .map(|c| c.max_event_bytes)
                .ok(),
            Some(256 * 1024)
        );
        assert_eq!(with(1024), Ok(1024));
        for bad in [0, 1023, 16 * 1024 * 1024 + 1] {
            assert!(
                with(bad).is_err_and(|e| e.starts_with("max-event-bytes")),
                "{bad}"
            );
        }
    }
}
