//! Live config: a server-sent-events stream with automatic fallback to ETag polling,
//! reconnecting with exponential backoff and jitter.
//!
//! 401/403 stop the task and are reported (a wrong key does not fix itself); 5xx, timeouts and
//! network errors are retried. A config that fails to parse or compile is rejected and the last
//! good one keeps serving; an accepted one is written to the disk cache if one is configured.
//!
//! When things go wrong the status says so: [`Connection::Disconnected`] with the error (and
//! its causes) in [`Status::last_error`], logged at `warn` when the connection is lost and at
//! `info` when it is back. Every failure backs off, including a server that answers with
//! configs the client rejects or a stream that ends before sending one (a stream only resets
//! the backoff once it delivered a config or stayed up longer than the largest delay). One
//! exception keeps a client that never had a config from the server from waiting long: while
//! the server refuses connections, it is retried at least every [`UNREACHABLE_PROBE`].

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
    /// The first attempt is under way (nothing has succeeded or failed yet).
    Connecting,
    /// Receiving updates over server-sent events.
    Streaming,
    /// Polling with ETags: configured (`streaming(false)`), or the stream is unavailable and
    /// the fallback poll worked (then `last_error` says what is wrong with the stream).
    Polling,
    /// The last attempt to reach the server failed (refused, timed out, an error status or an
    /// unusable answer): retrying with backoff, serving the last config meanwhile.
    /// `last_error` says why.
    Disconnected,
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

    /// Records a working connection; logs when it ends an outage.
    fn set_connection(&self, connection: Connection, error: Option<String>) {
        let mut previous = connection;
        self.status.send_modify(|s| {
            previous = s.connection;
            s.connection = connection;
            s.last_error = error;
        });
        if previous == Connection::Disconnected {
            tracing::info!(?connection, "reconnected to the tailor server");
        }
    }

    /// Records a failed attempt: `Disconnected` with the error and its causes. Only the first
    /// failure of an outage is a warning; the retries after it are logged at `debug`.
    fn set_disconnected(&self, error: &FetchError) {
        let message = describe(error);
        let mut previous = (Connection::Disconnected, ConfigSource::None);
        self.status.send_modify(|s| {
            previous = (s.connection, s.source);
            s.connection = Connection::Disconnected;
            s.last_error = Some(message.clone());
        });
        let (connection, serving) = previous;
        if connection == Connection::Disconnected {
            tracing::debug!(error = %message, "config update failed again; retrying");
        } else {
            tracing::warn!(
                error = %message,
                ?serving,
                "cannot get config from the tailor server; serving what the client has and retrying"
            );
        }
    }

    /// Parses, compiles and installs a config from the server; keeps the old one on failure,
    /// counting it and reporting it in `last_error`.
    fn apply(&self, bytes: &[u8]) -> Result<u64, RejectedConfig> {
        let result = std::str::from_utf8(bytes)
            .map_err(RejectedConfig::NotUtf8)
            .and_then(|t| ConfigDocument::from_json(t).map_err(RejectedConfig::Parse))
            .and_then(|doc| compile(doc).map_err(RejectedConfig::Compile));
        match result {
            Ok(snapshot) => {
                let revision = snapshot.revision();
                self.install(snapshot, ConfigSource::Server);
                self.status.send_modify(|s| s.last_error = None);
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
                let message = describe(&e);
                tracing::warn!(error = %message, "rejected a config from the server; still serving the last good one");
                self.status.send_modify(|s| {
                    s.rejected_configs = n;
                    s.last_error = Some(message);
                });
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
        self.next_delay_within(self.max)
    }

    /// [`Backoff::next_delay`] with the delay bounded by `cap` before the jitter, so delays
    /// under the cap stay spread over `[cap/2, cap]`.
    pub(crate) fn next_delay_within(&mut self, cap: Duration) -> Duration {
        let factor = 1u32 << self.attempt.min(16);
        self.attempt = self.attempt.saturating_add(1);
        let full = self.initial.saturating_mul(factor).min(self.max).min(cap);
        let half = full / 2;
        half + full.mul_f64(rand::thread_rng().gen_range(0.0..0.5))
    }
}

/// The longest wait between attempts while the server refuses connections and the client has
/// never had a config from it: probing a closed port costs the server nothing, and the client
/// serves only its cache, bootstrap file or defaults until then, so it should notice the server
/// coming up within a second rather than after a long backoff.
pub(crate) const UNREACHABLE_PROBE: Duration = Duration::from_secs(1);

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

/// A config from the server that the client refused; the last good one keeps serving.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RejectedConfig {
    /// The bytes are not text.
    #[error("rejected a config from the server: it is not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// Not a config document.
    #[error("rejected a config from the server: it is not a config document")]
    Parse(#[source] tailor_core::ParseError),
    /// A document that does not compile.
    #[error("rejected a config from the server: it does not compile")]
    Compile(#[source] tailor_core::ConfigError),
}

/// Why one attempt to get config from the server failed.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// 401/403: a wrong or revoked key does not fix itself, so updates stop.
    #[error("HTTP {status}: {message}")]
    Unauthorized { status: u16, message: String },
    /// No connection at all (refused, no route, DNS, connect timeout): the server is down or
    /// unreachable.
    #[error("cannot reach the server")]
    Unreachable(#[source] reqwest::Error),
    /// Connected, but the request or the response failed.
    #[error("the request to the server failed")]
    Request(#[source] reqwest::Error),
    /// The stream request got no answer within `request_timeout`.
    #[error("timed out connecting to the stream")]
    StreamConnectTimeout,
    /// An error status other than 401/403.
    #[error("the server answered HTTP {0}")]
    Status(reqwest::StatusCode),
    /// A config above `max_config_bytes`.
    #[error("config larger than {0} bytes")]
    TooLarge(usize),
    /// No bytes (not even a keep-alive) within `stream_idle_timeout`.
    #[error("the stream was idle for too long")]
    StreamIdle,
    /// The stream broke the protocol (an event above the size limit).
    #[error("{0}")]
    StreamProtocol(String),
    /// The stream closed early without delivering a config (a healthy Tailor server sends one,
    /// or keeps a resumed stream open).
    #[error("the stream ended after {0:?} without sending a config")]
    StreamEnded(Duration),
    /// Every config received was refused.
    #[error(transparent)]
    Rejected(#[from] RejectedConfig),
    /// The stream failed, and so did the fallback poll. Two causes, so both are described in
    /// the message (an error has one `source`).
    #[error("stream: {}; poll: {}", describe(.stream), describe(.poll))]
    Fallback {
        stream: Box<FetchError>,
        poll: Box<FetchError>,
    },
}

impl FetchError {
    /// A failed request: `Unreachable` when no connection could be made.
    fn request(e: reqwest::Error) -> Self {
        if e.is_connect() {
            FetchError::Unreachable(e)
        } else {
            FetchError::Request(e)
        }
    }

    /// Whether nothing answered at all (so probing again is free for the server).
    fn is_unreachable(&self) -> bool {
        match self {
            FetchError::Unreachable(_) => true,
            FetchError::Fallback { stream, poll } => {
                stream.is_unreachable() && poll.is_unreachable()
            }
            _ => false,
        }
    }
}

/// An error and its causes on one line (`a: b: c`), for `last_error` and logs; a cause its
/// parent's message already quotes (`invalid JSON config at flags: <cause>`) is not repeated.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut parent = text.clone();
    let mut cause = error.source();
    while let Some(e) = cause {
        let part = e.to_string();
        if !parent.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        parent = part;
        cause = e.source();
    }
    text
}

fn classify(status: reqwest::StatusCode, body: String) -> FetchError {
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        FetchError::Unauthorized {
            status: status.as_u16(),
            message: body,
        }
    } else {
        FetchError::Status(status)
    }
}

/// Reads a response body, refusing more than `max` bytes.
async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, FetchError> {
    if resp.content_length().is_some_and(|n| n as usize > max) {
        return Err(FetchError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(FetchError::Request)? {
        if body.len() + chunk.len() > max {
            return Err(FetchError::TooLarge(max));
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
    let resp = req.send().await.map_err(FetchError::request)?;
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
    shared.apply(&body)?;
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

/// The config stream's server-sent-events parser: bytes in, the data of each complete `config`
/// (or unnamed) event out. Pure and incremental, so chunk boundaries do not matter; `pub` only
/// for the fuzz target in `fuzz/` (not part of the SDK's API).
#[doc(hidden)]
pub struct SseParser {
    line: Vec<u8>,
    frame: Frame,
    max_bytes: usize,
}

impl SseParser {
    /// A parser refusing lines and events larger than `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        SseParser {
            line: Vec::new(),
            frame: Frame::default(),
            max_bytes,
        }
    }

    /// Feeds one chunk, calling `on_config` with the data of every config event it completes;
    /// `Err` (the stream must be dropped) when a line or an event grows past the limit.
    pub fn feed(&mut self, chunk: &[u8], mut on_config: impl FnMut(&[u8])) -> Result<(), String> {
        let (line, frame) = (&mut self.line, &mut self.frame);
        for &b in chunk {
            if b != b'\n' {
                line.push(b);
                if line.len() > self.max_bytes {
                    return Err(format!("stream event larger than {} bytes", self.max_bytes));
                }
                continue;
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                let done = std::mem::take(frame);
                if (done.event.is_empty() || done.event == "config") && !done.data.is_empty() {
                    on_config(&done.data);
                }
            } else if let Some(rest) = line.strip_prefix(b"data:") {
                if !frame.data.is_empty() {
                    frame.data.push(b'\n');
                }
                frame
                    .data
                    .extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
                if frame.data.len() > self.max_bytes {
                    return Err(format!("stream event larger than {} bytes", self.max_bytes));
                }
            } else if let Some(rest) = line.strip_prefix(b"event:") {
                frame.event = String::from_utf8_lossy(rest).trim().to_string();
            }
            // `id:`, `retry:` and `:` comments (keep-alives) need no action: the revision inside
            // the config is the resume point.
            line.clear();
        }
        Ok(())
    }
}

/// Opens the stream (resuming after the revision served, if it came from the server).
async fn connect_stream(
    shared: &Shared,
    http: &reqwest::Client,
    settings: &RefreshSettings,
) -> Result<reqwest::Response, FetchError> {
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
    let resp = tokio::time::timeout(settings.request_timeout, req.send())
        .await
        .map_err(|_| FetchError::StreamConnectTimeout)?
        .map_err(FetchError::request)?;
    if !resp.status().is_success() {
        let status = resp.status();
        return Err(classify(status, resp.text().await.unwrap_or_default()));
    }
    Ok(resp)
}

/// Streams until the connection ends. `Ok` means the stream worked (it delivered a config, or
/// stayed up longer than the largest backoff delay) and then closed: reconnecting soon is
/// right. A stream that ends early without a usable config is an error, so that a server
/// answering 200 with junk is backed off like any other failure.
async fn stream_once(
    shared: &Shared,
    http: &reqwest::Client,
    settings: &RefreshSettings,
    backoff: &mut Backoff,
) -> Result<(), FetchError> {
    let resp = connect_stream(shared, http, settings).await?;
    shared.set_connection(Connection::Streaming, None);
    let opened = tokio::time::Instant::now();
    let result = read_stream(shared, settings, resp, backoff).await;
    let healthy = opened.elapsed() >= settings.max_backoff;
    if healthy {
        // However it ended, it worked for longer than any delay: start the next round of
        // reconnects from the first delay again.
        backoff.reset();
    }
    match result {
        Err(FetchError::StreamEnded(_)) if healthy => Ok(()),
        other => other,
    }
}

/// Reads the stream, applying each config event; resets the backoff once a config is accepted.
async fn read_stream(
    shared: &Shared,
    settings: &RefreshSettings,
    mut resp: reqwest::Response,
    backoff: &mut Backoff,
) -> Result<(), FetchError> {
    let opened = tokio::time::Instant::now();
    let mut parser = SseParser::new(settings.max_config_bytes);
    let mut accepted = false;
    let mut rejected = None;
    loop {
        let chunk = match tokio::time::timeout(settings.stream_idle_timeout, resp.chunk()).await {
            Err(_) => return Err(FetchError::StreamIdle),
            Ok(Err(e)) => return Err(FetchError::Request(e)),
            Ok(Ok(None)) if accepted => return Ok(()),
            Ok(Ok(None)) => {
                return Err(rejected.map_or(
                    FetchError::StreamEnded(opened.elapsed()),
                    FetchError::Rejected,
                ))
            }
            Ok(Ok(Some(c))) => c,
        };
        // A rejected config is counted and reported by `apply`; keep streaming, a good one
        // may follow.
        parser
            .feed(&chunk, |data| match shared.apply(data) {
                Ok(_) => accepted = true,
                Err(e) => rejected = Some(e),
            })
            .map_err(FetchError::StreamProtocol)?;
        if accepted {
            backoff.reset();
        }
    }
}

/// One round of the update task: a stream (with one fallback poll if it fails) or one poll.
/// Returns how long to wait before the next round.
async fn update_once(
    shared: &Shared,
    http: &reqwest::Client,
    settings: &RefreshSettings,
    backoff: &mut Backoff,
    etag: &mut Option<String>,
) -> Result<Duration, FetchError> {
    if !settings.streaming {
        poll_once(shared, http, settings, etag).await?;
        shared.set_connection(Connection::Polling, None);
        backoff.reset();
        return Ok(settings.poll_interval);
    }
    let stream = match stream_once(shared, http, settings, backoff).await {
        Ok(()) => return Ok(backoff.next_delay()),
        Err(e @ FetchError::Unauthorized { .. }) => return Err(e),
        Err(e) => e,
    };
    // Fall back to one ETag poll so a blocked stream does not freeze the config; the stream
    // is retried with backoff either way.
    match poll_once(shared, http, settings, etag).await {
        Ok(()) => {
            shared.set_connection(Connection::Polling, Some(describe(&stream)));
            Ok(backoff.next_delay())
        }
        Err(e @ FetchError::Unauthorized { .. }) => Err(e),
        Err(poll) => Err(FetchError::Fallback {
            stream: Box::new(stream),
            poll: Box::new(poll),
        }),
    }
}

/// The wait after a failed round: the backoff, capped at [`UNREACHABLE_PROBE`] while the server
/// refuses connections and the client never had a config from it.
fn retry_delay(shared: &Shared, backoff: &mut Backoff, error: &FetchError) -> Duration {
    let from_server = shared.status.borrow().source == ConfigSource::Server;
    if !from_server && error.is_unreachable() {
        backoff.next_delay_within(UNREACHABLE_PROBE)
    } else {
        backoff.next_delay()
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
        // The whole round races the shutdown signal: a request to a hung server must not keep
        // the task (and `close()`) waiting for its timeout.
        let round = update_once(&shared, &http, &settings, &mut backoff, &mut etag);
        let result = tokio::select! {
            result = round => result,
            _ = shutdown.changed() => return,
        };
        let wait = match result {
            Ok(wait) => wait,
            Err(FetchError::Unauthorized { status, message }) => {
                tracing::error!(status, %message, "the server rejected the SDK key; stopping updates");
                shared.set_connection(
                    Connection::Unauthorized,
                    Some(format!("HTTP {status}: {message}")),
                );
                return;
            }
            Err(e) => {
                shared.set_disconnected(&e);
                retry_delay(&shared, &mut backoff, &e)
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
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is the test failure
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
    fn a_capped_backoff_stays_jittered_under_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(30));
        for _ in 0..20 {
            let d = b.next_delay_within(UNREACHABLE_PROBE);
            assert!(
                d >= UNREACHABLE_PROBE / 2 && d <= UNREACHABLE_PROBE,
                "{d:?}"
            );
        }
        // The attempts still count: uncapped, the next delay is the largest.
        assert!(b.next_delay() >= Duration::from_secs(15));
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable_and_described_with_its_causes() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let Err(e) = reqwest::get(format!("http://127.0.0.1:{port}/")).await else {
            panic!("nothing listens there");
        };
        let error = FetchError::request(e);
        assert!(error.is_unreachable(), "{error:?}");
        let text = describe(&error);
        assert!(text.starts_with("cannot reach the server: "), "{text}");
        assert!(
            text.matches(": ").count() >= 2,
            "the causes are included: {text}"
        );

        let poll_text = describe(&error);
        let both = FetchError::Fallback {
            stream: Box::new(FetchError::StreamConnectTimeout),
            poll: Box::new(error),
        };
        assert!(!both.is_unreachable(), "the stream got further");
        let text = describe(&both);
        assert!(
            text.starts_with("stream: timed out connecting to the stream; poll: cannot reach"),
            "{text}"
        );
        assert!(text.ends_with(&poll_text), "the poll's causes too: {text}");
        assert!(!FetchError::Status(reqwest::StatusCode::BAD_GATEWAY).is_unreachable());
    }

    #[test]
    fn a_rejected_config_is_described_with_its_problems() {
        let shared = Shared::new(None, Connection::Connecting);
        let Err(e) = shared.apply(br#"{"flags": [{"key": 12}]}"#) else {
            panic!("not a config");
        };
        let text = describe(&e);
        assert!(
            text.starts_with("rejected a config from the server: "),
            "{text}"
        );
        assert!(text.contains("flags"), "the problem is named: {text}");
        let status = shared.status.borrow().clone();
        assert_eq!(status.rejected_configs, 1);
        assert_eq!(status.last_error.as_deref(), Some(text.as_str()));
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
