//! Test helpers for hookd's integration tests: the real `hookd` binary on an ephemeral
//! port with its own SQLite file ([`server::Hookd`]), receivers on 127.0.0.1 that record
//! what they get and answer as told ([`receiver::Receiver`]), and signature checks written
//! independently of hookd's own signing code ([`signatures`]).

pub mod receiver;
pub mod server;
pub mod signatures;

use std::time::Duration;

/// How long a test waits for something that should happen in milliseconds before it
/// declares failure. Generous, because CI machines are sometimes slow; tests never wait
/// this long when things work.
pub const PATIENCE: Duration = Duration::from_secs(20);
