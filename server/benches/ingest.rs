//! Event ingest throughput on the embedded store: batches of 100 events over HTTP on loopback,
//! each acknowledged only after a durable (fsync'd, group-committed) write.
//!
//! ```text
//! cargo bench -p tailor-server --bench ingest
//! INGEST_CONNECTIONS=64 INGEST_SECONDS=20 cargo bench -p tailor-server --bench ingest
//! ```
//! Spawns the release server on a fresh data directory, configures a running experiment, then
//! keeps `INGEST_CONNECTIONS` keep-alive connections posting unique batches (70% exposures, 30%
//! conversions) for `INGEST_SECONDS`. Reports acknowledged events/s, request latency and the
//! server's CPU use, then checks the stored count and the attribution (results) match, and times
//! a rebuild of the aggregates from the stored events, which must give the same results, and a
//! restart: how soon configs are served, and how soon results are back.
//!
//! The server checkpoints every `INGEST_CHECKPOINT_SECS` (default 60, the server's default);
//! before the restart the bench waits until every partition has a checkpoint.
//!
//! Config writes under ingest: every `INGEST_WRITE_MS` (default 200) during the run a flag is
//! created through the admin API; every one must succeed (the bench fails on the first that
//! does not), and their latency is reported next to the same writes on the idle server, measured
//! first in the same run.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

const BATCH: usize = 100;
const NOW_MS: i64 = 1_790_000_000_000;

/// A unique batch of 70 exposures and 30 conversions; every user appears about three times.
fn batch_body(conn: usize, seq: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(BATCH * 260);
    body.extend_from_slice(b"{\"events\":[");
    for i in 0..BATCH {
        let n = seq * BATCH as u64 + i as u64;
        let user = format!("u{conn}-{}", n / 3);
        let ts = NOW_MS + n as i64;
        if i > 0 {
            body.push(b',');
        }
        if i % 10 < 7 {
            common::write_exposure(&mut body, &format!("x{conn}-{n}"), ts, &user, n % 2 == 1);
        } else {
            common::write_conversion(&mut body, &format!("c{conn}-{n}"), ts + 1, &user);
        }
    }
    body.extend_from_slice(b"]}");
    body
}

