//! Test support: the real `tailor-server` binary as a child process, an HTTP client, a
//! server-sent-events reader and config fixtures.
//!
//! The binary is built once per test run ([`server_binary`]) with the same profile and target
//! directory as this test binary, so `cargo test --workspace` needs no extra step. Each
//! [`Server`] gets a free port and its own temporary data directory, and is killed on drop.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

/// The admin key every test server is started with (`TAILOR_ADMIN_KEY`).
pub const ADMIN_KEY: &str = "tlr_admin_integration_0123456789abcdef";

/// Default timeout of one awaited event (server ready, SSE event): generous, since it only
/// bounds how long a broken test hangs; passing tests never wait for it.
pub const PATIENCE: Duration = Duration::from_secs(10);

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// The server binary, built on first use. `TAILOR_SERVER_BIN` overrides it.
pub fn server_binary() -> &'static Path {
    BINARY.get_or_init(build_server_binary)
}

fn build_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TAILOR_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let profile_dir = cargo_build(&["-p", "tailor-server", "--bin", "tailor-server"]);
    let bin = profile_dir.join(format!("tailor-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "built server binary not found at {}",
        bin.display()
    );
    bin
}

static EXAMPLES: OnceLock<PathBuf> = OnceLock::new();

/// The example program `name` (`examples/<name>.rs`), the examples built on first use.
pub fn example_binary(name: &str) -> PathBuf {
    let dir = EXAMPLES.get_or_init(|| cargo_build(&["-p", "tailor-examples", "--examples"]));
    let bin = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "built example not found at {}", bin.display());
    bin
}

