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
//!   skipped, so a retried batch never double-counts. `append_events` returns only after the
//!   batch is durable. Each event is stored as the JSON it arrived as ([`EncodedEvent`]), and
//!   [`Store::scan_events`] reads them back in log order, resuming after a cursor.
//! - **Sessions** (dashboard sign-ins) are stored by the digest of their id and are void from
//!   their expiry on, so every instance sharing the store accepts them.
//! - **Shared backends** ([`Store::shared`]) are written by several server instances at once.
//!   They also report every change (from any instance) on a [`ChangeFeed`], and serve each
//!   environment's events in one global order ([`SharedStore::events_after`]), so that every
//!   instance can publish the same revisions and compute the same results. A feed's first item,
//!   and the first after it reconnects, is [`StoreChange::Resync`]: changes may have been missed,
//!   so the reader re-reads everything and keeps whatever revision is newer.

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

/// Events read back from the store for rebuilding aggregates: pages in log order, each with the
/// position after its last event.
pub type EventScan = tokio::sync::mpsc::Receiver<Result<EventPage, StoreError>>;

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
    /// New events were stored for an environment.
    Events {
        /// Environment key.
        environment: String,
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

/// A position in an environment's event log; [`SharedStore::events_after`] reads strictly after
/// it. The default is the start of the log. Opaque: only the store that issued it understands it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventCursor(pub String);

/// A page of an environment's event log.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    /// Events in log order (the same order on every instance).
    pub events: Vec<Event>,
    /// The position after the last event (the given cursor when there were none).
    pub next: EventCursor,
}

/// What a store shared by several server instances offers beyond [`Store`].
#[async_trait]
pub trait SharedStore: Send + Sync {
    /// Subscribes to change notifications. The first item is [`StoreChange::Resync`]; after a
    /// lost connection the feed reconnects by itself and sends `Resync` again.
    fn changes(&self) -> ChangeFeed;

    /// Up to `limit` events stored after `cursor`, by any instance, in log order.
    async fn events_after(
        &self,
        environment: &str,
        cursor: &EventCursor,
        limit: usize,
    ) -> Result<EventPage, StoreError>;

    /// How often to look for new events when no notification arrives (a safety net: the
    /// change feed announces new events as they are stored).
    fn poll_interval(&self) -> Duration {
        Duration::from_secs(1)
    }
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

    /// Creates an environment with `document` (revision as given, normally 1).
    async fn create_environment(
        &self,
        key: &str,
        document: &ConfigDocument,
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

    /// Durably appends events, skipping ids already stored for this environment. Returns, per
    /// event, whether it was newly stored (`false`: a duplicate id, ignored).
    async fn append_events(
        &self,
        environment: &str,
        events: &[EncodedEvent<'_>],
    ) -> Result<Vec<bool>, StoreError>;

    /// Every event stored for the environment after `after` (`EventCursor::default()`: all of
    /// them), in log order, in pages. Events stored while the scan runs may or may not be in it;
    /// a second scan after the last page's `next` finds the rest.
    async fn scan_events(
        &self,
        environment: &str,
        after: &EventCursor,
    ) -> Result<EventScan, StoreError>;

    /// Checks the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// `Some` when other server instances share this store (see [`SharedStore`]).
    fn shared(&self) -> Option<&dyn SharedStore> {
        None
    }
}
