//! Test helpers for hookd's integration tests: the real `hookd` binary on an ephemeral
//! port with its own database ([`server::Hookd`]), receivers on 127.0.0.1 that record
//! what they get and answer as told ([`receiver::Receiver`]), signature checks written
//! independently of hookd's own signing code ([`signatures`]), and a schema per test on
//! PostgreSQL ([`postgres`]) so one behavioural suite runs on both backends
//! ([`backend_tests!`]). [`dns::DnsServer`] answers DNS queries as the test says, for
//! hookd's `--dns-server`. [`misbehaving::MisbehavingReceiver`] breaks HTTP in the ways
//! real endpoints do, and [`resources`] makes faults of the machine for real (a file size
//! limit as a full disk, immutable files, resident memory).

pub mod dns;
pub mod misbehaving;
pub mod postgres;
pub mod proxy;
pub mod receiver;
pub mod resources;
pub mod server;
pub mod signatures;
pub mod sockets;

use std::time::Duration;

/// How long a test waits for something that should happen in milliseconds before it
/// declares failure. Generous, because CI machines are sometimes slow; tests never wait
/// this long when things work.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The storage a test runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    #[default]
    Sqlite,
    /// A fresh schema in the database of `HOOKD_TEST_POSTGRES_URL`.
    Postgres,
}

/// Runs each named `async fn name(backend: Backend)` of the calling module once per
/// backend, as the tests `name::sqlite` and `name::postgres`. The PostgreSQL one returns
/// early (saying so) when `HOOKD_TEST_POSTGRES_URL` is unset, and fails under `CI=true`.
/// A leading `#[tokio::test(...)]` applies to every test of that invocation.
///
/// ```ignore
/// async fn publishing_works(backend: Backend) { /* … */ }
/// backend_tests!(publishing_works);
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        $crate::backend_tests!(#[tokio::test] $($name),+);
    };
    (#[$test:meta] $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[$test]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await;
                }

                #[$test]
                async fn postgres() {
                    if $crate::postgres::enabled(module_path!()) {
                        super::$name($crate::Backend::Postgres).await;
                    }
                }
            }
        )+
    };
}
