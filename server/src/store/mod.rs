//! The storage contract: environments' documents with compare-and-swap revisions, the audit log,
//! API keys, dashboard sessions and the event log. Backends: [`sqlite`] (embedded default) and [`redis`] (shared by several server
//! instances; see its module docs for the key layout, scripts and durability).
//!
//! # Contract (every backend; the shared contract tests check it)
//! - **Atomic commits.** [`Store::commit`] writes a new document and its audit entry together, or
//!   neither. After it returns `Ok`, the change is durable: a crash (even `kill -9`) cannot lose
//!   it, and a reader never sees a half-written document.
//! - **Versioning.** Each environment has a revision that only grows. `commit` succeeds only if
//!   the stored revision still equals `expected_revision` (compare-and-swap) and the new document
//!   carries `expected_revision + 1`; otherwise it fails with [`StoreError::Conflict`] and changes
//!   nothing. This is what keeps two writers (threads or server instances) from overwriting each
//!   other.
//! - **Keys** are stored only as SHA-256 digests of the secret.
//! - **Events** are appended idempotently: an event id already stored for the environment is
//!   skipped, so a retried batch never double-counts (the shared store remembers ids for its
//!   de-duplication window, see its module docs). `append_events` returns only after the
//!   batch is durable. Each environment's log is split into partitions by user
//!   ([`tailor_core::partition`]; the count is fixed when the environment is created), a batch
//!   spanning users is split among them, and [`Store::events_after`] reads one partition's log
//!   back in its order, after a cursor. Each event is stored as the JSON it arrived as
//!   ([`EncodedEvent`]).
//! - **Checkpoints** ([`Checkpoint`]): per partition, the state built from its events up to a
//!   cursor, so a restart (or a new owner) reads the checkpoint plus the events after it. A
//!   shared store writes one only for the holder of the partition's lease ([`Lease`]) and may
//!   then drop the events before the cursor; a write with a lost lease fails with
//!   [`StoreError::Fenced`] and changes nothing.
//! - **Sessions** (dashboard sign-ins) are stored by the digest of their id and are void from
//!   their expiry on, so every instance sharing the store accepts them.
//! - **Shared backends** ([`Store::shared`]) are written by several server instances at once.
//!   They also report every change (from any instance) on a [`ChangeFeed`], hand out partition
//!   leases so that each partition is owned by one live instance, and keep each partition's
//!   published aggregates so that any instance can merge them into results. A feed's first
//!   item, and the first after it reconnects, is [`StoreChange::Resync`]: changes may have been
//!   missed, so the reader re-reads everything and keeps whatever revision is newer.

pub mod data_dir;
pub mod redis;
pub mod sqlite;
mod sqlite_events;

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tailor_core::events::Event;
use tailor_core::ConfigDocument;

/// A stored environment.
#[derive(Debug, Clone)]
pub struct StoredEnvironment {
    /// Environment key.
    pub key: String,
    /// Its current document; `document.revision` is the current revision.
    pub document: ConfigDocument,
    /// How many partitions its event log has (fixed at creation).
    pub partitions: u32,
}

/// One accepted change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number assigned by the store (0 before it is stored).
    #[serde(default)]
    pub id: i64,
    /// Environment key.
    pub environment: String,
    /// The revision this change produced.
    pub revision: u64,
    /// When, RFC 3339.
    pub at: String,
    /// Who: the admin key's name, plus the person named by `X-Tailor-Actor` if sent.
    pub actor: String,
    /// `create`, `update`, `delete`, `rollout`, `toggle`, `import`.
    pub action: String,
    /// `segment`, `flag`, `experiment`, `layer` or `environment`.
    pub kind: String,
    /// The resource key.
    pub key: String,
    /// The resource before the change (absent for a create).
    pub before: Option<serde_json::Value>,
    /// The resource after the change (absent for a delete).
    pub after: Option<serde_json::Value>,
}

/// Filter for reading the audit log, newest first.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditQuery {
    /// Only entries about this kind of resource.
    pub kind: Option<String>,
    /// Only entries about this resource key.
    pub key: Option<String>,
    /// At most this many entries (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Read and write every environment through the admin API.
    Admin,
    /// Server-side SDK: read one environment's config, send its events, evaluate via OFREP.
    Sdk,
    /// Browser/mobile: evaluate one environment via OFREP and send events; never sees rules.
    Client,
}

/// A stored API key (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public identifier, e.g. `key_3f9a…`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Permissions.
    pub kind: KeyKind,
    /// The environment an SDK or client key is scoped to (none for admin keys).
    pub environment: Option<String>,
    /// SHA-256 of the secret, hex.
    pub digest: String,
    /// When created, RFC 3339.
    pub created_at: String,
    /// When revoked, if it was.
    pub revoked_at: Option<String>,
}

