//! The embedded event log: appends group-committed by one writer thread, scans on their own
//! read connections.
//!
//! Ingestion is many small concurrent batches; committing each in its own fsync'd transaction
//! would cap throughput at the disk's fsync rate. The writer thread instead takes every request
//! waiting in its queue, writes them all in one transaction (one fsync), then acknowledges each:
//! an acknowledgement still means "durable", and throughput grows with concurrency.
//!
//! Each event id goes into `event_ids` (which is what makes appends idempotent); the newly
//! stored events themselves go, as the JSON they arrived as, into one `event_batches` row per
//! environment, partition (`part`, see [`tailor_core::partition`]) and commit (a JSON array, in
//! arrival order). One row per commit instead of one per event is most of what makes the log
//! cheap to write and fast to read. A partition's log is its rows in `seq` order; a cursor is
//! the `seq` of the last row read. The `events` view shows them as one row per event for
//! inspection: `SELECT * FROM events LIMIT 10`.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::value::RawValue;
use tailor_core::events::Event;
use tailor_core::partition::{partition, DEFAULT_PARTITIONS};
use tokio::sync::oneshot;

use super::sqlite::{backend, WriteGate};
use super::{EncodedEvent, EventCursor, EventPage, LogPage, LogRow, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS event_batches (
    seq INTEGER PRIMARY KEY,
    environment TEXT NOT NULL,
    events TEXT NOT NULL,
    part INTEGER
);
CREATE INDEX IF NOT EXISTS event_batches_by_part ON event_batches (environment, part, seq);
CREATE TABLE IF NOT EXISTS event_ids (
    environment TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (environment, id)
) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS events AS
SELECT b.seq AS batch, b.environment AS environment, b.part AS part, e.value ->> 'id' AS id,
       e.value ->> 'type' AS kind, e.value ->> 'user_key' AS user_key,
       e.value ->> 'timestamp' AS timestamp, e.value AS payload
FROM event_batches AS b, json_each(b.events) AS e;
";

/// Moves a log written by an earlier version (one `events` table row per event) into the
/// current layout, in one transaction, keeping the order: each old row becomes a batch of one.
const MIGRATE_ROW_PER_EVENT: &str = "
CREATE TABLE event_batches (
    seq INTEGER PRIMARY KEY,
    environment TEXT NOT NULL,
    events TEXT NOT NULL
);
CREATE TABLE event_ids (
    environment TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (environment, id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO event_ids (environment, id) SELECT environment, id FROM events;
INSERT INTO event_batches (environment, events)
    SELECT environment, '[' || payload || ']' FROM events ORDER BY seq;
DROP TABLE events;
";

/// Most requests folded into one transaction.
const MAX_GROUP: usize = 512;
/// Largest `event_batches.events` text before a commit starts another row.
const MAX_ROW_BYTES: usize = 1 << 20;
/// Read connections kept for reuse: up to one per partition being caught up at once.
const READERS: usize = 16;

/// One append: its events' ids and JSON, copied into one buffer.
struct Request {
    environment: String,
    text: String,
    /// Per event: where its id and its JSON are in `text`, and its partition.
    events: Vec<(Range<usize>, Range<usize>, u32)>,
    /// Per event whether it was new, and the last row `seq` of the commit (0: no row).
    reply: oneshot::Sender<Result<(Vec<bool>, i64), StoreError>>,
}

/// Handle to the writer thread, and the read connections.
pub(super) struct EventLog {
    requests: std::sync::Mutex<std_mpsc::Sender<Request>>,
    path: PathBuf,
    readers: Arc<std::sync::Mutex<Vec<Connection>>>,
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(backend("opening the event log"))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -65536;",
    )
    .map_err(backend("configuring the event log"))?;
    Ok(conn)
}

/// A read connection: a smaller page cache than the writer's (reads are of recent rows).
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_connection(path)?;
    conn.execute_batch("PRAGMA cache_size = -8192;")
        .map_err(backend("configuring an event log reader"))?;
    Ok(conn)
}

impl EventLog {
    /// Opens the log in the database at `path` (moving an older layout into the current one)
    /// and starts the writer thread.
    pub(super) fn open(path: &Path, gate: WriteGate) -> Result<Self, StoreError> {
        let mut conn = open_connection(path)?;
        migrate(&mut conn)?;
        conn.execute_batch(SCHEMA)
            .map_err(backend("creating the event schema"))?;
        partition_legacy_rows(&mut conn)?;
        let (tx, rx) = std_mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("tailor-event-writer".into())
            .spawn(move || run_writer(&mut conn, &gate, rx))
            .map_err(|e| StoreError::Backend {
                message: "starting the event writer".into(),
                source: Box::new(e),
            })?;
        Ok(EventLog {
            requests: std::sync::Mutex::new(tx),
            path: path.to_path_buf(),
            readers: Arc::default(),
        })
    }

    /// Appends events to their partitions (of `partitions`); returns per event whether it was
    /// new, and the `seq` of the last row of the commit that stored them (every event of this
    /// batch is at or before it; 0 when nothing was stored).
    pub(super) async fn append(
        &self,
        environment: &str,
        partitions: u32,
        events: &[EncodedEvent<'_>],
    ) -> Result<(Vec<bool>, i64), StoreError> {
        if events.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let size = events
            .iter()
            .map(|e| e.event.id().len() + e.json.len())
            .sum();
        let mut text = String::with_capacity(size);
        let mut spans = Vec::with_capacity(events.len());
        for e in events {
            let id = push(&mut text, e.event.id());
            let json = push(&mut text, &e.json);
            spans.push((id, json, partition(e.event.user_key(), partitions)));
        }
        let (reply, wait) = oneshot::channel();
        let request = Request {
            environment: environment.to_string(),
            text,
            events: spans,
            reply,
        };
        let stopped = || StoreError::Backend {
            message: "the event writer has stopped".into(),
            source: "writer thread gone".into(),
        };
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(request)
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }

    /// Reads partition `part`'s rows committed after `after` (a row `seq`; empty: from the
    /// start) until at least `limit` events; pages end on row boundaries.
    pub(super) async fn read(
        &self,
        environment: &str,
        part: u32,
        after: &EventCursor,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let after_seq = parse_cursor(after)?;
        let environment = environment.to_string();
        self.with_reader(move |conn| read_page(conn, &environment, part, after_seq, limit))
            .await
    }

    /// Reads the rows of every partition committed after `after` (a row `seq`), in commit
    /// order, until at least `limit` events.
    pub(super) async fn read_log(
        &self,
        environment: &str,
        after: &EventCursor,
        limit: usize,
    ) -> Result<LogPage, StoreError> {
        let after_seq = parse_cursor(after)?;
        let environment = environment.to_string();
        self.with_reader(move |conn| read_log_page(conn, &environment, after_seq, limit))
            .await
    }

    /// Runs `f` on a pooled read connection, on the blocking pool.
    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = Arc::clone(&self.readers);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_reader(&path)?,
            };
            let result = f(&conn);
            let mut pool = readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < READERS {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend {
            message: "reading events".into(),
            source: Box::new(e),
        })?
    }
}

