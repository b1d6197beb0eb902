//! Shared by the server benchmarks: spawning the release server, a minimal loopback-only HTTP/1.1
//! client, and the realistic 100-flag fixture.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Admin key given to a spawned server.
pub const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef";

/// Raises this process's open-file soft limit to its hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// An environment variable parsed, or a default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Refuses anything but a loopback address: benchmarks never send traffic off this machine.
pub fn loopback(addr: &str) -> anyhow::Result<SocketAddr> {
    let addr = addr
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let addr = addr.replace("localhost", "127.0.0.1");
    let sock: SocketAddr = addr
        .parse()
        .with_context(|| format!("`{addr}` is not host:port"))?;
    let ok = match sock.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback(),
    };
    if !ok {
        bail!("refusing non-loopback address {sock}: benchmarks only target this machine");
    }
    Ok(sock)
}

/// CPU time (user + system) a process has used, from `/proc/<pid>/stat` (Linux; zero elsewhere).
pub fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on every Linux architecture this runs on.
    Duration::from_millis(ticks * 10)
}

/// A process' resident memory (`VmRSS`), in bytes.
pub fn resident_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The 1-minute load average, for context next to the numbers (other work on the machine skews
/// a 2-core benchmark).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// A free loopback port (bound and released; a tiny race is acceptable for a benchmark).
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A child process killed (and its data directory removed) on drop.
pub struct Spawned {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory, if it has one.
    pub dir: Option<PathBuf>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts the release `tailor-server serve` on a fresh data directory and waits for `/readyz`.
pub async fn spawn_server(workers: usize) -> anyhow::Result<Spawned> {
    spawn_server_with(workers, &[]).await
}

/// [`spawn_server`] with extra environment variables (e.g. `TAILOR_REDIS_URL`).
pub async fn spawn_server_with(workers: usize, env: &[(&str, &str)]) -> anyhow::Result<Spawned> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("tailor-bench-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    spawn_server_in(workers, dir, env).await
}

/// Starts the release `tailor-server serve` on `dir` (kept data: a restart) and waits for
/// `/readyz`.
pub async fn spawn_server_in(
    workers: usize,
    dir: PathBuf,
    env: &[(&str, &str)],
) -> anyhow::Result<Spawned> {
    let port = free_port()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))?;
    // `TAILOR_BENCH_SERVER_BIN` compares another build (e.g. a patched one) with the same driver.
    let bin = std::env::var("TAILOR_BENCH_SERVER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tailor-server").to_string());
    let child = Command::new(bin)
        .arg("serve")
        .env("TAILOR_BIND", format!("127.0.0.1:{port}"))
        .env("TAILOR_DATA_DIR", &dir)
        .env("TAILOR_ADMIN_KEY", ADMIN_KEY)
        .env("TAILOR_WORKERS", workers.to_string())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("spawning tailor-server")?;
    let spawned = Spawned {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        dir: Some(dir),
    };
    wait_ready(spawned.addr, "/readyz").await?;
    Ok(spawned)
}

#[allow(dead_code)]
/// Commands the server only ever runs inside its Lua scripts: Redis counts them in
/// `INFO commandstats`, but they are not round trips. (`GET`, `SET`, `DEL`, `HGET` and `HSETNX`
/// are sent both ways and counted as client commands: the lease scripts' `GET`s, a few per
/// partition per second, inflate the client count slightly.)
pub const IN_SCRIPTS: [&str; 16] = [
    "sismember",
    "sadd",
    "xadd",
    "expireat",
    "publish",
    "xtrim",
    "hset",
    "hincrby",
    "hexists",
    "lpush",
    "pexpire",
    "incr",
    "exists",
    "zadd",
    "zrange",
    "zremrangebyscore",
];
/// `redis-server` on loopback `port` with its data in `dir`: the append-only file on,
/// `appendfsync everysec`, no RDB snapshots (what the README asks of production).
#[allow(dead_code)]
pub fn redis_server(port: u16, dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ])
        .arg("--dir")
        .arg(dir);
    cmd
}

