//! The embedded store: one SQLite database in WAL mode in the data directory.
//!
//! Why SQLite: zero setup, one file, and transactions give exactly the contract's atomicity.
//! `synchronous = FULL` makes every acknowledged commit durable against power loss as well as
//! `kill -9`. Calls run on tokio's blocking pool so async workers never wait on disk; a std
//! `Mutex` serializes them because a SQLite connection is not `Sync` and writes are rare.
//!
//! # Writes wait their turn
//! Two connections write to the database: this one (configs, keys, sessions) and the event
//! log's writer thread. SQLite allows one writer at a time, and its busy handler is neither fair
//! nor always consulted (a transaction that read first and then writes fails at once with
//! "database is locked" if another connection committed in between), so under full ingest
//! config changes used to fail. Every write transaction therefore first takes the process-wide
//! [`WriteGate`], a fair mutex: a config change waits for at most the event group commit in
//! progress (at most 512 requests, one fsync; milliseconds) and then goes next, before any
//! later group. Write transactions also begin `IMMEDIATE`, so that even a writer outside the
//! gate (an operator's `sqlite3` shell) makes them wait up to the 5 s busy timeout instead of
//! failing mid-transaction. The data directory is locked ([`super::data_dir`]), so no second
//! server writes to it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tailor_core::partition::DEFAULT_PARTITIONS;
use tailor_core::ConfigDocument;

use super::data_dir::DataDirLock;
use super::sqlite_events::EventLog;
use super::{
    encode_document, unix_now, ApiKey, AuditEntry, AuditQuery, Checkpoint, EncodedEvent,
    EventCursor, EventPage, KeyKind, Lease, LogPage, Store, StoreError, StoredEnvironment,
    StoredSession,
};

/// SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    events: Arc<EventLog>,
    gate: WriteGate,
    path: PathBuf,
    /// Each environment's partition count (fixed at creation), for splitting appends.
    partitions: Arc<std::sync::RwLock<HashMap<String, u32>>>,
    // Dropped with the last clone of the store, which releases the data directory.
    _lock: Arc<DataDirLock>,
}

/// The turn of one write transaction on the database, shared by every connection that writes.
/// Fair: whoever has waited longest writes next (see the module docs).
pub(super) type WriteGate = Arc<parking_lot::FairMutex<()>>;

pub(super) fn backend(message: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Backend {
        message: message.to_string(),
        source: Box::new(e),
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS environments (
    key TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    document TEXT NOT NULL,
    partitions INTEGER NOT NULL DEFAULT 16
);
CREATE TABLE IF NOT EXISTS checkpoints (
    environment TEXT NOT NULL,
    part INTEGER NOT NULL,
    cursor TEXT NOT NULL,
    state BLOB NOT NULL,
    written_at INTEGER NOT NULL,
    PRIMARY KEY (environment, part)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment TEXT NOT NULL,
    revision INTEGER NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    before TEXT,
    after TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_resource ON audit (environment, kind, key, id);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    environment TEXT,
    digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS list_members (
    environment TEXT NOT NULL,
    segment TEXT NOT NULL,
    user_key TEXT NOT NULL,
    PRIMARY KEY (environment, segment, user_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
";

/// Most dashboard sessions kept; past it, storing one drops those closest to expiry.
const MAX_SESSIONS: i64 = 10_000;

impl SqliteStore {
    /// Opens (creating if needed) `tailor.db` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Backend {
            message: format!("creating data directory {}", data_dir.display()),
            source: Box::new(e),
        })?;
        let lock = DataDirLock::acquire(data_dir)?;
        let path = data_dir.join("tailor.db");
        let conn = Connection::open(&path).map_err(backend("opening the database"))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(backend("configuring the database"))?;
        add_partitions_column(&conn)?;
        conn.execute_batch(SCHEMA)
            .map_err(backend("creating the schema"))?;
        let partitions = read_partitions(&conn)?;
        let gate = WriteGate::default();
        let events = Arc::new(EventLog::open(&path, Arc::clone(&gate))?);
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            events,
            gate,
            path,
            partitions: Arc::new(std::sync::RwLock::new(partitions)),
            _lock: Arc::new(lock),
        })
    }

    /// The partition count of an environment (the default for one not created yet).
    fn partitions_of(&self, environment: &str) -> u32 {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(environment)
            .copied()
            .unwrap_or(DEFAULT_PARTITIONS)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A poisoned lock only means another call panicked mid-transaction; SQLite rolled
            // that transaction back, so the connection is still consistent.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend {
            message: "storage task failed".into(),
            source: Box::new(e),
        })?
    }

    /// Like [`SqliteStore::with`], for a call that writes: it runs in its turn at the
    /// [`WriteGate`].
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let gate = Arc::clone(&self.gate);
        self.with(move |conn| {
            let _turn = gate.lock();
            f(conn)
        })
        .await
    }
}

