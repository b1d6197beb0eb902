//! Partitioned event logs across 1, 2 and 3 `tailor-server` instances on a 3-master Redis
//! Cluster: what each instance holds and spends when it owns only its share of the partitions,
//! what Redis spends per event, and whether every instance reports the same results.
//!
//! ```text
//! cargo bench -p tailor-server --bench partitions
//! PARTITION_BENCH_USERS=20000 PARTITION_BENCH_INSTANCES=1,3 cargo bench -p tailor-server --bench partitions
//! ```
//!
//! Starts three `redis-server`s on free loopback ports (`--cluster-enabled yes`, `appendonly
//! yes`, `appendfsync everysec`, temporary directories) and joins them with `redis-cli
//! --cluster create … --cluster-replicas 0`. Then, for each instance count N in
//! `PARTITION_BENCH_INSTANCES` (default `1,2,3`), on a fresh key space (every node flushed,
//! a new `TAILOR_REDIS_PREFIX`):
//! 1. starts N release servers (`TAILOR_REDIS_URL=redis+cluster://…`, `TAILOR_WORKERS=1`,
//!    `TAILOR_CHECKPOINT_SECS=5`) and waits until their `/readyz` owned counts for
//!    `production` add up to all 16 partitions, every instance owns at least one and the split
//!    has held for 5 s (an instance that wins no partition under rendezvous hashing over its
//!    random name, which happens in about 1 run in 200 at N = 3, is replaced by a new one);
//! 2. creates a running experiment, its flag and an SDK key (as `redis_ingest` does);
//! 3. ingests a fixed population: `PARTITION_BENCH_USERS` users (default 200,000), each with one
//!    exposure, 30 % of them also with one conversion, in random user order (a fixed seed), in
//!    batches of 100 events over `PARTITION_BENCH_CONNECTIONS` keep-alive connections (default
//!    8) assigned to the instances round-robin, all taking batches from one queue;
//! 4. waits until every instance's results show exactly the population (bounded by
//!    `PARTITION_BENCH_CONVERGE_SECS`, default 120), then measures.
//!
//! Reported per N: acknowledged events/s (informational only: a 2-core machine cannot show
//! scaling); per instance the partitions and users it owns, resident memory (`VmRSS`) before
//! ingest and after convergence, its growth per user held, and CPU seconds (`/proc/<pid>/stat`,
//! from the start of ingest to convergence) per 1,000 events of the whole population; per Redis
//! node its partitions, its share of client commands, network bytes in and CPU per 1,000
//! events; Redis client commands and bytes in per event over all nodes (`INFO commandstats` and
//! `INFO stats`, before/after; commands the server only runs inside its Lua scripts are shown
//! apart); and the latency of 200 sequential results queries on instance 0. It fails unless every
//! instance reports the same users and converted users per arm, equal to the population's,
//! and unless Redis' de-duplication id sets hold exactly the acknowledged events. A summary row
//! per N (for BENCHMARKS.md) and the load average at start and end close the output.
//!
//! Other knobs: `PARTITION_BENCH_WORKERS` (HTTP workers per instance, default 1),
//! `PARTITION_BENCH_CHECKPOINT_SECS` (default 5), `PARTITION_BENCH_RESULT_QUERIES` (default
//! 200), `TAILOR_BENCH_SERVER_BIN` (another server build). Loopback only; every process it
//! starts is killed on exit (also on Ctrl-C).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::Spawned;
use serde_json::{json, Value};

const BATCH: usize = 100;
const MASTERS: usize = 3;
const ENV: &str = "production";
const RESULTS: &str = "/api/v1/environments/production/experiments/bench/results";
/// Seed of the population's shuffle and of its users' variants and conversions.
const SEED: u64 = 0x7461_696c_6f72_2021;
/// Commands this bench sends itself between its before/after readings.
const OWN_COMMANDS: [&str; 1] = ["info"];

// ---------------------------------------------------------------------------------------------
// Redis Cluster
// ---------------------------------------------------------------------------------------------