/// Runs `cargo build` with `args` into this test binary's own target directory and profile;
/// returns `<target>/[<triple>/]<profile>`.
fn cargo_build(args: &[&str]) -> PathBuf {
    // This test binary lives in <target>/[<triple>/]<profile>/deps/; build into the same place,
    // so CARGO_TARGET_DIR, --release and --target are all respected.
    let exe = std::env::current_exe().expect("path of the test binary");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary is in <target>/<profile>/deps")
        .to_path_buf();
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory name")
        .to_string();
    let mut target_dir = profile_dir
        .parent()
        .expect("target directory")
        .to_path_buf();
    let mut triple = None;
    if !target_dir.join("CACHEDIR.TAG").exists() {
        if let Some(parent) = target_dir
            .parent()
            .filter(|p| p.join("CACHEDIR.TAG").exists())
        {
            triple = target_dir.file_name().map(|t| t.to_os_string());
            target_dir = parent.to_path_buf();
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--quiet"])
        .args(args)
        .arg("--target-dir")
        .arg(&target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(triple) = triple {
        cmd.arg("--target").arg(triple);
    }
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "cargo build {args:?} failed: {status}");
    profile_dir
}

/// A port that was free a moment ago. The server may still lose a race for it; [`Server`]
/// retries with another.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral port")
        .port()
}

/// A running `tailor-server serve` child process with its own data directory.
pub struct Server {
    /// The port it listens on (changes on restart).
    pub port: u16,
    /// HTTP client (10 s timeout; decodes gzip).
    pub http: reqwest::Client,
    child: Option<Child>,
    dir: TempDir,
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts a server with default settings.
    pub async fn start() -> Server {
        Server::start_with(&[]).await
    }

    /// Starts a server with extra environment variables (e.g. `TAILOR_SSE_KEEPALIVE_SECS`).
    pub async fn start_with(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("tailor-it-")
            .tempdir()
            .expect("temporary directory");
        let mut server = Server {
            port: 0,
            http: client(),
            child: None,
            dir,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        server.spawn().await;
        server
    }

    /// The data directory (kept across restarts).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server's stdout and stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the process on a free port and waits until `/readyz` answers 200.
    pub async fn spawn(&mut self) {
        assert!(self.child.is_none(), "server is already running");
        for _attempt in 0..5 {
            let port = free_port();
            let log = File::options()
                .create(true)
                .append(true)
                .open(self.log_path())
                .expect("server log file");
            let mut cmd = Command::new(server_binary());
            cmd.arg("serve")
                .env("TAILOR_BIND", format!("127.0.0.1:{port}"))
                .env("TAILOR_DATA_DIR", self.data_dir())
                .env("TAILOR_ADMIN_KEY", ADMIN_KEY)
                .env("TAILOR_WORKERS", "2")
                .env("TAILOR_LOG_FORMAT", "json")
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file handle"))
                .stderr(log);
            for (k, v) in &self.env {
                cmd.env(k, v);
            }
            let child = cmd.spawn().expect("spawning tailor-server");
            self.child = Some(child);
            self.port = port;
            if self.wait_ready().await {
                return;
            }
            // It exited: a lost race for the port is retried, anything else is a failure.
            self.child = None;
            let log = self.log();
            assert!(
                log.contains("could not listen"),
                "tailor-server exited during startup:\n{log}"
            );
        }
        panic!("tailor-server could not get a free port:\n{}", self.log());
    }

    /// `true` when ready, `false` when the process exited; panics when it hangs.
    async fn wait_ready(&mut self) -> bool {
        let probe = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("probe client");
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = self.url("/readyz");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if child
                    .try_wait()
                    .expect("polling the server process")
                    .is_some()
                {
                    return false;
                }
            }
            if let Ok(res) = probe.get(&url).send().await {
                if res.status() == StatusCode::OK {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "tailor-server did not become ready within 60 s:\n{}",
            self.log()
        );
    }

    /// Stops gracefully (SIGTERM) and waits for the process to exit.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill -TERM");
        assert!(
            status.success(),
            "kill -TERM failed: the server is gone\n{}",
            self.log()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child
                .try_wait()
                .expect("polling the server process")
                .is_some()
            {
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tailor-server did not stop within 20 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process with SIGKILL (`kill -9`): no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix. It only fails when the process is already
            // gone, and this runs in `Drop` too, where a panic would abort: ignore errors.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is running (not stopped or killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops gracefully and starts again on the same data directory (on a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// The URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A request with no credentials.
    pub fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// A request with the admin key.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.with_key(method, path, ADMIN_KEY)
    }

    /// A request authenticated with `key` (`Authorization: Bearer`).
    pub fn with_key(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.anon(method, path).bearer_auth(key)
    }

    /// Creates an API key; returns `(id, secret)`.
    pub async fn create_key(&self, kind: &str, environment: Option<&str>) -> (String, String) {
        let mut body = json!({"name": format!("test {kind} key"), "kind": kind});
        if let Some(env) = environment {
            body["environment"] = env.into();
        }
        let res = send(self.admin(Method::POST, "/api/v1/keys").json(&body)).await;
        res.assert_status(StatusCode::CREATED);
        let id = res.body["key"]["id"].as_str().expect("key id").to_string();
        let secret = res.body["secret"].as_str().expect("key secret").to_string();
        (id, secret)
    }

    /// Creates a resource (`plural`: segments, flags, experiments, layers); asserts 201.
    pub async fn create(&self, env: &str, plural: &str, body: &Value) -> Resp {
        let res = send(
            self.admin(
                Method::POST,
                &format!("/api/v1/environments/{env}/{plural}"),
            )
            .json(body),
        )
        .await;
        res.assert_status(StatusCode::CREATED);
        res
    }

    /// Reads a resource; asserts 200.
    pub async fn get(&self, env: &str, plural: &str, key: &str) -> Resp {
        let res = send(self.admin(
            Method::GET,
            &format!("/api/v1/environments/{env}/{plural}/{key}"),
        ))
        .await;
        res.assert_status(StatusCode::OK);
        res
    }

    /// The environment's current revision, from the admin export.
    pub async fn revision(&self, env: &str) -> u64 {
        let res =
            send(self.admin(Method::GET, &format!("/api/v1/environments/{env}/config"))).await;
        res.assert_status(StatusCode::OK);
        res.body["revision"]
            .as_u64()
            .expect("revision in the exported config")
    }

    /// The audit log of an environment, newest first (`query` e.g. `kind=flag&key=x`).
    pub async fn audit(&self, env: &str, query: &str) -> Vec<Value> {
        let res = send(self.admin(
            Method::GET,
            &format!("/api/v1/environments/{env}/audit?{query}"),
        ))
        .await;
        res.assert_status(StatusCode::OK);
        res.body.as_array().expect("audit log is an array").clone()
    }

    /// Opens an SSE stream with `key`, optionally resuming after `last_event_id`.
    pub async fn sse(&self, key: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = stream_client()
            .get(self.url("/sdk/v1/stream"))
            .bearer_auth(key);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let res = req.send().await.expect("opening the SSE stream");
        assert_eq!(res.status(), StatusCode::OK, "SSE stream refused");
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(ct.starts_with("text/event-stream"), "content-type {ct}");
        Sse {
            stream: Box::pin(res.bytes_stream()),
            buf: Vec::new(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The default client: no proxy, 10 s timeout, gzip decoded transparently.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .expect("HTTP client")
}

/// A client that shows the raw bytes: no transparent gzip (and no `Accept-Encoding` unless a
/// request sets it).
pub fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .no_gzip()
        .timeout(PATIENCE)
        .build()
        .expect("HTTP client")
}

/// A client for long-lived streams: no overall timeout.
fn stream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(PATIENCE)
        .build()
        .expect("HTTP client")
}

/// A finished response: status, headers and body (JSON when it parses, else `Null`).
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Raw body text.
    pub text: String,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

/// Sends a request and reads the whole response. A results report (`200`, JSON) is checked
/// against the API document on the way ([`crate::schema`]).
pub async fn send(req: RequestBuilder) -> Resp {
    let (client, request) = req.build_split();
    let request = request.expect("building a request");
    let results =
        request.method() == Method::GET && crate::schema::is_results_path(request.url().path());
    let res = client.execute(request).await.expect("sending a request");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.expect("reading a response body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if results && status == StatusCode::OK && json {
        crate::schema::check_results_report(&body);
    }
    Resp {
        status,
        headers,
        text,
        body,
    }
}

impl Resp {
    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `ETag` header (panics when absent).
    pub fn etag(&self) -> String {
        self.header("etag")
            .unwrap_or_else(|| panic!("no ETag in {self:?}"))
            .to_string()
    }

    /// The `X-Tailor-Revision` header (panics when absent).
    pub fn revision(&self) -> u64 {
        self.header("x-tailor-revision")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no X-Tailor-Revision in {self:?}"))
    }

    /// Asserts the status, showing the body otherwise.
    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
    }

    /// Asserts a JSON API error `{error, message, problems?}` with this status and code, whose
    /// message or a problem path names `field`.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str, field: &str) {
        self.assert_status(status);
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "error is not JSON ({ct}): {}",
            self.text
        );
        assert_eq!(self.body["error"], code, "error code; body: {}", self.text);
        let message = self.body["message"].as_str().unwrap_or_else(|| {
            panic!("error without a message: {}", self.text);
        });
        let in_problems = self.problem_paths().iter().any(|p| p.contains(field));
        assert!(
            message.contains(field) || in_problems,
            "error does not name `{field}`: {}",
            self.text
        );
    }

    /// Paths of the `problems` of an `invalid_config` error.
    pub fn problem_paths(&self) -> Vec<String> {
        self.body["problems"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p["path"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts a 422 `invalid_config` error with a problem at exactly `path`.
    #[track_caller]
    pub fn assert_problem_at(&self, path: &str) {
        self.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(self.body["error"], "invalid_config", "{}", self.text);
        let paths = self.problem_paths();
        assert!(
            paths.iter().any(|p| p == path),
            "no problem at `{path}`; problems at {paths:?}: {}",
            self.text
        );
    }
}

/// One server-sent-events frame.
#[derive(Debug, Default, Clone)]
pub struct Frame {
    /// `id:`.
    pub id: Option<String>,
    /// `event:`.
    pub event: Option<String>,
    /// `data:` (lines joined with `\n`).
    pub data: Option<String>,
    /// `retry:`.
    pub retry: Option<u64>,
    /// Comment lines (`: ...`), without the colon.
    pub comments: Vec<String>,
}

/// A config event: its revision (the event id) and document.
#[derive(Debug)]
pub struct ConfigEvent {
    /// The `id:` of the event.
    pub revision: u64,
    /// The parsed `data:`.
    pub document: Value,
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Reads frames from an open `/sdk/v1/stream` response.
pub struct Sse {
    stream: ByteStream,
    buf: Vec<u8>,
}

impl Sse {
    /// The next frame, or `None` when none arrives within `timeout`. Panics if the stream ends.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 2).collect();
                return Some(parse_frame(&String::from_utf8_lossy(&raw[..end])));
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(Some(Err(e))) => panic!("SSE stream failed: {e}"),
                Ok(None) => panic!("SSE stream ended"),
            }
        }
    }

    /// Whether the server ends the stream within `timeout` (frames before the end are skipped).
    pub async fn ends_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return false,
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return true,
            }
        }
    }

    /// The next `config` event, skipping keep-alives and `retry` frames; panics after `timeout`.
    pub async fn next_config(&mut self, timeout: Duration) -> ConfigEvent {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self
                .next_frame(left)
                .await
                .unwrap_or_else(|| panic!("no config event within {timeout:?}"));
            if frame.event.as_deref() == Some("config") {
                return config_event(&frame);
            }
        }
    }
}

