//! The Redis store: one state shared by several `tailor-server` instances
//! (`serve --redis-url redis://…` or `redis+cluster://host:port,host:port,…`).
//!
//! # Key layout
//! Every key starts with the prefix (`--redis-prefix`, default `tailor`) and carries a hash tag,
//! so that everything one operation touches lives in ONE slot and Redis Cluster works without
//! cross-slot commands:
//!
//! | Key | Type | Holds |
//! | --- | --- | --- |
//! | `tailor:{global}:environments` | set | environment keys |
//! | `tailor:{global}:keys` | hash | key id → [`ApiKey`] JSON |
//! | `tailor:{global}:key-digests` | hash | secret digest → key id (digests are unique) |
//! | `tailor:{global}:keys-revoked` | hash | key id → when it was revoked |
//! | `tailor:{global}:session:<digest>` | string, with a TTL | a dashboard session's JSON, by the SHA-256 of its id |
//! | `tailor:{global}:instances` | sorted set | live server instances, scored by when their heartbeat expires (ms) |
//! | `tailor:{env:<e>}:config` | hash | `revision`, `document` (JSON), `audit_seq`, `partitions` |
//! | `tailor:{env:<e>}:audit` | list | `{"id": n, "entry": …}`, newest first |
//! | `tailor:{p:<e>:<p>:<k>}:…` | | partition `p`'s events, event ids, lease, checkpoint and published aggregates (`redis/partitions.rs`) |
//! | `tailor:changes` | pub/sub channel | change notifications (`redis/changes.rs`) |
//!
//! # Writes: one round trip each, atomic by Lua script (`redis/scripts.rs`)
//! - A config commit is one `EVALSHA`: check the revision (compare-and-swap), set the document,
//!   append the audit entry, `PUBLISH` the notification.
//! - An event batch is one `EVALSHA` per partition it touches (all in flight at once): per
//!   event, unless its id is in the de-duplication window's id sets, `SADD` the id and `XADD`
//!   it to the partition's stream; then one `PUBLISH`. A resent id, in the same batch or sent to
//!   another instance, is skipped: every event is stored exactly once. The batch is
//!   acknowledged once every partition's part is stored; a failed part fails the batch, and the
//!   client's resend stores only what is missing.
//! - Creating an environment is two (the environment's slot, then the global list and the
//!   notification); a key change, one.
//!
//! # Aggregates
//! Each partition's stream is the source of truth for its users, in one order for every
//! reader. The instance holding the partition's lease tails it ([`Store::events_after`]) and
//! applies every entry once to its in-memory attribution, with the same code the embedded store
//! uses; it checkpoints that state (which trims the stream) and publishes the partition's
//! aggregates, which every instance merges into results (`crate::collector`). (Keeping per-arm
//! sums in Redis instead would need the whole first-exposure and attribution-window logic in
//! Lua: one engine is better.)
//!
//! # Faults
//! While Redis is unreachable, commands fail at once with [`StoreError::Unavailable`] (HTTP 503:
//! writes and event batches are refused, `/readyz` reports `store_unavailable`) and the
//! connection reconnects by itself; configs keep being served from memory. An event batch is
//! acknowledged only after its script returned, i.e. after Redis applied it.
//!
//! At start ([`RedisStore::connect_waiting`]), a Redis that is still loading its dataset or not
//! accepting connections yet is waited for (with backoff, for a bounded time) rather than
//! failing the start; the server answers `/readyz` meanwhile (`crate::app`).
//!
//! # Durability
//! Redis must run with the append-only file (`appendonly yes`). With `appendfsync always` an
//! acknowledged change or event is on disk before the reply and survives anything. With the
//! default `appendfsync everysec` it is normally written to the AOF before the reply (so a
//! Redis crash or `kill -9` loses nothing) and on disk within a second, except that while an
//! fsync is slow Redis postpones the write for up to two seconds and replies anyway: a crash or
//! power loss then loses up to two seconds of acknowledged writes (the integration tests that
//! `kill -9` Redis and expect everything back run it with `always`). Without the AOF, a
//! Redis restart loses everything: the instances, which still serve the last config from
//! memory, store their environments and keys again ([`crate::state`]'s sync), but the audit
//! log and every event (so the results) are gone. With RDB snapshots only, a restart goes back
//! to the last snapshot: instances keep serving the newer config they hold, log the mismatch,
//! and refuse changes (revision conflict) until Redis is restored or the instances are
//! restarted on the older state. A warning is logged at start when a node reports
//! `appendonly no`.