/// A cluster-enabled `redis-server` child, killed (and its directory removed) on drop.
struct RedisNode {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One node's counters at one moment.
#[derive(Debug, Clone, Default)]
struct NodeCounters {
    /// `cmdstat_<name>` → calls.
    calls: HashMap<String, u64>,
    /// `total_net_input_bytes`.
    net_in: u64,
    /// The process' CPU time.
    cpu: Duration,
}

impl RedisNode {
    /// Starts one node on free ports (client and cluster bus), retrying if a port was taken.
    async fn start() -> anyhow::Result<RedisNode> {
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = common::free_port()?;
            let bus = common::free_port()?;
            if bus == port {
                continue;
            }
            let dir = std::env::temp_dir().join(format!(
                "tailor-bench-cluster-{}-{port}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir)?;
            let log = std::fs::File::create(dir.join("redis.log"))?;
            let child = common::redis_server(port, &dir)
                .args(["--protected-mode", "yes"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-port", &bus.to_string()])
                .args(["--daemonize", "no", "--loglevel", "warning"])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting redis-server (apt-get install redis-server)")?;
            let mut node = RedisNode { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if node.child.try_wait()?.is_some() {
                    last_log =
                        std::fs::read_to_string(node.dir.join("redis.log")).unwrap_or_default();
                    break; // exited (a port was taken): try other ports
                }
                if node.cli(&["PING"]).trim() == "PONG" {
                    return Ok(node);
                }
                if Instant::now() > deadline {
                    bail!("redis-server on port {port} did not answer PING within 10 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        bail!("redis-server did not start in 5 attempts; its log:\n{last_log}")
    }

    /// `redis-cli` against this node only (no cluster redirects), stdout.
    fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn counters(&self) -> NodeCounters {
        let calls = common::command_calls(&self.cli(&["INFO", "commandstats"]))
            .into_iter()
            .collect();
        let net_in = self
            .cli(&["INFO", "stats"])
            .lines()
            .find_map(|l| l.trim().strip_prefix("total_net_input_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        NodeCounters {
            calls,
            net_in,
            cpu: common::cpu_time(self.child.id()),
        }
    }

    /// Keys of this node matching a glob (`SCAN MATCH`, to the end).
    fn scan(&self, pattern: &str) -> Vec<String> {
        self.cli(&["--scan", "--pattern", pattern])
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// Three masters joined into one cluster.
struct Cluster {
    nodes: Vec<RedisNode>,
}

impl Cluster {
    async fn start(masters: usize) -> anyhow::Result<Cluster> {
        let mut nodes = Vec::new();
        for _ in 0..masters {
            nodes.push(RedisNode::start().await?);
        }
        let cluster = Cluster { nodes };
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(cluster.addrs())
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .context("running redis-cli --cluster create")?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster
            .nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            if Instant::now() > deadline {
                bail!("the cluster did not reach cluster_state:ok on every node within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(cluster)
    }

    fn addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    fn url(&self) -> String {
        format!("redis+cluster://{}", self.addrs().join(","))
    }

    fn counters(&self) -> Vec<NodeCounters> {
        self.nodes.iter().map(RedisNode::counters).collect()
    }

    fn flush(&self) -> anyhow::Result<()> {
        for n in &self.nodes {
            let out = n.cli(&["FLUSHALL"]);
            if out.trim() != "OK" {
                bail!("FLUSHALL on port {} answered `{}`", n.port, out.trim());
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The population
// ---------------------------------------------------------------------------------------------

/// SplitMix64: a fixed, dependency-free generator (the population must not change with a
/// library's version).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a user does: `(treatment, converts)`.
fn user_traits(user: u64) -> (bool, bool) {
    let mut s = SEED ^ user.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let h = splitmix(&mut s);
    (h & 1 == 1, (h >> 1) % 10 < 3)
}

fn user_key(user: u64) -> String {
    format!("user-{user:08}")
}

/// Expected per-arm `(users, converted)`.
type Arms = BTreeMap<String, (u64, u64)>;

struct Population {
    users: u64,
    events: u64,
    batches: Arc<Vec<Vec<u8>>>,
    expected: Arms,
    /// Users per partition.
    per_partition: Vec<u64>,
}

fn population(users: u64, partitions: u32) -> anyhow::Result<Population> {
    let mut order: Vec<u64> = (0..users).collect();
    let mut s = SEED;
    for i in (1..order.len()).rev() {
        let j = (splitmix(&mut s) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    // Ten minutes ago: well inside every window, clear of the future-clock clamp.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64
        - 600_000;
    let mut expected = Arms::new();
    let mut per_partition = vec![0u64; partitions as usize];
    let mut batches = Vec::new();
    let mut body = Vec::new();
    let mut in_batch = 0usize;
    let mut events = 0u64;
    let mut push = |body: &mut Vec<u8>, in_batch: &mut usize, write: &dyn Fn(&mut Vec<u8>)| {
        if *in_batch == 0 {
            body.extend_from_slice(b"{\"events\":[");
        } else {
            body.push(b',');
        }
        write(body);
        *in_batch += 1;
        events += 1;
        if *in_batch == BATCH {
            body.extend_from_slice(b"]}");
            batches.push(std::mem::take(body));
            *in_batch = 0;
        }
    };
    for &u in &order {
        let key = user_key(u);
        let (treatment, converts) = user_traits(u);
        let arm = expected
            .entry(if treatment { "treatment" } else { "control" }.to_string())
            .or_default();
        arm.0 += 1;
        arm.1 += u64::from(converts);
        per_partition[tailor_core::partition::partition(&key, partitions) as usize] += 1;
        push(&mut body, &mut in_batch, &|b| {
            common::write_exposure(b, &format!("x{u}"), now, &key, treatment);
        });
        if converts {
            push(&mut body, &mut in_batch, &|b| {
                common::write_conversion(b, &format!("c{u}"), now + 1_000, &key);
            });
        }
    }
    if in_batch > 0 {
        body.extend_from_slice(b"]}");
        batches.push(body);
    }
    Ok(Population {
        users,
        events,
        batches: Arc::new(batches),
        expected,
        per_partition,
    })
}

// ---------------------------------------------------------------------------------------------
// Instances
// ---------------------------------------------------------------------------------------------

struct Settings {
    url: String,
    workers: usize,
    checkpoint_secs: u64,
    connections: usize,
    converge: Duration,
    result_queries: usize,
}

async fn spawn_instance(settings: &Settings, prefix: &str) -> anyhow::Result<Spawned> {
    let checkpoint = settings.checkpoint_secs.to_string();
    common::spawn_server_with(
        settings.workers,
        &[
            ("TAILOR_REDIS_URL", settings.url.as_str()),
            ("TAILOR_REDIS_PREFIX", prefix),
            ("TAILOR_CHECKPOINT_SECS", checkpoint.as_str()),
        ],
    )
    .await
    .context("starting a tailor-server instance")
}

async fn readyz(addr: SocketAddr) -> anyhow::Result<Value> {
    let r = common::request(addr, "GET", "/readyz", &[], None).await?;
    if r.status != 200 {
        bail!(
            "{addr}/readyz: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    r.json()
}

/// `(owned, of)` of `production` on every instance.
async fn ownership(instances: &[Spawned]) -> anyhow::Result<(Vec<u64>, u64)> {
    let mut owned = Vec::new();
    let mut of = 0;
    for i in instances {
        let r = readyz(i.addr).await?;
        let p = &r["partitions"][ENV];
        owned.push(p["owned"].as_u64().unwrap_or(0));
        of = of.max(p["of"].as_u64().unwrap_or(0));
    }
    Ok((owned, of))
}

/// Waits until the instances own all partitions between them, each at least one, unchanged for
/// 5 s; replaces an instance that owns none once the split has otherwise settled.
async fn settle_ownership(
    instances: &mut [Spawned],
    settings: &Settings,
    prefix: &str,
) -> anyhow::Result<(Vec<u64>, u64)> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    let mut replaced = 0;
    let mut same_since: Option<(Vec<u64>, Instant)> = None;
    loop {
        let (owned, of) = ownership(instances).await?;
        let complete = of > 0 && owned.iter().sum::<u64>() == of;
        let held_for = match &same_since {
            Some((prev, since)) if *prev == owned => since.elapsed(),
            _ => {
                same_since = Some((owned.clone(), Instant::now()));
                Duration::ZERO
            }
        };
        if complete && held_for >= Duration::from_secs(5) {
            if owned.iter().all(|&o| o >= 1) {
                println!(
                    "  partitions settled after {:.1} s: {owned:?} of {of}",
                    started.elapsed().as_secs_f64()
                );
                return Ok((owned, of));
            }
            if held_for >= Duration::from_secs(8) {
                let idle = owned.iter().position(|&o| o == 0).unwrap_or(0);
                if replaced >= 3 {
                    bail!("instances kept winning no partition ({owned:?} of {of}) after 3 replacements");
                }
                println!(
                    "  instance {idx} wins no partition under rendezvous hashing ({owned:?}); replacing it",
                    idx = idle
                );
                instances[idle] = spawn_instance(settings, prefix).await?;
                replaced += 1;
                same_since = None;
                continue;
            }
        }
        if Instant::now() > deadline {
            bail!("partitions of `{ENV}` did not settle within 90 s: owned {owned:?} of {of}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The experiment `bench` on flag `homepage` (50/50), and an SDK key; waits until every
/// instance serves the flag with that key and answers the results query.
async fn setup_experiment(instances: &[Spawned]) -> anyhow::Result<String> {
    let a = instances[0].addr;
    common::admin(
        a,
        common::ADMIN_KEY,
        "POST",
        "/api/v1/environments/production/experiments",
        &json!({"key": "bench", "status": "running", "primary_metric": "purchase"}),
    )
    .await?;
    common::admin(a, common::ADMIN_KEY, "POST", "/api/v1/environments/production/flags", &json!({
        "key": "homepage", "type": "string",
        "variants": [{"key": "control", "value": "a"}, {"key": "treatment", "value": "b"}],
        "default_variant": "control",
        "rules": [{"split": [{"variant": "control", "weight": 5000}, {"variant": "treatment", "weight": 5000}], "experiment": "bench"}]
    })).await?;
    let key = common::sdk_key(a, common::ADMIN_KEY, ENV).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, inst) in instances.iter().enumerate() {
        loop {
            let config = common::request(
                inst.addr,
                "GET",
                "/sdk/v1/config",
                &[("Authorization", &format!("Bearer {key}"))],
                None,
            )
            .await?;
            let knows_flag = config.status == 200
                && memchr::memmem::find(&config.body, b"\"homepage\"").is_some();
            if knows_flag && results(inst.addr).await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("instance {i} did not learn the SDK key, flag and experiment created on instance 0 within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(key)
}

/// The overall arms of the results on one instance: variant → `(users, converted)`.
async fn results(addr: SocketAddr) -> anyhow::Result<Arms> {
    let r = common::request(
        addr,
        "GET",
        RESULTS,
        &[("Authorization", &format!("Bearer {}", common::ADMIN_KEY))],
        None,
    )
    .await?;
    if r.status != 200 {
        bail!(
            "{addr}{RESULTS}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let v = r.json()?;
    Ok(v["overall"]["arms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some((
                a["variant"].as_str()?.to_string(),
                (a["users"].as_u64()?, a["converted"].as_u64()?),
            ))
        })
        .filter(|(_, (users, _))| *users > 0)
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Ingest
// ---------------------------------------------------------------------------------------------

struct Ingested {
    acked: u64,
    duplicates: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Batches posted to each instance.
    per_instance: Vec<u64>,
}

async fn ingest(
    addrs: &[SocketAddr],
    key: &str,
    batches: &Arc<Vec<Vec<u8>>>,
    connections: usize,
) -> anyhow::Result<Ingested> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let instance = c % addrs.len();
            let addr = addrs[instance];
            let auth = format!("Bearer {key}");
            let batches = Arc::clone(batches);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut acked = 0u64;
                let mut duplicates = 0u64;
                let mut posted = 0u64;
                let mut latencies = Vec::new();
                common::keep_alive(
                    addr,
                    |_| {
                        let body = batches.get(next.fetch_add(1, Ordering::Relaxed))?;
                        let head = format!(
                            "POST /sdk/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        Some((head, body.clone()))
                    },
                    |elapsed, body| {
                        latencies.push(elapsed);
                        let parsed: Value = serde_json::from_slice(body)?;
                        if parsed["rejected"].as_array().is_some_and(|r| !r.is_empty()) {
                            bail!("events rejected: {parsed}");
                        }
                        acked += parsed["accepted"].as_u64().unwrap_or(0);
                        duplicates += parsed["duplicates"].as_u64().unwrap_or(0);
                        posted += 1;
                        Ok(())
                    },
                )
                .await
                .with_context(|| format!("posting batches to instance {instance} ({addr})"))?;
                Ok::<_, anyhow::Error>((instance, acked, duplicates, posted, latencies))
            })
        })
        .collect();
    let mut out = Ingested {
        acked: 0,
        duplicates: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        per_instance: vec![0; addrs.len()],
    };
    for t in tasks {
        let (instance, acked, duplicates, posted, latencies) =
            t.await.context("connection task")??;
        out.acked += acked;
        out.duplicates += duplicates;
        out.per_instance[instance] += posted;
        out.latencies.extend(latencies);
    }
    out.elapsed = started.elapsed();
    out.latencies.sort();
    Ok(out)
}

/// Polls every instance's results until all show `expected`; returns how long that took.
async fn converge(
    instances: &[Spawned],
    expected: &Arms,
    within: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let mut seen = Vec::new();
        for i in instances {
            seen.push(results(i.addr).await?);
        }
        if seen.iter().all(|s| s == expected) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            let mut report = String::new();
            for (n, (s, i)) in seen.iter().zip(instances).enumerate() {
                let ready = readyz(i.addr)
                    .await
                    .map(|r| r["partitions"][ENV].to_string())
                    .unwrap_or_else(|e| e.to_string());
                report.push_str(&format!(
                    "\n  instance {n}: arms {s:?}; readyz partitions {ready}"
                ));
            }
            bail!(
                "results did not converge within {:.0} s; expected {expected:?} (variant → (users, converted)) on every instance:{report}",
                within.as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `(p50, p99, max)` of `requests` sequential results queries on one keep-alive connection.
async fn results_latency(addr: SocketAddr, requests: usize) -> anyhow::Result<[Duration; 3]> {
    let probe = common::request(
        addr,
        "GET",
        RESULTS,
        &[("Authorization", &format!("Bearer {}", common::ADMIN_KEY))],
        None,
    )
    .await?;
    if probe.header("content-length").is_some() {
        let head = format!(
            "GET {RESULTS} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
            common::ADMIN_KEY
        );
        return common::repeated_get(addr, &head, requests).await;
    }
    // Not sized (chunked): one connection per query instead.
    let mut latencies = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        results(addr).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    Ok([
        common::percentile(&latencies, 0.5),
        common::percentile(&latencies, 0.99),
        common::percentile(&latencies, 1.0),
    ])
}

// ---------------------------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------------------------

struct InstanceRow {
    owned: u64,
    users_held: u64,
    batches_posted: u64,
    rss_before: u64,
    rss_after: u64,
    cpu: Duration,
    max_lag: Value,
    oldest_checkpoint: Value,
}

struct NodeRow {
    port: u16,
    partitions: usize,
    client_commands: u64,
    all_calls: u64,
    net_in: u64,
    cpu: Duration,
}

struct Run {
    instances_n: usize,
    events: u64,
    users: u64,
    ingest: Ingested,
    converged_after: Duration,
    instances: Vec<InstanceRow>,
    nodes: Vec<NodeRow>,
    evalsha: u64,
    xread: u64,
    stored: u64,
    results_latency: [Duration; 3],
}

/// Partition index from a key `…{p:<env>:<p>:<k>}…`.
fn partition_of_key(key: &str) -> Option<u32> {
    let tag = key.split_once('{')?.1.split_once('}')?.0;
    tag.split(':').nth(2)?.parse().ok()
}

async fn run(
    cluster: &Cluster,
    settings: &Settings,
    n: usize,
    pop: &Population,
) -> anyhow::Result<Run> {
    cluster.flush()?;
    let prefix = format!("tailor-bench-n{n}");
    println!("\n## {n} instance(s) (prefix `{prefix}`)");
    let mut instances = Vec::new();
    for _ in 0..n {
        instances.push(spawn_instance(settings, &prefix).await?);
    }
    settle_ownership(&mut instances, settings, &prefix).await?;
    let key = setup_experiment(&instances).await?;
    let names: Vec<String> = {
        let mut names = Vec::new();
        for i in &instances {
            names.push(
                readyz(i.addr).await?["instance"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        names
    };
    let (owned_before, _) = ownership(&instances).await?;

    let pids: Vec<u32> = instances.iter().map(|i| i.child.id()).collect();
    let rss_before: Vec<u64> = pids.iter().map(|&p| common::resident_bytes(p)).collect();
    let cpu_before: Vec<Duration> = pids.iter().map(|&p| common::cpu_time(p)).collect();
    let redis_before = cluster.counters();

    let addrs: Vec<SocketAddr> = instances.iter().map(|i| i.addr).collect();
    let ingested = ingest(&addrs, &key, &pop.batches, settings.connections).await?;
    println!(
        "  ingested {} events ({} duplicates) in {:.1} s",
        ingested.acked,
        ingested.duplicates,
        ingested.elapsed.as_secs_f64()
    );
    let converged_after = converge(&instances, &pop.expected, settings.converge).await?;

    let redis_after = cluster.counters();
    let cpu_after: Vec<Duration> = pids.iter().map(|&p| common::cpu_time(p)).collect();
    let rss_after: Vec<u64> = pids.iter().map(|&p| common::resident_bytes(p)).collect();
    let (owned_after, _) = ownership(&instances).await?;
    if owned_after != owned_before {
        println!(
            "  warning: partition ownership changed during the run: {owned_before:?} → {owned_after:?}"
        );
    }
    let mut lag = Vec::new();
    for i in &instances {
        let r = readyz(i.addr).await?;
        let p = &r["partitions"][ENV];
        lag.push((
            p["max_lag_seconds"].clone(),
            p["oldest_checkpoint_seconds"].clone(),
        ));
    }

    let results_latency = results_latency(instances[0].addr, settings.result_queries).await?;

    // What Redis holds: stored events (the daily id sets) and who holds which lease.
    let ids_pattern = format!("{prefix}:{{p:{ENV}:*}}:ids:*");
    let lease_pattern = format!("{prefix}:{{p:{ENV}:*}}:lease");
    let mut stored = 0u64;
    let mut node_partitions = Vec::new();
    let mut held: HashMap<String, Vec<u32>> = HashMap::new();
    for node in &cluster.nodes {
        let mut parts = BTreeSet::new();
        for k in node.scan(&ids_pattern) {
            stored += node.cli(&["SCARD", &k]).trim().parse::<u64>().unwrap_or(0);
            parts.extend(partition_of_key(&k));
        }
        node_partitions.push(parts.len());
        for k in node.scan(&lease_pattern) {
            let token = node.cli(&["GET", &k]);
            if let (Some((instance, _)), Some(p)) =
                (token.trim().rsplit_once('/'), partition_of_key(&k))
            {
                held.entry(instance.to_string()).or_default().push(p);
            }
        }
    }
    let partitions = pop.per_partition.len() as u64;
    let mut rows = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let users_held = match held.get(name) {
            Some(parts) => {
                if parts.len() as u64 != owned_after[i] {
                    println!(
                        "  warning: instance {i} reports {} partitions in /readyz but holds {} leases",
                        owned_after[i],
                        parts.len()
                    );
                }
                parts
                    .iter()
                    .map(|&p| pop.per_partition.get(p as usize).copied().unwrap_or(0))
                    .sum()
            }
            None => pop.users * owned_after[i] / partitions.max(1),
        };
        rows.push(InstanceRow {
            owned: owned_after[i],
            users_held,
            batches_posted: ingested.per_instance[i],
            rss_before: rss_before[i],
            rss_after: rss_after[i],
            cpu: cpu_after[i].saturating_sub(cpu_before[i]),
            max_lag: lag[i].0.clone(),
            oldest_checkpoint: lag[i].1.clone(),
        });
    }

    let delta = |b: &NodeCounters, a: &NodeCounters, name: &str| {
        a.calls
            .get(name)
            .copied()
            .unwrap_or(0)
            .saturating_sub(b.calls.get(name).copied().unwrap_or(0))
    };
    let mut nodes = Vec::new();
    let mut evalsha = 0;
    let mut xread = 0;
    for ((node, b), (a, parts)) in cluster
        .nodes
        .iter()
        .zip(&redis_before)
        .zip(redis_after.iter().zip(&node_partitions))
    {
        let names = a
            .calls
            .keys()
            .filter(|n| !OWN_COMMANDS.contains(&n.as_str()));
        let all_calls: u64 = names.clone().map(|n| delta(b, a, n)).sum();
        let client_commands: u64 = names
            .filter(|n| !common::IN_SCRIPTS.contains(&n.as_str()))
            .map(|n| delta(b, a, n))
            .sum();
        evalsha += delta(b, a, "evalsha") + delta(b, a, "eval");
        xread += delta(b, a, "xread");
        nodes.push(NodeRow {
            port: node.port,
            partitions: *parts,
            client_commands,
            all_calls,
            net_in: a.net_in.saturating_sub(b.net_in),
            cpu: a.cpu.saturating_sub(b.cpu),
        });
    }

    let run = Run {
        instances_n: n,
        events: pop.events,
        users: pop.users,
        ingest: ingested,
        converged_after,
        instances: rows,
        nodes,
        evalsha,
        xread,
        stored,
        results_latency,
    };
    print_run(&run);

    if run.ingest.acked != pop.events {
        bail!(
            "{} events acknowledged as stored, {} duplicates, of {} posted",
            run.ingest.acked,
            run.ingest.duplicates,
            pop.events
        );
    }
    if run.stored != run.ingest.acked {
        bail!(
            "Redis' id sets hold {} events but {} were acknowledged",
            run.stored,
            run.ingest.acked
        );
    }
    Ok(run)
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

impl Run {
    fn per_event(&self, n: u64) -> f64 {
        n as f64 / self.events.max(1) as f64
    }

    /// Milliseconds of CPU per 1,000 events of the whole population.
    fn per_k(&self, d: Duration) -> f64 {
        d.as_secs_f64() * 1e3 / (self.events.max(1) as f64 / 1e3)
    }

    fn growth(&self, i: &InstanceRow) -> i64 {
        i.rss_after as i64 - i.rss_before as i64
    }

    fn growth_per_user(&self, i: &InstanceRow) -> f64 {
        self.growth(i) as f64 / i.users_held.max(1) as f64
    }

    fn client_commands(&self) -> u64 {
        self.nodes.iter().map(|n| n.client_commands).sum()
    }

    fn summary(&self) -> String {
        let rss: Vec<String> = self
            .instances
            .iter()
            .map(|i| format!("{:.0}", self.growth_per_user(i)))
            .collect();
        let cpu: Vec<String> = self
            .instances
            .iter()
            .map(|i| format!("{:.1}", self.per_k(i.cpu)))
            .collect();
        let redis_cpu: Duration = self.nodes.iter().map(|n| n.cpu).sum();
        let net: u64 = self.nodes.iter().map(|n| n.net_in).sum();
        let share: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{:.0}",
                    100.0 * n.client_commands as f64 / self.client_commands().max(1) as f64
                )
            })
            .collect();
        format!(
            "| {} | {} users, {} events | {:.0} | {} | {} | {:.1} | {:.3} | {:.0} | {} | {} / {} |",
            self.instances_n,
            self.users,
            self.events,
            self.ingest.acked as f64 / self.ingest.elapsed.as_secs_f64().max(1e-9),
            rss.join(" / "),
            cpu.join(" / "),
            self.per_k(redis_cpu),
            self.per_event(self.client_commands()),
            self.per_event(net),
            share.join(" / "),
            ms(self.results_latency[0]),
            ms(self.results_latency[1]),
        )
    }
}

const SUMMARY_HEADER: &str = "| instances | population | acknowledged events/s | RSS growth per user held, bytes (per instance) | CPU ms per 1,000 events (per instance) | redis-server CPU ms per 1,000 events (all nodes) | Redis client commands per event | Redis bytes in per event | client commands per node, % | results p50 / p99 |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |";

fn print_run(r: &Run) {
    let l = &r.ingest.latencies;
    println!(
        "\n### {} instance(s): {} users, {} events in batches of {BATCH}",
        r.instances_n, r.users, r.events
    );
    println!("| | |\n| --- | --- |");
    println!(
        "| acknowledged events/s (informational: 2 cores show no scaling) | {:.0} ({} events in {:.1} s) |",
        r.ingest.acked as f64 / r.ingest.elapsed.as_secs_f64().max(1e-9),
        r.ingest.acked,
        r.ingest.elapsed.as_secs_f64()
    );
    println!(
        "| batch latency p50 / p99 / max | {} / {} / {} |",
        ms(common::percentile(l, 0.5)),
        ms(common::percentile(l, 0.99)),
        ms(common::percentile(l, 1.0))
    );
    println!(
        "| results equal on every instance, after the last acknowledgement | {:.1} s |",
        r.converged_after.as_secs_f64()
    );
    println!(
        "| Redis client commands per event, all nodes | {:.3} (EVALSHA {:.3}, XREAD {:.4}) |",
        r.per_event(r.client_commands()),
        r.per_event(r.evalsha),
        r.per_event(r.xread)
    );
    println!(
        "| Redis commands per event including those run inside scripts | {:.2} |",
        r.per_event(r.nodes.iter().map(|n| n.all_calls).sum())
    );
    println!(
        "| Redis network bytes in per event, all nodes | {:.0} |",
        r.per_event(r.nodes.iter().map(|n| n.net_in).sum())
    );
    println!(
        "| events in Redis (id sets) / acknowledged | {} / {} |",
        r.stored, r.ingest.acked
    );
    println!(
        "| results query on instance 0 (sequential, keep-alive) p50 / p99 / max | {} / {} / {} |",
        ms(r.results_latency[0]),
        ms(r.results_latency[1]),
        ms(r.results_latency[2])
    );

    println!("\n| instance | partitions | users held | batches posted to it | RSS before ingest | RSS after | growth | growth per user held | CPU s | CPU ms per 1,000 events | max lag s | oldest checkpoint s |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (n, i) in r.instances.iter().enumerate() {
        println!(
            "| {n} | {} | {} | {} | {} | {} | {:.1} MB | {:.0} B | {:.2} | {:.1} | {} | {} |",
            i.owned,
            i.users_held,
            i.batches_posted,
            mb(i.rss_before),
            mb(i.rss_after),
            r.growth(i) as f64 / 1e6,
            r.growth_per_user(i),
            i.cpu.as_secs_f64(),
            r.per_k(i.cpu),
            i.max_lag,
            i.oldest_checkpoint
        );
    }
    let total_client = r.client_commands().max(1);
    println!("\n| Redis node | partitions | client commands | share | commands incl. in scripts | bytes in per event | CPU s | CPU ms per 1,000 events |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for node in &r.nodes {
        println!(
            "| 127.0.0.1:{} | {} | {} | {:.1} % | {} | {:.0} | {:.2} | {:.1} |",
            node.port,
            node.partitions,
            node.client_commands,
            100.0 * node.client_commands as f64 / total_client as f64,
            node.all_calls,
            r.per_event(node.net_in),
            node.cpu.as_secs_f64(),
            r.per_k(node.cpu)
        );
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

// ---------------------------------------------------------------------------------------------

async fn bench() -> anyhow::Result<()> {
    common::raise_nofile();
    let counts: Vec<usize> = std::env::var("PARTITION_BENCH_INSTANCES")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .ok()
                .filter(|&n: &usize| n >= 1)
                .with_context(|| format!("PARTITION_BENCH_INSTANCES: `{s}` is not a count ≥ 1"))
        })
        .collect::<anyhow::Result<_>>()?;
    let users: u64 = common::env_or("PARTITION_BENCH_USERS", 200_000);
    if users == 0 {
        bail!("PARTITION_BENCH_USERS must be at least 1");
    }
    let load_start = loadavg();
    println!(
        "Partitions: {users} users, instances {counts:?}, {MASTERS}-master Redis Cluster; load average at start {load_start}"
    );
    let cluster = Cluster::start(MASTERS).await?;
    let settings = Settings {
        url: cluster.url(),
        workers: common::env_or("PARTITION_BENCH_WORKERS", 1),
        checkpoint_secs: common::env_or("PARTITION_BENCH_CHECKPOINT_SECS", 5),
        connections: common::env_or("PARTITION_BENCH_CONNECTIONS", 8usize).max(1),
        converge: Duration::from_secs(common::env_or("PARTITION_BENCH_CONVERGE_SECS", 120)),
        result_queries: common::env_or("PARTITION_BENCH_RESULT_QUERIES", 200usize).max(1),
    };
    println!(
        "cluster {} (appendonly yes, everysec); {} worker(s) per instance, checkpoints every {} s, {} connections",
        settings.url, settings.workers, settings.checkpoint_secs, settings.connections
    );
    let pop = population(users, tailor_core::partition::DEFAULT_PARTITIONS)?;
    println!(
        "population: {} users, {} events, {} batches; expected arms {:?} (variant → (users, converted))",
        pop.users,
        pop.events,
        pop.batches.len(),
        pop.expected
    );
    let mut runs = Vec::new();
    for &n in &counts {
        runs.push(
            run(&cluster, &settings, n, &pop)
                .await
                .with_context(|| format!("run with {n} instance(s)"))?,
        );
    }
    println!("\n### Summary (BENCHMARKS.md)\n{SUMMARY_HEADER}");
    for r in &runs {
        println!("{}", r.summary());
    }
    println!(
        "\nload average (1, 5, 15 min): at start {load_start}, at end {}",
        loadavg()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Returning drops every process guard (instances, Redis nodes) in `bench`, also on Ctrl-C.
    tokio::select! {
        r = bench() => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
    }
}