/// Parses a `config` frame.
pub fn config_event(frame: &Frame) -> ConfigEvent {
    let revision = frame
        .id
        .as_deref()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("config event without a numeric id: {frame:?}"));
    let document = serde_json::from_str(frame.data.as_deref().unwrap_or_default())
        .unwrap_or_else(|e| panic!("config event data is not JSON ({e}): {frame:?}"));
    ConfigEvent { revision, document }
}

fn parse_frame(text: &str) -> Frame {
    let mut frame = Frame::default();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            frame.comments.push(comment.trim().to_string());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => frame.id = Some(value.to_string()),
            "event" => frame.event = Some(value.to_string()),
            "retry" => frame.retry = value.parse().ok(),
            "data" => {
                frame.data = Some(match frame.data.take() {
                    Some(d) => format!("{d}\n{value}"),
                    None => value.to_string(),
                })
            }
            _ => {}
        }
    }
    frame
}

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what` after `timeout`.
/// For waiting on eventually-true server state without sleeping a fixed time.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fixtures: small valid resources of each kind.
pub mod fixtures {
    use serde_json::{json, Value};

    /// A segment of users on the `pro` plan.
    pub fn segment(key: &str) -> Value {
        json!({
            "key": key,
            "name": "Pro users",
            "conditions": {"attribute": "plan", "op": "eq", "values": ["pro"]},
        })
    }

    /// A boolean flag, off by default, with no rules.
    pub fn bool_flag(key: &str) -> Value {
        json!({
            "key": key,
            "type": "bool",
            "variants": [{"key": "off", "value": false}, {"key": "on", "value": true}],
            "default_variant": "off",
        })
    }

    /// A string flag with one 50/50 split rule (`id: main`) at `coverage` basis points.
    pub fn split_flag(key: &str, coverage: u32) -> Value {
        json!({
            "key": key,
            "type": "string",
            "variants": [
                {"key": "control", "value": "Welcome"},
                {"key": "treatment", "value": "Welcome back!"},
            ],
            "default_variant": "control",
            "rules": [{
                "id": "main",
                "split": [
                    {"variant": "control", "weight": 5000},
                    {"variant": "treatment", "weight": 5000},
                ],
                "coverage": coverage,
            }],
        })
    }

    /// A flag that serves `on` to the members of `segment`.
    pub fn segment_flag(key: &str, segment: &str) -> Value {
        let mut flag = bool_flag(key);
        flag["rules"] = json!([{"id": "members", "when": {"segment": segment}, "variant": "on"}]);
        flag
    }

    /// A running experiment.
    pub fn experiment(key: &str) -> Value {
        json!({
            "key": key,
            "name": "Homepage test",
            "status": "running",
            "primary_metric": "purchase",
        })
    }

    /// A layer giving `experiment` the first half of its traffic.
    pub fn layer(key: &str, experiment: &str) -> Value {
        json!({"key": key, "slices": [{"experiment": experiment, "start": 0, "end": 5000}]})
    }
}

// ---------------------------------------------------------------------------------------------
// Redis: real `redis-server` processes for the shared-store tests (`store_contract`,
// `multi_instance`), and a TCP proxy that can cut one instance off from Redis.
// ---------------------------------------------------------------------------------------------

/// A `redis-server` child process on a free loopback port, with the append-only file on in its
/// own temporary directory (so `kill9` + `restart` keeps every acknowledged write), killed on
/// drop. Never the machine's standard Redis on 6379.
pub struct Redis {
    /// Its port (kept across restarts).
    pub port: u16,
    /// Cluster bus port, for a cluster node.
    bus_port: Option<u16>,
    /// Runs without the append-only file.
    volatile: bool,
    /// `appendfsync always` instead of `everysec`.
    fsync_always: bool,
    dir: TempDir,
    child: Option<Child>,
}

fn redis_tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    PathBuf::from(name)
}

impl Redis {
    /// Starts a single Redis server.
    pub async fn start() -> Redis {
        Redis::start_node(false).await
    }

    /// Starts a Redis server that fsyncs its append-only file before every reply
    /// (`appendfsync always`), for tests that `kill -9` it and expect every acknowledged write
    /// back. With `everysec`, Redis may reply before it writes when an fsync is slow (a busy
    /// disk), and a `kill -9` then loses up to two seconds of acknowledged writes.
    pub async fn start_durable() -> Redis {
        let mut redis = Redis::start_node(false).await;
        redis.fsync_always = true;
        redis.kill9();
        redis.restart().await;
        redis
    }

    /// Starts a Redis server without the append-only file: a restart loses its data.
    pub async fn start_volatile() -> Redis {
        let mut redis = Redis::start_node(false).await;
        redis.volatile = true;
        redis.kill9();
        redis.restart().await;
        redis
    }

    async fn start_node(cluster: bool) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("tailor-redis-")
            .tempdir()
            .expect("temporary directory");
        let mut redis = Redis {
            port: 0,
            bus_port: None,
            volatile: false,
            fsync_always: false,
            dir,
            child: None,
        };
        for _attempt in 0..5 {
            redis.port = free_port();
            redis.bus_port = cluster.then(free_port);
            if redis.spawn().await {
                return redis;
            }
        }
        panic!("redis-server could not start:\n{}", redis.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// The `redis-server` command for this server (port, directory, persistence, log), plus
    /// `extra` settings.
    fn command(&self, extra: &[&str]) -> Command {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .expect("redis log file");
        let mut cmd = Command::new(redis_tool("redis-server"));
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args([
                "--appendfsync",
                if self.fsync_always {
                    "always"
                } else {
                    "everysec"
                },
            ])
            .args(["--appendonly", if self.volatile { "no" } else { "yes" }])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        cmd
    }

    /// Starts the process on `self.port`; false if it exited (port taken).
    async fn spawn(&mut self) -> bool {
        assert!(self.child.is_none(), "redis-server is already running");
        let mut cmd = self.command(&[]);
        if let Some(bus) = self.bus_port {
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-port", &bus.to_string()])
            .args(["--cluster-node-timeout", "2000"]);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}); install it (`apt-get install redis-server`, as .ci/run does)")
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().expect("polling redis-server").is_some() {
                    self.child = None;
                    return false;
                }
            }
            if self.cli(&["PING"]).trim() == "PONG" {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not answer within 20 s:\n{}", self.log());
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli` against this server; returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(redis_tool("redis-cli"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("running redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills the server with SIGKILL: nothing is flushed beyond what the AOF already has.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 of redis-server");
            child.wait().expect("reaping redis-server");
        }
    }

    /// Starts it again on the same port and directory (the AOF is replayed).
    pub async fn restart(&mut self) {
        for _attempt in 0..50 {
            if self.spawn().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "redis-server did not restart on port {}:\n{}",
            self.port,
            self.log()
        );
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A Redis Cluster of `masters` nodes on loopback ports, no replicas.
pub struct RedisCluster {
    /// The nodes.
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    /// Starts the nodes, joins them with `redis-cli --cluster create` and waits until every
    /// node reports `cluster_state:ok`.
    pub async fn start(masters: usize) -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..masters {
            nodes.push(Redis::start_node(true).await);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new(redis_tool("redis-cli"))
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("running redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        eventually("the cluster to be ok on every node", PATIENCE, || async {
            cluster
                .nodes
                .iter()
                .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
                .then_some(())
        })
        .await;
        cluster
    }

    /// `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,…`.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", addrs.join(","))
    }
}

