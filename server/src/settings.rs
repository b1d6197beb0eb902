//! Command-line and environment configuration: one clap struct, every option also an
//! environment variable.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Tailor: experimentation and personalization server.
#[derive(Debug, Parser)]
#[command(name = "tailor-server", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Settings),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Settings of `tailor-server serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "TAILOR_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Directory of the embedded store (unused with `--redis-url`).
    #[arg(long, env = "TAILOR_DATA_DIR", default_value = "./tailor-data")]
    pub data_dir: PathBuf,
    /// Keep all state in Redis instead, shared by every instance given the same URL and prefix:
    /// `redis://[user:password@]host:port[/db]` for one server, or
    /// `redis+cluster://[user:password@]host:port,host:port,…` for a Redis Cluster. Redis must
    /// run with `appendonly yes` (see README, "Running several instances").
    #[arg(long, env = "TAILOR_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    #[arg(long, env = "TAILOR_REDIS_PREFIX", default_value = "tailor")]
    pub redis_prefix: String,
    /// Seconds a start waits for a Redis that is still loading its dataset (after a restart) or
    /// not accepting connections yet, retrying with backoff, before giving up (`/readyz`
    /// answers 503 `store_loading` meanwhile). Other Redis errors fail the start at once.
    #[arg(long, env = "TAILOR_REDIS_STARTUP_TIMEOUT_SECS", default_value_t = 60)]
    pub redis_startup_timeout_secs: u64,
    /// Log format.
    #[arg(long, env = "TAILOR_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
    /// Admin key to accept (stored hashed on first start). Without it, the first start generates
    /// one and prints it once.
    #[arg(long, env = "TAILOR_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Seconds between keep-alive comments on idle SSE streams.
    #[arg(long, env = "TAILOR_SSE_KEEPALIVE_SECS", default_value_t = 15)]
    pub sse_keepalive_secs: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "TAILOR_BODY_LIMIT_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "TAILOR_WORKERS")]
    pub workers: Option<usize>,
    /// Hours a dashboard sign-in lasts.
    #[arg(long, env = "TAILOR_DASHBOARD_SESSION_HOURS", default_value_t = 8)]
    pub dashboard_session_hours: u64,
    /// Mark the dashboard's cookies `Secure` (set it when the dashboard is served over https,
    /// directly or behind a TLS-terminating proxy).
    #[arg(long, env = "TAILOR_DASHBOARD_SECURE_COOKIES")]
    pub dashboard_secure_cookies: bool,
    /// Reverse proxies in front of Tailor, comma-separated addresses or CIDR ranges (e.g.
    /// `10.0.0.0/8,127.0.0.1`). Requests from them are attributed to the client they name in
    /// `X-Forwarded-For`, so that the failed-authentication throttle counts per client, not per
    /// proxy. Without it the header is ignored.
    #[arg(long, env = "TAILOR_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<crate::client_address::ProxyRange>,
    /// Events per second one client-side key may send (per instance; 0: unlimited). Client keys
    /// are public, so this bounds what anyone can post with one.
    #[arg(
        long,
        env = "TAILOR_CLIENT_KEY_EVENTS_PER_SECOND",
        default_value_t = 1_000
    )]
    pub client_key_events_per_second: u32,
    /// Events per second one SDK key may send (per instance; 0: unlimited).
    #[arg(long, env = "TAILOR_SDK_KEY_EVENTS_PER_SECOND", default_value_t = 0)]
    pub sdk_key_events_per_second: u32,
    /// Partitions of a new environment's event log (1-1024), unless its creation says
    /// otherwise. Fixed per environment once created (README: "Partitions").
    #[arg(long, env = "TAILOR_PARTITIONS", default_value_t = tailor_core::partition::DEFAULT_PARTITIONS,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub partitions: u32,
    /// Seconds between checkpoints of a partition that has new events.
    #[arg(long, env = "TAILOR_CHECKPOINT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_secs: u64,
    /// Days an event id is at least remembered for de-duplication with Redis (at most twice
    /// that; the embedded store keeps every id): a resend up to this many days later is
    /// recognised.
    #[arg(long, env = "TAILOR_DEDUP_WINDOW_DAYS", default_value_t = crate::store::redis::DEFAULT_DEDUP_WINDOW_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub dedup_window_days: u32,
}

impl Settings {
    /// Settings for tests and embedding: a data dir, an admin key, port 0.
    pub fn for_data_dir(data_dir: PathBuf, admin_key: &str) -> Self {
        Settings {
            bind: "127.0.0.1:0".into(),
            data_dir,
            redis_url: None,
            redis_prefix: "tailor".into(),
            redis_startup_timeout_secs: 60,
            log_format: LogFormat::Pretty,
            admin_key: Some(admin_key.into()),
            sse_keepalive_secs: 15,
            body_limit_bytes: 2 * 1024 * 1024,
            workers: Some(2),
            dashboard_session_hours: 8,
            dashboard_secure_cookies: false,
            trusted_proxies: Vec::new(),
            client_key_events_per_second: 1_000,
            sdk_key_events_per_second: 0,
            partitions: tailor_core::partition::DEFAULT_PARTITIONS,
            checkpoint_secs: 60,
            dedup_window_days: crate::store::redis::DEFAULT_DEDUP_WINDOW_DAYS,
        }
    }
}

impl Settings {
    /// Where state is kept, for logs: the Redis server(s) or the data directory.
    pub fn store_description(&self) -> String {
        match &self.redis_url {
            Some(url) => match crate::store::redis::Target::parse(url) {
                Ok(target) => format!("Redis at {}", target.describe()),
                Err(_) => "Redis (invalid URL)".into(),
            },
            None => format!("data directory {}", self.data_dir.display()),
        }
    }
}
