//! The embedded event log: appends group-committed by one writer thread, scans on their own
//! read connections.
//!
//! Ingestion is many small concurrent batches; committing each in its own fsync'd transaction
//! would cap throughput at the disk's fsync rate. The writer thread instead takes every request
//! waiting in its queue, writes them all in one transaction (one fsync), then acknowledges each:
//! an acknowledgement still means "durable", and throughput grows with concurrency.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;

use rusqlite::{params, Connection};
use tailor_core::events::Event;
use tokio::sync::oneshot;

use super::sqlite::backend;
use super::{EventScan, StoreError};

// A rowid table appends in insertion order; only the small unique index is a random-access
// B-tree. (A WITHOUT ROWID table keyed by the random event id measured ~3x slower to insert.)
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    environment TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    user_key TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events (environment, id);
";

/// Most requests folded into one transaction.
const MAX_GROUP: usize = 512;
/// Events per chunk of a scan.
const SCAN_CHUNK: usize = 10_000;

struct Row {
    id: String,
    kind: &'static str,
    user_key: String,
    timestamp: i64,
    payload: String,
}

struct Request {
    environment: String,
    rows: Vec<Row>,
    reply: oneshot::Sender<Result<Vec<bool>, StoreError>>,
}

/// Handle to the writer thread.
pub(super) struct EventLog {
    requests: std::sync::Mutex<std_mpsc::Sender<Request>>,
    path: PathBuf,
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

impl EventLog {
    /// Opens the log in the database at `path` and starts the writer thread.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = open_connection(path)?;
        conn.execute_batch(SCHEMA)
            .map_err(backend("creating the event schema"))?;
        let (tx, rx) = std_mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("tailor-event-writer".into())
            .spawn(move || run_writer(&mut conn, rx))
            .map_err(|e| StoreError::Backend {
                message: "starting the event writer".into(),
                source: Box::new(e),
            })?;
        Ok(EventLog {
            requests: std::sync::Mutex::new(tx),
            path: path.to_path_buf(),
        })
    }

    pub(super) async fn append(
        &self,
        environment: &str,
        events: &[Event],
    ) -> Result<Vec<bool>, StoreError> {
        let rows = events
            .iter()
            .map(|e| {
                let (kind, user_key, timestamp) = match e {
                    Event::Exposure(x) => ("exposure", x.user_key.clone(), x.timestamp),
                    Event::Conversion(c) => ("conversion", c.user_key.clone(), c.timestamp),
                };
                Row {
                    id: e.id().to_string(),
                    kind,
                    user_key,
                    timestamp,
                    payload: serde_json::to_string(e).unwrap_or_default(),
                }
            })
            .collect();
        let (reply, wait) = oneshot::channel();
        let request = Request {
            environment: environment.to_string(),
            rows,
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

    pub(super) fn scan(&self, environment: &str) -> Result<EventScan, StoreError> {
        let conn = open_connection(&self.path)?;
        let environment = environment.to_string();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let result = (|| -> Result<(), StoreError> {
                let mut stmt = conn
                    // A sequential pass over the table beats an index walk with a row lookup each.
                    .prepare("SELECT id, payload FROM events NOT INDEXED WHERE environment = ?1")
                    .map_err(backend("scanning events"))?;
                let mut rows = stmt
                    .query(params![environment])
                    .map_err(backend("scanning events"))?;
                let mut chunk = Vec::with_capacity(SCAN_CHUNK);
                while let Some(row) = rows.next().map_err(backend("scanning events"))? {
                    let id: String = row.get(0).map_err(backend("scanning events"))?;
                    let payload: String = row.get(1).map_err(backend("scanning events"))?;
                    let event: Event = serde_json::from_str(&payload)
                        .map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))?;
                    chunk.push(event);
                    if chunk.len() == SCAN_CHUNK
                        && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err()
                    {
                        return Ok(());
                    }
                }
                if !chunk.is_empty() {
                    let _ = tx.blocking_send(Ok(chunk));
                }
                Ok(())
            })();
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(rx)
    }
}

fn run_writer(conn: &mut Connection, requests: std_mpsc::Receiver<Request>) {
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let written = write_group(conn, &group);
        tracing::debug!(
            requests = group.len(),
            events = group.iter().map(|r| r.rows.len()).sum::<usize>(),
            micros = started.elapsed().as_micros() as u64,
            "event group committed"
        );
        match written {
            Ok(results) => {
                for (request, result) in group.into_iter().zip(results) {
                    let _ = request.reply.send(Ok(result));
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

fn write_group(
    conn: &mut Connection,
    group: &[Request],
) -> Result<Vec<Vec<bool>>, rusqlite::Error> {
    let tx = conn.transaction()?;
    let mut results = Vec::with_capacity(group.len());
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO events (environment, id, kind, user_key, timestamp, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for request in group {
            let mut fresh = Vec::with_capacity(request.rows.len());
            for row in &request.rows {
                let n = stmt.execute(params![
                    request.environment,
                    row.id,
                    row.kind,
                    row.user_key,
                    row.timestamp,
                    row.payload
                ])?;
                fresh.push(n == 1);
            }
            results.push(fresh);
        }
    }
    tx.commit()?;
    Ok(results)
}