/// A change committed to a shared store, by this or another server instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChange {
    /// An environment was created or its document committed at `revision`.
    Environment {
        /// Environment key.
        environment: String,
        /// The revision now stored.
        revision: u64,
    },
    /// A key was added or revoked.
    Keys,
    /// New events were stored in one partition of an environment.
    Events {
        /// Environment key.
        environment: String,
        /// The partition.
        partition: u32,
    },
    /// Notifications may have been missed (first subscription, or reconnected after a failure):
    /// re-read every environment and the keys, and keep what is newer.
    Resync,
}

/// Change notifications of a shared store. Ends only when the store is dropped.
pub type ChangeFeed = tokio::sync::mpsc::Receiver<StoreChange>;

/// A document as the JSON text the stores keep.
pub fn encode_document(document: &ConfigDocument) -> Result<String, StoreError> {
    document
        .try_to_json_pretty()
        .map_err(|e| StoreError::Backend {
            message: format!("encoding revision {} of the document", document.revision),
            source: Box::new(e),
        })
}

/// The current time, Unix seconds.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The current time, Unix milliseconds.
pub fn unix_now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A dashboard sign-in as stored. The session id itself is never stored: the store keys it by
/// the id's SHA-256, like API keys, so reading the store does not hand out live cookies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    /// Digest of the admin key that signed in.
    pub key_digest: String,
    /// That key's name, for the page header and the audit log.
    pub key_name: String,
    /// The token every form of the session must send back.
    pub csrf: String,
    /// Unix seconds from which the session is void (absolute, not sliding).
    pub expires_at: i64,
}

/// An event to append: the parsed event and the JSON text it is stored as.
///
/// The collector stores the JSON each event arrived as (it parsed and validated it already), so
/// ingestion never encodes an event again; a scan parses the same text back into the same event.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedEvent<'a> {
    /// The event.
    pub event: Event,
    /// Its JSON object, which [`Event::from_json`] parses back into `event`.
    pub json: Cow<'a, str>,
}

impl EncodedEvent<'static> {
    /// Encodes an event built in code (tests, tools).
    pub fn new(event: Event) -> Result<Self, serde_json::Error> {
        let json = serde_json::to_string(&event)?;
        Ok(EncodedEvent {
            event,
            json: Cow::Owned(json),
        })
    }
}

impl<'a> EncodedEvent<'a> {
    /// An event parsed from `json` (the caller guarantees `Event::from_json(json) == event`).
    pub fn received(event: Event, json: &'a str) -> Self {
        EncodedEvent {
            event,
            json: Cow::Borrowed(json),
        }
    }
}

/// A position in a partition's event log; [`Store::events_after`] reads strictly after it. The
/// default is the start of the log. Opaque: only the store that issued it understands it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventCursor(pub String);

/// A page of a partition's event log.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    /// Events in log order (the same order on every instance).
    pub events: Vec<Event>,
    /// The position after the last event (the given cursor when there were none).
    pub next: EventCursor,
    /// More events may follow `next` already (the page was cut at its limit).
    pub more: bool,
}

/// One stored row of an environment's whole log ([`Store::log_after`]): events of one partition.
#[derive(Debug, Clone, Default)]
pub struct LogRow {
    /// Their partition.
    pub partition: u32,
    /// The row's position in the partition's log (as [`Store::events_after`] cursors are).
    pub position: EventCursor,
    /// The events, in log order.
    pub events: Vec<Event>,
}

/// A page of an environment's whole log, every partition's rows in commit order.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    /// Rows in commit order.
    pub rows: Vec<LogRow>,
    /// The position after the last row.
    pub next: EventCursor,
    /// More rows may follow.
    pub more: bool,
}

/// One partition's checkpoint: the state built from its events up to `cursor` (an
/// [`crate::attribution::Attribution`] checkpoint), and when it was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every event up to and including this position is in `state`.
    pub cursor: EventCursor,
    /// The encoded state.
    pub state: Vec<u8>,
    /// When it was written, Unix milliseconds.
    pub written_at: i64,
}

/// A partition's lease, held by one instance: the token a fenced write must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `<instance>/<epoch>`; the epoch grows with every grant of the partition.
    pub token: String,
}

/// Aggregates a partition's owner published, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedAggregates {
    /// [`crate::aggregates::PartitionAggregates`] as JSON.
    pub json: String,
    /// The partition's log position they include.
    pub cursor: EventCursor,
}

/// What a store shared by several server instances offers beyond [`Store`].
#[async_trait]
pub trait SharedStore: Send + Sync {
    /// Subscribes to change notifications. The first item is [`StoreChange::Resync`]; after a
    /// lost connection the feed reconnects by itself and sends `Resync` again.
    fn changes(&self) -> ChangeFeed;

