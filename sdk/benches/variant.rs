//! What `Client::variant` costs on top of the engine, and how it scales across threads.
//!
//! - `sdk_overhead`: `tailor_core::assign` alone versus `client.variant()` on the same config
//!   (each reads the served key), for a plain flag (offline client) and for an experiment flag
//!   on a client with an event queue where every call is a duplicate exposure (a fixed set of
//!   256 users cycles after warm-up, chosen so none evicts another from the client's
//!   de-duplication set; the bench asserts nothing was recorded while timing).
//!   Target: `variant()` costs at most 30 ns more than `assign`. Also `variant()` of the plain
//!   flag's twin whose rule tests a computed trait, every user's profile cached (issue target:
//!   the same as the attribute rule).
//! - `sdk_threads`: `variant()` from one thread versus two threads at once (each a fixed
//!   number of calls, timed with `Instant` from a barrier inside `iter_custom`; throughput in
//!   calls per second). Target: about 2x on a 2-core machine.
//!
//! After criterion, a summary re-measures the same cases in one interleaved run (medians) and
//! prints the differences and ratios that BENCHMARKS.md quotes, each by the wall clock and by
//! the threads' own on-CPU time (`/proc/thread-self/schedstat`): on a shared machine other
//! processes inflate the wall clock, not the on-CPU time, and the summary prints how long the
//! threads waited for a CPU so a disturbed run is visible.
//!
//! Run: `cargo bench -p tailor --bench variant` (summary only: `... -- summary-only`, a filter
//! matching no criterion benchmark). Profile one case:
//! `SDK_BENCH_PROFILE=variant-experiment valgrind --tool=callgrind target/release/deps/variant-<hash> --bench`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tailor::{Client, ConfigDocument, Reason, User};
use tailor_core::{assign, compile, Snapshot};

const USERS: usize = 256;
const PLAIN: &str = "on-off";
const EXPERIMENT: &str = "checkout";
/// `PLAIN`'s shape with a computed-trait condition instead of an attribute one.
const TRAIT: &str = "loyalty";

const CONFIG: &str = r#"
environment: bench
revision: 1
experiments:
  - {key: checkout-redesign, status: running}
traits:
  - {key: purchases_30d, events: [purchase], aggregate: count, window_days: 30}
flags:
  - key: loyalty
    type: bool
    variants: [{key: "off", value: false}, {key: "on", value: true}]
    default_variant: "off"
    rules:
      - when: {trait: purchases_30d, op: gte, values: [2]}
        variant: "on"
  - key: on-off
    type: bool
    variants: [{key: "off", value: false}, {key: "on", value: true}]
    default_variant: "off"
    rules:
      - when: {attribute: country, op: in, values: [US, CA, GB]}
        variant: "on"
  - key: checkout
    type: string
    variants:
      - {key: "off", value: "legacy"}
      - {key: control, value: "one-page"}
      - {key: treatment, value: "two-step"}
    default_variant: "off"
    rules:
      - when:
          all:
            - {attribute: country, op: in, values: [US, CA, GB]}
            - {attribute: plan, op: eq, values: [pro]}
        split: [{variant: control, weight: 5000}, {variant: treatment, weight: 5000}]
        experiment: checkout-redesign
"#;

/// A user both flags target, with attributes like a real user's.
fn user(i: usize) -> User {
    User::new(format!("user-{i:08}"))
        .with("country", ["US", "CA", "GB"][i % 3])
        .with("plan", "pro")
        .with("age", 20 + (i % 50) as i64)
        .with("lifecycle", "active")
        .with("interests", ["running", "cycling"])
        .with("device", "android")
        .with("app_version", "4.2.0")
}

struct Fixture {
    snapshot: Snapshot,
    offline: Client,
    delivering: Client,
    users: Vec<User>,
    // Kept alive for the delivering client; never driven after `build`, so its background
    // tasks stay parked and cannot steal CPU from the measurement.
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// Exposures recorded so far (accepted or dropped by the full queue).
fn recorded(client: &Client) -> u64 {
    let s = client.event_stats();
    s.queued + s.dropped
}

impl Fixture {
    fn new() -> Fixture {
        let doc = ConfigDocument::from_yaml(CONFIG).unwrap();
        let snapshot = compile(doc.clone()).unwrap();
        let offline = Client::offline(doc).unwrap();

        // A client with an event queue and no server: a closed port and a bootstrap file.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap.yaml");
        std::fs::write(&path, CONFIG).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let delivering = runtime
            .block_on(
                Client::builder(format!("http://127.0.0.1:{port}"), "tlr_sdk_bench")
                    .start_timeout(Duration::from_millis(50))
                    .bootstrap_file(path)
                    .build(),
            )
            .unwrap();

        let users = Self::duplicate_safe_users(&delivering);
        // Every user's profile is cached: three purchases in the window.
        for u in &users {
            let profile: tailor::Profile = serde_json::from_value(serde_json::json!({
                "user_key": u.key(), "as_of": 0, "traits": {"purchases_30d": 3}
            }))
            .unwrap();
            offline.set_profile(profile);
            assert_eq!(offline.variant(u, TRAIT).key(), Some("on"));
        }
        for u in &users {
            assert_eq!(assign(&snapshot, u, PLAIN).variant_key(), Some("on"));
            let a = assign(&snapshot, u, EXPERIMENT);
            assert!(matches!(a.reason, Reason::Split { .. }), "{a:?}");
            assert!(a.experiment.is_some());
        }
        Fixture {
            snapshot,
            offline,
            delivering,
            users,
            _runtime: runtime,
            _dir: dir,
        }
    }