/// `cmdstat_<name>` → calls, from the text of `INFO commandstats`.
#[allow(dead_code)]
pub fn command_calls(info: &str) -> Vec<(String, u64)> {
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// The `p` quantile (0–1) of sorted latencies, nearest rank (zero for none).
#[allow(dead_code)]
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// `(p50, p99, max)` of `requests` sequential sends of the request `head` (a GET) on one
/// keep-alive connection.
#[allow(dead_code)]
pub async fn repeated_get(
    addr: SocketAddr,
    head: &str,
    requests: usize,
) -> anyhow::Result<[Duration; 3]> {
    let mut latencies = Vec::with_capacity(requests);
    keep_alive(
        addr,
        |n| (n < requests).then(|| (head.to_string(), Vec::new())),
        |elapsed, _| {
            latencies.push(elapsed);
            Ok(())
        },
    )
    .await?;
    latencies.sort();
    Ok([
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    ])
}

/// One keep-alive HTTP/1.1 connection: sends requests made by `next` until it returns `None`;
/// returns each response's latency and body.
pub async fn keep_alive(
    addr: SocketAddr,
    mut next: impl FnMut(usize) -> Option<(String, Vec<u8>)>,
    mut on_response: impl FnMut(Duration, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut conn = KeepAlive::connect(addr).await?;
    let mut n = 0;
    while let Some((head, body)) = next(n) {
        n += 1;
        let started = Instant::now();
        let (status_line, response) = conn.exchange(&head, &body).await?;
        let elapsed = started.elapsed();
        if !status_line.contains(" 200 ") {
            bail!(
                "{}: {}",
                status_line.trim(),
                String::from_utf8_lossy(&response)
            );
        }
        on_response(elapsed, &response)?;
    }
    Ok(())
}

/// A keep-alive HTTP/1.1 connection that sends one request at a time.
pub struct KeepAlive {
    stream: BufReader<TcpStream>,
}

impl KeepAlive {
    /// Connects (no Nagle delay).
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<KeepAlive> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(KeepAlive {
            stream: BufReader::new(stream),
        })
    }

    /// Sends a request (head with its blank line, then body) and reads the response: its status
    /// line and its body (`Content-Length` framed).
    pub async fn exchange(&mut self, head: &str, body: &[u8]) -> anyhow::Result<(String, Vec<u8>)> {
        self.stream.get_mut().write_all(head.as_bytes()).await?;
        self.stream.get_mut().write_all(body).await?;
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line).await?;
        if status_line.is_empty() {
            bail!("the server closed the connection");
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, v)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut response = vec![0u8; length];
        self.stream.read_exact(&mut response).await?;
        Ok((status_line, response))
    }
}

/// Polls `path` until it answers 200 (at most 30 s).
pub async fn wait_ready(addr: SocketAddr, path: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = request(addr, "GET", path, &[], None).await {
            if r.status == 200 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{addr}{path} not ready after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A response read to the end.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked, not decompressed).
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One HTTP/1.1 request with `Connection: close`, read to EOF (10 s timeout).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> anyhow::Result<Response> {
    let fut = async {
        let mut stream = TcpStream::connect(addr).await?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        if let Some(b) = body {
            stream.write_all(b).await?;
        }
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse_response(&raw)
    };
    tokio::time::timeout(Duration::from_secs(600), fut)
        .await
        .with_context(|| format!("{method} {path} timed out"))?
}

fn parse_response(raw: &[u8]) -> anyhow::Result<Response> {
    let end = memchr::memmem::find(raw, b"\r\n\r\n").context("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end])?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line `{status_line}`"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        let mut out = Vec::new();
        let mut dec = Chunked::default();
        dec.feed(rest, |b| out.extend_from_slice(b))?;
        out
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// An incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
    size: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    #[default]
    Size,
    /// Skipping a chunk extension up to the line feed.
    SizeLine,
    Data,
    /// The CRLF after a chunk's data.
    DataEnd,
    Done,
}

impl Chunked {
    /// Feeds bytes; calls `out` with payload pieces. Errors on malformed framing.
    pub fn feed(&mut self, mut input: &[u8], mut out: impl FnMut(&[u8])) -> anyhow::Result<()> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let c = input[0];
                    input = &input[1..];
                    match c {
                        b'0'..=b'9' => self.size = self.size * 16 + usize::from(c - b'0'),
                        b'a'..=b'f' => self.size = self.size * 16 + usize::from(c - b'a' + 10),
                        b'A'..=b'F' => self.size = self.size * 16 + usize::from(c - b'A' + 10),
                        b';' | b'\r' => self.state = ChunkState::SizeLine,
                        b'\n' => self.end_size_line(),
                        _ => bail!("bad chunk size byte {c:#x}"),
                    }
                }
                ChunkState::SizeLine => match memchr::memchr(b'\n', input) {
                    Some(i) => {
                        input = &input[i + 1..];
                        self.end_size_line();
                    }
                    None => input = &[],
                },
                ChunkState::Data => {
                    let n = self.size.min(input.len());
                    out(&input[..n]);
                    input = &input[n..];
                    self.size -= n;
                    if self.size == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                }
                ChunkState::DataEnd => match memchr::memchr(b'\n', input) {
                    Some(i) => {
                        input = &input[i + 1..];
                        self.state = ChunkState::Size;
                    }
                    None => input = &[],
                },
                ChunkState::Done => return Ok(()),
            }
        }
        Ok(())
    }

    fn end_size_line(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::Done
        } else {
            ChunkState::Data
        };
    }

    /// Whether the terminating zero-size chunk was seen.
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

