//! Connecting to Redis: the URL forms, one multiplexed connection (single node or cluster), and
//! which Redis errors mean "unavailable, retry later".
//!
//! Why no lock and no pool: both [`ConnectionManager`] (single node) and [`ClusterConnection`]
//! are multiplexed: cloning one is cheap and every clone pipelines its commands onto the same
//! socket(s), so concurrent requests never wait for each other's round trips. The manager
//! reconnects by itself after a failure; the cluster connection re-reads the slot map and
//! reconnects to the nodes that moved or came back.

use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    Client, Cmd, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    Value,
};

use crate::store::StoreError;

/// A TCP connect to Redis gives up after this long.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A command gives up after this long (nothing Tailor sends blocks in Redis).
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where Redis is, parsed from `--redis-url`.
#[derive(Debug, Clone)]
pub enum Target {
    /// `redis://[user:password@]host:port[/db]`: one server.
    Single(ConnectionInfo),
    /// `redis+cluster://[user:password@]host:port,host:port,…`: a Redis Cluster, by any of its
    /// nodes (the others are discovered).
    Cluster(Vec<ConnectionInfo>),
}

impl Target {
    /// Parses a URL; the error says which forms are accepted.
    pub fn parse(url: &str) -> Result<Target, StoreError> {
        let url = url.trim();
        let invalid = |why: String| StoreError::Backend {
            message: format!("invalid Redis URL `{}`", redact(url)),
            source: why.into(),
        };
        if let Some(rest) = url.strip_prefix("redis+cluster://") {
            let (auth, hosts) = match rest.rsplit_once('@') {
                Some((auth, hosts)) => (format!("{auth}@"), hosts),
                None => (String::new(), rest),
            };
            let hosts = hosts.trim_end_matches('/');
            let mut nodes = Vec::new();
            for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                if host.contains('/') {
                    return Err(invalid(
                        "a cluster URL lists host:port pairs only (Redis Cluster has no databases)"
                            .into(),
                    ));
                }
                let info = format!("redis://{auth}{host}")
                    .into_connection_info()
                    .map_err(|e| invalid(format!("node `{host}`: {e}")))?;
                nodes.push(info);
            }
            if nodes.is_empty() {
                return Err(invalid(
                    "expected redis+cluster://host:port[,host:port…]".into(),
                ));
            }
            return Ok(Target::Cluster(nodes));
        }
        if url.starts_with("rediss://") {
            return Err(invalid(
                "TLS (rediss://) is not supported by this build; use redis:// on a trusted network or a TLS-terminating proxy".into(),
            ));
        }
        if !url.starts_with("redis://") {
            return Err(invalid(
                "expected redis://host:port[/db] or redis+cluster://host:port,host:port,…".into(),
            ));
        }
        let info = url
            .into_connection_info()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Target::Single(info))
    }

    /// `host:port[,host:port…]`, without credentials, for messages.
    pub fn describe(&self) -> String {
        match self {
            Target::Single(info) => info.addr.to_string(),
            Target::Cluster(nodes) => {
                let list: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
                format!("cluster {}", list.join(","))
            }
        }
    }

    /// The nodes a subscriber may connect to: any node of a cluster receives every `PUBLISH`.
    pub(super) fn nodes(&self) -> Vec<ConnectionInfo> {
        match self {
            Target::Single(info) => vec![info.clone()],
            Target::Cluster(nodes) => nodes.clone(),
        }
    }
}

/// The URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// One multiplexed connection, cheap to clone.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects (once; a failure here fails the start, later failures reconnect by themselves).
    pub(super) async fn connect(target: &Target) -> Result<Conn, RedisError> {
        match target {
            Target::Single(info) => {
                let client = Client::open(info.clone())?;
                // No retries inside one command: while Redis is down each command fails at once
                // (a clear 503) and the next one tries to reconnect, instead of requests hanging
                // through a backoff schedule.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(RESPONSE_TIMEOUT)
                    .set_number_of_retries(0);
                let manager = ConnectionManager::new_with_config(client, config).await?;
                Ok(Conn::Single(manager))
            }
            Target::Cluster(nodes) => {
                let client = ClusterClient::builder(nodes.clone())
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    // A moved slot or a node coming back is retried briefly; an outage fails
                    // fast with a 503 like a single node.
                    .retries(2)
                    .min_retry_wait(50)
                    .max_retry_wait(500)
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Whether an error means Redis is (for now) unreachable or refusing writes, rather than a bug
/// or bad data: those become `503 unavailable` and clear up by themselves.
pub(super) fn is_unavailable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::BusyLoadingError
                | ErrorKind::TryAgain
                | ErrorKind::ClusterDown
                | ErrorKind::MasterDown
                | ErrorKind::ReadOnly
                | ErrorKind::ClusterConnectionNotFound
        )
        // Out of memory under `maxmemory`, a failing RDB save blocking writes, missing replicas
        // for `min-replicas-to-write`: all operational states that pass.
        || matches!(e.code(), Some("OOM" | "MISCONF" | "NOREPLICAS" | "LOADING"))
}

/// The first retry of a start waiting for Redis comes after this long; each next one after
/// twice as long, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest pause between two attempts at start: short enough to start within about this
/// long once Redis is ready, long enough not to flood a Redis replaying a large file.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Capped exponential backoff: 100 ms, 200 ms, 400 ms, … up to 2 s.
#[derive(Debug)]
pub(super) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST_RETRY }
    }
}

