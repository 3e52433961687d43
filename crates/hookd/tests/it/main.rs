//! hookd end to end: the real binary, real HTTP receivers on 127.0.0.1, real SQLite files.
//! One test binary for the whole crate (see the testing notes in docs/ARCHITECTURE.md).

#![allow(clippy::unwrap_used)]

mod api;
mod bench;
mod cli;
mod delivery;
mod durability;
mod isolation;
mod security;
mod seeds;

use std::path::Path;

use hookd_testkit::server::{Hookd, ServeOptions};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hookd"))
}

async fn start() -> Hookd {
    Hookd::start(bin(), ServeOptions::default()).await
}

async fn start_with(options: ServeOptions) -> Hookd {
    Hookd::start(bin(), options).await
}