/// Waits until every partition of `development` has written a checkpoint (within the interval
/// plus a second of the start): the restart then loads checkpoints plus whatever was stored
/// after them, as a restart at any moment would. Returns the partitions checkpointed, or `None`
/// for a build without partitions.
async fn wait_for_checkpoints(
    addr: SocketAddr,
    interval_secs: u64,
) -> anyhow::Result<Option<usize>> {
    let deadline = Instant::now() + Duration::from_secs(interval_secs + 30);
    loop {
        let ready = common::request(addr, "GET", "/readyz", &[], None)
            .await?
            .json()?;
        let Some(of) = ready["partitions"]["development"]["of"].as_u64() else {
            return Ok(None);
        };
        let metrics = common::request(addr, "GET", "/metrics", &[], None).await?;
        let text = String::from_utf8_lossy(&metrics.body).to_string();
        let checkpointed = text
            .lines()
            .filter(|l| {
                l.starts_with("tailor_partition_checkpoint_age_seconds{environment=\"development\"")
            })
            .count();
        if checkpointed as u64 == of {
            return Ok(Some(checkpointed));
        }
        if Instant::now() > deadline {
            bail!("only {checkpointed} of {of} partitions were checkpointed in time");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One keep-alive connection: POST, read the response, repeat until `deadline`.
async fn run_connection(
    addr: SocketAddr,
    key: String,
    conn: usize,
    deadline: Instant,
    progress: Arc<AtomicU64>,
) -> anyhow::Result<(u64, Vec<Duration>)> {
    let mut acked = 0u64;
    let mut latencies = Vec::new();
    common::keep_alive(
        addr,
        |seq| {
            (Instant::now() < deadline).then(|| {
                let body = batch_body(conn, seq as u64);
                let head = format!(
                    "POST /sdk/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                (head, body)
            })
        },
        |latency, response| {
            latencies.push(latency);
            let parsed: serde_json::Value = serde_json::from_slice(response)?;
            if parsed["accepted"].as_u64() != Some(BATCH as u64) {
                bail!("a batch was not fully accepted: {parsed}");
            }
            acked += BATCH as u64;
            progress.fetch_add(BATCH as u64, Ordering::Relaxed);
            Ok(())
        },
    )
    .await?;
    Ok((acked, latencies))
}

/// Creates flags `{prefix}-0…` one after the other, one every `every`, until `deadline` (or
/// `count` of them); returns each write's latency. Fails on the first write that fails.
async fn write_flags(
    addr: SocketAddr,
    prefix: &str,
    every: Duration,
    deadline: Instant,
    count: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    while Instant::now() < deadline && latencies.len() < count {
        let started = Instant::now();
        common::admin(
            addr,
            common::ADMIN_KEY,
            "POST",
            "/api/v1/environments/development/flags",
            &json!({"key": format!("{prefix}-{}", latencies.len()), "type": "bool",
                    "variants": [{"key": "off", "value": false}, {"key": "on", "value": true}],
                    "default_variant": "off"}),
        )
        .await
        .with_context(|| format!("config write {} of {prefix}", latencies.len()))?;
        latencies.push(started.elapsed());
        tokio::time::sleep(every.saturating_sub(started.elapsed())).await;
    }
    Ok(latencies)
}

/// p50, p99 and max of `latencies`, for printing.
fn percentiles(latencies: &mut [Duration]) -> String {
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    format!(
        "p50 {:?}, p99 {:?}, max {:?} ({} writes)",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        latencies.len()
    )
}

/// The bench experiment's results, as JSON.
async fn bench_results(addr: SocketAddr) -> anyhow::Result<serde_json::Value> {
    common::request(
        addr,
        "GET",
        "/api/v1/environments/development/experiments/bench/results",
        &[("Authorization", &format!("Bearer {}", common::ADMIN_KEY))],
        None,
    )
    .await?
    .json()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::raise_nofile();
    let connections: usize = common::env_or("INGEST_CONNECTIONS", 32);
    let seconds: u64 = common::env_or("INGEST_SECONDS", 10);
    let workers: usize = common::env_or("INGEST_WORKERS", 2);
    // Checkpoints at the server's default interval unless `INGEST_CHECKPOINT_SECS` says
    // otherwise; the restart below waits for them (a build without them ignores the variable
    // and replays its whole log).
    let checkpoint_secs: u64 = common::env_or("INGEST_CHECKPOINT_SECS", 60);
    let mut server = common::spawn_server_with(
        workers,
        &[("TAILOR_CHECKPOINT_SECS", &checkpoint_secs.to_string())],
    )
    .await?;
    let addr = server.addr;
    common::create_bench_experiment(addr).await?;
    let key = common::sdk_key(addr, common::ADMIN_KEY, "development").await?;
    let write_every = Duration::from_millis(common::env_or("INGEST_WRITE_MS", 200));
    let mut idle_writes = write_flags(
        addr,
        "idle",
        write_every,
        Instant::now() + Duration::from_secs(60),
        20,
    )
    .await?;

    let cpu_before = common::cpu_time(server.child.id());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let progress = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            tokio::spawn(run_connection(
                addr,
                key.clone(),
                c,
                deadline,
                Arc::clone(&progress),
            ))
        })
        .collect();
    let writer =
        tokio::spawn(
            async move { write_flags(addr, "busy", write_every, deadline, usize::MAX).await },
        );
    // Throughput per 10 s window: a long run shows whether the rate holds as the log grows.
    let windows = {
        let progress = Arc::clone(&progress);
        tokio::spawn(async move {
            let mut rates = Vec::new();
            let mut last = 0;
            while Instant::now() + Duration::from_secs(10) <= deadline {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let now = progress.load(Ordering::Relaxed);
                rates.push((now - last) / 10);
                last = now;
            }
            rates
        })
    };
    let mut acked = 0u64;
    let mut latencies = Vec::new();
    for t in tasks {
        let (n, l) = t.await.context("connection task")??;
        acked += n;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    let cpu = common::cpu_time(server.child.id()) - cpu_before;
    let mut busy_writes = writer.await.context("config writer task")??;
    let windows = windows.await.context("throughput windows")?;
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };

    // The stored count and the attribution must agree with what was acknowledged.
    let db =
        rusqlite::Connection::open(server.dir.as_ref().context("data dir")?.join("tailor.db"))?;
    let stored: i64 = db.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
    let results = bench_results(addr).await?;
    let users: u64 = results["overall"]["arms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["users"].as_u64())
        .sum();

    println!("ingest, embedded store, batches of {BATCH}, {connections} connections, {workers} workers, {seconds} s (load average {})", common::load_average());
    println!(
        "  acknowledged events: {acked} ({:.0} events/s, {:.0} batches/s)",
        acked as f64 / elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    let windows: Vec<String> = windows.iter().map(|r| format!("{}k", r / 1000)).collect();
    println!("  events/s per 10 s window: {}", windows.join(", "));
    println!(
        "  request latency: p50 {:?}, p99 {:?}, max {:?}",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  config writes: idle {}; under ingest {}, none failed",
        percentiles(&mut idle_writes),
        percentiles(&mut busy_writes)
    );
    println!(
        "  server CPU: {:.2} cores",
        cpu.as_secs_f64() / elapsed.as_secs_f64()
    );
    println!("  stored events: {stored}; users in results: {users}");
    let resident = common::resident_bytes(server.child.id());
    println!(
        "  server memory: {:.0} MB resident, {:.0} bytes per user",
        resident as f64 / 1e6,
        resident as f64 / users.max(1) as f64
    );
    // Replaying the raw events (what a restart does) must give the same numbers.
    let rebuild_started = Instant::now();
    let rebuilt = common::admin(
        addr,
        common::ADMIN_KEY,
        "POST",
        "/api/v1/environments/development/results/rebuild",
        &json!({}),
    )
    .await?
    .json()?;
    let rebuild_time = rebuild_started.elapsed();
    let after = bench_results(addr).await?;
    if after["overall"] != results["overall"] {
        bail!("results differ after a rebuild from the raw events");
    }

    // A restart: configs are served at once, results once every partition has loaded its
    // checkpoint plus the events after it (a build without checkpoints: the whole log).
    let checkpointed = wait_for_checkpoints(addr, checkpoint_secs).await?;
    let dir = server.dir.take().context("data dir")?;
    drop(server);
    let restart_started = Instant::now();
    let server = common::spawn_server_in(workers, dir, &[]).await?;
    let ready_after = restart_started.elapsed();
    let config = common::request(
        server.addr,
        "GET",
        "/sdk/v1/config",
        &[("Authorization", &format!("Bearer {key}"))],
        None,
    )
    .await?;
    if config.status != 200 {
        bail!("config after the restart: status {}", config.status);
    }
    let config_after = restart_started.elapsed();
    let restarted = loop {
        let r = common::request(
            server.addr,
            "GET",
            "/api/v1/environments/development/experiments/bench/results",
            &[("Authorization", &format!("Bearer {}", common::ADMIN_KEY))],
            None,
        )
        .await?;
        match r.status {
            200 => break r.json()?,
            503 => tokio::time::sleep(Duration::from_millis(10)).await,
            other => bail!("results after the restart: status {other}"),
        }
    };
    let results_after = restart_started.elapsed();
    if restarted["overall"] != results["overall"] {
        bail!("results differ after a restart");
    }

    println!(
        "  rebuild from the stored events: {} events in {:.2} s ({:.2} µs/event), identical results",
        rebuilt["events_replayed"],
        rebuild_time.as_secs_f64(),
        rebuild_time.as_secs_f64() * 1e6 / stored.max(1) as f64
    );
    println!(
        "  restart ({}): ready in {:.0} ms, config served {:.0} ms after the start, results (identical) after {:.2} s",
        match checkpointed {
            Some(n) => format!("{n} partitions checkpointed before it"),
            None => "no checkpoints in this build: the whole log is replayed".to_string(),
        },
        ready_after.as_secs_f64() * 1e3,
        config_after.as_secs_f64() * 1e3,
        results_after.as_secs_f64()
    );
    if stored as u64 != acked {
        bail!("stored {stored} events but acknowledged {acked}");
    }
    Ok(())
}