mod changes;
mod conn;
mod partitions;
mod profiles;
mod scripts;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ::redis::aio::ConnectionLike;
use ::redis::streams::StreamReadReply;
use ::redis::{cmd, Client, RedisError, Value};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tailor_core::events::Event;
use tailor_core::partition::DEFAULT_PARTITIONS;
use tailor_core::ConfigDocument;

pub use conn::Target;
use conn::{store_error, Backoff, Conn, NotReady, CONNECT_TIMEOUT};
pub use partitions::DEFAULT_DEDUP_WINDOW_DAYS;

use super::{
    unix_now, ApiKey, AuditEntry, AuditQuery, Checkpoint, EncodedEvent, EventCursor, EventPage,
    Lease, SharedStore, Store, StoreError, StoredEnvironment, StoredSession,
};

/// Audit entries read per round trip while filtering.
const AUDIT_PAGE: isize = 256;

/// Key names (see the module docs).
#[derive(Debug, Clone)]
struct Names {
    prefix: String,
}

impl Names {
    fn environments(&self) -> String {
        format!("{}:{{global}}:environments", self.prefix)
    }
    fn keys(&self) -> String {
        format!("{}:{{global}}:keys", self.prefix)
    }
    fn key_digests(&self) -> String {
        format!("{}:{{global}}:key-digests", self.prefix)
    }
    fn keys_revoked(&self) -> String {
        format!("{}:{{global}}:keys-revoked", self.prefix)
    }
    fn session(&self, digest: &str) -> String {
        format!("{}:{{global}}:session:{digest}", self.prefix)
    }
    fn config(&self, env: &str) -> String {
        format!("{}:{{env:{env}}}:config", self.prefix)
    }
    fn audit(&self, env: &str) -> String {
        format!("{}:{{env:{env}}}:audit", self.prefix)
    }
    fn instances(&self) -> String {
        format!("{}:{{global}}:instances", self.prefix)
    }
    fn channel(&self) -> String {
        format!("{}:changes", self.prefix)
    }
}

/// Redis-backed [`Store`], shared by every instance pointed at the same Redis and prefix.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    target: Target,
    described: String,
    names: Names,
    layouts: partitions::Layouts,
    dedup_window_days: u32,
}

/// An audit list element.
#[derive(Serialize, Deserialize)]
struct AuditRecord {
    id: i64,
    entry: AuditEntry,
}

