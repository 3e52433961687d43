//! What can stop the benchmark as a whole. A scenario that goes wrong midway is not an
//! error here: it is reported in the table as failed or incomplete, and the others run.

use hookd_engine::EngineError;
use hookd_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A bad option; the binary exits with code 2 on these.
    #[error("{0}")]
    Usage(String),
    #[error("cannot start an async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The benchmark's own PostgreSQL work: connecting, making and dropping schemas.
    #[error("PostgreSQL: {0}")]
    Database(String),
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    #[error("HTTP to {target}: {message}")]
    Http { target: String, message: String },
    #[error("the API answered {status} to {request}: {body}")]
    Api {
        request: String,
        status: u16,
        body: String,
    },
    #[error("{0}")]
    Other(String),
}

impl BenchError {
    /// Whether the user asked for something impossible (rather than the run failing).
    pub fn is_usage(&self) -> bool {
        matches!(self, BenchError::Usage(_))
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn http(
        target: impl std::fmt::Display,
        message: impl std::fmt::Display,
    ) -> BenchError {
        BenchError::Http {
            target: target.to_string(),
            message: message.to_string(),
        }
    }
}
