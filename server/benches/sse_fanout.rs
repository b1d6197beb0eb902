//! SSE fan-out: N concurrent `GET /sdk/v1/stream` connections held by one server; after one admin
//! write, how many receive the new revision within 1 s, and the latency distribution.
//!
//! ```sh
//! ulimit -n 65536 || ulimit -n $(ulimit -Hn)   # the program also raises its own soft limit
//! cargo bench -p tailor-server --bench sse_fanout
//! SSE_CONNECTIONS=2000 cargo bench -p tailor-server --bench sse_fanout
//! ```
//!
//! Environment variables:
//! - `SSE_CONNECTIONS` (default 10000): streams to open.
//! - `SSE_FLAGS` (default 100): flags in the fixture (100 ≈ 27 KB per event).
//! - `SSE_CONNECT_CONCURRENCY` (default 256): connections being opened at once.
//! - `TAILOR_BENCH_WORKERS` (default 2): the spawned server's `TAILOR_WORKERS`.
//! - `TAILOR_BENCH_URL` + `TAILOR_BENCH_ADMIN_KEY`: use a running server instead (loopback only);
//!   the benchmark creates its own environment there and leaves the others alone.
//!
//! It spawns the release `tailor-server` (built by `cargo bench`), imports the fixture, creates an
//! SDK key, opens the streams with hand-written HTTP/1.1 (a 32 KB read buffer per connection),
//! waits until every stream has its initial event, toggles one flag, and timestamps each stream's
//! receipt of the new `id:`. Every phase has a deadline, so it always stops by itself.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::{env_or, Chunked};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};

enum Msg {
    /// Initial event received, with its revision.
    Ready(usize, u64),
    /// The connection failed before or after being ready.
    Failed(usize, String),
    /// A newer revision arrived at this instant.
    Got(usize, u64, Instant),
}

/// What an SSE byte stream says, as far as this benchmark cares.
enum SseEvent {
    /// An `id:` line.
    Id(u64),
    /// A blank line: the end of an event.
    End,
}

/// Scans an SSE byte stream fed in pieces for `id:` lines and event ends, without copying the
/// (long, single-line) `data:` payloads.
#[derive(Default)]
struct SseScan {
    line: Vec<u8>,
    line_len: usize,
    /// Still collecting the current line (it may be an `id:` line); false: skipping to `\n`.
    skipping: bool,
}

impl SseScan {
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<SseEvent>) {
        while !input.is_empty() {
            let nl = memchr::memchr(b'\n', input);
            let piece = &input[..nl.unwrap_or(input.len())];
            self.line_len += piece.len();
            if !self.skipping {
                self.line.extend_from_slice(piece);
                if self.line.len() > 32 || !b"id:".starts_with(&self.line[..self.line.len().min(3)])
                {
                    self.skipping = true;
                    self.line.clear();
                }
            }
            let Some(i) = nl else { return };
            if self.line_len == 0 {
                out.push(SseEvent::End);
            } else if !self.skipping {
                if let Some(id) = std::str::from_utf8(&self.line[3..])
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                {
                    out.push(SseEvent::Id(id));
                }
            }
            self.line.clear();
            self.line_len = 0;
            self.skipping = false;
            input = &input[i + 1..];
        }
    }
}

