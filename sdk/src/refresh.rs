//! Live config: a server-sent-events stream with automatic fallback to ETag polling,
//! reconnecting with exponential backoff and jitter.
//!
//! 401/403 stop the task and are reported (a wrong key does not fix itself); 5xx, timeouts and
//! network errors are retried. A config that fails to parse or compile is rejected and the last
//! good one keeps serving; an accepted one is written to the disk cache if one is configured.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rand::Rng;
use tailor_core::{compile, ConfigDocument, Snapshot};
use tokio::sync::watch;

/// Where the config being served came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// No config yet: every flag serves the caller's default.
    None,
    /// A bootstrap file.
    Bootstrap,
    /// The last-known-good copy on disk.
    DiskCache,
    /// The server.
    Server,
    /// Given to [`crate::Client::offline`].
    Offline,
}

/// The state of the connection to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Trying to connect.
    Connecting,
    /// Receiving updates over server-sent events.
    Streaming,
    /// Streaming is unavailable; polling with ETags.
    Polling,
    /// The server rejected the key; no more attempts.
    Unauthorized,
    /// No server (offline client) or closed.
    Offline,
}

/// What the client is serving and how it is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Where the current config came from.
    pub source: ConfigSource,
    /// Its revision.
    pub revision: Option<u64>,
    /// The connection.
    pub connection: Connection,
    /// The last error talking to the server, if any since the last success.
    pub last_error: Option<String>,
    /// Configs received and rejected (unparsable, invalid or oversized).
    pub rejected_configs: u64,
}

/// State shared by the client and its background tasks.
pub(crate) struct Shared {
    pub(crate) config: ArcSwapOption<Snapshot>,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) cache_path: Option<PathBuf>,
    rejected_configs: AtomicU64,
}

impl Shared {
    pub(crate) fn new(cache_path: Option<PathBuf>, connection: Connection) -> Self {
        let (status, _) = watch::channel(Status {
            source: ConfigSource::None,
            revision: None,
            connection,
            last_error: None,
            rejected_configs: 0,
        });
        Shared {
            config: ArcSwapOption::empty(),
            status,
            cache_path,
            rejected_configs: AtomicU64::new(0),
        }
    }

    pub(crate) fn install(&self, snapshot: Snapshot, source: ConfigSource) {
        let revision = snapshot.revision();
        self.config.store(Some(Arc::new(snapshot)));
        self.status.send_modify(|s| {
            s.source = source;
            s.revision = Some(revision);
        });
    }

    fn set_connection(&self, connection: Connection, error: Option<String>) {
        self.status.send_modify(|s| {
            s.connection = connection;
            s.last_error = error;
        });
    }

    /// Parses, compiles and installs a config from the server; keeps the old one on failure.
    fn apply(&self, bytes: &[u8]) -> Result<u64, String> {
        let result = std::str::from_utf8(bytes)
            .map_err(|_| "config is not UTF-8".to_string())
            .and_then(|t| ConfigDocument::from_json(t).map_err(|e| e.to_string()))
            .and_then(|doc| compile(doc).map_err(|e| e.to_string()));
        match result {
            Ok(snapshot) => {
                let revision = snapshot.revision();
                self.install(snapshot, ConfigSource::Server);
                if let Some(path) = &self.cache_path {
                    let path = path.clone();
                    let bytes = bytes.to_vec();
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = crate::cache::write_atomically(&path, &bytes) {
                            tracing::warn!(error = %e, cause = %e.io_error(), "could not write the config cache");
                        }
                    });
                }
                Ok(revision)
            }
            Err(e) => {
                let n = self.rejected_configs.fetch_add(1, Ordering::Relaxed) + 1;
                self.status.send_modify(|s| s.rejected_configs = n);
                tracing::warn!(error = %e, "rejected a config from the server; still serving the last good one");
                Err(e)
            }
        }
    }
}

/// Exponential backoff with jitter: the n-th delay is uniform in `[d/2, d]` with
/// `d = min(max, initial * 2^n)`, so reconnecting clients do not stampede together.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let factor = 1u32 << self.attempt.min(16);
        self.attempt = self.attempt.saturating_add(1);
        let full = self.initial.saturating_mul(factor).min(self.max);
        let half = full / 2;
        half + full.mul_f64(rand::thread_rng().gen_range(0.0..0.5))
    }
}

