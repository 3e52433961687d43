//! `hookd bench`: turns the flags into [`hookd_bench::BenchOptions`], runs the benchmark
//! off the async runtime (it starts runtimes of its own), and prints the table or JSON.
//! Exit code 2 for bad flags, 1 if a scenario could not run, 0 otherwise (a scenario
//! skipped because it does not apply to the chosen database is not a failure).

use std::process::ExitCode;

use anyhow::Context;
use hookd_bench::{BenchOptions, DatabaseChoice, Progress, Scenario, Status};

use crate::cli::BenchArgs;

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let options = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("hookd: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let json = args.json;
    let outcome = tokio::task::spawn_blocking(move || {
        hookd_bench::run(&options, &mut |progress| match progress {
            Progress::Started(scenario) => eprintln!("bench: {scenario} …"),
            Progress::Finished(report) => eprintln!(
                "bench: {} done in {:.1}s{}",
                report.name,
                report.seconds,
                match (&report.status, &report.problem) {
                    (Status::Ok, _) => String::new(),
                    (status, problem) => format!(
                        " ({}: {})",
                        format!("{status:?}").to_lowercase(),
                        problem.as_deref().unwrap_or("?")
                    ),
                }
            ),
        })
    })
    .await
    .context("the benchmark thread failed")?;
    let report = match outcome {
        Ok(r) => r,
        Err(e) if e.is_usage() => {
            eprintln!("hookd: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    // Figures that fell short are results; a scenario that could not run is a failure
    // (so a smoke run in CI notices when the instrument breaks).
    let failed: Vec<&str> = report
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Failed)
        .map(|s| s.name.as_str())
        .collect();
    if !failed.is_empty() {
        eprintln!("hookd: scenarios failed: {}", failed.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn options(args: &BenchArgs) -> anyhow::Result<BenchOptions> {
    let duration = humantime::parse_duration(&args.duration)
        .map_err(|e| anyhow::anyhow!("duration `{}`: {e}", args.duration))?;
    Ok(BenchOptions {
        scenarios: Scenario::parse_list(&args.scenarios)?,
        database: DatabaseChoice::parse(args.database.as_deref())?,
        duration,
        backlog_size: args.backlog_size,
        connections: args.connections,
        // As `hookd serve` would: sealed with HOOKD_ENCRYPTION_KEY when it is set.
        secret_keys: crate::config::secret_keys(None, None)?,
        ..BenchOptions::new(env!("CARGO_PKG_VERSION"))
    })
}

/// hookd runs in this process: its warnings and errors go to stderr, quieter than
/// `serve` so the progress lines stay readable (`HOOKD_LOG` overrides).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