impl RedisStore {
    /// Connects to `url` (see [`Target::parse`]) and uses keys under `prefix` (which must not
    /// contain `{`, `}` or whitespace: several deployments may share one Redis by prefix). One
    /// attempt: a Redis that is down or still loading its dataset fails it.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let (target, names) = parse_settings(url, prefix)?;
        let described = target.describe();
        let store = Self::open(target, names)
            .await
            .map_err(|e| connect_error(&described, e))?;
        store.warn_without_aof().await;
        Ok(store)
    }

    /// Like [`RedisStore::connect`], for a server's start: a Redis that is still loading its
    /// dataset (`LOADING`, seconds after a restart with a large append-only file) or not
    /// accepting connections yet is waited for, retrying with a capped exponential backoff
    /// (100 ms doubling to 2 s) for up to `max_wait`. Before each retry, `waiting` is told what
    /// Redis is doing ("Redis at host:port is loading its dataset"). Any other error (wrong
    /// password, bad URL or prefix) fails at once.
    pub async fn connect_waiting(
        url: &str,
        prefix: &str,
        max_wait: Duration,
        mut waiting: impl FnMut(&str),
    ) -> Result<Self, StoreError> {
        let (target, names) = parse_settings(url, prefix)?;
        let described = target.describe();
        let started = Instant::now();
        let mut backoff = Backoff::default();
        let mut logged: Option<NotReady> = None;
        loop {
            let e = match Self::open(target.clone(), names.clone()).await {
                Ok(store) => {
                    if logged.is_some() {
                        tracing::info!(
                            redis = %described,
                            waited_ms = started.elapsed().as_millis() as u64,
                            "Redis is ready; starting"
                        );
                    }
                    store.warn_without_aof().await;
                    return Ok(store);
                }
                Err(e) => e,
            };
            let Some(reason) = NotReady::of(&e) else {
                return Err(connect_error(&described, e));
            };
            let delay = backoff.next_delay();
            if started.elapsed() + delay > max_wait {
                return Err(StoreError::Unavailable {
                    message: format!(
                        "Redis at {described} {} when the start stopped waiting for it \
                         (after {:.1} s; TAILOR_REDIS_STARTUP_TIMEOUT_SECS is {})",
                        reason.still(),
                        started.elapsed().as_secs_f64(),
                        max_wait.as_secs()
                    ),
                    source: Box::new(e),
                });
            }
            // Once per state, not once per retry: a large file takes many retries to load.
            if logged != Some(reason) {
                tracing::warn!(
                    redis = %described,
                    error = %e,
                    give_up_after_s = max_wait.as_secs(),
                    "{}", reason.waiting_for()
                );
                logged = Some(reason);
            } else {
                tracing::debug!(redis = %described, error = %e, "{}", reason.waiting_for());
            }
            waiting(&format!("Redis at {described} {}", reason.state()));
            tokio::time::sleep(delay).await;
        }
    }

    /// Connects and pings: ready to serve only when Redis answers `PONG`.
    async fn open(target: Target, names: Names) -> Result<Self, RedisError> {
        let conn = Conn::connect(&target).await?;
        let store = RedisStore {
            conn,
            described: target.describe(),
            target,
            names,
            layouts: partitions::Layouts::default(),
            dedup_window_days: DEFAULT_DEDUP_WINDOW_DAYS,
        };
        store.ping_redis().await?;
        Ok(store)
    }

    /// `PING`, with Redis's own error: on a cluster it goes to every primary, so it succeeds
    /// only when all slots are served.
    async fn ping_redis(&self) -> Result<(), RedisError> {
        let mut conn = self.conn();
        // A single node's multiplexed connection hands an error reply (`LOADING`, `NOAUTH`)
        // back as a value, not as an error: without `extract_error` a loading Redis passed.
        conn.req_packed_command(&cmd("PING"))
            .await
            .and_then(Value::extract_error)
            .map(drop)
    }

    /// Sets the de-duplication window: event ids are remembered for this many whole days
    /// (`redis/partitions.rs`). At least 1.
    pub fn with_dedup_window_days(mut self, days: u32) -> Self {
        self.dedup_window_days = days.max(1);
        self
    }

    /// Where it connects, without credentials (`host:port` or `cluster host:port,…`).
    pub fn describe(&self) -> &str {
        &self.described
    }

    fn err(&self, doing: &str) -> impl Fn(RedisError) -> StoreError + '_ {
        store_error(&self.described, doing)
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// Logs a warning for each reachable node that runs without the append-only file.
    async fn warn_without_aof(&self) {
        for node in self.target.nodes() {
            let check = async {
                let client = Client::open(node.clone())?;
                let mut c = client.get_multiplexed_async_connection().await?;
                let reply: Vec<String> = cmd("CONFIG")
                    .arg("GET")
                    .arg("appendonly")
                    .query_async(&mut c)
                    .await?;
                Ok::<_, RedisError>(reply.get(1).cloned())
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, check).await {
                Ok(Ok(Some(v))) if v == "no" => tracing::warn!(
                    node = %node.addr,
                    "Redis runs without the append-only file (appendonly no): a Redis restart \
                     loses acknowledged config changes and events; set `appendonly yes`"
                ),
                Ok(Ok(_)) => {}
                // CONFIG may be disabled (managed Redis): nothing to say.
                Ok(Err(e)) => {
                    tracing::debug!(node = %node.addr, error = %e, "cannot read appendonly")
                }
                Err(_) => tracing::debug!(node = %node.addr, "timed out reading appendonly"),
            }
        }
    }
}

