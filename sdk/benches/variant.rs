//! What `Client::variant` costs on top of the engine, and how it scales across threads.
//!
//! - `sdk_overhead`: `tailor_core::assign` alone versus `client.variant()` on the same config,
//!   for a plain flag (offline client) and for an experiment flag on a client with an event
//!   queue where every call is a duplicate exposure (a fixed set of 256 users cycles after
//!   warm-up, chosen so no two share a slot of the per-thread de-duplication cache).
//!   Target: `variant()` costs at most 30 ns more than `assign`.
//! - `sdk_threads`: `variant()` from one thread versus two threads at once (each a fixed
//!   number of calls, timed with `Instant` from a barrier inside `iter_custom`; throughput in
//!   evaluations per second). Target: about 2x on a 2-core machine.
//!
//! After criterion, a summary re-measures the same cases in one interleaved run (median of 7
//! rounds) and prints the differences and ratios that BENCHMARKS.md quotes.
//!
//! Run: `cargo bench -p tailor --bench variant`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tailor::{Client, ConfigDocument, Reason, User};
use tailor_core::{assign, compile, Snapshot};

const USERS: usize = 256;
const PLAIN: &str = "on-off";
const EXPERIMENT: &str = "checkout";

const CONFIG: &str = r#"
environment: bench
revision: 1
experiments:
  - {key: checkout-redesign, status: running}
flags:
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

    /// `USERS` users whose exposures occupy distinct slots of the (direct-mapped, per-thread)
    /// de-duplication cache, so cycling through them after one warm-up pass records nothing.
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

/// Calls `assign` `n` times, cycling through `users`.
fn run_assign(snapshot: &Snapshot, users: &[User], flag: &str, n: u64) {
    let mut i = 0;
    for _ in 0..n {
        black_box(assign(snapshot, &users[i], flag).variant_ref);
        i += 1;
        if i == users.len() {
            i = 0;
        }
    }
}

/// Wall time for `threads` threads each making `n` `variant` calls at once, from a barrier.
fn concurrent(fx: &Fixture, client: &Client, flag: &str, threads: usize, n: u64) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    // Each thread starts at another user, and warms up its own caches.
                    let users: Vec<User> = fx.users[t * 17..].iter().chain(&fx.users[..t * 17]).cloned().collect();
                    fx.warm_up(client, flag);
                    barrier.wait();
                    let start = Instant::now();
                    run_variant(client, &users, flag, n);
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).max().unwrap()
    })
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
            black_box(assign(&fx.snapshot, &users[i], PLAIN).variant_ref)
        })
    });
    g.bench_function("variant/plain", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % USERS;
            fx.offline.variant(&users[i], PLAIN)
        })
    });
    g.bench_function("assign/experiment", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(assign(&fx.snapshot, &users[i], EXPERIMENT).variant_ref)
        })
    });
    let before = recorded(&fx.delivering);
    g.bench_function("variant/experiment_duplicate", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % USERS;
            fx.delivering.variant(&users[i], EXPERIMENT)
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
                b.iter_custom(|iters| concurrent(&fx, client, flag, threads, iters))
            });
        }
    }
    g.finish();
}

/// Median of `rounds` measurements of `f` (nanoseconds per call for `n` calls).
fn median_ns(rounds: &mut [Vec<f64>], i: usize) -> f64 {
    let v = &mut rounds[i];
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The numbers BENCHMARKS.md quotes, measured in one run with the cases interleaved.
fn summary() {
    const N: u64 = 4_000_000;
    const ROUNDS: usize = 7;
    let fx = Fixture::new();
    fx.warm_up(&fx.offline, PLAIN);
    fx.warm_up(&fx.delivering, EXPERIMENT);
    let before = recorded(&fx.delivering);
    let users = &fx.users;
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        f();
        start.elapsed().as_nanos() as f64 / N as f64
    };
    let cases: [(&str, Box<dyn Fn()>); 5] = [
        ("assign, plain flag", Box::new(|| run_assign(&fx.snapshot, users, PLAIN, N))),
        ("variant, plain flag (offline client)", Box::new(|| run_variant(&fx.offline, users, PLAIN, N))),
        ("variant, plain flag (delivering client)", Box::new(|| run_variant(&fx.delivering, users, PLAIN, N))),
        ("assign, experiment flag", Box::new(|| run_assign(&fx.snapshot, users, EXPERIMENT, N))),
        (
            "variant, experiment flag, duplicate exposure",
            Box::new(|| run_variant(&fx.delivering, users, EXPERIMENT, N)),
        ),
    ];
    let mut rounds = vec![Vec::new(); cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, f)) in cases.iter().enumerate() {
            rounds[i].push(time(f.as_ref()));
        }
    }
    assert_eq!(recorded(&fx.delivering), before, "every call was a duplicate exposure");
    let ns: Vec<f64> = (0..cases.len()).map(|i| median_ns(&mut rounds, i)).collect();
    println!("\n== SDK summary (median of {ROUNDS} rounds of {N} calls, {USERS} users cycling) ==");
    for ((name, _), t) in cases.iter().zip(&ns) {
        println!("{name:<48} {t:>7.1} ns");
    }
    println!(
        "variant() - assign(): plain {:+.1} ns (offline), {:+.1} ns (delivering); experiment duplicate {:+.1} ns",
        ns[1] - ns[0],
        ns[2] - ns[0],
        ns[4] - ns[3]
    );

    const PER_THREAD: u64 = 20_000_000;
    for (name, client, flag) in [
        ("plain flag", &fx.offline, PLAIN),
        ("experiment flag, duplicate exposure", &fx.delivering, EXPERIMENT),
    ] {
        let mut ratios = Vec::new();
        let mut rates = Vec::new();
        for _ in 0..5 {
            let one = PER_THREAD as f64 / concurrent(&fx, client, flag, 1, PER_THREAD).as_secs_f64();
            let two = 2.0 * PER_THREAD as f64 / concurrent(&fx, client, flag, 2, PER_THREAD).as_secs_f64();
            ratios.push(two / one);
            rates.push((one, two));
        }
        let mut order: Vec<usize> = (0..ratios.len()).collect();
        order.sort_by(|&a, &b| ratios[a].total_cmp(&ratios[b]));
        let m = order[order.len() / 2];
        println!(
            "threads, {name}: 1 thread {:.1} M/s, 2 threads {:.1} M/s, ratio {:.2}x (median of 5; all: {})",
            rates[m].0 / 1e6,
            rates[m].1 / 1e6,
            ratios[m],
            ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ")
        );
    }
}

criterion_group!(benches, sdk_overhead, sdk_threads);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test --benches` runs benches once as smoke tests (no `--bench`): skip the summary.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
