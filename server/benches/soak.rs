//! Soak: the embedded server under steady, mixed load for a long time, on loopback.
//!
//! ```text
//! cargo bench -p tailor-server --bench soak                      # 10 minutes
//! SOAK_MINUTES=60 cargo bench -p tailor-server --bench soak      # the record in BENCHMARKS.md
//! ```
//! For `SOAK_MINUTES` (default 10) the release server gets, at once:
//! - **ingest**: `SOAK_RATE` events/s (default 20,000) in batches of 100 on 16 paced keep-alive
//!   connections, 70% exposures and 30% purchases, for a fixed population of `SOAK_USERS` users
//!   (default 100,000) chosen at random, so events keep arriving for the same users;
//! - **SSE**: `SOAK_STREAMS` streams held open (default 1,000), and `SOAK_CHURN` connects per
//!   second (default 200) that read their first config frame and close;
//! - **writes**: a flag update every 2 s (`PUT`, `If-Match: *`);
//! - **reads**: every second a config read, a results read and a profile lookup (the config
//!   has a computed trait on `purchase`).
//!
//! Every 10 s it samples the server's RSS and open file descriptors. At the end it prints the
//! samples, the RSS and fd slopes after warm-up (`SOAK_WARMUP_MINUTES`, default a fifth of the
//! run, or 20 minutes for runs of 40 minutes or more: conversions stay in memory one by one for
//! 15 minutes before they settle into sums) by least squares, each client's error count and latencies, and checks that the events
//! acknowledged equal the events stored. It fails (non-zero exit) on any failed write.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const BATCH: usize = 100;
const CONNECTIONS: usize = 16;

/// One kind of client's outcome: successes, errors (with the first few messages), latencies.
#[derive(Default)]
struct Client {
    ok: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    latencies: Mutex<Vec<Duration>>,
}

impl Client {
    fn record(&self, result: anyhow::Result<Duration>) {
        match result {
            Ok(latency) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                self.latencies.lock().unwrap().push(latency);
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_errors.lock().unwrap();
                if first.len() < 5 {
                    first.push(format!("{e:#}"));
                }
            }
        }
    }

    fn summary(&self, name: &str) -> String {
        let mut l = self.latencies.lock().unwrap().clone();
        l.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "| {name} | {} | {} | {:.2} ms | {:.2} ms | {:.1} ms | {} |",
            self.ok.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            ms(common::percentile(&l, 0.5)),
            ms(common::percentile(&l, 0.99)),
            ms(common::percentile(&l, 1.0)),
            self.first_errors.lock().unwrap().join("; ")
        )
    }
}

#[derive(Default)]
struct Clients {
    ingest: Client,
    held_streams: Client,
    churn: Client,
    writes: Client,
    config_reads: Client,
    results_reads: Client,
    profile_reads: Client,
}

/// A small fast generator (xorshift64*), so the load generator costs little.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn batch_body(conn: usize, seq: u64, users: u64, rng: &mut Rng) -> Vec<u8> {
    let mut body = Vec::with_capacity(BATCH * 260);
    body.extend_from_slice(b"{\"events\":[");
    let now = now_ms();
    for i in 0..BATCH {
        let user = format!("user-{}", rng.next() % users);
        if i > 0 {
            body.push(b',');
        }
        let id = format!("{conn}-{seq}-{i}");
        if i % 10 < 7 {
            common::write_exposure(
                &mut body,
                &format!("x{id}"),
                now,
                &user,
                rng.next() % 2 == 1,
            );
        } else {
            common::write_conversion(&mut body, &format!("c{id}"), now, &user);
        }
    }
    body.extend_from_slice(b"]}");
    body
}

/// What every ingest connection shares.
#[derive(Clone)]
struct Ingest {
    addr: SocketAddr,
    key: String,
    every: Duration,
    users: u64,
    clients: Arc<Clients>,
    acked: Arc<AtomicU64>,
}