/// Admin `POST`/`PUT` with the bearer key; fails unless the status is 2xx.
pub async fn admin(
    addr: SocketAddr,
    key: &str,
    method: &str,
    path: &str,
    body: &Value,
) -> anyhow::Result<Response> {
    let auth = format!("Bearer {key}");
    let bytes = serde_json::to_vec(body)?;
    let r = request(
        addr,
        method,
        path,
        &[("Authorization", &auth)],
        Some(&bytes),
    )
    .await?;
    if !(200..300).contains(&r.status) {
        bail!(
            "{method} {path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    Ok(r)
}

/// Creates an SDK key for `environment`; returns its secret.
pub async fn sdk_key(
    addr: SocketAddr,
    admin_key: &str,
    environment: &str,
) -> anyhow::Result<String> {
    let r = admin(
        addr,
        admin_key,
        "POST",
        "/api/v1/keys",
        &json!({"name": "bench", "kind": "sdk", "environment": environment}),
    )
    .await?;
    r.json()?["secret"]
        .as_str()
        .map(str::to_string)
        .context("no secret in the key response")
}

/// Replaces `environment`'s config with the fixture (one validated write).
pub async fn import_fixture(
    addr: SocketAddr,
    admin_key: &str,
    environment: &str,
    flags: usize,
) -> anyhow::Result<()> {
    admin(
        addr,
        admin_key,
        "POST",
        &format!("/api/v1/environments/{environment}/import"),
        &fixture(flags),
    )
    .await?;
    Ok(())
}

const COUNTRIES: [&str; 8] = ["US", "CA", "GB", "DE", "FR", "JP", "BR", "AU"];
const AREAS: [&str; 10] = [
    "checkout",
    "search",
    "onboarding",
    "pricing",
    "homepage",
    "cart",
    "profile",
    "feed",
    "billing",
    "help",
];

/// A realistic config document: 6 segments and `flags` flags of mixed types (bool, string,
/// number, JSON). Every flag has 2–3 variants; a quarter have a targeting rule (attribute
/// conditions, some nested in `all`), a fifth an A/B split on a segment (50/50 or 34/33/33, some at partial
/// rollout or with a holdout) tracked by an experiment, a tenth overrides. 100 flags serialize to about 27 KB of compact JSON, in line with the 27.5 KB
/// Unleash document used as a reference point.
pub fn fixture(flags: usize) -> Value {
    let segments = json!([
        {"key": "beta-testers", "name": "Beta testers", "include": ["user-1", "user-2", "user-3"],
         "conditions": {"attribute": "email", "op": "ends_with", "values": ["@example.com"]}},
        {"key": "enterprise", "conditions": {"attribute": "plan", "op": "in", "values": ["enterprise", "business"]}},
        {"key": "north-america", "conditions": {"attribute": "country", "op": "in", "values": ["US", "CA", "MX"]}},
        {"key": "mobile", "conditions": {"any": [
            {"attribute": "platform", "op": "in", "values": ["ios", "android"]},
            {"attribute": "user_agent", "op": "contains", "values": ["Mobile"], "ignore_case": true}]}},
        {"key": "new-users", "conditions": {"attribute": "signup_days", "op": "lt", "values": [14]}},
        {"key": "internal", "conditions": {"attribute": "email", "op": "ends_with", "values": ["@tailor.dev"]}}
    ]);
    let segment_keys = [
        "beta-testers",
        "enterprise",
        "north-america",
        "mobile",
        "new-users",
        "internal",
    ];
    let mut out = Vec::with_capacity(flags);
    let mut experiments = Vec::new();
    for i in 0..flags {
        let area = AREAS[i % AREAS.len()];
        let key = format!("{area}-{i:03}");
        let (ty, variants) = match i % 4 {
            0 => (
                "bool",
                json!([{"key": "off", "value": false}, {"key": "on", "value": true}]),
            ),
            1 => (
                "string",
                json!([{"key": "control", "value": "classic"}, {"key": "treatment", "value": "redesign"}]),
            ),
            2 => (
                "number",
                json!([{"key": "low", "value": 10}, {"key": "mid", "value": 25}, {"key": "high", "value": 50}]),
            ),
            _ => (
                "json",
                json!([
                    {"key": "generic", "value": {"title": "Welcome", "cta": "Start"}},
                    {"key": "personal", "value": {"title": "Welcome back", "cta": "Continue"}}
                ]),
            ),
        };
        let vkeys: Vec<&str> = variants
            .as_array()
            .map(|a| a.iter().filter_map(|v| v["key"].as_str()).collect())
            .unwrap_or_default();
        let default = vkeys[0];
        let alt = vkeys[1];
        let mut rules = Vec::new();
        if i % 4 == 0 {
            let c1 = COUNTRIES[i % COUNTRIES.len()];
            let c2 = COUNTRIES[(i + 3) % COUNTRIES.len()];
            let when = if i % 8 == 0 {
                json!({"all": [
                    {"attribute": "country", "op": "in", "values": [c1, c2]},
                    {"attribute": "app_version", "op": "semver_gte", "values": ["2.4.0"]}
                ]})
            } else {
                json!({"attribute": "country", "op": "in", "values": [c1, c2]})
            };
            rules.push(json!({"id": "targeted", "when": when, "variant": alt}));
        }
        if i % 5 == 1 {
            let split = if vkeys.len() == 3 {
                json!([{"variant": vkeys[0], "weight": 3400}, {"variant": vkeys[1], "weight": 3300},
                       {"variant": vkeys[2], "weight": 3300}])
            } else {
                json!([{"variant": default, "weight": 5000}, {"variant": alt, "weight": 5000}])
            };
            let experiment = format!("{key}-test");
            let mut rule = json!({
                "id": "ab-test",
                "when": {"segment": segment_keys[i % segment_keys.len()]},
                "split": split,
                "coverage": if i % 2 == 0 { 10000 } else { 2500 },
                "experiment": experiment
            });
            if i % 4 == 0 {
                rule["holdout"] = json!({"basis_points": 500});
            }
            rules.push(rule);
            experiments.push(json!({
                "key": experiment,
                "status": if i % 3 == 0 { "draft" } else { "running" },
                "primary_metric": "purchase"
            }));
        }
        let mut flag = json!({
            "key": key,
            "type": ty,
            "variants": variants,
            "default_variant": default,
            "enabled": i % 10 != 9,
            "rules": rules,
        });
        if i % 4 == 0 {
            flag["description"] = json!(format!("{area} variation {i}"));
        }
        if i % 10 == 0 {
            flag["overrides"] = json!([{"variant": alt, "keys": ["qa-1", "qa-2"]}]);
        }
        out.push(flag);
    }
    json!({"segments": segments, "flags": out, "experiments": experiments})
}

/// The bench experiment that [`write_exposure`] and [`write_conversion`] feed: experiment
/// `bench` (running, primary metric `purchase`) on a 50/50 flag `homepage`, in `development`.
#[allow(dead_code)]
pub async fn create_bench_experiment(addr: SocketAddr) -> anyhow::Result<()> {
    let env = "/api/v1/environments/development";
    admin(
        addr,
        ADMIN_KEY,
        "POST",
        &format!("{env}/experiments"),
        &json!({"key": "bench", "status": "running", "primary_metric": "purchase"}),
    )
    .await?;
    admin(addr, ADMIN_KEY, "POST", &format!("{env}/flags"), &json!({
        "key": "homepage", "type": "string",
        "variants": [{"key": "control", "value": "a"}, {"key": "treatment", "value": "b"}],
        "default_variant": "control",
        "rules": [{"split": [{"variant": "control", "weight": 5000}, {"variant": "treatment", "weight": 5000}], "experiment": "bench"}]
    }))
    .await?;
    Ok(())
}

/// Appends one exposure of the bench experiment (flag `homepage`, experiment `bench`) to a
/// batch body, written straight into its bytes: a load generator sharing two cores with the
/// server must cost far less per event than the server does.
pub fn write_exposure(body: &mut Vec<u8>, id: &str, timestamp: i64, user: &str, treatment: bool) {
    use std::io::Write;
    let variant = if treatment { "treatment" } else { "control" };
    let written = write!(
        body,
        r#"{{"type":"exposure","id":"{id}","timestamp":{timestamp},"user_key":"{user}","flag":"homepage","variant":"{variant}","experiment":"bench","rule":0,"personalized":{treatment},"revision":2,"spec_version":1}}"#
    );
    written.unwrap_or_default();
}

/// Appends one `purchase` conversion worth 12.5 to a batch body.
pub fn write_conversion(body: &mut Vec<u8>, id: &str, timestamp: i64, user: &str) {
    use std::io::Write;
    let written = write!(
        body,
        r#"{{"type":"conversion","id":"{id}","timestamp":{timestamp},"user_key":"{user}","event":"purchase","value":12.5}}"#
    );
    written.unwrap_or_default();
}
