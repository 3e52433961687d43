//! The `hookd` binary: command line, configuration and wiring. Everything it runs lives
//! in the library crates; errors end here, printed on one line with exit code 2 (bad
//! usage or setting) or 1 (anything else).

mod api_client;
mod bench;
mod cli;
mod clients;
mod config;
mod listen;
mod replay;
mod send;
mod serve;
mod verify;

use std::process::ExitCode;

use clap::Parser;

/// hookd allocates and frees many small buffers across threads (requests, envelopes,
/// attempt logs); mimalloc does that with less CPU and fragmentation than the system
/// allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hookd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hookd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