/// One stream: connect, read the initial event, report it, then report the first newer revision.
/// Holds the connection open until `stop` changes.
async fn client(
    idx: usize,
    addr: SocketAddr,
    secret: Arc<String>,
    permits: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Msg>,
    mut stop: watch::Receiver<bool>,
) {
    let run = async {
        let permit = permits.acquire().await?;
        let mut stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .context("connect timed out")??;
        let req = format!(
            "GET /sdk/v1/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {secret}\r\nAccept: text/event-stream\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        // Filled with a non-zero byte so its pages are touched now, not during the measured
        // fan-out (a zeroed allocation would fault its pages in on first use).
        let mut buf = vec![0xffu8; 32 * 1024];
        let mut head = Vec::new();
        let mut chunked = Chunked::default();
        let mut sse = SseScan::default();
        let mut events = Vec::new();
        let mut permit = Some(permit);
        let mut in_progress: Option<u64> = None;
        let mut initial: Option<u64> = None;
        let mut in_head = true;
        loop {
            let n = tokio::select! {
                r = stream.read(&mut buf) => r?,
                _ = stop.changed() => return Ok::<(), anyhow::Error>(()),
            };
            if n == 0 {
                bail!("server closed the stream");
            }
            let mut data = &buf[..n];
            if in_head {
                head.extend_from_slice(data);
                let Some(end) = memchr::memmem::find(&head, b"\r\n\r\n") else {
                    if head.len() > 16 * 1024 {
                        bail!("response head too long");
                    }
                    continue;
                };
                if !head.starts_with(b"HTTP/1.1 200") {
                    bail!("{}", String::from_utf8_lossy(&head[..end]));
                }
                in_head = false;
                let body = head.split_off(end + 4);
                chunked.feed(&body, |p| sse.feed(p, &mut events))?;
                data = &[];
            }
            chunked.feed(data, |p| sse.feed(p, &mut events))?;
            if chunked.done() {
                bail!("stream ended");
            }
            // A revision counts as received when its whole event (through the blank line after
            // `data:`) is in: that is when an SDK could apply it.
            for ev in events.drain(..) {
                match ev {
                    SseEvent::Id(id) => in_progress = Some(id),
                    SseEvent::End => match (in_progress.take(), initial) {
                        (Some(id), None) => {
                            initial = Some(id);
                            permit.take();
                            let _ = tx.send(Msg::Ready(idx, id));
                        }
                        (Some(id), Some(first)) if id > first => {
                            let _ = tx.send(Msg::Got(idx, id, Instant::now()));
                        }
                        _ => {}
                    },
                }
            }
        }
    };
    if let Err(e) = run.await {
        let _ = tx.send(Msg::Failed(idx, format!("{e:#}")));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = env_or("SSE_CONNECTIONS", 10_000);
    let flags: usize = env_or("SSE_FLAGS", 100);
    let concurrency: usize = env_or("SSE_CONNECT_CONCURRENCY", 256);
    let workers: usize = env_or("TAILOR_BENCH_WORKERS", 2);
    let nofile = common::raise_nofile();
    if (nofile as usize) < n + 64 {
        eprintln!("warning: open-file limit {nofile} is below {n} connections; raise `ulimit -n`");
    }

    let (_server, addr, admin_key, environment) = match std::env::var("TAILOR_BENCH_URL") {
        Ok(url) => {
            let addr = common::loopback(&url)?;
            let key = std::env::var("TAILOR_BENCH_ADMIN_KEY")
                .context("TAILOR_BENCH_URL needs TAILOR_BENCH_ADMIN_KEY")?;
            let env = format!("sse-bench-{}", std::process::id());
            common::admin(
                addr,
                &key,
                "POST",
                "/api/v1/environments",
                &json!({"key": env}),
            )
            .await?;
            (None, addr, key, env)
        }
        Err(_) => {
            let s = common::spawn_server(workers).await?;
            let addr = s.addr;
            (
                Some(s),
                addr,
                common::ADMIN_KEY.to_string(),
                "development".to_string(),
            )
        }
    };
    common::import_fixture(addr, &admin_key, &environment, flags).await?;
    let secret = Arc::new(common::sdk_key(addr, &admin_key, &environment).await?);
    let doc = common::request(
        addr,
        "GET",
        "/sdk/v1/config",
        &[("Authorization", &format!("Bearer {secret}"))],
        None,
    )
    .await?;
    let flag_key = doc.json()?["flags"][0]["key"]
        .as_str()
        .map(str::to_string)
        .context("fixture has no flag")?;
    println!(
        "server {addr} (workers {}), environment `{environment}`, {flags} flags, event size {} bytes, {n} connections",
        if _server.is_some() { workers.to_string() } else { "?".into() },
        doc.body.len()
    );

    // Phase 1: open every stream and wait for its initial event (deadline 120 s).
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let t_open = Instant::now();
    for idx in 0..n {
        tokio::spawn(client(
            idx,
            addr,
            secret.clone(),
            permits.clone(),
            tx.clone(),
            stop_rx.clone(),
        ));
    }
    drop(tx);
    let mut ready = vec![None::<u64>; n];
    let mut failed: Vec<Option<String>> = vec![None; n];
    let mut got: Vec<Option<(u64, Instant)>> = vec![None; n];
    let (mut n_ready, mut n_failed) = (0usize, 0usize);
    let open_deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while n_ready + n_failed < n {
        match tokio::time::timeout_at(open_deadline, rx.recv()).await {
            Ok(Some(Msg::Ready(i, rev))) => {
                ready[i] = Some(rev);
                n_ready += 1;
            }
            Ok(Some(Msg::Failed(i, e))) => {
                if failed[i].is_none() {
                    n_failed += 1;
                }
                failed[i] = Some(e);
            }
            Ok(Some(Msg::Got(i, rev, at))) => got[i] = Some((rev, at)),
            Ok(None) | Err(_) => break,
        }
    }
    let open_time = t_open.elapsed();
    println!(
        "opened {n_ready}/{n} streams in {:.1} s ({n_failed} failed)",
        open_time.as_secs_f64()
    );
    if let Some(e) = failed.iter().flatten().next() {
        println!("  first failure: {e}");
    }
    if n_ready == 0 {
        let _ = stop_tx.send(true);
        bail!("no stream opened");
    }
    let initial = ready.iter().flatten().copied().max().unwrap_or(0);

    // Phase 2: let the system settle, then one admin write; timestamp every receipt (10 s deadline).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let server_pid = _server.as_ref().map(|s| s.child.id());
    let server_cpu0 = server_pid.map(common::cpu_time);
    let client_cpu0 = common::cpu_time(std::process::id());
    let load = common::load_average();
    let t0 = Instant::now();
    let write = common::admin(
        addr,
        &admin_key,
        "POST",
        &format!("/api/v1/environments/{environment}/flags/{flag_key}/toggle"),
        &json!({"enabled": false}),
    )
    .await?;
    let write_time = t0.elapsed();
    let new_rev: u64 = write
        .header("x-tailor-revision")
        .and_then(|v| v.parse().ok())
        .unwrap_or(initial + 1);
    let deadline = tokio::time::Instant::from_std(t0) + Duration::from_secs(10);
    let mut n_got = got.iter().flatten().count();
    let mut n_failed_after = 0usize;
    while n_got < n_ready {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Msg::Got(i, rev, at))) => {
                if got[i].is_none() {
                    n_got += 1;
                }
                got[i] = Some((rev, at));
            }
            Ok(Some(Msg::Failed(i, e))) => {
                if ready[i].is_some() && failed[i].is_none() {
                    n_failed_after += 1;
                    if n_failed_after == 1 {
                        println!("  first failure after ready: {e}");
                    }
                }
                failed[i] = Some(e);
            }
            Ok(Some(Msg::Ready(i, rev))) => ready[i] = Some(rev),
            Ok(None) | Err(_) => break,
        }
    }
    let fanout_wall = t0.elapsed();
    let server_cpu = server_pid
        .map(common::cpu_time)
        .zip(server_cpu0)
        .map(|(b, a)| b.saturating_sub(a));
    let client_cpu = common::cpu_time(std::process::id()).saturating_sub(client_cpu0);
    let _ = stop_tx.send(true);

    let mut lat: Vec<Duration> = got
        .iter()
        .flatten()
        .filter(|(rev, _)| *rev >= new_rev)
        .map(|(_, at)| at.saturating_duration_since(t0))
        .collect();
    lat.sort();
    let within_1s = lat.iter().filter(|d| **d <= Duration::from_secs(1)).count();
    let pct = |k: usize| 100.0 * k as f64 / n as f64;
    println!();
    println!("| metric | value |");
    println!("|---|---|");
    println!("| connections requested | {n} |");
    println!(
        "| streams open with initial event | {n_ready} ({:.2}%), opened in {:.1} s |",
        pct(n_ready),
        open_time.as_secs_f64()
    );
    println!(
        "| admin write (toggle) round trip | {} (revision {initial} → {new_rev}) |",
        ms(write_time)
    );
    println!(
        "| received new revision within 1 s | {within_1s} ({:.2}% of {n}) |",
        pct(within_1s)
    );
    println!(
        "| received new revision within 10 s | {} ({:.2}%) |",
        lat.len(),
        pct(lat.len())
    );
    println!("| streams failed after ready | {n_failed_after} |");
    println!("| latency p50 | {} |", ms(percentile(&lat, 50.0)));
    println!("| latency p90 | {} |", ms(percentile(&lat, 90.0)));
    println!("| latency p99 | {} |", ms(percentile(&lat, 99.0)));
    println!(
        "| latency max | {} |",
        ms(lat.last().copied().unwrap_or_default())
    );
    println!(
        "| CPU during fan-out (write → last receipt, {}) | server {}, load generator {} |",
        ms(fanout_wall),
        server_cpu.map(ms).unwrap_or_else(|| "?".into()),
        ms(client_cpu)
    );
    println!("| 1-min load average before the write | {load} |");
    println!();
    println!("latency = from sending the admin write to having read the whole new event (through its blank line)");
    // Give the client tasks a moment to drop their sockets, then stop the server (on drop).
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}