/// The parsed URL and the key names; the error says what is wrong with either.
fn parse_settings(url: &str, prefix: &str) -> Result<(Target, Names), StoreError> {
    let target = Target::parse(url)?;
    if prefix.is_empty()
        || prefix
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace())
    {
        return Err(StoreError::Backend {
            message: format!("invalid Redis key prefix `{prefix}`"),
            source: "the prefix must be non-empty, without `{`, `}` or whitespace".into(),
        });
    }
    let names = Names {
        prefix: prefix.to_string(),
    };
    Ok((target, names))
}

/// A failed connect, naming the server: unavailable when waiting could help, else a backend
/// failure (wrong password and the like).
fn connect_error(described: &str, e: RedisError) -> StoreError {
    let message = format!("could not connect to Redis at {described}");
    if NotReady::of(&e).is_some() {
        StoreError::Unavailable {
            message,
            source: Box::new(e),
        }
    } else {
        StoreError::Backend {
            message,
            source: Box::new(e),
        }
    }
}

fn decode_document(key: &str, text: &str) -> Result<ConfigDocument, StoreError> {
    ConfigDocument::from_json(text)
        .map_err(|e| StoreError::Corrupt(format!("document of environment `{key}`: {e}")))
}

/// One `XREAD` of up to `limit` entries after `cursor`.
async fn read_page(
    mut conn: Conn,
    stream: &str,
    cursor: &EventCursor,
    limit: usize,
    target: &str,
) -> Result<EventPage, StoreError> {
    let after = if cursor.0.is_empty() {
        "0-0"
    } else {
        &cursor.0
    };
    let reply: Option<StreamReadReply> = cmd("XREAD")
        .arg("COUNT")
        .arg(limit.max(1))
        .arg("STREAMS")
        .arg(stream)
        .arg(after)
        .query_async(&mut conn)
        .await
        .map_err(store_error(target, "reading events"))?;
    let mut page = EventPage {
        events: Vec::new(),
        next: cursor.clone(),
        more: false,
    };
    for key in reply.into_iter().flat_map(|r| r.keys) {
        page.events.reserve(key.ids.len());
        for entry in key.ids {
            let event = match entry.map.get("e") {
                Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes)
                    .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", entry.id)))
                    .and_then(|json| {
                        Event::from_json(json)
                            .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", entry.id)))
                    })?,
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "event {} of {stream} has no `e` field",
                        entry.id
                    )))
                }
            };
            page.events.push(event);
            page.next = EventCursor(entry.id);
        }
    }
    page.more = page.events.len() >= limit.max(1);
    Ok(page)
}

