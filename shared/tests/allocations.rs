//! `assign` does not allocate (DESIGN §4: "the hot path does not allocate").
//!
//! A counting global allocator records allocations made by the current thread while a
//! thread-local flag is set, so allocations by the test harness or by other test threads never
//! count. Each scenario is evaluated once to warm up (the regex crate fills its per-thread match
//! cache on first use) and then measured evaluation by evaluation.

// Implementing `GlobalAlloc` is `unsafe` by definition; the workspace denies unsafe code, so this
// test file opts out. The allocator only forwards to `System` and bumps thread-local counters.
#![allow(unsafe_code)]
// Test code: a failed unwrap/expect is the test failure, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use serde_json::json;
use tailor_core::{assign, compile, AttributeValue, ConfigDocument, Snapshot, User};

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn record(bytes: usize) {
    // `try_with`: never panic inside the allocator, even while a thread is being torn down.
    let counting = COUNTING.try_with(Cell::get).unwrap_or(false);
    if counting {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        let _ = BYTES.try_with(|c| c.set(c.get() + bytes as u64));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns (allocations, bytes) made by this thread meanwhile.
fn measure(f: impl FnOnce()) -> (u64, u64) {
    ALLOCATIONS.with(|c| c.set(0));
    BYTES.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get))
}

