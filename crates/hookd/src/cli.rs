//! The command line: subcommands and their flags (each flag has an environment twin).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hookd",
    version,
    about = "Webhook delivery service: signed, durable, retried."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the delivery workers.
    Serve(ServeArgs),
    /// Manage API clients.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Check a received delivery's signature (exit 0 when valid, 1 when not).
    Verify(VerifyArgs),
    /// Measure hookd on this machine: throughput, latency, CPU and memory, as a table.
    Bench(BenchArgs),
    /// Send events again through a running server: one event (`--event`), or every
    /// event of a time window that went to a webhook (`--webhook --since`), by default
    /// those whose delivery failed, with a progress bar.
    Replay(ReplayArgs),
    /// Publish one event through a running server, for quick manual tests of receivers
    /// (sample data for the type unless `--data` or `--data-file` is given).
    Send(SendArgs),
    /// Local development without a tunnel: stream the client's events from a running
    /// server and forward each one, signed, to a local URL, one line per delivery.
    Listen(ListenArgs),
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Create a client and print its id and secret (the secret is shown only once).
    Create(CreateClientArgs),
}

/// Settings shared by every command that opens the database.
#[derive(Args, Clone, Default)]
pub(crate) struct StoreArgs {
    /// Database URL: `sqlite://PATH` (default `sqlite://./hookd-data/hookd.db`).
    #[arg(long, env = "HOOKD_DATABASE")]
    pub(crate) database: Option<String>,
    /// A TOML file with the same settings as the flags (flags and env win).
    #[arg(long, env = "HOOKD_CONFIG")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Args, Clone, Default)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Address the API listens on (default 127.0.0.1:8080).
    #[arg(long, env = "HOOKD_LISTEN")]
    pub(crate) listen: Option<String>,
    /// Delays before attempt 1, 2, 3, … (default 0s,1m,5m,30m,2h).
    #[arg(long, env = "HOOKD_RETRY_SCHEDULE")]
    pub(crate) retry_schedule: Option<String>,
    /// How long one attempt may take (default 30s).
    #[arg(long, env = "HOOKD_ATTEMPT_TIMEOUT")]
    pub(crate) attempt_timeout: Option<String>,
    /// Allow endpoints on loopback, private and link-local addresses.
    #[arg(long, env = "HOOKD_ALLOW_PRIVATE_TARGETS", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) allow_private_targets: Option<bool>,
    /// Allow plain http:// endpoint URLs.
    #[arg(long, env = "HOOKD_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) allow_http: Option<bool>,
    /// Resolve endpoint names with this DNS server alone (IP, or IP:PORT; port 53 by
    /// default) instead of the system's resolver.
    #[arg(long, env = "HOOKD_DNS_SERVER")]
    pub(crate) dns_server: Option<String>,
    /// Attempts in flight at once, across all webhooks (default 1024).
    #[arg(long, env = "HOOKD_MAX_IN_FLIGHT")]
    pub(crate) max_in_flight: Option<usize>,
    /// Attempts in flight at once to one webhook (default 64).
    #[arg(long, env = "HOOKD_MAX_IN_FLIGHT_PER_WEBHOOK")]
    pub(crate) max_in_flight_per_webhook: Option<usize>,
    /// How often workers look for due work when nothing wakes them (default 1s).
    #[arg(long, env = "HOOKD_POLL_INTERVAL")]
    pub(crate) poll_interval: Option<String>,
    /// How long events (with their deliveries and attempt logs) are kept before they are
    /// purged, e.g. `30d` (the default) or `12h`; `off` keeps everything.
    #[arg(long, env = "HOOKD_RETENTION")]
    pub(crate) retention: Option<String>,
    /// A webhook whose attempts have all failed for this long is disabled and its client
    /// told with a `webhook.disabled` event, e.g. `5d` (the default); `off` never does.
    #[arg(long, env = "HOOKD_DISABLE_AFTER")]
    pub(crate) disable_after: Option<String>,
    /// Requests each API client may make, e.g. `1000/s`, `600/m` or `10000/h`; `off` (the
    /// default) for no limit. Over it, requests are answered 429 with Retry-After.
    #[arg(long, env = "HOOKD_RATE_LIMIT")]
    pub(crate) rate_limit: Option<String>,
    /// Requests a client may send at once after a pause (default: twice the rate's count,
    /// e.g. 2000 for 1000/s).
    #[arg(long, env = "HOOKD_RATE_LIMIT_BURST")]
    pub(crate) rate_limit_burst: Option<u32>,
    /// Largest accepted event body, in bytes, from 1024 to 16777216 (default 262144 =
    /// 256 KiB); also the limit of other single-object request bodies.
    #[arg(long, env = "HOOKD_MAX_EVENT_BYTES")]
    pub(crate) max_event_bytes: Option<usize>,
    /// Log lines on stderr: `text` (default) or `json` (one JSON object per line).
    /// `HOOKD_LOG` sets the level and filters (default `info`).
    #[arg(long, env = "HOOKD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Args)]
struct CreateClientArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// A name to recognise the client by.
    #[arg(long)]
    name: String,
    /// Print `{"client_id":…,"client_secret":…}`.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The webhook's signing secret (`whsec_…`).
    #[arg(long, env = "HOOKD_WEBHOOK_SECRET", hide_env_values = true)]
    pub(crate) secret: String,
    /// A received header, as `name: value`; repeat for each. The body is read from
    /// standard input, byte for byte.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = crate::verify::parse_header)]
    pub(crate) headers: Vec<(String, String)>,
    /// How far `webhook-timestamp` may be from now, either way (e.g. `5m`, `30s`); `none`
    /// skips the check (e.g. for published test vectors).
    #[arg(long, default_value = "5m", value_parser = crate::verify::parse_tolerance)]
    pub(crate) tolerance: crate::verify::Tolerance,
    /// The hex signature's header, for a webhook with its own `signature_header`
    /// (repeatable; default: x-nextpay-signature, then x-webhook-signature).
    #[arg(long = "signature-header", value_name = "NAME")]
    pub(crate) signature_headers: Vec<String>,
}

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Scenarios to run, repeatable or comma-separated (default all): ceiling, ingest,
    /// throughput, latency, fanout, backlog, isolation, retry-storm, cluster (PostgreSQL
    /// only; skipped on SQLite).
    #[arg(long = "scenario", value_name = "NAME")]
    pub(crate) scenarios: Vec<String>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// `sqlite://DIR`: each scenario gets a fresh database in a new directory under DIR
    /// (default: the system's temporary directory). `postgres://…`: each scenario gets
    /// fresh schemas (`hookd_bench_…`) in that database, dropped again after it.
    #[arg(long, value_name = "URL")]
    pub(crate) database: Option<String>,
    /// How long each timed phase publishes.
    #[arg(long, default_value = "5s")]
    pub(crate) duration: String,
    /// Deliveries queued in the `backlog` scenario.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) backlog_size: u64,
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 64)]
    pub(crate) connections: usize,
}