    /// `USERS` users whose exposures stay in the client's (bucketed, per-client) de-duplication
    /// set together, so cycling through them after one warm-up pass records nothing.
    fn duplicate_safe_users(client: &Client) -> Vec<User> {
        let mut chosen: Vec<User> = Vec::with_capacity(USERS);
        for candidate in (0..).map(user) {
            client.variant(&candidate, EXPERIMENT);
            let before = recorded(client);
            for u in chosen.iter().chain([&candidate]) {
                client.variant(u, EXPERIMENT);
            }
            if recorded(client) == before {
                chosen.push(candidate);
                if chosen.len() == USERS {
                    return chosen;
                }
            } else {
                // The candidate shares a slot with a chosen user: give the slots back.
                for u in &chosen {
                    client.variant(u, EXPERIMENT);
                }
            }
        }
        unreachable!()
    }

    /// One pass over the users on the current thread: records their exposures in its cache.
    fn warm_up(&self, client: &Client, flag: &str) {
        for u in &self.users {
            black_box(client.variant(u, flag));
        }
    }
}

/// Calls `client.variant` `n` times, cycling through `users`.
fn run_variant(client: &Client, users: &[User], flag: &str, n: u64) {
    let mut i = 0;
    for _ in 0..n {
        let v = client.variant(&users[i], flag);
        black_box(v.key());
        i += 1;
        if i == users.len() {
            i = 0;
        }
    }
}

/// Like [`run_variant`], plus an increment of a counter shared by all threads: the control of
/// the thread-scaling measurement (a shared cache line written on every call, which is what
/// `variant()` must not have).
fn run_variant_sharing(client: &Client, users: &[User], flag: &str, n: u64, shared: &AtomicU64) {
    let mut i = 0;
    for _ in 0..n {
        let v = client.variant(&users[i], flag);
        black_box(v.key());
        shared.fetch_add(1, Ordering::Relaxed);
        i += 1;
        if i == users.len() {
            i = 0;
        }
    }
}

/// Calls `assign` `n` times, cycling through `users`.
fn run_assign(snapshot: &Snapshot, users: &[User], flag: &str, n: u64) {
    let mut i = 0;
    for _ in 0..n {
        black_box(assign(snapshot, &users[i], flag).variant_key());
        i += 1;
        if i == users.len() {
            i = 0;
        }
    }
}

/// The calling thread's scheduler accounting so far: nanoseconds on a CPU and nanoseconds
/// runnable but waiting for one (`/proc/thread-self/schedstat`). Lets the summary separate what
/// the code costs from time lost to other processes on a shared machine.
fn thread_times() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0));
    (fields.next().unwrap_or(0), fields.next().unwrap_or(0))
}

/// One thread's run: wall time, on-CPU time, run-queue wait.
#[derive(Clone, Copy, Default)]
struct Run {
    wall: Duration,
    cpu_ns: u64,
    wait_ns: u64,
}