#[async_trait]
impl Store for RedisStore {
    async fn environments(&self) -> Result<Vec<StoredEnvironment>, StoreError> {
        let mut conn = self.conn();
        let mut keys: Vec<String> = cmd("SMEMBERS")
            .arg(self.names.environments())
            .query_async(&mut conn)
            .await
            .map_err(self.err("listing environments"))?;
        keys.sort();
        // Each environment lives in its own slot: one read each, all in flight at once.
        let reads = keys.into_iter().map(|key| async move {
            let found = self.environment(&key).await?;
            if found.is_none() {
                tracing::error!(
                    environment = key,
                    "environment is listed but has no document in Redis: was data lost?"
                );
            }
            Ok::<_, StoreError>(found)
        });
        let found = futures_util::future::try_join_all(reads).await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn environment(&self, key: &str) -> Result<Option<StoredEnvironment>, StoreError> {
        let mut conn = self.conn();
        let (text, partitions): (Option<String>, Option<u32>) = cmd("HMGET")
            .arg(self.names.config(key))
            .arg("document")
            .arg("partitions")
            .query_async(&mut conn)
            .await
            .map_err(self.err("reading an environment"))?;
        text.map(|text| {
            Ok(StoredEnvironment {
                key: key.to_string(),
                document: decode_document(key, &text)?,
                partitions: partitions.unwrap_or(DEFAULT_PARTITIONS),
            })
        })
        .transpose()
    }

    async fn create_environment(
        &self,
        key: &str,
        document: &ConfigDocument,
        partitions: u32,
    ) -> Result<(), StoreError> {
        let text = super::encode_document(document)?;
        let mut conn = self.conn();
        let created: i64 = scripts::CREATE_ENVIRONMENT
            .key(self.names.config(key))
            .arg(document.revision)
            .arg(text)
            .arg(partitions)
            .invoke_async(&mut conn)
            .await
            .map_err(self.err("creating an environment"))?;
        // Listed (and announced) even when it existed: this repairs a creation interrupted
        // between its two steps, and SADD is idempotent.
        let _: i64 = scripts::LIST_ENVIRONMENT
            .key(self.names.environments())
            .arg(key)
            .arg(self.names.channel())
            .arg(format!("env {} {key}", document.revision))
            .invoke_async(&mut conn)
            .await
            .map_err(self.err("listing a new environment"))?;
        if created == 1 {
            Ok(())
        } else {
            Err(StoreError::AlreadyExists(key.to_string()))
        }
    }

    async fn commit(
        &self,
        environment: &str,
        expected_revision: u64,
        document: &ConfigDocument,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut entry = audit.clone();
        entry.id = 0;
        entry.environment = environment.to_string();
        entry.revision = document.revision;
        let entry = serde_json::to_string(&entry).map_err(|e| StoreError::Backend {
            message: "encoding an audit entry".into(),
            source: Box::new(e),
        })?;
        let text = super::encode_document(document)?;
        let mut conn = self.conn();
        let (outcome, value): (String, String) = scripts::COMMIT
            .key(self.names.config(environment))
            .key(self.names.audit(environment))
            .arg(expected_revision)
            .arg(document.revision)
            .arg(text)
            .arg(entry)
            .arg(self.names.channel())
            .arg(environment)
            .invoke_async(&mut conn)
            .await
            .map_err(self.err("committing a change"))?;
        match outcome.as_str() {
            "ok" => Ok(()),
            "missing" => Err(StoreError::NoSuchEnvironment(environment.to_string())),
            "conflict" => Err(StoreError::Conflict {
                environment: environment.to_string(),
                expected: expected_revision,
                current: value.parse().map_err(|_| {
                    StoreError::Corrupt(format!(
                        "revision `{value}` of environment `{environment}`"
                    ))
                })?,
            }),
            other => Err(StoreError::Corrupt(format!(
                "unexpected commit outcome `{other}`"
            ))),
        }
    }

    async fn audit(
        &self,
        environment: &str,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = query.limit.unwrap_or(100).min(1000) as usize;
        let list = self.names.audit(environment);
        let mut conn = self.conn();
        let mut out = Vec::new();
        let mut start: isize = 0;
        // Entries are pushed at the head while we page: skip any id not older than the last
        // one taken, so a concurrent commit never shows an entry twice.
        let mut older_than = i64::MAX;
        while out.len() < limit {
            let page: Vec<String> = cmd("LRANGE")
                .arg(&list)
                .arg(start)
                .arg(start + AUDIT_PAGE - 1)
                .query_async(&mut conn)
                .await
                .map_err(self.err("reading the audit log"))?;
            let done = (page.len() as isize) < AUDIT_PAGE;
            for raw in page {
                let record: AuditRecord = serde_json::from_str(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("audit entry: {e}")))?;
                if record.id >= older_than {
                    continue;
                }
                older_than = record.id;
                let mut entry = record.entry;
                entry.id = record.id;
                let wanted = query.kind.as_ref().is_none_or(|k| *k == entry.kind)
                    && query.key.as_ref().is_none_or(|k| *k == entry.key);
                if wanted {
                    out.push(entry);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            if done {
                break;
            }
            start += AUDIT_PAGE;
        }
        Ok(out)
    }

    async fn put_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let json = serde_json::to_string(key).map_err(|e| StoreError::Backend {
            message: "encoding a key".into(),
            source: Box::new(e),
        })?;
        let mut conn = self.conn();
        let stored: i64 = scripts::PUT_KEY
            .key(self.names.keys())
            .key(self.names.key_digests())
            .key(self.names.keys_revoked())
            .arg(&key.id)
            .arg(&key.digest)
            .arg(json)
            .arg(key.revoked_at.as_deref().unwrap_or(""))
            .arg(self.names.channel())
            .invoke_async(&mut conn)
            .await
            .map_err(self.err("storing a key"))?;
        if stored == 1 {
            Ok(())
        } else {
            Err(StoreError::AlreadyExists(format!("key {}", key.id)))
        }
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut conn = self.conn();
        let (stored, revoked): (HashMap<String, String>, HashMap<String, String>) = ::redis::pipe()
            .atomic()
            .cmd("HGETALL")
            .arg(self.names.keys())
            .cmd("HGETALL")
            .arg(self.names.keys_revoked())
            .query_async(&mut conn)
            .await
            .map_err(self.err("reading keys"))?;
        let mut keys = Vec::with_capacity(stored.len());
        for (id, json) in stored {
            let mut key: ApiKey = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("key {id}: {e}")))?;
            if let Some(at) = revoked.get(&id) {
                key.revoked_at = Some(at.clone());
            }
            keys.push(key);
        }
        keys.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(keys)
    }

    async fn revoke_key(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let revoked: i64 = scripts::REVOKE_KEY
            .key(self.names.keys())
            .key(self.names.keys_revoked())
            .arg(id)
            .arg(at)
            .arg(self.names.channel())
            .invoke_async(&mut conn)
            .await
            .map_err(self.err("revoking a key"))?;
        Ok(revoked == 1)
    }

    async fn put_session(&self, digest: &str, session: &StoredSession) -> Result<(), StoreError> {
        let json = serde_json::to_string(session).map_err(|e| StoreError::Backend {
            message: "encoding a session".into(),
            source: Box::new(e),
        })?;
        // Redis removes it when it expires; a session already past expiry is not stored.
        let ttl = session.expires_at - unix_now();
        if ttl <= 0 {
            return Ok(());
        }
        let mut conn = self.conn();
        cmd("SET")
            .arg(self.names.session(digest))
            .arg(json)
            .arg("EX")
            .arg(ttl)
            .query_async::<()>(&mut conn)
            .await
            .map_err(self.err("storing a session"))
    }

    async fn session(&self, digest: &str, now: i64) -> Result<Option<StoredSession>, StoreError> {
        let mut conn = self.conn();
        let json: Option<String> = cmd("GET")
            .arg(self.names.session(digest))
            .query_async(&mut conn)
            .await
            .map_err(self.err("reading a session"))?;
        let Some(json) = json else {
            return Ok(None);
        };
        let session: StoredSession = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("a session: {e}")))?;
        Ok((session.expires_at > now).then_some(session))
    }

    async fn delete_session(&self, digest: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        cmd("DEL")
            .arg(self.names.session(digest))
            .query_async::<()>(&mut conn)
            .await
            .map_err(self.err("ending a session"))
    }

    async fn append_events(
        &self,
        environment: &str,
        events: &[EncodedEvent<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        self.append_partitioned(environment, events).await
    }

    async fn events_after(
        &self,
        environment: &str,
        partition: u32,
        cursor: &EventCursor,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.partition_events_after(environment, partition, cursor, limit)
            .await
    }

    async fn checkpoint(
        &self,
        environment: &str,
        partition: u32,
    ) -> Result<Option<Checkpoint>, StoreError> {
        self.read_checkpoint(environment, partition).await
    }

    async fn put_checkpoint(
        &self,
        environment: &str,
        partition: u32,
        checkpoint: &Checkpoint,
        lease: Option<&Lease>,
    ) -> Result<(), StoreError> {
        self.write_checkpoint(environment, partition, checkpoint, lease)
            .await
    }

    async fn put_list(
        &self,
        environment: &str,
        segment: &str,
        members: Vec<String>,
    ) -> Result<u64, StoreError> {
        self.put_list_members(environment, segment, members).await
    }

    async fn lists_containing(
        &self,
        environment: &str,
        segments: &[String],
        user_key: &str,
    ) -> Result<Vec<bool>, StoreError> {
        self.lists_holding(environment, segments, user_key).await
    }

    async fn list_members(
        &self,
        environment: &str,
        segment: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.all_list_members(environment, segment).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.ping_redis().await.map_err(self.err("PING"))
    }

    fn shared(&self) -> Option<&dyn SharedStore> {
        Some(self)
    }
}
