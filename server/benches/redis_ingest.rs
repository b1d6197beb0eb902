//! Two `tailor-server` instances sharing one Redis: event ingest throughput, Redis round trips
//! per batch, and config reads while Redis is slow or stalled.
//!
//! ```text
//! cargo bench -p tailor-server --bench redis_ingest
//! REDIS_BENCH_CONNECTIONS=32 REDIS_BENCH_SECONDS=20 cargo bench -p tailor-server --bench redis_ingest
//! ```
//!
//! Starts its own `redis-server` on a free loopback port (`appendonly yes`, `appendfsync
//! everysec`, a temporary directory) and two release servers on it
//! (`TAILOR_REDIS_URL`, `REDIS_BENCH_WORKERS` workers each, default 1: two instances on a
//! 2-core machine). Then:
//! 1. **Ingest**: `REDIS_BENCH_CONNECTIONS` keep-alive connections (default 16), half to each
//!    instance, post unique batches of 100 events (70 exposures, 30 conversions) for
//!    `REDIS_BENCH_SECONDS` (default 10). Reports acknowledged events/s and latency, and from
//!    Redis' `INFO commandstats` (before/after) the commands clients sent per batch: events are
//!    split by user into the environment's partitions (16), and the ingest is one `EVALSHA` per
//!    partition the batch touches, all in flight at once (a batch of 70 users touches nearly
//!    all 16); the instances' event tails add `XREAD`s, amortized over batches, each instance
//!    reading only the partitions it owns.
//!    Checks that Redis holds exactly the acknowledged events (the sum of `SCARD` over the
//!    partitions' daily de-duplication id sets, `tailor:{p:production:*}:ids:*`: the streams are
//!    trimmed by checkpoints, so their lengths do not count stored events), and that both
//!    instances report the same users. Results converge within a few seconds rather than at
//!    once (a partition's owner publishes its aggregates at most once a second, the other
//!    instance reads them every 2 s), so that check polls until they agree (at most 30 s).
//! 2. **Config reads**: `GET /sdk/v1/config` (keep-alive, one connection, 2000 requests) on
//!    instance B while Redis is idle, during ingest into the other instance, and while Redis is
//!    stopped (`SIGSTOP`): reads are served from memory, so latency does not follow Redis.
//!
//! Loopback only; every process it starts is killed on exit.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::Spawned;
use serde_json::json;

const BATCH: usize = 100;
const EXPOSURES_PER_BATCH: u64 = 70;