/// `threads` threads each making `n` `variant` calls at once, released by a barrier; with
/// `shared`, each call also increments that shared counter.
fn concurrent(
    fx: &Fixture,
    client: &Client,
    flag: &str,
    threads: usize,
    n: u64,
    shared: Option<&AtomicU64>,
) -> Vec<Run> {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    // Each thread starts at another user, and warms up its own caches.
                    let users: Vec<User> = fx.users[t * 17..]
                        .iter()
                        .chain(&fx.users[..t * 17])
                        .cloned()
                        .collect();
                    fx.warm_up(client, flag);
                    barrier.wait();
                    let (cpu0, wait0) = thread_times();
                    let start = Instant::now();
                    match shared {
                        None => run_variant(client, &users, flag, n),
                        Some(c) => run_variant_sharing(client, &users, flag, n, c),
                    }
                    let wall = start.elapsed();
                    let (cpu1, wait1) = thread_times();
                    Run {
                        wall,
                        cpu_ns: cpu1 - cpu0,
                        wait_ns: wait1 - wait0,
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Wall time until the last of `threads` concurrent threads finished `n` calls each.
fn concurrent_wall(fx: &Fixture, client: &Client, flag: &str, threads: usize, n: u64) -> Duration {
    concurrent(fx, client, flag, threads, n, None)
        .iter()
        .map(|r| r.wall)
        .max()
        .unwrap()
}

fn sdk_overhead(c: &mut Criterion) {
    let fx = Fixture::new();
    fx.warm_up(&fx.offline, PLAIN);
    fx.warm_up(&fx.delivering, EXPERIMENT);
    let users = &fx.users;
    let mut g = c.benchmark_group("sdk_overhead");
    g.throughput(Throughput::Elements(1));
    g.bench_function("assign/plain", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(assign(&fx.snapshot, &users[i], PLAIN).variant_key());
        })
    });
    g.bench_function("variant/plain", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(fx.offline.variant(&users[i], PLAIN).key());
        })
    });
    g.bench_function("variant/trait_cached_profile", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(fx.offline.variant(&users[i], TRAIT).key());
        })
    });
    g.bench_function("assign/experiment", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(assign(&fx.snapshot, &users[i], EXPERIMENT).variant_key());
        })
    });
    let before = recorded(&fx.delivering);
    g.bench_function("variant/experiment_duplicate", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(fx.delivering.variant(&users[i], EXPERIMENT).key());
        })
    });
    g.finish();
    assert_eq!(
        recorded(&fx.delivering),
        before,
        "every timed call was a duplicate exposure"
    );
}

fn sdk_threads(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut g = c.benchmark_group("sdk_threads");
    for (name, client, flag) in [
        ("plain", &fx.offline, PLAIN),
        ("experiment_duplicate", &fx.delivering, EXPERIMENT),
    ] {
        for threads in [1usize, 2] {
            g.throughput(Throughput::Elements(threads as u64));
            g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
                b.iter_custom(|iters| concurrent_wall(&fx, client, flag, threads, iters))
            });
        }
    }
    g.finish();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The single-thread cases: an id (for `SDK_BENCH_PROFILE`), a label, and `n` calls.
type Case<'a> = (&'static str, &'static str, Box<dyn Fn(u64) + 'a>);

fn cases(fx: &Fixture) -> [Case<'_>; 6] {
    let users = &fx.users;
    [
        (
            "assign-plain",
            "assign, plain flag",
            Box::new(move |n| run_assign(&fx.snapshot, users, PLAIN, n)),
        ),
        (
            "variant-plain",
            "variant, plain flag (offline client)",
            Box::new(move |n| run_variant(&fx.offline, users, PLAIN, n)),
        ),
        (
            "variant-plain-delivering",
            "variant, plain flag (delivering client)",
            Box::new(move |n| run_variant(&fx.delivering, users, PLAIN, n)),
        ),
        (
            "variant-trait",
            "variant, trait flag, cached profile (offline)",
            Box::new(move |n| run_variant(&fx.offline, users, TRAIT, n)),
        ),
        (
            "assign-experiment",
            "assign, experiment flag",
            Box::new(move |n| run_assign(&fx.snapshot, users, EXPERIMENT, n)),
        ),
        (
            "variant-experiment",
            "variant, experiment flag, duplicate exposure",
            Box::new(move |n| run_variant(&fx.delivering, users, EXPERIMENT, n)),
        ),
    ]
}

/// `SDK_BENCH_PROFILE=<case id>`: run only that case, 1,000,000 calls after warm-up, for a
/// profiler (`valgrind --tool=callgrind target/release/deps/variant-<hash> --bench`).
fn profile(id: &str) {
    let fx = Fixture::new();
    fx.warm_up(&fx.offline, PLAIN);
    fx.warm_up(&fx.delivering, EXPERIMENT);
    let cases = cases(&fx);
    let Some((_, _, f)) = cases.iter().find(|c| c.0 == id) else {
        let ids: Vec<_> = cases.iter().map(|c| c.0).collect();
        panic!("unknown SDK_BENCH_PROFILE `{id}`; one of {ids:?}");
    };
    f(1_000_000);
}

