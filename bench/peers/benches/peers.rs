//! Flag (b) — a 50/50 experiment behind `country in [US, CA, GB]` and `plan == "pro"` — in four
//! engines: nanoseconds and heap allocations per evaluation.
//!
//! For each engine, one at a time (so only one engine's two million contexts are in memory):
//! 1. build 1,000,000 targeted and 1,000,000 non-matching users as native contexts;
//! 2. check that targeted users are split about 50/50 and the others get the default;
//! 3. count heap allocations over one pass of each population (a counting global allocator,
//!    switched on only for that pass so it does not slow the timed loops);
//! 4. time one evaluation, cycling through the 1,000,000 users (`*_1m`: each user's data comes
//!    from memory) and through the first 1,000 of them (`*_1k`: the data is in cache, as for a
//!    user built from the request being served).
//!
//! A table of allocations per evaluation is printed at the end; criterion prints the times.
//! Run: `cd bench/peers && cargo bench`.
// The counting allocator must implement `GlobalAlloc`, an unsafe trait.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tailor_bench_peers::growthbook::GrowthBookCore;
use tailor_bench_peers::launchdarkly::LaunchDarkly;
use tailor_bench_peers::tailor::Tailor;
use tailor_bench_peers::unleash::Unleash;
use tailor_bench_peers::{check_split, Engine, Person};

const USERS: usize = 1_000_000;
const CACHED_USERS: usize = 1_000;

/// The system allocator, counting allocations while `COUNTING` is on.
struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Heap allocations (alloc, alloc_zeroed, realloc) made by `f`.
fn count_allocations(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    f();
    COUNTING.store(false, Ordering::Relaxed);
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Allocations per evaluation, per engine and population, for the closing table.
struct Report {
    rows: Vec<(&'static str, &'static str, f64)>,
}

/// Builds an engine's contexts, checks its outcomes, counts its allocations and times it.
fn run_engine<E: Engine>(c: &mut Criterion, report: &mut Report) {
    let engine = E::new();
    type Population = (&'static str, bool, fn(usize) -> Person);
    let populations: [Population; 2] = [
        ("targeted", true, Person::targeted),
        ("non_matching", false, Person::non_matching),
    ];
    let mut g = c.benchmark_group(E::NAME);
    g.throughput(Throughput::Elements(1));
    for (population, targeted, person) in populations {
        let contexts: Vec<E::Context> = (0..USERS).map(|i| E::context(&person(i))).collect();

        let share = check_split(
            contexts.iter().map(|ctx| E::outcome(&engine.evaluate(ctx))),
            targeted,
        );
        if targeted {
            assert!(
                (share - 0.5).abs() < 0.005,
                "{}: treatment share {share}",
                E::NAME
            );
        }

        let allocations = count_allocations(|| {
            for ctx in &contexts {
                black_box(engine.evaluate(black_box(ctx)));
            }
        });
        let per_eval = allocations as f64 / USERS as f64;
        eprintln!(
            "{}/{population}: {per_eval:.2} allocations per evaluation",
            E::NAME
        );
        report.rows.push((E::NAME, population, per_eval));

        for (label, users) in [("1m", &contexts[..]), ("1k", &contexts[..CACHED_USERS])] {
            g.bench_function(format!("{population}_{label}"), |b| {
                let mut i = 0;
                b.iter(|| {
                    let ctx = &users[i];
                    i += 1;
                    if i == users.len() {
                        i = 0;
                    }
                    engine.evaluate(black_box(ctx))
                });
            });
        }
    }
    g.finish();
}

fn bench_peers(c: &mut Criterion) {
    let mut report = Report { rows: Vec::new() };
    run_engine::<Tailor>(c, &mut report);
    run_engine::<Unleash>(c, &mut report);
    run_engine::<GrowthBookCore>(c, &mut report);
    run_engine::<LaunchDarkly>(c, &mut report);

    eprintln!("\n| engine | population | allocations per evaluation |\n|---|---|---|");
    for (engine, population, per_eval) in &report.rows {
        eprintln!("| {engine} | {population} | {per_eval:.2} |");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_peers
}
criterion_main!(benches);