/// A `redis-server` child, killed (and its directory removed) on drop.
struct RedisProcess {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RedisProcess {
    async fn start() -> anyhow::Result<RedisProcess> {
        let port = common::free_port()?;
        let dir =
            std::env::temp_dir().join(format!("tailor-bench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let child = common::redis_server(port, &dir)
            .args(["--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (apt-get install redis-server)")?;
        let redis = RedisProcess { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.cli(&["PING"]).trim() != "PONG" {
            if Instant::now() > deadline {
                bail!("redis-server did not answer on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(redis)
    }

    fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// `cmdstat_<name>` → calls.
    fn command_calls(&self) -> Vec<(String, u64)> {
        common::command_calls(&self.cli(&["INFO", "commandstats"]))
    }

    /// Events stored: the sum of `SCARD` over the partitions' daily de-duplication id sets
    /// (`SCAN MATCH`; one set per partition per day).
    fn stored_events(&self) -> u64 {
        self.cli(&["--scan", "--pattern", "tailor:{p:production:*}:ids:*"])
            .lines()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| self.cli(&["SCARD", k]).trim().parse::<u64>().unwrap_or(0))
            .sum()
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill {signal} failed");
        }
        Ok(())
    }
}

async fn spawn_instance(redis_url: &str, workers: usize) -> anyhow::Result<Spawned> {
    common::spawn_server_with(workers, &[("TAILOR_REDIS_URL", redis_url)]).await
}

/// A unique batch: `EXPOSURES_PER_BATCH` exposures of new users, then conversions of them.
fn batch_body(conn: usize, seq: u64, now: i64) -> Vec<u8> {
    let mut body = Vec::with_capacity(BATCH * 260);
    body.extend_from_slice(b"{\"events\":[");
    for i in 0..BATCH as u64 {
        let n = seq * BATCH as u64 + i;
        if i > 0 {
            body.push(b',');
        }
        if i < EXPOSURES_PER_BATCH {
            let user = format!("u{conn}-{seq}-{i}");
            common::write_exposure(&mut body, &format!("x{conn}-{n}"), now, &user, n % 2 == 1);
        } else {
            let user = format!("u{conn}-{seq}-{}", i % EXPOSURES_PER_BATCH);
            common::write_conversion(&mut body, &format!("c{conn}-{n}"), now + 1, &user);
        }
    }
    body.extend_from_slice(b"]}");
    body
}

/// `(p50, p99, max)` of `requests` config reads on one keep-alive connection.
async fn config_reads(
    addr: SocketAddr,
    key: &str,
    requests: usize,
) -> anyhow::Result<[Duration; 3]> {
    let head = format!("GET /sdk/v1/config HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nAccept-Encoding: gzip\r\n\r\n");
    common::repeated_get(addr, &head, requests).await
}

/// Posts unique batches for `duration`; connection `c` is numbered `first_conn + c` in event ids.
async fn ingest(
    addrs: [SocketAddr; 2],
    key: &str,
    connections: usize,
    first_conn: usize,
    duration: Duration,
) -> anyhow::Result<(u64, u64, Vec<Duration>, Duration)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64
        - 60_000;
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let addr = addrs[c % 2];
            let key = key.to_string();
            tokio::spawn(async move {
                let mut acked = 0u64;
                let mut batches = 0u64;
                let mut latencies = Vec::new();
                common::keep_alive(
                    addr,
                    |n| {
                        (Instant::now() < deadline).then(|| {
                            let body = batch_body(first_conn + c, n as u64, now);
                            let head = format!(
                                "POST /sdk/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                                body.len()
                            );
                            (head, body)
                        })
                    },
                    |elapsed, body| {
                        latencies.push(elapsed);
                        let parsed: serde_json::Value = serde_json::from_slice(body)?;
                        acked += parsed["accepted"].as_u64().unwrap_or(0);
                        batches += 1;
                        Ok(())
                    },
                )
                .await?;
                Ok::<_, anyhow::Error>((acked, batches, latencies))
            })
        })
        .collect();
    let mut acked = 0;
    let mut batches = 0;
    let mut latencies = Vec::new();
    for t in tasks {
        let (a, b, l) = t.await.context("connection task")??;
        acked += a;
        batches += b;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok((acked, batches, latencies, elapsed))
}

async fn total_users(addr: SocketAddr) -> anyhow::Result<u64> {
    let results = common::request(
        addr,
        "GET",
        "/api/v1/environments/production/experiments/bench/results",
        &[("Authorization", &format!("Bearer {}", common::ADMIN_KEY))],
        None,
    )
    .await?
    .json()?;
    Ok(results["overall"]["arms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["users"].as_u64())
        .sum())
}

fn fmt(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::raise_nofile();
    let connections: usize = common::env_or("REDIS_BENCH_CONNECTIONS", 16);
    let seconds: u64 = common::env_or("REDIS_BENCH_SECONDS", 10);
    let workers: usize = common::env_or("REDIS_BENCH_WORKERS", 1);
    let redis = RedisProcess::start().await?;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let a = spawn_instance(&url, workers).await?;
    let b = spawn_instance(&url, workers).await?;
    let admin = |addr, path: &'static str, body| async move {
        common::admin(addr, common::ADMIN_KEY, "POST", path, &body).await
    };
    admin(
        a.addr,
        "/api/v1/environments/production/experiments",
        json!({"key": "bench", "status": "running", "primary_metric": "purchase"}),
    )
    .await?;
    admin(a.addr, "/api/v1/environments/production/flags", json!({
        "key": "homepage", "type": "string",
        "variants": [{"key": "control", "value": "a"}, {"key": "treatment", "value": "b"}],
        "default_variant": "control",
        "rules": [{"split": [{"variant": "control", "weight": 5000}, {"variant": "treatment", "weight": 5000}], "experiment": "bench"}]
    })).await?;
    let key = common::sdk_key(a.addr, common::ADMIN_KEY, "production").await?;
    // B learns the key through Redis.
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::request(
        b.addr,
        "GET",
        "/sdk/v1/config",
        &[("Authorization", &format!("Bearer {key}"))],
        None,
    )
    .await?
    .status
        != 200
    {
        if Instant::now() > deadline {
            bail!("instance B never accepted the key created on A");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    println!(
        "Redis: two instances ({workers} worker(s) each), one redis-server (appendonly yes, everysec); load average {}",
        common::load_average()
    );

    // 2a. Config reads with Redis idle.
    let idle = config_reads(b.addr, &key, 2000).await?;

    // 1. Ingest through both instances.
    let pids = [a.child.id(), b.child.id(), redis.child.id()];
    let cpu_before = pids.map(common::cpu_time);
    let before = redis.command_calls();
    let (acked, batches, latencies, elapsed) = ingest(
        [a.addr, b.addr],
        &key,
        connections,
        0,
        Duration::from_secs(seconds),
    )
    .await?;
    let cpu = {
        let after = pids.map(common::cpu_time);
        [0, 1, 2].map(|i| after[i].saturating_sub(cpu_before[i]))
    };
    // Results converge within seconds: owners apply their partitions' events and publish the
    // aggregates at most once a second; the other instance reads them every 2 s. Poll until both
    // report every user (at most 30 s) before reading the counters.
    let expected_users = batches * EXPOSURES_PER_BATCH;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (users_a, users_b) = loop {
        let (ua, ub) = (total_users(a.addr).await?, total_users(b.addr).await?);
        if (ua == expected_users && ub == expected_users) || Instant::now() > deadline {
            break (ua, ub);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let after = redis.command_calls();
    let delta = |name: &str| {
        let get = |v: &[(String, u64)]| v.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c);
        get(&after) - get(&before)
    };
    // Commands run inside the scripts are counted by Redis too; they are not round trips.
    let client_commands: u64 = after
        .iter()
        .filter(|(n, _)| !common::IN_SCRIPTS.contains(&n.as_str()))
        .map(|(n, _)| delta(n))
        .sum();
    let stored = redis.stored_events();

    // 2b. Config reads on B while A ingests; 2c. while Redis is stopped.
    let loaded = {
        let ingest_a = tokio::spawn({
            let key = key.clone();
            async move {
                ingest(
                    [a.addr, a.addr],
                    &key,
                    (connections / 2).max(1),
                    10_000,
                    Duration::from_secs(3),
                )
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reads = config_reads(b.addr, &key, 2000).await?;
        let (_, batches_a, _, _) = ingest_a.await.context("ingest task")??;
        (reads, batches_a)
    };
    let (loaded, batches_a) = loaded;
    // The owners apply A's events meanwhile and publish them; wait until both instances report
    // them all (at most 30 s), so that only Redis differs below.
    let expected_after = expected_users + batches_a * EXPOSURES_PER_BATCH;
    let deadline = Instant::now() + Duration::from_secs(30);
    let second_users = loop {
        let (ua, ub) = (total_users(a.addr).await?, total_users(b.addr).await?);
        if (ua == expected_after && ub == expected_after) || Instant::now() > deadline {
            break (ua, ub);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    redis.signal("-STOP")?;
    let stalled = config_reads(b.addr, &key, 2000).await;
    redis.signal("-CONT")?;
    let stalled = stalled?;

    let per_batch = |n: u64| n as f64 / batches.max(1) as f64;
    println!("\n### Ingest: {connections} connections (half per instance), batches of {BATCH}, {seconds} s");
    println!("| | |\n| --- | --- |");
    println!(
        "| acknowledged events/s | {:.0} ({acked} events in {:.1} s) |",
        acked as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "| batches/s | {:.0} |",
        batches as f64 / elapsed.as_secs_f64()
    );
    println!(
        "| batch latency p50 / p99 / max | {} / {} / {} |",
        fmt(common::percentile(&latencies, 0.5)),
        fmt(common::percentile(&latencies, 0.99)),
        fmt(common::percentile(&latencies, 1.0))
    );
    println!(
        "| EVALSHA per batch (the ingest: one per partition touched, concurrent) | {:.2} |",
        per_batch(delta("evalsha"))
    );
    println!(
        "| XREAD per batch (event tails, each over its owned partitions) | {:.3} |",
        per_batch(delta("xread"))
    );
    println!(
        "| all client commands per batch | {:.3} |",
        per_batch(client_commands)
    );
    println!(
        "| run inside the scripts per batch (SISMEMBER / SADD / XADD / PUBLISH) | {:.0} / {:.0} / {:.0} / {:.2} |",
        per_batch(delta("sismember")),
        per_batch(delta("sadd")),
        per_batch(delta("xadd")),
        per_batch(delta("publish"))
    );
    let per_k = |d: Duration| d.as_secs_f64() * 1e3 / (acked.max(1) as f64 / 1000.0);
    println!(
        "| CPU, ms per 1000 events: instance A / B / redis-server | {:.1} / {:.1} / {:.1} |",
        per_k(cpu[0]),
        per_k(cpu[1]),
        per_k(cpu[2])
    );
    println!("| events in Redis / acknowledged | {stored} / {acked} |");
    println!("| users in results, instance A / B / expected | {users_a} / {users_b} / {expected_users} |");
    println!("\n### Config reads on instance B (`GET /sdk/v1/config`, gzip, 1 keep-alive connection, 2000 requests)");
    println!("| Redis | p50 | p99 | max |\n| --- | --- | --- | --- |");
    for (name, r) in [
        ("idle", idle),
        ("busy: instance A ingesting", loaded),
        ("stopped (SIGSTOP)", stalled),
    ] {
        println!("| {name} | {} | {} | {} |", fmt(r[0]), fmt(r[1]), fmt(r[2]));
    }
    if stored != acked {
        bail!("Redis holds {stored} events but {acked} were acknowledged");
    }
    if users_a != expected_users || users_b != expected_users {
        bail!("results disagree: A {users_a}, B {users_b}, expected {expected_users}");
    }
    if second_users != (expected_after, expected_after) {
        bail!(
            "after the second ingest, results did not converge within 30 s: A {}, B {}, expected {expected_after}",
            second_users.0,
            second_users.1
        );
    }
    Ok(())
}