/// The numbers BENCHMARKS.md quotes, measured in one run with the cases interleaved. Each is
/// given twice: by the wall clock, and by the threads' own on-CPU time, which other processes
/// on a busy machine do not inflate (their share is reported as run-queue wait).
fn summary() {
    const N: u64 = 4_000_000;
    const ROUNDS: usize = 7;
    let fx = Fixture::new();
    fx.warm_up(&fx.offline, PLAIN);
    fx.warm_up(&fx.delivering, EXPERIMENT);
    let before = recorded(&fx.delivering);
    // (wall ns per call, on-CPU ns per call)
    let time = |f: &dyn Fn(u64)| {
        let (cpu0, _) = thread_times();
        let start = Instant::now();
        f(N);
        let wall = start.elapsed().as_nanos() as f64 / N as f64;
        let (cpu1, _) = thread_times();
        (wall, (cpu1 - cpu0) as f64 / N as f64)
    };
    let cases = cases(&fx);
    let mut wall = vec![Vec::new(); cases.len()];
    let mut cpu = vec![Vec::new(); cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, _, f)) in cases.iter().enumerate() {
            let (w, c) = time(f.as_ref());
            wall[i].push(w);
            cpu[i].push(c);
        }
    }
    assert_eq!(
        recorded(&fx.delivering),
        before,
        "every call was a duplicate exposure"
    );
    let wall: Vec<f64> = wall.into_iter().map(median).collect();
    let cpu: Vec<f64> = cpu.into_iter().map(median).collect();
    println!(
        "\n== SDK summary: median of {ROUNDS} interleaved rounds of {N} calls, {USERS} users cycling =="
    );
    println!("{:<48} {:>9} {:>9}", "ns per call", "wall", "on-CPU");
    for (i, (_, name, _)) in cases.iter().enumerate() {
        println!("{name:<48} {:>9.1} {:>9.1}", wall[i], cpu[i]);
    }
    for (label, t) in [("wall", &wall), ("on-CPU", &cpu)] {
        println!(
            "variant() - assign() ({label}): plain flag {:+.1} ns (offline client), {:+.1} ns \
             (delivering client); experiment flag, duplicate exposure {:+.1} ns",
            t[1] - t[0],
            t[2] - t[0],
            t[5] - t[4]
        );
        println!(
            "variant(), trait flag with a cached profile - variant(), attribute flag \
             ({label}): {:+.1} ns",
            t[3] - t[1]
        );
    }

    const PER_THREAD: u64 = 20_000_000;
    const THREAD_ROUNDS: usize = 5;
    let counter = AtomicU64::new(0);
    for (name, client, flag, shared) in [
        ("plain flag", &fx.offline, PLAIN, None),
        (
            "experiment flag, duplicate exposure",
            &fx.delivering,
            EXPERIMENT,
            None,
        ),
        (
            "control: plain flag + a shared counter",
            &fx.offline,
            PLAIN,
            Some(&counter),
        ),
    ] {
        let (mut one_rate, mut two_rate, mut wall_ratio, mut cpu_ratio, mut wait_share) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..THREAD_ROUNDS {
            let one = concurrent(&fx, client, flag, 1, PER_THREAD, shared);
            let two = concurrent(&fx, client, flag, 2, PER_THREAD, shared);
            let one_wall = one[0].wall.as_secs_f64();
            let two_wall = two.iter().map(|r| r.wall).max().unwrap().as_secs_f64();
            let r1 = PER_THREAD as f64 / one_wall;
            let r2 = 2.0 * PER_THREAD as f64 / two_wall;
            one_rate.push(r1);
            two_rate.push(r2);
            wall_ratio.push(r2 / r1);
            // On-CPU cost per call alone versus with a second thread running: any contention
            // (a shared cache line, a lock) makes the concurrent calls cost more CPU.
            let cpu_one = one[0].cpu_ns as f64 / PER_THREAD as f64;
            let cpu_two =
                two.iter().map(|r| r.cpu_ns).sum::<u64>() as f64 / (2 * PER_THREAD) as f64;
            cpu_ratio.push(2.0 * cpu_one / cpu_two);
            let waited: u64 = one.iter().chain(&two).map(|r| r.wait_ns).sum();
            let ran: f64 = one_wall + two.iter().map(|r| r.wall.as_secs_f64()).sum::<f64>();
            wait_share.push(waited as f64 / 1e9 / ran);
        }
        let all = |v: &[f64]| {
            v.iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "threads, {name}: 1 thread {:.1} M calls/s, 2 threads {:.1} M calls/s; \
             ratio by wall clock {:.2}x (rounds: {}), by on-CPU cost {:.2}x (rounds: {}); \
             run-queue wait {:.0}% of thread time",
            median(one_rate) / 1e6,
            median(two_rate) / 1e6,
            median(wall_ratio.clone()),
            all(&wall_ratio),
            median(cpu_ratio.clone()),
            all(&cpu_ratio),
            100.0 * median(wait_share)
        );
    }
}

criterion_group!(benches, sdk_overhead, sdk_threads);

fn main() {
    if let Ok(id) = std::env::var("SDK_BENCH_PROFILE") {
        return profile(&id);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test --benches` runs benches once as smoke tests (no `--bench`): skip the summary.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