/// Databases written before partitions: their `environments` table gets the column (existing
/// environments get 16 partitions, the default then).
fn add_partitions_column(conn: &Connection) -> Result<(), StoreError> {
    let doing = "adding partitions to the environments table";
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('environments')")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .map_err(backend(doing))?;
    if !columns.is_empty() && !columns.iter().any(|c| c == "partitions") {
        conn.execute_batch(
            "ALTER TABLE environments ADD COLUMN partitions INTEGER NOT NULL DEFAULT 16",
        )
        .map_err(backend(doing))?;
    }
    Ok(())
}

fn read_partitions(conn: &Connection) -> Result<HashMap<String, u32>, StoreError> {
    let doing = "reading partition counts";
    let mut stmt = conn
        .prepare("SELECT key, partitions FROM environments")
        .map_err(backend(doing))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))
        .map_err(backend(doing))?;
    rows.collect::<Result<_, _>>().map_err(backend(doing))
}

/// Begins a write transaction that holds SQLite's write lock from its first statement.
fn begin_write<'c>(
    conn: &'c mut Connection,
    doing: &'static str,
) -> Result<rusqlite::Transaction<'c>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend(doing))
}

fn decode_document(key: &str, text: &str) -> Result<ConfigDocument, StoreError> {
    ConfigDocument::from_json(text)
        .map_err(|e| StoreError::Corrupt(format!("document of environment `{key}`: {e}")))
}

fn kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Admin => "admin",
        KeyKind::Sdk => "sdk",
        KeyKind::Client => "client",
    }
}

fn kind_from(name: &str) -> Result<KeyKind, StoreError> {
    match name {
        "admin" => Ok(KeyKind::Admin),
        "sdk" => Ok(KeyKind::Sdk),
        "client" => Ok(KeyKind::Client),
        other => Err(StoreError::Corrupt(format!("unknown key kind `{other}`"))),
    }
}

fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

fn json_value(text: Option<String>) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("audit entry: {e}")))
}

