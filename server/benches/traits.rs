//! Computed traits: what they cost ingest, what they cost in memory, and how fast a user's
//! profile is served.
//!
//! ```text
//! cargo bench -p tailor-server --bench traits
//! TRAITS_SECONDS=20 TRAITS_CONNECTIONS=32 cargo bench -p tailor-server --bench traits
//! ```
//! 1. **Ingest with five traits vs none**, in one run: a fresh release server per round, the
//!    same experiment and flag, with no traits or with five reading `purchase`; `ROUNDS`
//!    alternating rounds of `TRAITS_SECONDS` of unique batches (70% exposures, 30% purchases)
//!    on `TRAITS_CONNECTIONS` keep-alive connections. On the embedded store and on one instance
//!    with Redis (where owners also write users' profile records). Reports events/s per round
//!    and the ratio of the means, the server's RSS at the end and Redis' `used_memory`, per user.
//! 2. **Profile lookups** (`GET /sdk/v1/profiles/{user}`, SDK key, random users that have
//!    events) on 16 keep-alive connections for `TRAITS_SECONDS`: the embedded store, and with
//!    Redis two instances, asked on the one that owns about half the partitions (the other
//!    half are read from the owners' records).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

const BATCH: usize = 100;
const ROUNDS: usize = 2;

fn five_traits() -> Vec<serde_json::Value> {
    vec![
        json!({"key": "purchases_30d", "events": ["purchase"], "aggregate": "count", "window_days": 30}),
        json!({"key": "lifetime_value", "events": ["purchase"], "aggregate": "sum"}),
        json!({"key": "purchase_days", "events": ["purchase"], "aggregate": "distinct_days", "window_days": 90}),
        json!({"key": "first_purchase", "events": ["purchase"], "aggregate": "first_seen"}),
        json!({"key": "days_since_purchase", "events": ["purchase"], "aggregate": "days_since_last"}),
    ]
}

/// The ingest bench's experiment and flag, and optionally five traits; returns an SDK key.
async fn configure(addr: SocketAddr, traits: bool) -> anyhow::Result<String> {
    let env = "/api/v1/environments/development";
    common::create_bench_experiment(addr).await?;
    if traits {
        for t in five_traits() {
            common::admin(
                addr,
                common::ADMIN_KEY,
                "POST",
                &format!("{env}/traits"),
                &t,
            )
            .await?;
        }
    }
    common::sdk_key(addr, common::ADMIN_KEY, "development").await
}

/// The user of event `n` on connection `conn`: each user has about three events.
fn user_of(conn: usize, n: u64) -> String {
    format!("u{conn}-{}", n / 3)
}

/// A unique batch of 70 exposures and 30 purchases.
fn batch_body(conn: usize, seq: u64, now: i64) -> Vec<u8> {
    let mut body = Vec::with_capacity(BATCH * 260);
    body.extend_from_slice(b"{\"events\":[");
    for i in 0..BATCH {
        let n = seq * BATCH as u64 + i as u64;
        let user = user_of(conn, n);
        if i > 0 {
            body.push(b',');
        }
        if i % 10 < 7 {
            common::write_exposure(&mut body, &format!("x{conn}-{n}"), now, &user, n % 2 == 1);
        } else {
            common::write_conversion(&mut body, &format!("c{conn}-{n}"), now + 1, &user);
        }
    }
    body.extend_from_slice(b"]}");
    body
}

/// Posts unique batches on `connections` connections for `duration`; returns acknowledged
/// events and how many batches each connection sent.
async fn ingest(
    addr: SocketAddr,
    key: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<(u64, Vec<u64>)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64
        - 60_000;
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let key = key.to_string();
            tokio::spawn(async move {
                let mut acked = 0u64;
                let mut batches = 0u64;
                common::keep_alive(
                    addr,
                    |n| {
                        (Instant::now() < deadline).then(|| {
                            let body = batch_body(c, n as u64, now);
                            let head = format!(
                                "POST /sdk/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                                body.len()
                            );
                            (head, body)
                        })
                    },
                    |_, body| {
                        let parsed: serde_json::Value = serde_json::from_slice(body)?;
                        acked += parsed["accepted"].as_u64().unwrap_or(0);
                        batches += 1;
                        Ok(())
                    },
                )
                .await?;
                Ok::<_, anyhow::Error>((acked, batches))
            })
        })
        .collect();
    let mut acked = 0;
    let mut batches = Vec::new();
    for t in tasks {
        let (a, b) = t.await??;
        acked += a;
        batches.push(b);
    }
    Ok((acked, batches))
}

/// Users with events, from the batches each connection sent.
fn users_with_events(batches: &[u64]) -> Vec<String> {
    let mut users = Vec::new();
    for (conn, &sent) in batches.iter().enumerate() {
        let events = sent * BATCH as u64;
        for u in 0..events / 3 {
            users.push(format!("u{conn}-{u}"));
        }
    }
    users
}