/// Evaluates every (user, flag) pair once to warm up, then again one by one under measurement;
/// fails naming every pair that allocated.
fn assert_no_allocations(snapshot: &Snapshot, users: &[User], flags: &[&str]) {
    let mut reasons = std::collections::BTreeSet::new();
    for user in users {
        for flag in flags {
            let a = assign(snapshot, user, flag);
            reasons.insert(format!("{flag}: {:?}", a.reason));
        }
    }
    let mut offenders = Vec::new();
    for user in users {
        for flag in flags {
            let (count, bytes) = measure(|| {
                let a = assign(black_box(snapshot), black_box(user), black_box(flag));
                black_box(a.variant_key());
                black_box(a.value());
                black_box(a.reason);
                black_box(a.experiment);
                black_box(a.segment);
            });
            if count > 0 {
                offenders.push(format!(
                    "flag {flag:?}, user {:?}: {count} allocations, {bytes} bytes",
                    user.key()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "assign allocated in {} of {} evaluations:\n{}\n(paths exercised: {reasons:#?})",
        offenders.len(),
        users.len() * flags.len(),
        offenders.join("\n")
    );
}

fn snapshot(config: serde_json::Value) -> Snapshot {
    let doc = ConfigDocument::from_json(&config.to_string()).expect("test config parses");
    compile(doc).unwrap_or_else(|e| panic!("test config compiles: {e}"))
}

fn string_variants(keys: &[&str]) -> serde_json::Value {
    serde_json::Value::Array(keys.iter().map(|k| json!({"key": k, "value": k})).collect())
}

#[test]
fn the_counter_sees_allocations_on_this_thread_only() {
    let (count, bytes) = measure(|| {
        black_box(vec![0u8; 100]);
    });
    assert_eq!(count, 1);
    assert!(bytes >= 100);

    let (count, _) = measure(|| {
        std::thread::spawn(|| black_box(vec![0u8; 100]))
            .join()
            .expect("thread");
    });
    // Spawning allocates on this thread; the child's own allocation must not be counted, so
    // compare with spawning a thread that allocates nothing.
    let (baseline, _) = measure(|| {
        std::thread::spawn(|| black_box(0u8))
            .join()
            .expect("thread");
    });
    assert_eq!(count, baseline, "another thread's allocation was counted");
    assert_eq!(measure(|| {}), (0, 0));
}

#[test]
fn plain_on_off_flags_and_unknown_flags() {
    let snap = snapshot(json!({
        "flags": [
            {"key": "banner", "type": "bool", "default_variant": "off",
             "variants": [{"key": "off", "value": false}, {"key": "on", "value": true}]},
            {"key": "disabled", "type": "bool", "default_variant": "off", "enabled": false,
             "variants": [{"key": "off", "value": false}, {"key": "on", "value": true}],
             "rules": [{"variant": "on"}]},
            {"key": "everyone", "type": "bool", "default_variant": "off",
             "variants": [{"key": "off", "value": false}, {"key": "on", "value": true}],
             "overrides": [{"variant": "off", "keys": ["opted-out"]}],
             "rules": [{"variant": "on"}]}
        ]
    }));
    let users = vec![
        User::new("u-1"),
        User::new("opted-out"),
        User::new("ユーザー").with("country", "JP"),
    ];
    assert_no_allocations(
        &snap,
        &users,
        &["banner", "disabled", "everyone", "no-such-flag"],
    );
}

#[test]
fn targeted_fifty_fifty_experiment() {
    let snap = snapshot(json!({
        "experiments": [{"key": "checkout-test", "status": "running"}],
        "flags": [{
            "key": "checkout", "type": "string", "variants": string_variants(&["control", "treatment"]),
            "default_variant": "control",
            "rules": [{
                "when": {"all": [
                    {"attribute": "country", "op": "in", "values": ["US", "CA", "GB"]},
                    {"attribute": "plan", "op": "eq", "values": ["pro"]}
                ]},
                "split": [{"variant": "control", "weight": 5000}, {"variant": "treatment", "weight": 5000}],
                "experiment": "checkout-test"
            }]
        }]
    }));
    let mut users = Vec::new();
    for i in 0..64 {
        let country = ["US", "CA", "GB", "FR"][i % 4];
        let plan = ["pro", "free"][i % 3 % 2];
        users.push(
            User::new(format!("user-{i}"))
                .with("country", country)
                .with("plan", plan),
        );
    }
    users.push(User::new("no-attributes"));
    assert_no_allocations(&snap, &users, &["checkout"]);
}

#[test]
fn personalization_with_five_segment_rules_and_a_holdout() {
    let segment_rule = |segment: &str, variant: &str| {
        json!({"when": {"segment": segment}, "variant": variant,
               "holdout": {"basis_points": 1000}, "experiment": "homepage-personalization"})
    };
    let snap = snapshot(json!({
        "segments": [
            {"key": "beginners", "conditions": {"attribute": "lifecycle", "op": "eq", "values": ["new"]}},
            {"key": "frequent", "conditions": {"attribute": "purchases", "op": "gte", "values": [10]}},
            {"key": "yogis", "conditions": {"attribute": "interests", "op": "contains_any", "values": ["yoga", "pilates"]}},
            {"key": "mobile", "include": ["always-mobile"], "exclude": ["never-mobile"],
             "conditions": {"attribute": "device", "op": "in", "values": ["ios", "android"]}},
            {"key": "parisians", "conditions": {"all": [
                {"attribute": "city", "op": "eq", "values": ["Paris"], "ignore_case": true},
                {"not": {"segment": "beginners"}}
            ]}}
        ],
        "experiments": [{"key": "homepage-personalization", "status": "running"}],
        "flags": [{
            "key": "homepage", "type": "json", "default_variant": "generic",
            "variants": [
                {"key": "generic", "value": {"hero": "Welcome"}},
                {"key": "onboarding", "value": {"hero": "Start here"}},
                {"key": "loyalty", "value": {"hero": "Thanks"}},
                {"key": "yoga", "value": {"hero": "Namaste"}},
                {"key": "app", "value": {"hero": "Get the app"}},
                {"key": "paris", "value": {"hero": "Bonjour"}}
            ],
            "rules": [
                segment_rule("beginners", "onboarding"),
                segment_rule("frequent", "loyalty"),
                segment_rule("yogis", "yoga"),
                segment_rule("mobile", "app"),
                segment_rule("parisians", "paris")
            ]
        }]
    }));
    let mut users = Vec::new();
    for i in 0..100 {
        let mut u = User::new(format!("visitor-{i}"));
        match i % 6 {
            0 => u.set("lifecycle", "new"),
            1 => u.set("purchases", 12 + i),
            2 => u.set("interests", ["running", "pilates"]),
            3 => u.set("device", "android"),
            4 => u.set("city", "PARIS"),
            _ => u.set("city", "Lyon"),
        }
        users.push(u);
    }
    users.push(User::new("always-mobile"));
    users.push(User::new("never-mobile").with("device", "ios"));
    assert_no_allocations(&snap, &users, &["homepage"]);
}

#[test]
fn regex_semver_datetime_and_case_insensitive_operators() {
    let rule = |when: serde_json::Value, variant: &str| json!({"when": when, "variant": variant});
    let snap = snapshot(json!({
        "flags": [{
            "key": "ops", "type": "string", "default_variant": "none",
            "variants": string_variants(&["none", "regex", "semver", "date", "ci", "misc"]),
            "rules": [
                rule(json!({"attribute": "email", "op": "regex", "values": ["^[a-z.]+@(corp|internal)\\.example\\.com$"]}), "regex"),
                rule(json!({"attribute": "ua", "op": "regex", "values": ["mobile|tablet"], "ignore_case": true}), "regex"),
                rule(json!({"attribute": "app_version", "op": "semver_gte", "values": ["2.3.0-beta.2"]}), "semver"),
                rule(json!({"attribute": "sdk_version", "op": "semver_lt", "values": ["1.0.0"]}), "semver"),
                rule(json!({"attribute": "signup", "op": "before", "values": ["2025-01-01T00:00:00Z"]}), "date"),
                rule(json!({"attribute": "last_seen", "op": "after", "values": [1748736000000_i64]}), "date"),
                rule(json!({"attribute": "city", "op": "eq", "values": ["MÜNCHEN"], "ignore_case": true}), "ci"),
                rule(json!({"attribute": "title", "op": "contains", "values": ["Yoga"], "ignore_case": true}), "ci"),
                rule(json!({"attribute": "name", "op": "starts_with", "values": ["JOS"], "ignore_case": true}), "ci"),
                rule(json!({"attribute": "street", "op": "ends_with", "values": ["STRASSE", "ΟΔΟΣ"], "ignore_case": true}), "ci"),
                rule(json!({"any": [
                    {"attribute": "age", "op": "lt", "values": [18]},
                    {"attribute": "score", "op": "gte", "values": [0.5]},
                    {"attribute": "tags", "op": "contains_all", "values": ["a", "b"]},
                    {"attribute": "referrer", "op": "exists"},
                    {"attribute": "plan", "op": "not_in", "values": ["free", "trial"]}
                ]}), "misc")
            ]
        }]
    }));
    let datetime = |s: &str| AttributeValue::datetime_rfc3339(s).expect("valid datetime");
    let users = vec![
        User::new("r1").with("email", "ops@corp.example.com"),
        User::new("r2")
            .with("email", "someone@gmail.com")
            .with("plan", "free"),
        User::new("r3").with("ua", "Mozilla/5.0 (Linux; Android 14) MOBILE Safari"),
        User::new("s1")
            .with("app_version", "2.10.1")
            .with("plan", "free"),
        User::new("s2")
            .with("app_version", "2.3.0-beta.11")
            .with("plan", "free"),
        User::new("s3")
            .with("app_version", "v2.2.9")
            .with("plan", "free"),
        User::new("s4")
            .with("app_version", "not-a-version")
            .with("plan", "free"),
        User::new("s5")
            .with("sdk_version", "0.9.0-rc.1")
            .with("plan", "free"),
        User::new("s6")
            .with("app_version", "2.3.0+build.20240501.sha.abcdef")
            .with("plan", "free"),
        User::new("s7")
            .with(
                "app_version",
                "2.3.0-alpha.very.long.prerelease.identifiers",
            )
            .with("plan", "free"),
        User::new("s8")
            .with(
                "sdk_version",
                "0.1.0-nightly.2024-05-01+commit.0123456789abcdef",
            )
            .with("plan", "free"),
        User::new("d1")
            .with("signup", "2024-05-01T10:00:00+02:00")
            .with("plan", "free"),
        User::new("d2")
            .with("signup", datetime("2026-01-01T00:00:00Z"))
            .with("plan", "free"),
        User::new("d3")
            .with("last_seen", 1_748_736_000_001_i64)
            .with("plan", "free"),
        User::new("d4")
            .with("last_seen", "garbage")
            .with("plan", "free"),
        User::new("d5")
            .with("signup", "2024-12-31T23:59:59.999999999Z")
            .with("plan", "free"),
        User::new("c1").with("city", "münchen").with("plan", "free"),
        User::new("c2")
            .with("title", "Big YOGA mat")
            .with("plan", "free"),
        User::new("c3").with("name", "José").with("plan", "free"),
        User::new("c4")
            .with("street", "Hauptstrasse")
            .with("plan", "free"),
        User::new("c5")
            .with("street", "Μεγάλη ΟΔΟΣ")
            .with("plan", "free"),
        User::new("c6")
            .with("city", "İstanbul")
            .with("plan", "free"),
        User::new("m1").with("age", 12),
        User::new("m2").with("score", "0.75").with("plan", "trial"),
        User::new("m3")
            .with("tags", ["b", "c", "a"])
            .with("plan", "trial"),
        User::new("m4").with("referrer", "").with("plan", "trial"),
        User::new("m5").with("plan", "trial"),
        User::new("m6"),
    ];
    assert_no_allocations(&snap, &users, &["ops"]);
}

#[test]
fn number_valued_bucketing_units_layers_and_overrides() {
    let snap = snapshot(json!({
        "experiments": [
            {"key": "team-pricing", "status": "running"},
            {"key": "device-test", "status": "draft"}
        ],
        "layers": [{"key": "pricing", "bucket_by": "company_id",
                    "slices": [{"experiment": "team-pricing", "start": 0, "end": 6000}]}],
        "flags": [
            {"key": "pricing", "type": "number", "default_variant": "standard", "bucket_by": "company_id",
             "variants": [{"key": "standard", "value": 10}, {"key": "cheap", "value": 8}, {"key": "premium", "value": 12}],
             "overrides": [{"variant": "premium", "keys": ["vip-company-admin"]}],
             "rules": [{
                "split": [{"variant": "standard", "weight": 3334}, {"variant": "cheap", "weight": 3333}, {"variant": "premium", "weight": 3333}],
                "coverage": 9000, "holdout": {"basis_points": 500}, "experiment": "team-pricing"
             }]},
            {"key": "device", "type": "bool", "default_variant": "off", "bucket_by": "device_id",
             "variants": [{"key": "off", "value": false}, {"key": "on", "value": true}],
             "rules": [{"variant": "on", "coverage": 2500, "salt": "device-wave", "experiment": "device-test"}]}
        ]
    }));
    let mut users = Vec::new();
    for (i, id) in [0_i64, 7, -7, 12_345, 99_999_999, 9_007_199_254_740_991]
        .into_iter()
        .enumerate()
    {
        users.push(
            User::new(format!("member-{i}"))
                .with("company_id", id)
                .with("device_id", id * 3),
        );
    }
    for i in 0..50_i64 {
        users.push(
            User::new(format!("employee-{i}"))
                .with("company_id", 1_000 + i)
                .with("device_id", format!("device-{i}")),
        );
    }
    users.push(
        User::new("fractional")
            .with("company_id", 1.5)
            .with("device_id", 2.5),
    );
    users.push(User::new("huge").with("company_id", 1e300));
    users.push(
        User::new("boolean")
            .with("company_id", true)
            .with("device_id", false),
    );
    users.push(User::new("listed").with("company_id", ["1"]));
    users.push(User::new("missing"));
    users.push(User::new("vip-company-admin"));
    assert_no_allocations(&snap, &users, &["pricing", "device"]);
}
