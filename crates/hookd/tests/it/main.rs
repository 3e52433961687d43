//! hookd end to end: the real binary, real HTTP receivers on 127.0.0.1, real databases.
//! One test binary for the whole crate (see the testing notes in docs/ARCHITECTURE.md).
//!
//! Behavioural tests run once per backend (`backend_tests!`): `name::sqlite` and
//! `name::postgres`, the latter on a fresh schema of `HOOKD_TEST_POSTGRES_URL` (skipped
//! when that is unset, except under `CI=true`). Plain `#[tokio::test]`s are about SQLite
//! itself or the CLI and say why.

#![allow(clippy::unwrap_used)]

mod api;
mod bench;
mod cli;
mod cluster;
mod delivery;
mod delivery_log;
mod durability;
mod faults;
mod fuzz_api;
mod health;
mod isolation;
mod limits;
mod listen;
mod observability;
mod openapi;
mod receiver_tools;
mod replay;
mod retention;
mod rotation;
mod secrets;
mod security;
mod seeds;
mod shutdown;
mod test_events;

use std::path::Path;

use hookd_testkit::Backend;
use hookd_testkit::server::{Hookd, ServeOptions};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hookd"))
}

/// The clock, in unix seconds (signature timestamps, event times).
fn unix_seconds() -> i64 {
    hookd_core::time::unix_ms(std::time::SystemTime::now()).div_euclid(1000)
}

async fn start(backend: Backend) -> Hookd {
    start_with(ServeOptions {
        backend,
        ..ServeOptions::default()
    })
    .await
}

async fn start_with(options: ServeOptions) -> Hookd {
    Hookd::start(bin(), options).await
}