/// Settings shared by every command that talks to a running server.
#[derive(Args, Clone)]
pub(crate) struct ServerArgs {
    /// The server's base URL.
    #[arg(long, env = "HOOKD_SERVER", default_value = "http://127.0.0.1:8080")]
    pub(crate) server: String,
    /// The API client's id (`cl_…`).
    #[arg(long, env = "HOOKD_CLIENT_ID")]
    pub(crate) client_id: String,
    /// The API client's secret.
    #[arg(long, env = "HOOKD_CLIENT_SECRET", hide_env_values = true)]
    pub(crate) client_secret: String,
}

#[derive(Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// Send this one event (`evt_…`) again: to `--webhook` if given, else to every
    /// webhook it went to that is still enabled and subscribed to its type.
    #[arg(long, conflicts_with_all = ["since", "until", "status", "no_wait"])]
    pub(crate) event: Option<String>,
    /// The webhook (`wh_…`) whose events are sent again (with `--since`), or the one
    /// webhook to send `--event` to.
    #[arg(long, required_unless_present = "event")]
    pub(crate) webhook: Option<String>,
    /// Events received at or after this time: unix seconds or RFC 3339.
    #[arg(long, required_unless_present = "event")]
    pub(crate) since: Option<String>,
    /// Events received before this time (default: up to now).
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// Which events, by the state of their latest delivery to the webhook: `failed`
    /// (default), `succeeded`, `cancelled` or `all`.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Start the job and print it without waiting for it to finish.
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// Print the server's JSON on stdout (the finished job, or the event sent again)
    /// instead of a summary line.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct ListenArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// Where to POST each delivery, e.g. `http://localhost:3000/webhooks` (any http(s)
    /// URL: the endpoint is yours, so the server's address rules do not apply).
    #[arg(long, value_name = "URL")]
    pub(crate) forward_to: String,
    /// Event types to listen to, comma-separated; `*` and prefix wildcards such as
    /// `payout_request.*` (default `*`).
    #[arg(long, value_name = "LIST")]
    pub(crate) events: Option<String>,
    /// Envelope format: `typed` (default) or `event`.
    #[arg(long)]
    pub(crate) format: Option<String>,
}

#[derive(Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// The event type, e.g. `payment_intent.paid`.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) event_type: String,
    /// The event's `data`, as JSON (default: the type's sample data).
    #[arg(long, value_name = "JSON", conflicts_with = "data_file")]
    pub(crate) data: Option<String>,
    /// A file holding the event's `data` as JSON (`-` for standard input).
    #[arg(long, value_name = "PATH")]
    pub(crate) data_file: Option<PathBuf>,
    /// The event's id, instead of a new `evt_…` (publishing the same id again returns
    /// the original event).
    #[arg(long)]
    pub(crate) id: Option<String>,
    /// Sent as `Idempotency-Key`: the same key again returns the original event.
    #[arg(long)]
    pub(crate) idempotency_key: Option<String>,
    /// Print the server's JSON answer (`{"id","created","type"}`) instead of a line.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => crate::serve::run(args).await,
        Command::Clients {
            command: ClientsCommand::Create(args),
        } => crate::clients::create(&args.store, &args.name, args.json).await,
        Command::Verify(args) => crate::verify::run(&args),
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Replay(args) => crate::replay::run(args).await,
        Command::Send(args) => crate::send::run(args).await,
        Command::Listen(args) => crate::listen::run(args).await,
    }
}
