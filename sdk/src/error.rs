//! SDK errors. Evaluation never fails; only building a client and waiting for delivery can.

use std::path::PathBuf;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The server URL is not a valid http(s) URL.
    #[error("invalid server URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The server rejected the SDK key (401/403). Retrying will not help.
    #[error("the server rejected the SDK key (HTTP {status}): {message}")]
    Unauthorized {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The HTTP client could not be created.
    #[error("could not create the HTTP client")]
    Http(#[source] reqwest::Error),
    /// A bootstrap file could not be used.
    #[error("bootstrap file {path} is unusable")]
    Bootstrap {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ConfigSourceError,
    },
}

/// A config that could not be read or compiled.
#[derive(Debug, thiserror::Error)]
pub enum ConfigSourceError {
    /// Reading the file failed.
    #[error("could not read it")]
    Io(#[from] std::io::Error),
    /// It is not a config document.
    #[error("it is not a valid config document")]
    Parse(#[from] tailor_core::ParseError),
    /// It does not compile.
    #[error("it does not compile")]
    Compile(#[from] tailor_core::ConfigError),
}

/// `flush()` or `close()` did not finish delivering.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlushError {
    /// Delivery did not finish in time; the events stay queued and will be retried.
    #[error("events were not delivered within {0:?}")]
    Timeout(std::time::Duration),
    /// The client has no event delivery (offline) or has been closed.
    #[error("this client does not deliver events (offline or closed)")]
    NotDelivering,
}