/// A loopback TCP proxy to a local port that can cut every connection and refuse new ones, to
/// cut one server instance off from Redis while the others keep working.
pub struct TcpProxy {
    /// Where it listens.
    pub port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cuts: tokio::sync::watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding `127.0.0.1:<port>` → `127.0.0.1:<upstream>`.
    pub async fn start(upstream: u16) -> TcpProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cuts, _) = tokio::sync::watch::channel(0u64);
        let accept = {
            let open = open.clone();
            let cuts = cuts.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is closed at once
                    }
                    let mut cut = cuts.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut server) =
                            tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                        else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        TcpProxy {
            port,
            open,
            cuts,
            accept,
        }
    }

    /// `redis://127.0.0.1:<proxy port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Closes every forwarded connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Starts that are not ready at once: a Redis replaying a slow append-only file, and a server
// started against it, watched from outside.
// ---------------------------------------------------------------------------------------------

impl Redis {
    /// Starts the (stopped) server again on the same port and directory, with Redis's debug
    /// setting `key-load-delay` (microseconds per key) so that replaying the append-only file
    /// keeps it in its LOADING state for a while; returns as soon as it answers `LOADING`.
    pub async fn restart_loading_slowly(&mut self, key_load_delay_us: u32) {
        assert!(self.child.is_none(), "redis-server is already running");
        assert!(!self.volatile, "a volatile Redis has nothing to load");
        let delay = key_load_delay_us.to_string();
        for _attempt in 0..50 {
            let mut cmd = self.command(&[
                "--key-load-delay",
                &delay,
                // Answer clients (with LOADING) every KB replayed rather than every 2 MB.
                "--loading-process-events-interval-bytes",
                "1024",
            ]);
            self.child = Some(cmd.spawn().expect("starting redis-server"));
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Some(child) = self.child.as_mut() {
                    if child.try_wait().expect("polling redis-server").is_some() {
                        // The port is not free yet: try again.
                        self.child = None;
                        break;
                    }
                }
                let answer = self.cli(&["PING"]);
                assert!(
                    answer.trim() != "PONG",
                    "Redis finished loading before the test could use it: raise the delay"
                );
                if answer.contains("LOADING") {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(
                self.child.is_none(),
                "redis-server did not answer within 20 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "redis-server did not restart on port {}:\n{}",
            self.port,
            self.log()
        );
    }
}

impl Server {
    /// Starts a server process on a free port without waiting for it: the caller watches its
    /// `/readyz` ([`Server::wait_for_readyz`]) or its exit ([`Server::exit_within`]).
    pub fn start_unready(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("tailor-it-")
            .tempdir()
            .expect("temporary directory");
        let mut server = Server {
            port: free_port(),
            http: client(),
            child: None,
            dir,
            env: Vec::new(),
        };
        let log = File::options()
            .create(true)
            .append(true)
            .open(server.log_path())
            .expect("server log file");
        let mut cmd = Command::new(server_binary());
        cmd.arg("serve")
            .env("TAILOR_BIND", format!("127.0.0.1:{}", server.port))
            .env("TAILOR_DATA_DIR", server.data_dir())
            .env("TAILOR_ADMIN_KEY", ADMIN_KEY)
            .env("TAILOR_WORKERS", "2")
            .env("TAILOR_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log);
        server.child = Some(cmd.spawn().expect("spawning tailor-server"));
        server
    }

    /// Polls `/readyz` until it answers `status`; returns the body. Panics, with the server's
    /// log, when the process exits or [`PATIENCE`] passes first.
    pub async fn wait_for_readyz(&mut self, status: StatusCode) -> Value {
        let deadline = Instant::now() + PATIENCE;
        let url = self.url("/readyz");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Some(exit) = child.try_wait().expect("polling the server process") {
                    panic!(
                        "tailor-server exited ({exit}) before /readyz answered {status}:\n{}",
                        self.log()
                    );
                }
            }
            // Refused connections are expected before the server has bound.
            if let Ok(res) = self.http.get(&url).send().await {
                if res.status() == status {
                    let text = res.text().await.expect("reading /readyz");
                    return serde_json::from_str(&text).unwrap_or(Value::Null);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "/readyz did not answer {status} within {PATIENCE:?}:\n{}",
            self.log()
        );
    }

    /// Waits for the process to exit; its exit status, or `None` if it still runs after
    /// `timeout`.
    pub async fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let child = self.child.as_mut()?;
            if let Some(exit) = child.try_wait().expect("polling the server process") {
                self.child = None;
                return Some(exit);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}