/// Parses one stored row's JSON array of events.
fn parse_row(seq: i64, text: &str, into: &mut Vec<Event>) -> Result<(), StoreError> {
    let items: Vec<&RawValue> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("event batch {seq}: not a JSON array: {e}")))?;
    into.reserve(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let event = Event::from_json(item.get())
            .map_err(|e| StoreError::Corrupt(format!("event batch {seq}, event {index}: {e}")))?;
        into.push(event);
    }
    Ok(())
}

fn read_log_page(
    conn: &Connection,
    environment: &str,
    after_seq: i64,
    limit: usize,
) -> Result<LogPage, StoreError> {
    let doing = "reading the event log";
    let mut stmt = conn
        .prepare_cached(
            // `NOT INDEXED`: a range of the rowid B-tree from `after_seq` on. With the index,
            // SQLite read every row of the environment and sorted them, on every call.
            "SELECT seq, part, events FROM event_batches NOT INDEXED
             WHERE seq > ?2 AND environment = ?1 ORDER BY seq",
        )
        .map_err(backend(doing))?;
    let mut rows = stmt
        .query(params![environment, after_seq])
        .map_err(backend(doing))?;
    let mut page = LogPage {
        next: EventCursor(if after_seq == 0 {
            String::new()
        } else {
            after_seq.to_string()
        }),
        ..LogPage::default()
    };
    let mut events = 0;
    while let Some(row) = rows.next().map_err(backend(doing))? {
        if events >= limit.max(1) {
            page.more = true;
            break;
        }
        let seq: i64 = row.get(0).map_err(backend(doing))?;
        let part: u32 = row.get(1).map_err(backend(doing))?;
        let text = row
            .get_ref(2)
            .and_then(|v| v.as_str().map_err(Into::into))
            .map_err(backend(doing))?;
        let mut parsed = Vec::new();
        parse_row(seq, text, &mut parsed)?;
        events += parsed.len();
        page.rows.push(LogRow {
            partition: part,
            position: EventCursor(seq.to_string()),
            events: parsed,
        });
        page.next = EventCursor(seq.to_string());
    }
    Ok(page)
}