/// One paced ingest connection: a batch every `every` until `stop`.
async fn ingest(load: Ingest, conn: usize, mut stop: watch::Receiver<bool>) {
    let Ingest {
        addr,
        key,
        every,
        users,
        clients,
        acked,
    } = load;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (conn as u64 + 1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut link: Option<common::KeepAlive> = None;
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let body = batch_body(conn, seq, users, &mut rng);
        seq += 1;
        let head = format!(
            "POST /sdk/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let started = Instant::now();
        let result = async {
            if link.is_none() {
                link = Some(common::KeepAlive::connect(addr).await?);
            }
            let conn = link.as_mut().context("connection")?;
            let (status, response) = conn.exchange(&head, &body).await?;
            anyhow::ensure!(
                status.contains(" 200 "),
                "{}: {}",
                status.trim(),
                String::from_utf8_lossy(&response)
            );
            let parsed: serde_json::Value = serde_json::from_slice(&response)?;
            acked.fetch_add(parsed["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
            Ok(started.elapsed())
        }
        .await;
        if result.is_err() {
            link = None;
        }
        clients.ingest.record(result);
    }
}

/// Opens `/sdk/v1/stream` and waits for the first config frame.
async fn open_stream(addr: SocketAddr, key: &str) -> anyhow::Result<(TcpStream, Duration)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!(
                "GET /sdk/v1/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await?;
            anyhow::ensure!(n > 0, "the server closed the stream before a config frame");
            seen.extend_from_slice(&buf[..n]);
            if memchr::memmem::find(&seen, b"event: config").is_some() {
                return Ok(());
            }
            anyhow::ensure!(seen.len() < 1 << 20, "no config frame in the first MiB");
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .context("no config frame within 10 s")??;
    Ok((stream, started.elapsed()))
}

/// A stream held open until `stop`; a stream the server ends is an error, and is reopened.
async fn held_stream(
    addr: SocketAddr,
    key: String,
    clients: Arc<Clients>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let opened = open_stream(addr, &key).await;
        let mut stream = match opened {
            Ok((stream, latency)) => {
                clients.held_streams.record(Ok(latency));
                stream
            }
            Err(e) => {
                clients.held_streams.record(Err(e));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                r = stream.read(&mut buf) => match r {
                    Ok(n) if n > 0 => {}
                    Ok(_) => {
                        clients.held_streams.record(Err(anyhow::anyhow!("the server ended a held stream")));
                        break;
                    }
                    Err(e) => {
                        clients.held_streams.record(Err(e.into()));
                        break;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}

/// Runs `f` every `every` until `stop`, recording each outcome in the client `pick` chooses.
async fn every<F, Fut>(
    every: Duration,
    clients: Arc<Clients>,
    pick: fn(&Clients) -> &Client,
    mut stop: watch::Receiver<bool>,
    mut f: F,
) where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        n += 1;
        let started = Instant::now();
        let result = f(n).await.map(|()| started.elapsed());
        pick(&clients).record(result);
    }
}

/// A GET that must answer 200.
async fn get(addr: SocketAddr, path: &str, key: &str) -> anyhow::Result<()> {
    let auth = format!("Bearer {key}");
    let r = common::request(addr, "GET", path, &[("Authorization", &auth)], None).await?;
    anyhow::ensure!(
        r.status == 200,
        "GET {path}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    Ok(())
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Least-squares slope of `(minutes, value)` points, per minute.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::raise_nofile();
    let minutes: f64 = common::env_or("SOAK_MINUTES", 10.0);
    let rate: f64 = common::env_or("SOAK_RATE", 20_000.0);
    let users: u64 = common::env_or("SOAK_USERS", 100_000);
    let streams: usize = common::env_or("SOAK_STREAMS", 1_000);
    let churn: f64 = common::env_or("SOAK_CHURN", 200.0);
    // Memory grows until users' settle points trail their events by the full 15 minutes
    // (`tailor_server::attribution::SETTLE_MS`): runs long enough wait 20 minutes for it.
    let default_warmup = if minutes >= 40.0 { 20.0 } else { minutes / 5.0 };
    let warmup: f64 = common::env_or("SOAK_WARMUP_MINUTES", default_warmup);
    let sample_every = Duration::from_secs(common::env_or("SOAK_SAMPLE_SECS", 10));
    let duration = Duration::from_secs_f64(minutes * 60.0);

    let server = common::spawn_server(2).await?;
    let addr = server.addr;
    let pid = server.child.id();
    let env = "/api/v1/environments/development";
    common::create_bench_experiment(addr).await?;
    common::admin(
        addr,
        common::ADMIN_KEY,
        "POST",
        &format!("{env}/traits"),
        &json!({"key": "purchases_30d", "events": ["purchase"], "aggregate": "count", "window_days": 30}),
    )
    .await?;
    let key = common::sdk_key(addr, common::ADMIN_KEY, "development").await?;
    println!(
        "soak: {minutes} min, {rate} events/s for {users} users, {streams} held streams, {churn} stream connects/s, a write every 2 s, reads every 1 s (load average {})",
        common::load_average()
    );

    let clients = Arc::new(Clients::default());
    let acked = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = Vec::new();
    let batch_every = Duration::from_secs_f64(CONNECTIONS as f64 * BATCH as f64 / rate);
    let load = Ingest {
        addr,
        key: key.clone(),
        every: batch_every,
        users,
        clients: Arc::clone(&clients),
        acked: Arc::clone(&acked),
    };
    for conn in 0..CONNECTIONS {
        tasks.push(tokio::spawn(ingest(load.clone(), conn, stop.clone())));
    }
    for _ in 0..streams {
        tasks.push(tokio::spawn(held_stream(
            addr,
            key.clone(),
            Arc::clone(&clients),
            stop.clone(),
        )));
    }
    {
        let key = key.clone();
        tasks.push(tokio::spawn(every(
            Duration::from_secs_f64(1.0 / churn),
            Arc::clone(&clients),
            |c| &c.churn,
            stop.clone(),
            move |_| {
                let key = key.clone();
                async move { open_stream(addr, &key).await.map(drop) }
            },
        )));
    }
    tasks.push(tokio::spawn(every(
        Duration::from_secs(2),
        Arc::clone(&clients),
        |c| &c.writes,
        stop.clone(),
        move |n| async move {
            let body = json!({
                "key": "homepage", "type": "string",
                "description": format!("soak write {n}"),
                "variants": [{"key": "control", "value": "a"}, {"key": "treatment", "value": "b"}],
                "default_variant": "control",
                "rules": [{"split": [{"variant": "control", "weight": 5000}, {"variant": "treatment", "weight": 5000}], "experiment": "bench"}]
            });
            let bytes = serde_json::to_vec(&body)?;
            let auth = format!("Bearer {}", common::ADMIN_KEY);
            let r = common::request(
                addr,
                "PUT",
                "/api/v1/environments/development/flags/homepage",
                &[("Authorization", &auth), ("If-Match", "*")],
                Some(&bytes),
            )
            .await?;
            anyhow::ensure!(r.status == 200, "PUT flag: {} {}", r.status, String::from_utf8_lossy(&r.body));
            Ok(())
        },
    )));
    for (pick, path) in [
        (
            (|c: &Clients| &c.config_reads) as fn(&Clients) -> &Client,
            "/sdk/v1/config".to_string(),
        ),
        (
            |c: &Clients| &c.results_reads,
            "/api/v1/environments/development/experiments/bench/results".to_string(),
        ),
    ] {
        let key = if path.starts_with("/sdk") {
            key.clone()
        } else {
            common::ADMIN_KEY.to_string()
        };
        tasks.push(tokio::spawn(every(
            Duration::from_secs(1),
            Arc::clone(&clients),
            pick,
            stop.clone(),
            move |_| {
                let (path, key) = (path.clone(), key.clone());
                async move { get(addr, &path, &key).await }
            },
        )));
    }
    {
        let key = key.clone();
        tasks.push(tokio::spawn(every(
            Duration::from_secs(1),
            Arc::clone(&clients),
            |c| &c.profile_reads,
            stop.clone(),
            move |n| {
                let key = key.clone();
                async move {
                    get(
                        addr,
                        &format!("/sdk/v1/profiles/user-{}", n * 7919 % users),
                        &key,
                    )
                    .await
                }
            },
        )));
    }

    // Samples: (minutes since start, RSS MB, fds, events acked).
    let started = Instant::now();
    let mut samples: Vec<(f64, f64, f64, u64)> = Vec::new();
    println!("| minute | RSS MB | fds | events acked | events/s since last |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    let mut last_acked = 0u64;
    while started.elapsed() < duration {
        tokio::time::sleep(sample_every).await;
        let m = started.elapsed().as_secs_f64() / 60.0;
        let rss = common::resident_bytes(pid) as f64 / 1e6;
        let fds = open_fds(pid) as f64;
        let a = acked.load(Ordering::Relaxed);
        println!(
            "| {m:.1} | {rss:.1} | {fds} | {a} | {:.0} |",
            (a - last_acked) as f64 / sample_every.as_secs_f64()
        );
        last_acked = a;
        samples.push((m, rss, fds, a));
    }
    stop_tx.send_replace(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
    }
    let elapsed = started.elapsed();

    let after: Vec<&(f64, f64, f64, u64)> = samples.iter().filter(|s| s.0 >= warmup).collect();
    let rss_slope = slope(&after.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>());
    let fd_slope = slope(&after.iter().map(|s| (s.0, s.2)).collect::<Vec<_>>());
    let acked = acked.load(Ordering::Relaxed);
    let db =
        rusqlite::Connection::open(server.dir.as_ref().context("data dir")?.join("tailor.db"))?;
    let stored: i64 = db.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;

    println!(
        "\n### Soak summary ({:.1} min, load average at the end {})",
        elapsed.as_secs_f64() / 60.0,
        common::load_average()
    );
    println!(
        "events acknowledged: {acked} ({:.0}/s); stored: {stored}; {}",
        acked as f64 / elapsed.as_secs_f64(),
        if stored as u64 == acked {
            "acked = stored"
        } else {
            "MISMATCH"
        }
    );
    println!(
        "after {warmup:.1} min of warm-up: RSS slope {rss_slope:+.2} MB/min, fd slope {fd_slope:+.3} fds/min"
    );
    println!("\n| client | ok | errors | p50 | p99 | max | first errors |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for (name, c) in [
        ("ingest (batches of 100)", &clients.ingest),
        ("held SSE streams (opens)", &clients.held_streams),
        ("SSE connect + first frame + close", &clients.churn),
        ("flag writes", &clients.writes),
        ("config reads", &clients.config_reads),
        ("results reads", &clients.results_reads),
        ("profile lookups", &clients.profile_reads),
    ] {
        println!("{}", c.summary(name));
    }
    anyhow::ensure!(
        stored as u64 == acked,
        "stored {stored} events but acknowledged {acked}"
    );
    anyhow::ensure!(
        clients.writes.errors.load(Ordering::Relaxed) == 0,
        "flag writes failed"
    );
    Ok(())
}