    /// How often to look for new events when no notification arrives (a safety net: the
    /// change feed announces new events as they are stored).
    fn poll_interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// Records that `instance` is alive for `ttl` more, and returns every instance alive now
    /// (sorted), this one included.
    async fn heartbeat(&self, instance: &str, ttl: Duration) -> Result<Vec<String>, StoreError>;

    /// Removes `instance` from the live instances (a clean stop).
    async fn leave(&self, instance: &str) -> Result<(), StoreError>;

    /// Grants `instance` the partition's lease for `ttl` unless someone holds it.
    async fn acquire_lease(
        &self,
        environment: &str,
        partition: u32,
        instance: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError>;

    /// Extends a lease still held; false if it was lost (expired and maybe granted again).
    async fn renew_lease(
        &self,
        environment: &str,
        partition: u32,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives a lease up (a no-op if it was lost already).
    async fn release_lease(
        &self,
        environment: &str,
        partition: u32,
        lease: &Lease,
    ) -> Result<(), StoreError>;

    /// Publishes the partition's aggregates (fenced by `lease`).
    async fn publish_aggregates(
        &self,
        environment: &str,
        partition: u32,
        lease: &Lease,
        aggregates: &PublishedAggregates,
    ) -> Result<(), StoreError>;

    /// The aggregates last published for each partition (`None` where none were).
    async fn published_aggregates(
        &self,
        environment: &str,
        partitions: u32,
    ) -> Result<Vec<Option<PublishedAggregates>>, StoreError>;

    /// Writes users' profile records (fenced by `lease`): the events of each user that traits
    /// read, encoded by `crate::profiles`, so that every instance can compute the traits of users
    /// in partitions it does not own. An empty record deletes the user's. With `names`, also
    /// records which trait event names the partition's records are complete for.
    async fn put_profile_records(
        &self,
        environment: &str,
        partition: u32,
        lease: &Lease,
        records: &[(String, Vec<u8>)],
        names: Option<&str>,
    ) -> Result<(), StoreError>;

    /// A user's profile record, if one was written.
    async fn profile_record(
        &self,
        environment: &str,
        partition: u32,
        user_key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// A page of the partition's profile records after `cursor` (`"0"` to start); the next
    /// cursor is `"0"` at the end.
    async fn profile_records_page(
        &self,
        environment: &str,
        partition: u32,
        cursor: &str,
    ) -> Result<(String, Vec<(String, Vec<u8>)>), StoreError>;

    /// The trait event names the partition's profile records were last completed for.
    async fn profile_names(
        &self,
        environment: &str,
        partition: u32,
    ) -> Result<Option<String>, StoreError>;
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The compare-and-swap lost: someone else committed first.
    #[error("environment `{environment}` is at revision {current}, not {expected}")]
    Conflict {
        /// Environment key.
        environment: String,
        /// The revision the writer based its change on.
        expected: u64,
        /// The stored revision.
        current: u64,
    },
    /// No such environment.
    #[error("environment `{0}` does not exist")]
    NoSuchEnvironment(String),
    /// The environment (or key) already exists.
    #[error("`{0}` already exists")]
    AlreadyExists(String),
    /// The backend failed.
    #[error("storage backend failed: {message}")]
    Backend {
        /// What was being done.
        message: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Another process holds the data directory (see [`data_dir`]).
    #[error("data directory {} is in use by {holder}; stop that server or choose another --data-dir", directory.display())]
    Locked {
        /// The data directory.
        directory: std::path::PathBuf,
        /// Who holds it, as its lock file says.
        holder: String,
    },
    /// A write for a partition whose lease this instance no longer holds: another instance
    /// owns the partition now, and nothing was changed.
    #[error(
        "the lease of partition {partition} of `{environment}` is no longer held by this instance"
    )]
    Fenced {
        /// Environment key.
        environment: String,
        /// Partition.
        partition: u32,
    },
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The backend cannot be reached or refuses writes for now (down, restarting, loading its
    /// data, cluster slots uncovered, out of memory). Retrying later may succeed.
    #[error("{message}")]
    Unavailable {
        /// What is unavailable and why, e.g. `Redis at 127.0.0.1:6380 is unavailable`.
        message: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A storage backend. See the module docs for the contract.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every environment with its current document.
    async fn environments(&self) -> Result<Vec<StoredEnvironment>, StoreError>;

    /// One environment with its current document, if it exists.
    async fn environment(&self, key: &str) -> Result<Option<StoredEnvironment>, StoreError> {
        Ok(self
            .environments()
            .await?
            .into_iter()
            .find(|e| e.key == key))
    }

    /// Creates an environment with `document` (revision as given, normally 1) and an event log
    /// of `partitions` partitions.
    async fn create_environment(
        &self,
        key: &str,
        document: &ConfigDocument,
        partitions: u32,
    ) -> Result<(), StoreError>;

    /// Atomically replaces the document if the stored revision equals `expected_revision`, and
    /// appends `audit`. `document.revision` must be `expected_revision + 1`.
    async fn commit(
        &self,
        environment: &str,
        expected_revision: u64,
        document: &ConfigDocument,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;

    /// The audit log of an environment, newest first.
    async fn audit(
        &self,
        environment: &str,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Stores a new key.
    async fn put_key(&self, key: &ApiKey) -> Result<(), StoreError>;

    /// All keys, including revoked ones.
    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Marks a key revoked; false if there is no such key.
    async fn revoke_key(&self, id: &str, at: &str) -> Result<bool, StoreError>;

    /// Stores a dashboard session under the digest of its id. Every instance sharing the store
    /// accepts it; it is void from `expires_at` on and removed by the store after that.
    async fn put_session(&self, digest: &str, session: &StoredSession) -> Result<(), StoreError>;

    /// The session stored under this id digest, if it exists and has not expired at `now`
    /// (Unix seconds).
    async fn session(&self, digest: &str, now: i64) -> Result<Option<StoredSession>, StoreError>;

    /// Ends a session; ending one that does not exist is not an error.
    async fn delete_session(&self, digest: &str) -> Result<(), StoreError>;

    /// Durably appends events, each to its user's partition, skipping ids already stored for
    /// this environment. Returns, per event, whether it was newly stored (`false`: a duplicate
    /// id, ignored). An environment the store does not know has
    /// [`tailor_core::partition::DEFAULT_PARTITIONS`] partitions.
    async fn append_events(
        &self,
        environment: &str,
        events: &[EncodedEvent<'_>],
    ) -> Result<Vec<bool>, StoreError>;

    /// [`Store::append_events`], also returning a position in the environment's whole log
    /// ([`Store::log_after`]) at or after every event it stored (`None` from a store without
    /// one, or when nothing was stored).
    async fn append_events_at(
        &self,
        environment: &str,
        events: &[EncodedEvent<'_>],
    ) -> Result<(Vec<bool>, Option<EventCursor>), StoreError> {
        Ok((self.append_events(environment, events).await?, None))
    }

    /// About `limit` events of one partition stored after `cursor`, in log order (a page may
    /// hold a few more, to end on a whole stored batch; `more` says whether it was cut).
    async fn events_after(
        &self,
        environment: &str,
        partition: u32,
        cursor: &EventCursor,
        limit: usize,
    ) -> Result<EventPage, StoreError>;

    /// About `limit` events of every partition stored after `cursor` in the environment's whole
    /// log, row by row in commit order (a row's position orders like the partition's cursors).
    /// `None` from a store without one order across partitions (shared stores): their partitions
    /// are read one by one.
    async fn log_after(
        &self,
        _environment: &str,
        _cursor: &EventCursor,
        _limit: usize,
    ) -> Result<Option<LogPage>, StoreError> {
        Ok(None)
    }

    /// The partition's checkpoint, if one was written.
    async fn checkpoint(
        &self,
        environment: &str,
        partition: u32,
    ) -> Result<Option<Checkpoint>, StoreError>;

    /// Replaces the partition's checkpoint. A shared store requires the partition's `lease`
    /// (else [`StoreError::Fenced`]) and may then drop the partition's events up to the
    /// checkpoint's cursor; the embedded store keeps every event and ignores `lease`.
    async fn put_checkpoint(
        &self,
        environment: &str,
        partition: u32,
        checkpoint: &Checkpoint,
        lease: Option<&Lease>,
    ) -> Result<(), StoreError>;

    /// Replaces the members of a large list segment (`Segment::list`) with `members` (repeats
    /// are stored once); returns how many keys it holds now. Atomic: a reader sees the old list
    /// or the new one.
    async fn put_list(
        &self,
        environment: &str,
        segment: &str,
        members: Vec<String>,
    ) -> Result<u64, StoreError>;

    /// For each of `segments` (in order), whether its uploaded list holds `user_key`.
    async fn lists_containing(
        &self,
        environment: &str,
        segments: &[String],
        user_key: &str,
    ) -> Result<Vec<bool>, StoreError>;

    /// Every key of a list segment's uploaded list (empty when none was uploaded).
    async fn list_members(
        &self,
        environment: &str,
        segment: &str,
    ) -> Result<Vec<String>, StoreError>;

    /// Checks the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// `Some` when other server instances share this store (see [`SharedStore`]).
    fn shared(&self) -> Option<&dyn SharedStore> {
        None
    }
}