/// Settings of the update task.
#[derive(Debug, Clone)]
pub(crate) struct RefreshSettings {
    pub(crate) base_url: String,
    pub(crate) sdk_key: String,
    pub(crate) streaming: bool,
    pub(crate) poll_interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) stream_idle_timeout: Duration,
    pub(crate) max_config_bytes: usize,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

#[derive(Debug)]
enum FetchError {
    Unauthorized { status: u16, message: String },
    Transient(String),
}

fn classify(status: reqwest::StatusCode, body: String) -> FetchError {
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        FetchError::Unauthorized {
            status: status.as_u16(),
            message: body,
        }
    } else {
        FetchError::Transient(format!("HTTP {status}"))
    }
}

/// Reads a response body, refusing more than `max` bytes.
async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, FetchError> {
    if resp.content_length().is_some_and(|n| n as usize > max) {
        return Err(FetchError::Transient(format!(
            "config larger than {max} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| FetchError::Transient(e.to_string()))?
    {
        if body.len() + chunk.len() > max {
            return Err(FetchError::Transient(format!(
                "config larger than {max} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn poll_once(
    shared: &Shared,
    http: &reqwest::Client,
    settings: &RefreshSettings,
    etag: &mut Option<String>,
) -> Result<(), FetchError> {
    let mut req = http
        .get(format!("{}/sdk/v1/config", settings.base_url))
        .bearer_auth(&settings.sdk_key)
        .timeout(settings.request_timeout);
    if let Some(tag) = etag.as_deref() {
        req = req.header(reqwest::header::IF_NONE_MATCH, tag);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| FetchError::Transient(e.to_string()))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(());
    }
    if !status.is_success() {
        return Err(classify(status, resp.text().await.unwrap_or_default()));
    }
    let new_etag = resp
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_capped(resp, settings.max_config_bytes).await?;
    shared.apply(&body).map_err(FetchError::Transient)?;
    *etag = new_etag;
    Ok(())
}

/// The revision to resume the stream after (`Last-Event-ID`): the installed one, only if the
/// server sent it (a cached or bootstrap revision may belong to another server's history).
fn resume_revision(status: &Status) -> Option<u64> {
    status
        .revision
        .filter(|_| status.source == ConfigSource::Server)
}

/// One SSE event being assembled.
#[derive(Default)]
struct Frame {
    event: String,
    data: Vec<u8>,
}

/// Streams until the connection ends. `Ok` means it connected and later closed.
async fn stream_once(
    shared: &Shared,
    http: &reqwest::Client,
    settings: &RefreshSettings,
    backoff: &mut Backoff,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), FetchError> {
    let mut req = http
        .get(format!("{}/sdk/v1/stream", settings.base_url))
        .bearer_auth(&settings.sdk_key)
        .header(reqwest::header::ACCEPT, "text/event-stream");
    // The guard of `borrow()` is a temporary that ends with this statement: a second borrow
    // while it is held would deadlock if a `send_modify` (e.g. `Client::close`) queued up in
    // between (see `tokio::sync::watch::Receiver::borrow`).
    let resume = resume_revision(&shared.status.borrow());
    if let Some(rev) = resume {
        req = req.header("Last-Event-ID", rev.to_string());
    }
    let connect = tokio::time::timeout(settings.request_timeout, req.send());
    let mut resp = match connect.await {
        Err(_) => {
            return Err(FetchError::Transient(
                "timed out connecting to the stream".into(),
            ))
        }
        Ok(Err(e)) => return Err(FetchError::Transient(e.to_string())),
        Ok(Ok(r)) => r,
    };
    if !resp.status().is_success() {
        let status = resp.status();
        return Err(classify(status, resp.text().await.unwrap_or_default()));
    }
    shared.set_connection(Connection::Streaming, None);
    backoff.reset();
    let mut line = Vec::new();
    let mut frame = Frame::default();
    loop {
        let chunk = tokio::select! {
            c = tokio::time::timeout(settings.stream_idle_timeout, resp.chunk()) => c,
            _ = shutdown.changed() => return Ok(()),
        };
        let chunk = match chunk {
            Err(_) => return Err(FetchError::Transient("stream idle for too long".into())),
            Ok(Err(e)) => return Err(FetchError::Transient(e.to_string())),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(c))) => c,
        };
        for &b in chunk.iter() {
            if b != b'\n' {
                line.push(b);
                if line.len() > settings.max_config_bytes {
                    return Err(FetchError::Transient(format!(
                        "stream event larger than {} bytes",
                        settings.max_config_bytes
                    )));
                }
                continue;
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                let done = std::mem::take(&mut frame);
                if (done.event.is_empty() || done.event == "config") && !done.data.is_empty() {
                    // A rejected config is already logged and counted; keep streaming.
                    let _ = shared.apply(&done.data);
                }
            } else if let Some(rest) = line.strip_prefix(b"data:") {
                if !frame.data.is_empty() {
                    frame.data.push(b'\n');
                }
                frame
                    .data
                    .extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
                if frame.data.len() > settings.max_config_bytes {
                    return Err(FetchError::Transient(format!(
                        "stream event larger than {} bytes",
                        settings.max_config_bytes
                    )));
                }
            } else if let Some(rest) = line.strip_prefix(b"event:") {
                frame.event = String::from_utf8_lossy(rest).trim().to_string();
            }
            // `id:`, `retry:` and `:` comments (keep-alives) need no action: the revision inside
            // the config is the resume point.
            line.clear();
        }
    }
}

/// The update task: runs until `shutdown` changes or the key is rejected.
pub(crate) async fn run_updates(
    shared: Arc<Shared>,
    http: reqwest::Client,
    settings: RefreshSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(settings.initial_backoff, settings.max_backoff);
    let mut etag: Option<String> = None;
    loop {
        let result = if settings.streaming {
            match stream_once(&shared, &http, &settings, &mut backoff, &mut shutdown).await {
                Err(FetchError::Transient(e)) => {
                    // Fall back to one ETag poll so a blocked stream does not freeze the config.
                    shared.set_connection(Connection::Polling, Some(e.clone()));
                    match poll_once(&shared, &http, &settings, &mut etag).await {
                        Err(FetchError::Transient(p)) => {
                            Err(FetchError::Transient(format!("{e}; poll: {p}")))
                        }
                        Ok(()) => Err(FetchError::Transient(e)),
                        other => other,
                    }
                }
                other => other,
            }
        } else {
            poll_once(&shared, &http, &settings, &mut etag).await
        };
        let wait = match result {
            Err(FetchError::Unauthorized { status, message }) => {
                tracing::error!(status, %message, "the server rejected the SDK key; stopping updates");
                shared.set_connection(
                    Connection::Unauthorized,
                    Some(format!("HTTP {status}: {message}")),
                );
                return;
            }
            Err(FetchError::Transient(e)) => {
                tracing::debug!(error = %e, "config update failed; retrying");
                shared.status.send_modify(|s| s.last_error = Some(e));
                backoff.next_delay()
            }
            Ok(()) if settings.streaming => backoff.next_delay(),
            Ok(()) => {
                shared.set_connection(Connection::Polling, None);
                settings.poll_interval
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(source: ConfigSource, revision: Option<u64>) -> Status {
        Status {
            source,
            revision,
            connection: Connection::Connecting,
            last_error: None,
            rejected_configs: 0,
        }
    }

    #[test]
    fn the_stream_resumes_only_after_a_revision_from_the_server() {
        assert_eq!(
            resume_revision(&status(ConfigSource::Server, Some(7))),
            Some(7)
        );
        assert_eq!(resume_revision(&status(ConfigSource::Server, None)), None);
        for source in [
            ConfigSource::None,
            ConfigSource::Bootstrap,
            ConfigSource::DiskCache,
            ConfigSource::Offline,
        ] {
            assert_eq!(
                resume_revision(&status(source, Some(7))),
                None,
                "{source:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let d0 = b.next_delay();
        assert!(
            d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100),
            "{d0:?}"
        );
        let d1 = b.next_delay();
        assert!(
            d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(200),
            "{d1:?}"
        );
        for _ in 0..40 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