fn parse_cursor(cursor: &EventCursor) -> Result<i64, StoreError> {
    if cursor.0.is_empty() {
        return Ok(0);
    }
    cursor.0.parse().map_err(|_| {
        StoreError::Corrupt(format!(
            "`{}` is not a position in the embedded event log",
            cursor.0
        ))
    })
}

fn read_page(
    conn: &Connection,
    environment: &str,
    part: u32,
    after_seq: i64,
    limit: usize,
) -> Result<EventPage, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, events FROM event_batches
             WHERE environment = ?1 AND part = ?2 AND seq > ?3 ORDER BY seq",
        )
        .map_err(backend("reading events"))?;
    let mut rows = stmt
        .query(params![environment, part, after_seq])
        .map_err(backend("reading events"))?;
    let mut page = EventPage {
        next: EventCursor(if after_seq == 0 {
            String::new()
        } else {
            after_seq.to_string()
        }),
        ..EventPage::default()
    };
    while let Some(row) = rows.next().map_err(backend("reading events"))? {
        if page.events.len() >= limit.max(1) {
            page.more = true;
            break;
        }
        let seq: i64 = row.get(0).map_err(backend("reading events"))?;
        let text = row
            .get_ref(1)
            .and_then(|v| v.as_str().map_err(Into::into))
            .map_err(backend("reading events"))?;
        parse_row(seq, text, &mut page.events)?;
        page.next = EventCursor(seq.to_string());
    }
    Ok(page)
}

