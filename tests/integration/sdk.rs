//! The SDK against a real `tailor-server`: live config changes (streaming and polling), server
//! down at start (bootstrap file, disk cache), server killed and restarted mid-run (events still
//! delivered, none twice), a rejected key, and a misbehaving server (garbage, oversized, slow).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tailor::{BuildError, Client, ConfigSource, Connection, Reason, User};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{fixtures, send, server_binary, Server, ADMIN_KEY, PATIENCE};

/// A client tuned for tests: short timeouts and backoff.
fn builder(url: &str, key: &str) -> tailor::ClientBuilder {
    Client::builder(url, key)
        .start_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(2))
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
        .flush_interval(Duration::from_millis(100))
        .flush_timeout(Duration::from_secs(20))
}

async fn put_flag(server: &Server, flag: &Value) -> u64 {
    let key = flag["key"].as_str().unwrap();
    let res = send(
        server
            .admin(
                Method::PUT,
                &format!("/api/v1/environments/development/flags/{key}"),
            )
            .header("If-Match", "*")
            .json(flag),
    )
    .await;
    res.assert_status(StatusCode::OK);
    res.revision()
}

async fn config_change_reaches(streaming: bool) {
    let server = Server::start().await;
    let (_, sdk_key) = server.create_key("sdk", Some("development")).await;
    server
        .create("development", "flags", &fixtures::bool_flag("banner"))
        .await;
    let client = builder(&server.url(""), &sdk_key)
        .streaming(streaming)
        .poll_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    assert_eq!(client.status().source, ConfigSource::Server);
    let user = User::new("u1");
    assert!(!client.bool_value(&user, "banner", true));

    let mut flag = fixtures::bool_flag("banner");
    flag["default_variant"] = json!("on");
    let started = Instant::now();
    let revision = put_flag(&server, &flag).await;
    assert!(
        client.wait_for_revision(revision, PATIENCE).await,
        "revision {revision} never reached the client: {:?}",
        client.status()
    );
    eprintln!(
        "streaming={streaming}: change reached the client in {:?}",
        started.elapsed()
    );
    assert!(client.bool_value(&user, "banner", false));
    let expected = if streaming {
        Connection::Streaming
    } else {
        Connection::Polling
    };
    assert_eq!(client.status().connection, expected);
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_config_change_reaches_a_streaming_client() {
    config_change_reaches(true).await;
}

#[tokio::test]
async fn a_config_change_reaches_a_polling_client() {
    config_change_reaches(false).await;
}

#[tokio::test]
async fn a_rejected_key_fails_the_build_with_the_status() {
    let server = Server::start().await;
    let err = builder(&server.url(""), "tlr_sdk_not_a_real_key")
        .build()
        .await
        .err()
        .expect("build must fail");
    assert!(
        matches!(err, BuildError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    // A client key may not download rules: 403, also permanent.
    let (_, client_key) = server.create_key("client", Some("development")).await;
    let err = builder(&server.url(""), &client_key)
        .build()
        .await
        .err()
        .expect("403");
    assert!(
        matches!(err, BuildError::Unauthorized { status: 403, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_malformed_url_is_a_build_error() {
    let err = Client::builder("localhost:8080", "k")
        .build()
        .await
        .err()
        .expect("error");
    assert!(matches!(err, BuildError::InvalidUrl { .. }), "{err}");
}

/// An address where nothing listens.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn homepage_doc(default_variant: &str) -> Value {
    json!({
        "environment": "development",
        "revision": 7,
        "flags": [{
            "key": "homepage",
            "type": "string",
            "variants": [{"key": "generic", "value": "Hello"}, {"key": "fresh", "value": "Hi there"}],
            "default_variant": default_variant,
        }],
    })
}

#[tokio::test]
async fn a_bootstrap_file_serves_when_the_server_is_down_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.json");
    std::fs::write(&path, homepage_doc("fresh").to_string()).unwrap();
    let started = Instant::now();
    let client = builder(&dead_url(), "tlr_sdk_whatever")
        .start_timeout(Duration::from_millis(300))
        .bootstrap_file(&path)
        .build()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "build waited {:?}",
        started.elapsed()
    );
    let status = client.status();
    assert_eq!(status.source, ConfigSource::Bootstrap);
    assert_eq!(status.revision, Some(7));
    assert!(
        status.last_error.is_some(),
        "the connection failure is reported: {status:?}"
    );
    let v = client.variant(&User::new("u"), "homepage");
    assert_eq!(v.key(), Some("fresh"));
    assert_eq!(v.value(), &json!("Hi there"));
    client.close().await.unwrap();

    // A broken bootstrap file is a build error naming the file, not a silent empty client.
    std::fs::write(&path, "{ not json").unwrap();
    let err = builder(&dead_url(), "k")
        .bootstrap_file(&path)
        .build()
        .await
        .err()
        .unwrap();
    assert!(matches!(err, BuildError::Bootstrap { .. }), "{err}");
}

#[tokio::test]
async fn the_disk_cache_serves_the_last_good_config_when_the_server_is_gone() {
    let mut server = Server::start().await;
    let (_, sdk_key) = server.create_key("sdk", Some("development")).await;
    let mut flag = fixtures::bool_flag("banner");
    flag["default_variant"] = json!("on");
    let revision = server
        .create("development", "flags", &flag)
        .await
        .revision();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache").join("tailor.json");

    let client = builder(&server.url(""), &sdk_key)
        .cache_path(&cache)
        .build()
        .await
        .unwrap();
    assert!(client.wait_for_revision(revision, PATIENCE).await);
    crate::support::eventually("the cache file", PATIENCE, || {
        let cache = cache.clone();
        async move {
            let text = std::fs::read_to_string(&cache).ok()?;
            let doc: Value = serde_json::from_str(&text).ok()?;
            (doc["revision"] == json!(revision)).then_some(())
        }
    })
    .await;
    client.close().await.unwrap();
    let url = server.url("");
    server.stop().await;

    let client = builder(&url, &sdk_key)
        .start_timeout(Duration::from_millis(300))
        .cache_path(&cache)
        .build()
        .await
        .unwrap();
    assert_eq!(client.status().source, ConfigSource::DiskCache);
    assert_eq!(client.status().revision, Some(revision));
    assert!(client.bool_value(&User::new("u"), "banner", false));
    client.close().await.unwrap();
}

/// A server process on a fixed port, so a client can keep its URL across a restart.
struct FixedPortServer {
    port: u16,
    data: tempfile::TempDir,
    child: Option<Child>,
}

impl FixedPortServer {
    async fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut s = FixedPortServer {
            port,
            data,
            child: None,
        };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let child = Command::new(server_binary())
            .arg("serve")
            .env("TAILOR_BIND", format!("127.0.0.1:{}", self.port))
            .env("TAILOR_DATA_DIR", self.data.path())
            .env("TAILOR_ADMIN_KEY", ADMIN_KEY)
            .env("TAILOR_WORKERS", "2")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        crate::support::eventually("the server to be ready", Duration::from_secs(30), || {
            let url = url.clone();
            async move {
                let ok = reqwest::get(&url).await.ok()?.status() == StatusCode::OK;
                ok.then_some(())
            }
        })
        .await;
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn event_ids(&self) -> Vec<String> {
        let db = rusqlite::Connection::open(self.data.path().join("tailor.db")).unwrap();
        let mut stmt = db.prepare("SELECT id FROM events ORDER BY id").unwrap();
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        ids
    }
}

impl Drop for FixedPortServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[tokio::test]
async fn events_survive_a_server_killed_and_restarted_and_are_stored_once() {
    let mut server = FixedPortServer::start().await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(server.url("/api/v1/keys"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "sdk", "kind": "sdk", "environment": "development"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sdk_key = created["secret"].as_str().unwrap().to_string();
    for (plural, body) in [
        ("experiments", fixtures::experiment("hp")),
        ("flags", {
            let mut f = fixtures::split_flag("homepage", 10_000);
            f["rules"][0]["experiment"] = json!("hp");
            f
        }),
    ] {
        let res = http
            .post(server.url(&format!("/api/v1/environments/development/{plural}")))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }

    let client = builder(&server.url(""), &sdk_key)
        .max_batch(50)
        .build()
        .await
        .unwrap();
    let mut expected = 0u64;
    let mut record = |from: u32, to: u32| {
        for i in from..to {
            let user = User::new(format!("user-{i}"));
            let v = client.variant(&user, "homepage");
            assert!(v.key().is_some());
            // A duplicate exposure is not recorded twice.
            let _ = client.variant(&user, "homepage");
            client.track(&user, "purchase", Some(f64::from(i)));
            expected += 2;
        }
    };
    record(0, 300);
    client.flush().await.unwrap();

    server.kill9();
    record(300, 600); // queued while the server is down; delivery keeps retrying
    crate::support::eventually("a delivery attempt to fail", PATIENCE, || {
        let failed = client.event_stats().failed_attempts;
        async move { (failed > 0).then_some(()) }
    })
    .await;
    server.spawn().await;
    record(600, 900);
    client.flush().await.unwrap();

    let stats = client.event_stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.queued, expected, "{stats:?}");
    assert_eq!(stats.delivered, expected, "{stats:?}");
    assert!(
        stats.failed_attempts > 0,
        "the outage was noticed and retried: {stats:?}"
    );
    client.close().await.unwrap();
    let ids = server.event_ids();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no event is stored twice");
    assert_eq!(ids.len() as u64, expected, "every event is stored");
}

/// A tiny HTTP server that answers every request with `respond(path)` after `delay`, to play a
/// misbehaving Tailor server.
async fn fake_server(delay: Duration, respond: fn(&str) -> (u16, Vec<u8>)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                tokio::time::sleep(delay).await;
                let (status, body) = respond(&path);
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn garbage_from_the_server_is_rejected_and_the_last_good_config_keeps_serving() {
    let url = fake_server(Duration::ZERO, |path| {
        if path.starts_with("/sdk/v1/config") {
            (200, b"{\"flags\": [{\"key\": 12}]} garbage".to_vec())
        } else {
            (500, Vec::new())
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.json");
    std::fs::write(&path, homepage_doc("fresh").to_string()).unwrap();
    let client = builder(&url, "k")
        .start_timeout(Duration::from_millis(500))
        .bootstrap_file(&path)
        .build()
        .await
        .unwrap();
    crate::support::eventually("a rejected config", PATIENCE, || {
        let n = client.status().rejected_configs;
        async move { (n > 0).then_some(()) }
    })
    .await;
    assert_eq!(client.status().source, ConfigSource::Bootstrap);
    assert_eq!(
        client.variant(&User::new("u"), "homepage").key(),
        Some("fresh")
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn an_oversized_config_is_refused() {
    let url = fake_server(Duration::ZERO, |path| {
        if path.starts_with("/sdk/v1/config") {
            let mut doc = homepage_doc("fresh");
            doc["padding"] = json!("x".repeat(200_000));
            (200, doc.to_string().into_bytes())
        } else {
            (503, Vec::new())
        }
    })
    .await;
    let client = builder(&url, "k")
        .start_timeout(Duration::from_millis(800))
        .max_config_bytes(64 * 1024)
        .build()
        .await
        .unwrap();
    let status = client.status();
    assert_eq!(status.source, ConfigSource::None, "{status:?}");
    let error = status.last_error.unwrap_or_default();
    assert!(error.contains("larger than"), "{error}");
    // With no config every getter returns the caller's default.
    assert_eq!(
        client.string_value(&User::new("u"), "homepage", "default"),
        "default"
    );
    let detail = client.variant_detail(&User::new("u"), "homepage");
    assert_eq!(detail.reason, Reason::UnknownFlag);
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_slow_server_does_not_block_build_or_evaluation() {
    let url = fake_server(Duration::from_secs(3), |_| {
        (200, homepage_doc("fresh").to_string().into_bytes())
    })
    .await;
    let started = Instant::now();
    let client = builder(&url, "k")
        .streaming(false)
        .poll_interval(Duration::from_millis(100))
        .request_timeout(Duration::from_secs(10))
        .start_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "build took {:?}",
        started.elapsed()
    );
    assert_eq!(
        client.string_value(&User::new("u"), "homepage", "default"),
        "default"
    );
    // The slow answer still arrives and is installed in the background.
    assert!(
        client.wait_for_revision(7, PATIENCE).await,
        "{:?}",
        client.status()
    );
    assert_eq!(
        client.string_value(&User::new("u"), "homepage", "default"),
        "Hi there"
    );
    client.close().await.unwrap();
}

/// Every case of tailor-core's conformance suite, through the SDK's public API.
#[test]
fn the_conformance_suite_passes_through_the_sdk() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/conformance");
    let mut cases = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("conformance fixtures") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let suite: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let doc = serde_json::from_value(suite["config"].clone()).unwrap();
        let client = Client::offline(doc).unwrap();
        for case in suite["cases"].as_array().unwrap() {
            cases += 1;
            let user: User = serde_json::from_value(case["user"].clone()).unwrap();
            let flag = case["flag"].as_str().unwrap();
            let detail = client.variant_detail(&user, flag);
            let expected = &case["expected"];
            let got_variant = detail.key.as_deref().map_or(Value::Null, |k| json!(k));
            let got_reason = serde_json::to_value(detail.reason).unwrap();
            let got_experiment = detail
                .experiment
                .as_deref()
                .map_or(Value::Null, |k| json!(k));
            if got_variant != expected["variant"]
                || got_reason != expected["reason"]
                || got_experiment != expected["experiment"]
            {
                failures.push(format!(
                    "{}: {}: got {got_variant} {got_reason} {got_experiment}, expected {expected}",
                    path.file_name().unwrap().to_string_lossy(),
                    case["name"]
                ));
            }
        }
    }
    assert!(cases >= 100, "only {cases} conformance cases found");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A typed getter that serves the caller's default (the flag's value has another type) records
/// no exposure: the user never saw the variant, so counting them in it would bias the results.
/// When it serves the value, the exposure is recorded and stored.
#[tokio::test]
async fn typed_getters_record_an_exposure_only_when_they_serve_the_value() {
    let (server, sdk) = crate::results::setup().await;
    let client = builder(&server.url(""), &sdk).build().await.unwrap();

    let user = User::new("typed-user");
    assert!(
        client.bool_value(&user, "homepage", true),
        "a string is not a bool"
    );
    assert_eq!(client.number_value(&user, "homepage", 7.0), 7.0);
    client.flush().await.unwrap();
    assert_eq!(
        client.event_stats().queued,
        0,
        "wrong-type reads are not exposures"
    );

    let served = client.string_value(&user, "homepage", "fallback");
    assert!(served.starts_with("Welcome"), "{served}");
    client.flush().await.unwrap();
    let stats = client.event_stats();
    assert_eq!((stats.queued, stats.delivered), (1, 1), "{stats:?}");
    let results = crate::results::results(&server, "").await;
    assert_eq!(
        crate::results::users_in(&results["overall"]),
        1,
        "{results}"
    );
    client.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// When things go wrong (issue 16): a server that is down at start or goes away, one answering
// the stream with junk, one that hangs, and exposures recorded from several threads.
// ---------------------------------------------------------------------------------------------

/// The client is disconnected from its server (not connecting, streaming or polling).
fn disconnected(status: &tailor::Status) -> bool {
    status.connection == Connection::Disconnected
}

/// `builder` returning from `build()` without waiting for a first config.
fn no_wait(b: tailor::ClientBuilder) -> tailor::ClientBuilder {
    b.start_without_waiting()
}

/// An SDK key and a `banner` flag (serving `on`) on a fixed-port server; the flag's revision.
async fn fixed_port_setup(server: &FixedPortServer) -> (String, u64) {
    let http = reqwest::Client::new();
    let created: Value = http
        .post(server.url("/api/v1/keys"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "sdk", "kind": "sdk", "environment": "development"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut flag = fixtures::bool_flag("banner");
    flag["default_variant"] = json!("on");
    let res = http
        .post(server.url("/api/v1/environments/development/flags"))
        .bearer_auth(ADMIN_KEY)
        .json(&flag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let revision = res.headers()["x-tailor-revision"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (created["secret"].as_str().unwrap().to_string(), revision)
}

/// Waits until `client`'s status satisfies `check`; returns that status.
async fn status_where(
    client: &Client,
    what: &str,
    check: impl Fn(&tailor::Status) -> bool,
) -> tailor::Status {
    crate::support::eventually(what, PATIENCE, || {
        let status = client.status();
        let ok = check(&status);
        async move { ok.then_some(status) }
    })
    .await
}

#[tokio::test]
async fn building_without_waiting_returns_at_once_and_reports_the_server_unreachable() {
    let started = Instant::now();
    let client = no_wait(builder(&dead_url(), "tlr_sdk_whatever"))
        .build()
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "build waited {took:?}");
    assert_eq!(client.status().source, ConfigSource::None);
    let status = status_where(&client, "the server reported unreachable", disconnected).await;
    let error = status.last_error.unwrap_or_default();
    eprintln!("last_error: {error}");
    assert!(error.contains("cannot reach the server"), "{error}");
    client.close().await.unwrap();
}

/// The status tells a server that is down from a working fallback: `Disconnected` (with the
/// error), not `Polling`, whichever mode is configured; and it is back to that mode once the
/// server is up again.
#[tokio::test]
async fn the_status_says_disconnected_while_the_server_is_down() {
    let mut server = FixedPortServer::start().await;
    let (sdk_key, revision) = fixed_port_setup(&server).await;
    let streaming = builder(&server.url(""), &sdk_key).build().await.unwrap();
    let polling = builder(&server.url(""), &sdk_key)
        .streaming(false)
        .poll_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    assert_eq!(streaming.status().connection, Connection::Streaming);
    assert_eq!(polling.status().connection, Connection::Polling);

    server.kill9();
    for (client, mode) in [(&streaming, "streaming"), (&polling, "polling")] {
        let status = status_where(client, &format!("{mode}: disconnected"), disconnected).await;
        assert!(status.last_error.is_some(), "{mode}: {status:?}");
        assert_eq!(
            status.source,
            ConfigSource::Server,
            "still serving the last config"
        );
        assert_eq!(status.revision, Some(revision));
    }

    server.spawn().await;
    let back = |c: Connection| move |s: &tailor::Status| s.connection == c;
    status_where(&streaming, "streaming again", back(Connection::Streaming)).await;
    status_where(&polling, "polling again", back(Connection::Polling)).await;
    streaming.close().await.unwrap();
    polling.close().await.unwrap();
}

/// A client started while its server is down gets its first config within about a second of
/// the server coming up, however long its configured backoff: until it has a config from the
/// server, a server refusing connections is retried at least every second.
#[tokio::test]
async fn a_client_started_while_the_server_is_down_gets_its_config_promptly_once_it_is_up() {
    let mut server = FixedPortServer::start().await;
    let (sdk_key, revision) = fixed_port_setup(&server).await;
    server.kill9();

    // A long backoff: without the cap, the retries after the first failure would come 5–10 s
    // and then another 10–20 s later.
    let client = builder(&server.url(""), &sdk_key)
        .backoff(Duration::from_secs(10), Duration::from_secs(30))
        .start_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    status_where(&client, "a failed first attempt", |s| {
        s.last_error.is_some()
    })
    .await;
    assert_eq!(client.status().source, ConfigSource::None);
    // Setup, not a timing assertion: the server stays down past the first uncapped retry.
    tokio::time::sleep(Duration::from_secs(10)).await;

    server.spawn().await;
    let up = Instant::now();
    assert!(
        client.wait_for_revision(revision, PATIENCE).await,
        "{:?}",
        client.status()
    );
    let waited = up.elapsed();
    eprintln!("the first config arrived {waited:?} after the server was ready");
    assert!(
        waited < Duration::from_secs(3),
        "the first config arrived {waited:?} after the server was ready"
    );
    assert_eq!(client.status().source, ConfigSource::Server);
    assert!(client.bool_value(&User::new("u"), "banner", false));
    client.close().await.unwrap();
}

/// Requests (path and arrival time) a fake server has received.
type RequestLog = std::sync::Arc<std::sync::Mutex<Vec<(String, Instant)>>>;

/// A server answering `/sdk/v1/stream` with 200 and junk (an invalid config event, then bytes
/// that are no event at all) and `/sdk/v1/config` with 200 and an invalid config, logging every
/// request.
async fn junk_server() -> (String, RequestLog) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = RequestLog::default();
    let requests = log.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                requests
                    .lock()
                    .unwrap()
                    .push((path.clone(), Instant::now()));
                let body: &[u8] = if path.starts_with("/sdk/v1/stream") {
                    b"event: config\ndata: {\"flags\": 12}\n\n\x00\x01 not an event\n"
                } else {
                    b"{\"flags\": [{\"key\": 12}]} junk"
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body).await;
            });
        }
    });
    (url, log)
}

/// The arrival times of the stream requests logged so far.
fn stream_requests(log: &RequestLog) -> Vec<Instant> {
    let log = log.lock().unwrap();
    log.iter()
        .filter(|(path, _)| path.starts_with("/sdk/v1/stream"))
        .map(|(_, at)| *at)
        .collect()
}

/// A server answering with 200 and junk is backed off exponentially like an unreachable one (the
/// default backoff: the 4th retry comes 2–4 s after the 3rd), not reconnected to every half
/// second forever, and the rejected configs are reported in `last_error`.
#[tokio::test]
async fn junk_on_the_stream_is_backed_off_and_reported() {
    let (url, log) = junk_server().await;
    let client = Client::builder(&url, "tlr_sdk_whatever")
        .start_timeout(Duration::from_millis(300))
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let attempts = crate::support::eventually("5 stream requests", Duration::from_secs(30), || {
        let at = stream_requests(&log);
        async move { (at.len() >= 5).then_some(at) }
    })
    .await;
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("gaps between stream requests: {gaps:?}");
    assert!(
        gaps[3] >= Duration::from_millis(1500),
        "reconnected too fast: gaps {gaps:?}"
    );
    let status = client.status();
    assert!(status.rejected_configs >= 2, "{status:?}");
    let error = status.last_error.clone().unwrap_or_default();
    eprintln!("last_error: {error}");
    assert!(error.contains("rejected"), "{status:?}");
    assert_eq!(status.source, ConfigSource::None);
    client.close().await.unwrap();
}

/// A server that accepts connections and never answers; it logs the requests it receives.
async fn hung_server() -> (String, RequestLog) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = RequestLog::default();
    let requests = log.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                requests.lock().unwrap().push((path, Instant::now()));
                // Read (and ignore) whatever comes until the client hangs up.
                while sock.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            });
        }
    });
    (url, log)
}

/// `close()` against a server that hangs returns within its flush timeout (plus a little), and
/// counts the events it could not deliver as dropped.
#[tokio::test]
async fn close_against_a_hung_server_is_bounded_by_the_flush_timeout() {
    let flush_timeout = Duration::from_secs(2);
    let (url, log) = hung_server().await;
    let client = builder(&url, "tlr_sdk_whatever")
        .start_timeout(Duration::from_millis(300))
        .request_timeout(Duration::from_secs(10))
        .flush_timeout(flush_timeout)
        .build()
        .await
        .unwrap();
    for i in 0..20 {
        client.track(&User::new(format!("u{i}")), "purchase", None);
    }
    // Let the delivery task start a request that will hang.
    crate::support::eventually("an event delivery request", PATIENCE, || {
        let posted = log
            .lock()
            .unwrap()
            .iter()
            .any(|(p, _)| p == "/sdk/v1/events");
        async move { posted.then_some(()) }
    })
    .await;
    let started = Instant::now();
    let result = client.close().await;
    let took = started.elapsed();
    eprintln!("close() took {took:?}");
    assert!(
        took <= flush_timeout + Duration::from_millis(1500),
        "close took {took:?} with a flush timeout of {flush_timeout:?}"
    );
    assert_eq!(result, Err(tailor::FlushError::Timeout(flush_timeout)));
    let stats = client.event_stats();
    assert_eq!((stats.queued, stats.dropped), (20, 20), "{stats:?}");
    assert_eq!(stats.delivered, 0, "{stats:?}");
}

/// One user seen from several threads is one exposure: de-duplication is per client, not per
/// thread. 45 users evaluated on 4 threads are 45 exposures, delivered and counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposures_are_deduplicated_per_client_across_threads() {
    let (server, sdk) = crate::results::setup().await;
    let client = builder(&server.url(""), &sdk).build().await.unwrap();
    let users: Vec<User> = (0..45).map(|i| User::new(format!("dedup-{i}"))).collect();
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (client, users, barrier) = (&client, &users, &barrier);
            s.spawn(move || {
                barrier.wait();
                for round in 0..3 {
                    // Each thread walks the users from another starting point.
                    for u in users.iter().cycle().skip(t * 11 + round).take(users.len()) {
                        assert!(client.variant(u, "homepage").key().is_some());
                    }
                }
            });
        }
    });
    client.flush().await.unwrap();
    let stats = client.event_stats();
    assert_eq!((stats.queued, stats.dropped), (45, 0), "{stats:?}");
    assert_eq!(stats.delivered, 45, "{stats:?}");
    let results = crate::results::results(&server, "").await;
    assert_eq!(
        crate::results::users_in(&results["overall"]),
        45,
        "{results}"
    );
    client.close().await.unwrap();
}
