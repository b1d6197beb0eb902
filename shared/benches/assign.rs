//! Nanoseconds per `assign` over 1,000,000 distinct, pre-built users (DESIGN §4: the hot path).
//!
//! Three flags, each measured for users its rules target and for users they do not:
//! - `on_off`: a plain on/off flag (one rule without audience serves `on`);
//! - `experiment`: a 50/50 split behind `country in [US, CA, GB]` and `plan == "pro"`
//!   (target: <= 60 ns per evaluation, 0 allocations);
//! - `personalization`: five segment rules, each with a 10% holdout;
//! - `split_with_holdout`, `optimize`, `optimize_3_contexts`: the experiment's audience with a
//!   10% holdout, served by a split, by an optimize rule with the same weights (one context),
//!   and by one with three contexts (two segments to test first): an optimize rule must cost
//!   what a split does (issue 12), and setup checks they decide alike.
//!
//! Every iteration evaluates the next user of a `Vec<User>` (cycling), so the numbers include
//! the cache misses of reading a user that was not just evaluated: `*_1m` cycles through all
//! 1,000,000 users (their data comes from main memory), `*_1k` through the first 1,000 (their
//! data stays in cache, as for a user just built from the request being served). Before timing, setup checks
//! that each flag returns the expected split (so an error path is never benchmarked) and counts
//! heap allocations per evaluation with a counting global allocator; the hot path must not
//! allocate, and the bench fails if it does.
//!
//! Run: `cargo bench -p tailor-core --bench assign`.
// The counting allocator must implement `GlobalAlloc`, an unsafe trait.
#![allow(unsafe_code)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tailor_core::{assign, compile, ConfigDocument, Reason, Snapshot, User};

const USERS: usize = 1_000_000;
const CACHED_USERS: usize = 1_000;

// --- allocation counting -------------------------------------------------------------------

/// The system allocator, counting allocations while `COUNTING` is on. Off (a relaxed load and a
/// branch) while criterion times, so counting does not distort the timings.
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

// --- workload ------------------------------------------------------------------------------

const CONFIG: &str = r#"
environment: bench
revision: 1
segments:
  - key: beginners
    conditions: {all: [{attribute: lifecycle, op: eq, values: [new]}, {attribute: orders_count, op: lt, values: [2]}]}
  - key: lapsed
    conditions: {attribute: lifecycle, op: eq, values: [lapsed]}
  - key: yoga-fans
    conditions: {attribute: interests, op: contains_any, values: [yoga, pilates]}
  - key: ios-power-users
    conditions: {all: [{attribute: device, op: eq, values: [ios]}, {attribute: app_version, op: semver_gte, values: ["5.0.0"]}]}
  - key: french-shoppers
    conditions: {all: [{attribute: city, op: in, values: [Paris, Lyon, Marseille]}, {attribute: orders_count, op: gte, values: [5]}]}
experiments:
  - {key: checkout-redesign, status: running}
  - {key: homepage-personalization, status: running}
  - {key: checkout-holdout, status: running}
  - {key: checkout-learning, status: running, primary_metric: purchase}
  - {key: checkout-learning-contexts, status: running, primary_metric: purchase}