/// Splits rows written before the log was partitioned (`part` NULL) into one row per partition,
/// with the partition count of their environment (`environments.partitions`), keeping each
/// partition's order. Runs once: afterwards no row lacks a partition.
fn partition_legacy_rows(conn: &mut Connection) -> Result<(), StoreError> {
    let doing = "partitioning the event log";
    let legacy: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM event_batches WHERE part IS NULL",
            [],
            |r| r.get(0),
        )
        .map_err(backend(doing))?;
    if legacy == 0 {
        return Ok(());
    }
    let has_environments: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('environments') WHERE name = 'partitions'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(backend(doing))?
        > 0;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend(doing))?;
    let counts: HashMap<String, u32> = if has_environments {
        let mut stmt = tx
            .prepare("SELECT key, partitions FROM environments")
            .map_err(backend(doing))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))
            .map_err(backend(doing))?;
        rows.collect::<Result<_, _>>().map_err(backend(doing))?
    } else {
        HashMap::new()
    };
    let rows: Vec<(i64, String, String)> = {
        let mut stmt = tx
            .prepare("SELECT seq, environment, events FROM event_batches WHERE part IS NULL ORDER BY seq")
            .map_err(backend(doing))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(backend(doing))?;
        rows.collect::<Result<_, _>>().map_err(backend(doing))?
    };
    let mut moved = 0usize;
    for (seq, environment, text) in &rows {
        let partitions = counts
            .get(environment)
            .copied()
            .unwrap_or(DEFAULT_PARTITIONS);
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
            StoreError::Corrupt(format!("event batch {seq}: not a JSON array: {e}"))
        })?;
        let mut parts: std::collections::BTreeMap<u32, Vec<&str>> = Default::default();
        for (index, item) in items.into_iter().enumerate() {
            let event = Event::from_json(item.get()).map_err(|e| {
                StoreError::Corrupt(format!("event batch {seq}, event {index}: {e}"))
            })?;
            parts
                .entry(partition(event.user_key(), partitions))
                .or_default()
                .push(item.get());
            moved += 1;
        }
        for (part, items) in parts {
            tx.execute(
                "INSERT INTO event_batches (environment, part, events) VALUES (?1, ?2, ?3)",
                params![environment, part, format!("[{}]", items.join(","))],
            )
            .map_err(backend(doing))?;
        }
        tx.execute("DELETE FROM event_batches WHERE seq = ?1", params![seq])
            .map_err(backend(doing))?;
    }
    tx.commit().map_err(backend(doing))?;
    tracing::info!(
        rows = rows.len(),
        events = moved,
        "split the event log into partitions"
    );
    Ok(())
}

/// Appends `value` to `text`, returning where it went.
fn push(text: &mut String, value: &str) -> Range<usize> {
    let start = text.len();
    text.push_str(value);
    start..text.len()
}

/// Brings a log written by an earlier version into the current layout.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let events_kind: Option<String> = conn
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend("reading the event schema"))?;
    if events_kind.as_deref() == Some("table") {
        let tx = conn
            .transaction()
            .map_err(backend("migrating the event log"))?;
        tx.execute_batch(MIGRATE_ROW_PER_EVENT)
            .map_err(backend("migrating the event log"))?;
        tx.commit().map_err(backend("migrating the event log"))?;
        tracing::info!("moved the event log to one row per committed batch");
    }
    // Logs written before partitions: their rows get a `part` column (split by
    // `partition_legacy_rows` once the schema is complete).
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('event_batches')")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .map_err(backend("reading the event schema"))?;
    if !columns.is_empty() && !columns.iter().any(|c| c == "part") {
        conn.execute_batch("ALTER TABLE event_batches ADD COLUMN part INTEGER")
            .map_err(backend("migrating the event log"))?;
    }
    Ok(())
}

fn run_writer(conn: &mut Connection, gate: &WriteGate, requests: std_mpsc::Receiver<Request>) {
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let written = {
            let _turn = gate.lock();
            write_group(conn, &group)
        };
        tracing::debug!(
            requests = group.len(),
            events = group.iter().map(|r| r.events.len()).sum::<usize>(),
            micros = started.elapsed().as_micros() as u64,
            "event group committed"
        );
        match written {
            Ok((results, last_seq)) => {
                for (request, result) in group.into_iter().zip(results) {
                    let _ = request.reply.send(Ok((result, last_seq)));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "event append failed; the whole group was rolled back");
                let message = e.to_string();
                for request in group {
                    let _ = request.reply.send(Err(StoreError::Backend {
                        message: "appending events".into(),
                        source: message.clone().into(),
                    }));
                }
            }
        }
    }
}