/// Profile lookups of random users on 16 connections for `duration`: requests/s and p50/p99.
async fn lookups(
    addr: SocketAddr,
    key: &str,
    users: Arc<Vec<String>>,
    duration: Duration,
) -> anyhow::Result<(f64, Duration, Duration)> {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..16u64)
        .map(|c| {
            let key = key.to_string();
            let users = Arc::clone(&users);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ c;
                common::keep_alive(
                    addr,
                    |_| {
                        (Instant::now() < deadline).then(|| {
                            // xorshift: users in no particular order.
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            let user = &users[(state % users.len() as u64) as usize];
                            (
                                format!("GET /sdk/v1/profiles/{user} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\r\n"),
                                Vec::new(),
                            )
                        })
                    },
                    |elapsed, body| {
                        anyhow::ensure!(body.starts_with(b"{\"user_key\""), "not a profile");
                        latencies.push(elapsed);
                        Ok(())
                    },
                )
                .await?;
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    Ok((
        all.len() as f64 / elapsed,
        common::percentile(&all, 0.5),
        common::percentile(&all, 0.99),
    ))
}

struct Redis {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Redis {
    async fn start() -> anyhow::Result<Redis> {
        let port = common::free_port()?;
        let dir = std::env::temp_dir().join(format!("tailor-bench-traits-{port}"));
        std::fs::create_dir_all(&dir)?;
        let child = common::redis_server(port, &dir)
            .args(["--loglevel", "warning"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        let redis = Redis { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.cli(&["PING"]).trim() != "PONG" {
            anyhow::ensure!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(redis)
    }

    fn cli(&self, args: &[&str]) -> String {
        std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn used_memory(&self) -> u64 {
        self.cli(&["INFO", "memory"])
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// One ingest round on a fresh server: events/s, users with events, RSS, Redis memory.
struct Round {
    rate: f64,
    users: u64,
    rss: u64,
    redis_memory: Option<u64>,
}

async fn round(
    redis: bool,
    traits: bool,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Round> {
    let redis = match redis {
        true => Some(Redis::start().await?),
        false => None,
    };
    let url = redis.as_ref().map(Redis::url);
    let env: Vec<(&str, &str)> = url
        .iter()
        .map(|u| ("TAILOR_REDIS_URL", u.as_str()))
        .collect();
    let server = common::spawn_server_with(2, &env).await?;
    let key = configure(server.addr, traits).await?;
    let started = Instant::now();
    let (acked, batches) = ingest(server.addr, &key, connections, duration).await?;
    let rate = acked as f64 / started.elapsed().as_secs_f64();
    // Let owners finish applying (and writing records) before reading memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(Round {
        rate,
        users: users_with_events(&batches).len() as u64,
        rss: common::resident_bytes(server.child.id()),
        redis_memory: redis.as_ref().map(Redis::used_memory),
    })
}

/// The mean of the rounds' rates.
fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::raise_nofile();
    let seconds: u64 = common::env_or("TRAITS_SECONDS", 10);
    let connections: usize = common::env_or("TRAITS_CONNECTIONS", 32);
    let duration = Duration::from_secs(seconds);
    println!("load average before: {}", common::load_average());

    println!("\n### Ingest with five traits vs none ({ROUNDS} alternating rounds of {seconds} s, {connections} connections)");
    println!(
        "| store | traits | round | events/s | users | RSS | RSS/user | Redis used_memory/user |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for redis in [false, true] {
        let store = if redis {
            "Redis, 1 instance"
        } else {
            "embedded"
        };
        let mut rates = [Vec::new(), Vec::new()];
        for r in 0..ROUNDS {
            for traits in [false, true] {
                let result = round(redis, traits, connections, duration).await?;
                println!(
                    "| {store} | {} | {} | {:.0} | {} | {:.1} MB | {:.0} B | {} |",
                    if traits { "five" } else { "none" },
                    r + 1,
                    result.rate,
                    result.users,
                    result.rss as f64 / 1e6,
                    result.rss as f64 / result.users as f64,
                    result.redis_memory.map_or("-".into(), |m| format!(
                        "{:.0} B",
                        m as f64 / result.users as f64
                    )),
                );
                rates[usize::from(traits)].push(result.rate);
            }
        }
        let (none, five) = (mean(&rates[0]), mean(&rates[1]));
        println!(
            "{store}: five traits / none = {:.3} (means {five:.0} / {none:.0} events/s)",
            five / none
        );
    }

    println!("\n### Profile lookups (`GET /sdk/v1/profiles/{{user}}`, 16 connections, {seconds} s, random users with events)");
    {
        let server = common::spawn_server(2).await?;
        let key = configure(server.addr, true).await?;
        let (_, batches) = ingest(server.addr, &key, connections, Duration::from_secs(5)).await?;
        let users = Arc::new(users_with_events(&batches));
        let (rate, p50, p99) = lookups(server.addr, &key, Arc::clone(&users), duration).await?;
        println!(
            "embedded: {rate:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms ({} users)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            users.len()
        );
    }
    {
        let redis = Redis::start().await?;
        let env = [("TAILOR_REDIS_URL", redis.url())];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = common::spawn_server_with(1, &env).await?;
        let b = common::spawn_server_with(1, &env).await?;
        let key = configure(a.addr, true).await?;
        // Let the two instances split the partitions.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let (_, batches) = ingest(a.addr, &key, connections, Duration::from_secs(5)).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let users = Arc::new(users_with_events(&batches));
        let (rate, p50, p99) = lookups(b.addr, &key, Arc::clone(&users), duration).await?;
        println!(
            "Redis, two instances, asked on B (about half its users read from records): {rate:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms ({} users)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            users.len()
        );
    }
    println!("\nload average after: {}", common::load_average());
    Ok(())
}