flags:
  - key: on-off
    type: bool
    variants: [{key: "off", value: false}, {key: "on", value: true}]
    default_variant: "off"
    rules:
      - variant: "on"
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
  - key: checkout-holdout
    type: string
    variants: [{key: "off", value: "legacy"}, {key: control, value: "one-page"}, {key: treatment, value: "two-step"}]
    default_variant: "off"
    rules:
      - when: {all: [{attribute: country, op: in, values: [US, CA, GB]}, {attribute: plan, op: eq, values: [pro]}]}
        split: [{variant: control, weight: 5000}, {variant: treatment, weight: 5000}]
        holdout: {basis_points: 1000}
        salt: checkout-same-salt
        experiment: checkout-holdout
  - key: checkout-learning
    type: string
    variants: [{key: "off", value: "legacy"}, {key: control, value: "one-page"}, {key: treatment, value: "two-step"}]
    default_variant: "off"
    rules:
      - when: {all: [{attribute: country, op: in, values: [US, CA, GB]}, {attribute: plan, op: eq, values: [pro]}]}
        optimize:
          variants: [control, treatment]
          weights: [{context: "*", weights: [5000, 5000], period: 1}]
        holdout: {basis_points: 1000}
        salt: checkout-same-salt
        experiment: checkout-learning
  - key: checkout-learning-contexts
    type: string
    variants: [{key: "off", value: "legacy"}, {key: control, value: "one-page"}, {key: treatment, value: "two-step"}]
    default_variant: "off"
    rules:
      - when: {all: [{attribute: country, op: in, values: [US, CA, GB]}, {attribute: plan, op: eq, values: [pro]}]}
        optimize:
          variants: [control, treatment]
          contexts: [beginners, lapsed]
          weights:
            - {context: beginners, weights: [5000, 5000], period: 1}
            - {context: lapsed, weights: [5000, 5000], period: 1}
            - {context: "*", weights: [5000, 5000], period: 1}
        holdout: {basis_points: 1000}
        salt: checkout-same-salt
        experiment: checkout-learning-contexts
  - key: homepage
    type: string
    variants:
      - {key: generic, value: "Welcome back"}
      - {key: beginner-onboarding, value: "Start here"}
      - {key: win-back, value: "We missed you"}
      - {key: yoga-hero, value: "New yoga mats"}
      - {key: ios-app-promo, value: "Try the new app"}
      - {key: french-deals, value: "Offres du jour"}
    default_variant: generic
    rules:
      - {when: {segment: beginners}, variant: beginner-onboarding, holdout: {basis_points: 1000}, experiment: homepage-personalization}
      - {when: {segment: lapsed}, variant: win-back, holdout: {basis_points: 1000}, experiment: homepage-personalization}
      - {when: {segment: yoga-fans}, variant: yoga-hero, holdout: {basis_points: 1000}, experiment: homepage-personalization}
      - {when: {segment: ios-power-users}, variant: ios-app-promo, holdout: {basis_points: 1000}, experiment: homepage-personalization}
      - {when: {segment: french-shoppers}, variant: french-deals, holdout: {basis_points: 1000}, experiment: homepage-personalization}
"#;

/// A user every rule of `checkout` targets, and exactly one of `homepage`'s segments
/// (`i % 5`), with nine attributes like a real user's.
fn targeted_user(i: usize) -> User {
    let base = User::new(format!("user-{i:08}"))
        .with("country", ["US", "CA", "GB"][i % 3])
        .with("plan", "pro")
        .with("age", 20 + (i % 50) as i64);
    let (lifecycle, orders, interests, device, version, city) = match i % 5 {
        0 => (
            "new",
            1,
            ["running", "cycling"],
            "android",
            "4.2.0",
            "Berlin",
        ),
        1 => (
            "lapsed",
            3,
            ["running", "cycling"],
            "android",
            "4.2.0",
            "Berlin",
        ),
        2 => (
            "active",
            3,
            ["yoga", "running"],
            "android",
            "4.2.0",
            "Berlin",
        ),
        3 => (
            "active",
            3,
            ["running", "cycling"],
            "ios",
            "5.3.1",
            "Berlin",
        ),
        _ => (
            "active",
            7,
            ["running", "cycling"],
            "android",
            "4.2.0",
            "Paris",
        ),
    };
    base.with("lifecycle", lifecycle)
        .with("orders_count", orders)
        .with("interests", interests)
        .with("device", device)
        .with("app_version", version)
        .with("city", city)
}

/// A user no rule of `checkout` or `homepage` targets: half fail the country test, half the
/// plan test.
fn non_matching_user(i: usize) -> User {
    let (country, plan) = if i % 2 == 0 {
        (["DE", "FR", "JP"][i % 3], "pro")
    } else {
        (["US", "CA", "GB"][i % 3], "free")
    };
    User::new(format!("visitor-{i:08}"))
        .with("country", country)
        .with("plan", plan)
        .with("age", 20 + (i % 50) as i64)
        .with("lifecycle", "active")
        .with("orders_count", 3)
        .with("interests", ["running", "cycling"])
        .with("device", "android")
        .with("app_version", "4.2.0")
        .with("city", "Berlin")
}

// --- setup checks --------------------------------------------------------------------------

fn fraction(users: &[User], mut pred: impl FnMut(&User) -> bool) -> f64 {
    users.iter().filter(|u| pred(u)).count() as f64 / users.len() as f64
}