#[async_trait]
impl Store for SqliteStore {
    async fn environments(&self) -> Result<Vec<StoredEnvironment>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT key, document, partitions FROM environments ORDER BY key")
                .map_err(backend("reading environments"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                    ))
                })
                .map_err(backend("reading environments"))?;
            let mut out = Vec::new();
            for row in rows {
                let (key, text, partitions) = row.map_err(backend("reading environments"))?;
                let document = decode_document(&key, &text)?;
                out.push(StoredEnvironment {
                    key,
                    document,
                    partitions,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn create_environment(
        &self,
        key: &str,
        document: &ConfigDocument,
        partitions: u32,
    ) -> Result<(), StoreError> {
        let owned_key = key.to_string();
        let text = encode_document(document)?;
        let revision = document.revision as i64;
        self.write(move |conn| {
            let inserted = conn
                .execute(
                    "INSERT INTO environments (key, revision, document, partitions)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) DO NOTHING",
                    params![owned_key, revision, text, partitions],
                )
                .map_err(backend("creating an environment"))?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(owned_key));
            }
            Ok(())
        })
        .await?;
        self.partitions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), partitions);
        Ok(())
    }

    async fn commit(
        &self,
        environment: &str,
        expected_revision: u64,
        document: &ConfigDocument,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let environment = environment.to_string();
        let text = encode_document(document)?;
        let new_revision = document.revision;
        let audit = audit.clone();
        self.write(move |conn| {
            let tx = begin_write(conn, "starting a commit")?;
            let current: Option<i64> = tx
                .query_row(
                    "SELECT revision FROM environments WHERE key = ?1",
                    params![environment],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend("reading the revision"))?;
            let Some(current) = current else {
                return Err(StoreError::NoSuchEnvironment(environment));
            };
            if current as u64 != expected_revision || new_revision != expected_revision + 1 {
                return Err(StoreError::Conflict {
                    environment,
                    expected: expected_revision,
                    current: current as u64,
                });
            }
            tx.execute(
                "UPDATE environments SET revision = ?1, document = ?2 WHERE key = ?3",
                params![new_revision as i64, text, environment],
            )
            .map_err(backend("writing the document"))?;
            tx.execute(
                "INSERT INTO audit (environment, revision, at, actor, action, kind, key, before, after)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    environment,
                    new_revision as i64,
                    audit.at,
                    audit.actor,
                    audit.action,
                    audit.kind,
                    audit.key,
                    json_text(&audit.before),
                    json_text(&audit.after),
                ],
            )
            .map_err(backend("writing the audit entry"))?;
            tx.commit().map_err(backend("committing"))
        })
        .await
    }

    async fn audit(
        &self,
        environment: &str,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let environment = environment.to_string();
        let query = query.clone();
        self.with(move |conn| {
            let limit = i64::from(query.limit.unwrap_or(100).min(1000));
            let mut stmt = conn
                .prepare(
                    "SELECT id, environment, revision, at, actor, action, kind, key, before, after
                     FROM audit
                     WHERE environment = ?1 AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR key = ?3)
                     ORDER BY id DESC LIMIT ?4",
                )
                .map_err(backend("reading the audit log"))?;
            let rows = stmt
                .query_map(params![environment, query.kind, query.key, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, Option<String>>(9)?,
                    ))
                })
                .map_err(backend("reading the audit log"))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, environment, revision, at, actor, action, kind, key, before, after) =
                    row.map_err(backend("reading the audit log"))?;
                out.push(AuditEntry {
                    id,
                    environment,
                    revision: revision as u64,
                    at,
                    actor,
                    action,
                    kind,
                    key,
                    before: json_value(before)?,
                    after: json_value(after)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn put_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO api_keys (id, name, kind, environment, digest, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    key.id,
                    key.name,
                    kind_name(key.kind),
                    key.environment,
                    key.digest,
                    key.created_at,
                    key.revoked_at
                ],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::AlreadyExists(format!("key {}", key.id))
                }
                e => backend("storing a key")(e),
            })?;
            Ok(())
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT id, name, kind, environment, digest, created_at, revoked_at
                     FROM api_keys ORDER BY created_at, id",
                )
                .map_err(backend("reading keys"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                })
                .map_err(backend("reading keys"))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, name, kind, environment, digest, created_at, revoked_at) =
                    row.map_err(backend("reading keys"))?;
                out.push(ApiKey {
                    id,
                    name,
                    kind: kind_from(&kind)?,
                    environment,
                    digest,
                    created_at,
                    revoked_at,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn revoke_key(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        let at = at.to_string();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![id, at],
                )
                .map_err(backend("revoking a key"))?;
            Ok(n == 1)
        })
        .await
    }

    async fn put_session(&self, digest: &str, session: &StoredSession) -> Result<(), StoreError> {
        let digest = digest.to_string();
        let json = serde_json::to_string(session).map_err(|e| StoreError::Backend {
            message: "encoding a session".into(),
            source: Box::new(e),
        })?;
        let expires_at = session.expires_at;
        let now = unix_now();
        self.write(move |conn| {
            let tx = begin_write(conn, "storing a session")?;
            tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])
                .map_err(backend("storing a session"))?;
            tx.execute(
                "DELETE FROM sessions WHERE digest IN (SELECT digest FROM sessions
                 ORDER BY expires_at LIMIT max(0, (SELECT COUNT(*) FROM sessions) - ?1 + 1))",
                params![MAX_SESSIONS],
            )
            .map_err(backend("storing a session"))?;
            tx.execute(
                "INSERT OR REPLACE INTO sessions (digest, session, expires_at) VALUES (?1, ?2, ?3)",
                params![digest, json, expires_at],
            )
            .map_err(backend("storing a session"))?;
            tx.commit().map_err(backend("storing a session"))
        })
        .await
    }

    async fn session(&self, digest: &str, now: i64) -> Result<Option<StoredSession>, StoreError> {
        let digest = digest.to_string();
        let json: Option<String> = self
            .with(move |conn| {
                conn.query_row(
                    "SELECT session FROM sessions WHERE digest = ?1 AND expires_at > ?2",
                    params![digest, now],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend("reading a session"))
            })
            .await?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(format!("a session: {e}")))
        })
        .transpose()
    }

    async fn delete_session(&self, digest: &str) -> Result<(), StoreError> {
        let digest = digest.to_string();
        self.write(move |conn| {
            conn.execute("DELETE FROM sessions WHERE digest = ?1", params![digest])
                .map_err(backend("ending a session"))?;
            Ok(())
        })
        .await
    }

    async fn append_events(
        &self,
        environment: &str,
        events: &[EncodedEvent<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        Ok(self.append_events_at(environment, events).await?.0)
    }

    async fn append_events_at(
        &self,
        environment: &str,
        events: &[EncodedEvent<'_>],
    ) -> Result<(Vec<bool>, Option<EventCursor>), StoreError> {
        let partitions = self.partitions_of(environment);
        let (fresh, last) = self.events.append(environment, partitions, events).await?;
        Ok((fresh, (last > 0).then(|| EventCursor(last.to_string()))))
    }

    async fn events_after(
        &self,
        environment: &str,
        partition: u32,
        cursor: &EventCursor,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.events
            .read(environment, partition, cursor, limit)
            .await
    }

    async fn log_after(
        &self,
        environment: &str,
        cursor: &EventCursor,
        limit: usize,
    ) -> Result<Option<LogPage>, StoreError> {
        Ok(Some(
            self.events.read_log(environment, cursor, limit).await?,
        ))
    }

    async fn checkpoint(
        &self,
        environment: &str,
        partition: u32,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let environment = environment.to_string();
        self.with(move |conn| {
            conn.query_row(
                "SELECT cursor, state, written_at FROM checkpoints
                 WHERE environment = ?1 AND part = ?2",
                params![environment, partition],
                |r| {
                    Ok(Checkpoint {
                        cursor: EventCursor(r.get(0)?),
                        state: r.get(1)?,
                        written_at: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(backend("reading a checkpoint"))
        })
        .await
    }

    async fn put_checkpoint(
        &self,
        environment: &str,
        partition: u32,
        checkpoint: &Checkpoint,
        _lease: Option<&Lease>,
    ) -> Result<(), StoreError> {
        let environment = environment.to_string();
        let checkpoint = checkpoint.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO checkpoints (environment, part, cursor, state, written_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (environment, part) DO UPDATE SET
                    cursor = excluded.cursor, state = excluded.state,
                    written_at = excluded.written_at",
                params![
                    environment,
                    partition,
                    checkpoint.cursor.0,
                    checkpoint.state,
                    checkpoint.written_at
                ],
            )
            .map_err(backend("writing a checkpoint"))?;
            Ok(())
        })
        .await
    }

    async fn put_list(
        &self,
        environment: &str,
        segment: &str,
        members: Vec<String>,
    ) -> Result<u64, StoreError> {
        let environment = environment.to_string();
        let segment = segment.to_string();
        self.write(move |conn| {
            let doing = "replacing a list segment's members";
            let tx = begin_write(conn, doing)?;
            tx.execute(
                "DELETE FROM list_members WHERE environment = ?1 AND segment = ?2",
                params![environment, segment],
            )
            .map_err(backend(doing))?;
            let mut stored = 0u64;
            {
                let mut insert = tx
                    .prepare(
                        "INSERT OR IGNORE INTO list_members (environment, segment, user_key)
                         VALUES (?1, ?2, ?3)",
                    )
                    .map_err(backend(doing))?;
                for key in &members {
                    stored += insert
                        .execute(params![environment, segment, key])
                        .map_err(backend(doing))? as u64;
                }
            }
            tx.commit().map_err(backend(doing))?;
            Ok(stored)
        })
        .await
    }

    async fn lists_containing(
        &self,
        environment: &str,
        segments: &[String],
        user_key: &str,
    ) -> Result<Vec<bool>, StoreError> {
        if segments.is_empty() {
            return Ok(Vec::new());
        }
        let environment = environment.to_string();
        let segments = segments.to_vec();
        let user_key = user_key.to_string();
        self.with(move |conn| {
            let doing = "reading list memberships";
            let mut query = conn
                .prepare_cached(
                    "SELECT 1 FROM list_members
                     WHERE environment = ?1 AND segment = ?2 AND user_key = ?3",
                )
                .map_err(backend(doing))?;
            segments
                .iter()
                .map(|segment| {
                    query
                        .exists(params![environment, segment, user_key])
                        .map_err(backend(doing))
                })
                .collect()
        })
        .await
    }

    async fn list_members(
        &self,
        environment: &str,
        segment: &str,
    ) -> Result<Vec<String>, StoreError> {
        let environment = environment.to_string();
        let segment = segment.to_string();
        self.with(move |conn| {
            let doing = "reading a list segment's members";
            let mut query = conn
                .prepare(
                    "SELECT user_key FROM list_members WHERE environment = ?1 AND segment = ?2",
                )
                .map_err(backend(doing))?;
            let rows = query
                .query_map(params![environment, segment], |r| r.get::<_, String>(0))
                .map_err(backend(doing))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend(doing))
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(backend("pinging the database"))
        })
        .await
    }
}