/// Writes a group of requests in one transaction: each event's id, then per environment the
/// newly stored events as JSON arrays of at most [`MAX_ROW_BYTES`].
fn write_group(
    conn: &mut Connection,
    group: &[Request],
) -> Result<(Vec<Vec<bool>>, i64), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(group.len());
    {
        let mut insert_id =
            tx.prepare_cached("INSERT OR IGNORE INTO event_ids (environment, id) VALUES (?1, ?2)")?;
        let mut insert_batch = tx.prepare_cached(
            "INSERT INTO event_batches (environment, part, events) VALUES (?1, ?2, ?3)",
        )?;
        let mut batches: HashMap<(&str, u32), String> = HashMap::new();
        for request in group {
            let environment = request.environment.as_str();
            let mut fresh = Vec::with_capacity(request.events.len());
            for (id, json, part) in &request.events {
                let new = insert_id.execute(params![environment, &request.text[id.clone()]])? == 1;
                fresh.push(new);
                if !new {
                    continue;
                }
                let batch = batches.entry((environment, *part)).or_default();
                if batch.len() + json.len() + 2 > MAX_ROW_BYTES && !batch.is_empty() {
                    batch.push(']');
                    insert_batch.execute(params![environment, part, batch.as_str()])?;
                    batch.clear();
                }
                batch.push(if batch.is_empty() { '[' } else { ',' });
                batch.push_str(&request.text[json.clone()]);
            }
            results.push(fresh);
        }
        // In partition order, so that rows of one commit are laid out the same every time.
        let mut batches: Vec<((&str, u32), String)> = batches.into_iter().collect();
        batches.sort_by(|a, b| a.0.cmp(&b.0));
        for ((environment, part), mut batch) in batches {
            if !batch.is_empty() {
                batch.push(']');
                insert_batch.execute(params![environment, part, batch])?;
            }
        }
    }
    let last_seq = tx.last_insert_rowid();
    tx.commit()?;
    Ok((results, last_seq))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const OLD_SCHEMA: &str = "
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY, environment TEXT NOT NULL, id TEXT NOT NULL,
            kind TEXT NOT NULL, user_key TEXT NOT NULL, timestamp INTEGER NOT NULL,
            payload TEXT NOT NULL
        );
        CREATE UNIQUE INDEX events_by_id ON events (environment, id);";

    fn conversion(id: &str) -> EncodedEvent<'static> {
        let json = format!(
            r#"{{"type":"conversion","id":"{id}","timestamp":1900000000000,"user_key":"u","event":"buy"}}"#
        );
        EncodedEvent {
            event: Event::from_json(&json).unwrap(),
            json: json.into(),
        }
    }

    /// Every event id of the environment, partition after partition, each in log order.
    async fn scan_ids(log: &EventLog, environment: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for part in 0..DEFAULT_PARTITIONS {
            let mut cursor = EventCursor::default();
            loop {
                let page = log.read(environment, part, &cursor, 7).await.unwrap();
                ids.extend(page.events.iter().map(|e| e.id().to_string()));
                cursor = page.next;
                if !page.more {
                    break;
                }
            }
        }
        ids
    }

    fn event(id: &str, user: &str) -> EncodedEvent<'static> {
        let json = format!(
            r#"{{"type":"conversion","id":"{id}","timestamp":1900000000000,"user_key":"{user}","event":"buy"}}"#
        );
        EncodedEvent {
            event: Event::from_json(&json).unwrap(),
            json: json.into(),
        }
    }

    /// A log written before partitions (rows without `part`, mixing users) is split into
    /// partitions once, each keeping its events' order, and ids stay de-duplicated.
    #[tokio::test]
    async fn an_unpartitioned_log_is_split_keeping_each_partitions_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tailor.db");
        let users = ["ann", "bob", "cid", "dee", "eve"];
        let mut expected: Vec<(u32, String)> = Vec::new();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE event_batches (seq INTEGER PRIMARY KEY, environment TEXT NOT NULL, events TEXT NOT NULL);
                 CREATE TABLE event_ids (environment TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (environment, id)) WITHOUT ROWID;",
            )
            .unwrap();
            for row in 0..4 {
                let events: Vec<EncodedEvent<'static>> = (0..10)
                    .map(|i| event(&format!("r{row}-{i}"), users[(row * 3 + i) % users.len()]))
                    .collect();
                for e in &events {
                    conn.execute(
                        "INSERT INTO event_ids VALUES ('prod', ?1)",
                        params![e.event.id()],
                    )
                    .unwrap();
                    expected.push((
                        partition(e.event.user_key(), DEFAULT_PARTITIONS),
                        e.event.id().to_string(),
                    ));
                }
                let text: Vec<&str> = events.iter().map(|e| e.json.as_ref()).collect();
                conn.execute(
                    "INSERT INTO event_batches (environment, events) VALUES ('prod', ?1)",
                    params![format!("[{}]", text.join(","))],
                )
                .unwrap();
            }
        }
        let log = EventLog::open(&path, WriteGate::default()).unwrap();
        // Stable sort: by partition, log order within each.
        expected.sort_by_key(|(p, _)| *p);
        let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
        assert_eq!(scan_ids(&log, "prod").await, expected);
        let fresh = log
            .append(
                "prod",
                DEFAULT_PARTITIONS,
                &[event("r0-0", "ann"), event("new", "ann")],
            )
            .await
            .unwrap();
        assert_eq!(fresh.0, [false, true]);
        drop(log);
        let log = EventLog::open(&path, WriteGate::default()).unwrap();
        assert_eq!(scan_ids(&log, "prod").await.len(), 41);
    }

    /// A database written by the row-per-event version opens with every event, in order, and
    /// keeps rejecting their ids as duplicates.
    #[tokio::test]
    async fn a_row_per_event_log_is_migrated_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tailor.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(OLD_SCHEMA).unwrap();
            for id in ["b", "a", "c"] {
                let e = conversion(id);
                conn.execute(
                    "INSERT INTO events (environment, id, kind, user_key, timestamp, payload)
                     VALUES ('prod', ?1, 'conversion', 'u', 1900000000000, ?2)",
                    params![id, e.json.as_ref()],
                )
                .unwrap();
            }
        }
        let log = EventLog::open(&path, WriteGate::default()).unwrap();
        assert_eq!(scan_ids(&log, "prod").await, ["b", "a", "c"]);
        let fresh = log
            .append(
                "prod",
                DEFAULT_PARTITIONS,
                &[conversion("a"), conversion("d")],
            )
            .await
            .unwrap();
        assert_eq!(fresh.0, [false, true]);
        assert_eq!(scan_ids(&log, "prod").await, ["b", "a", "c", "d"]);
        // The view shows one row per event, as the old table did.
        let conn = Connection::open(&path).unwrap();
        let ids: Vec<String> = conn
            .prepare("SELECT id FROM events WHERE environment = 'prod' ORDER BY batch")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids, ["b", "a", "c", "d"]);
        drop(log);
        // Opening again does not migrate twice.
        let log = EventLog::open(&path, WriteGate::default()).unwrap();
        assert_eq!(scan_ids(&log, "prod").await, ["b", "a", "c", "d"]);
    }

    /// Events of one commit beyond the row size limit are split over rows, in order.
    #[tokio::test]
    async fn a_large_commit_is_split_into_rows_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("tailor.db"), WriteGate::default()).unwrap();
        let padding = "p".repeat(4000);
        let events: Vec<EncodedEvent<'static>> = (0..600)
            .map(|i| {
                let json = format!(
                    r#"{{"type":"conversion","id":"e{i}","timestamp":1900000000000,"user_key":"u","event":"buy","pad":"{padding}"}}"#
                );
                EncodedEvent {
                    event: Event::from_json(&json).unwrap(),
                    json: json.into(),
                }
            })
            .collect();
        assert!(log
            .append("prod", DEFAULT_PARTITIONS, &events)
            .await
            .unwrap()
            .0
            .iter()
            .all(|f| *f));
        let expected: Vec<String> = (0..600).map(|i| format!("e{i}")).collect();
        assert_eq!(scan_ids(&log, "prod").await, expected);
        let conn = Connection::open(dir.path().join("tailor.db")).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM event_batches", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 3, "600 events of ~4 KiB in rows of at most 1 MiB");
    }
}