/// Asserts each flag returns what it should, so no error or fallback path is timed.
fn check_outcomes(snapshot: &Snapshot, targeted: &[User], others: &[User]) {
    for users in [targeted, others] {
        assert!(users
            .iter()
            .all(|u| assign(snapshot, u, "on-off").variant_key() == Some("on")));
    }

    let treated = fraction(targeted, |u| {
        let a = assign(snapshot, u, "checkout");
        assert!(matches!(a.reason, Reason::Split { rule: 0, .. }), "{a:?}");
        a.variant_key() == Some("treatment")
    });
    assert!((treated - 0.5).abs() < 0.005, "treatment share {treated}");
    assert!(others
        .iter()
        .all(|u| assign(snapshot, u, "checkout").reason == Reason::Fallthrough));

    // A split with a holdout and the optimize rules serving the same split: the same decisions.
    for flag in ["checkout-learning", "checkout-learning-contexts"] {
        for u in targeted.iter().chain(others) {
            let (split, learned) = (
                assign(snapshot, u, "checkout-holdout"),
                assign(snapshot, u, flag),
            );
            assert_eq!(split.variant_key(), learned.variant_key(), "{flag}");
            assert_eq!(split.reason, learned.reason, "{flag}");
        }
    }

    let held_out = fraction(targeted, |u| {
        let a = assign(snapshot, u, "homepage");
        assert_eq!(a.experiment, Some("homepage-personalization"), "{a:?}");
        matches!(a.reason, Reason::Holdout { .. })
    });
    assert!((held_out - 0.1).abs() < 0.005, "holdout share {held_out}");
    let by_rule = |rule: usize| {
        fraction(targeted, |u| {
            assign(snapshot, u, "homepage").rule_index() == Some(rule)
        })
    };
    for rule in 0..5 {
        assert!((by_rule(rule) - 0.2).abs() < 1e-9, "rule {rule}");
    }
    assert!(others
        .iter()
        .all(|u| assign(snapshot, u, "homepage").reason == Reason::Fallthrough));
}

// --- benches -------------------------------------------------------------------------------

fn bench_assign(c: &mut Criterion) {
    let doc = ConfigDocument::from_yaml(CONFIG).expect("bench config parses");
    let snapshot = compile(doc).expect("bench config compiles");
    let mut targeted = Vec::new();
    let building = count_allocations(|| targeted = (0..USERS).map(targeted_user).collect());
    eprintln!(
        "building a user with nine attributes: {:.1} heap allocations",
        building as f64 / USERS as f64
    );
    let others: Vec<User> = (0..USERS).map(non_matching_user).collect();
    check_outcomes(&snapshot, &targeted, &others);

    let flags = [
        ("on_off", "on-off"),
        ("experiment", "checkout"),
        ("split_with_holdout", "checkout-holdout"),
        ("optimize", "checkout-learning"),
        ("optimize_3_contexts", "checkout-learning-contexts"),
        ("personalization", "homepage"),
    ];
    let populations: [(&str, &[User]); 2] = [("targeted", &targeted), ("non_matching", &others)];

    for (group, flag) in flags {
        let mut g = c.benchmark_group(format!("assign/{group}"));
        g.throughput(Throughput::Elements(1));
        for (population, users) in populations {
            let allocations = count_allocations(|| {
                for u in users {
                    black_box(assign(&snapshot, black_box(u), flag));
                }
            });
            eprintln!(
                "assign/{group}/{population}: {:.3} allocations per evaluation ({allocations} in {} evaluations)",
                allocations as f64 / users.len() as f64,
                users.len()
            );
            assert_eq!(
                allocations, 0,
                "assign must not allocate ({group}/{population})"
            );

            // `_1m`: every user's data comes from memory; `_1k`: the first 1,000 users, whose
            // data stays in cache, as for a user built from the request being served.
            for (label, users) in [("1m", users), ("1k", &users[..CACHED_USERS])] {
                g.bench_function(format!("{population}_{label}"), |b| {
                    let mut i = 0;
                    b.iter(|| {
                        let user = &users[i];
                        i += 1;
                        if i == users.len() {
                            i = 0;
                        }
                        assign(&snapshot, black_box(user), black_box(flag))
                    });
                });
            }
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench_assign
}
criterion_main!(benches);