impl Backoff {
    /// The pause before the next attempt.
    pub(super) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_RETRY);
        delay
    }
}

/// Why a start waits for Redis rather than failing: states that pass by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NotReady {
    /// Replaying its append-only file (or snapshot) after a (re)start: every command answers
    /// `LOADING` until it is done, seconds for a large file.
    Loading,
    /// Refusing connections, dropping them, timing out or (cluster) not serving every slot:
    /// Redis (re)starting, or failing over.
    Unreachable,
}

impl NotReady {
    /// Whether (and why) `e` is worth waiting out. Anything else (a wrong password, an unknown
    /// command, a bad reply) will not change by waiting, so the start fails at once.
    pub(super) fn of(e: &RedisError) -> Option<NotReady> {
        if e.kind() == ErrorKind::BusyLoadingError || e.code() == Some("LOADING") {
            Some(NotReady::Loading)
        } else if is_unavailable(e) {
            Some(NotReady::Unreachable)
        } else {
            None
        }
    }

    /// What Redis is doing, after "Redis at host:port".
    pub(super) fn state(self) -> &'static str {
        match self {
            NotReady::Loading => "is loading its dataset",
            NotReady::Unreachable => "is not reachable yet",
        }
    }

    /// What Redis was doing when the start gave up, after "Redis at host:port".
    pub(super) fn still(self) -> &'static str {
        match self {
            NotReady::Loading => "was still loading its dataset",
            NotReady::Unreachable => "was still not reachable",
        }
    }

    /// What the start waits for, for the log.
    pub(super) fn waiting_for(self) -> &'static str {
        match self {
            NotReady::Loading => "waiting for Redis to load its dataset",
            NotReady::Unreachable => "waiting for Redis to accept connections",
        }
    }
}

/// Maps a Redis error to the store's error, naming the server and the operation.
pub(super) fn store_error<'a>(
    target: &'a str,
    doing: &str,
) -> impl Fn(RedisError) -> StoreError + 'a {
    let doing = doing.to_string();
    move |e| {
        if is_unavailable(&e) {
            StoreError::Unavailable {
                message: format!("Redis at {target} is unavailable ({doing})"),
                source: Box::new(e),
            }
        } else {
            StoreError::Backend {
                message: format!("Redis at {target}: {doing}"),
                source: Box::new(e),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_cluster_urls() {
        let Target::Single(info) = Target::parse("redis://127.0.0.1:6390/2").unwrap() else {
            panic!("not single");
        };
        assert_eq!(info.addr.to_string(), "127.0.0.1:6390");
        assert_eq!(info.redis.db, 2);
        let Target::Cluster(nodes) =
            Target::parse("redis+cluster://:secret@127.0.0.1:7001, 127.0.0.1:7002").unwrap()
        else {
            panic!("not cluster");
        };
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].addr.to_string(), "127.0.0.1:7002");
        assert_eq!(nodes[1].redis.password.as_deref(), Some("secret"));
    }

    #[test]
    fn backoff_doubles_from_100_ms_up_to_2_s() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..8)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    }

    #[test]
    fn only_passing_states_are_waited_for() {
        let loading = RedisError::from((
            ErrorKind::BusyLoadingError,
            "Redis is loading the dataset in memory",
        ));
        assert_eq!(NotReady::of(&loading), Some(NotReady::Loading));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(NotReady::of(&refused), Some(NotReady::Unreachable));
        let wrong_password =
            RedisError::from((ErrorKind::AuthenticationFailed, "invalid password"));
        assert_eq!(NotReady::of(&wrong_password), None);
    }

    #[test]
    fn rejects_unsupported_urls_clearly_and_without_the_password() {
        for (url, says) in [
            ("http://127.0.0.1:6379", "expected redis://"),
            ("rediss://:pw@127.0.0.1:6379", "TLS"),
            ("redis+cluster://", "expected redis+cluster://"),
            ("redis+cluster://127.0.0.1:7001/0", "host:port pairs only"),
        ] {
            let e = Target::parse(url).unwrap_err();
            let text = format!("{e}: {}", std::error::Error::source(&e).unwrap());
            assert!(text.contains(says), "{url}: {text}");
            assert!(!text.contains("pw"), "{url}: password shown in {text}");
        }
    }
}
