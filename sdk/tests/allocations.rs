//! `Client::variant` does not touch the heap once warm: not for a plain flag, and not for an
//! experiment flag whose exposure was already recorded (the common case: a user sees the same
//! page many times), both on an offline client and on one with an event queue.
//!
//! A counting global allocator counts the allocations of the current thread only, so the test
//! harness's other threads (and a client's background tasks) cannot disturb the count.
// Implementing `GlobalAlloc` (to count allocations) requires `unsafe`; every method only
// forwards to `System` with its arguments unchanged.
#![allow(unsafe_code)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use tailor::{Client, ConfigDocument, Reason, User};

struct CountingAllocator;

thread_local! {
    // `const`-initialized with no destructor: reading it never allocates or registers anything,
    // so the allocator can use it without recursing.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the slot may be gone while a thread is being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Heap allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

const CONFIG: &str = r#"{
  "environment": "test",
  "revision": 1,
  "experiments": [{"key": "checkout-test", "status": "running"}],
  "flags": [
    {"key": "dark-mode", "type": "bool",
     "variants": [{"key": "off", "value": false}, {"key": "on", "value": true}],
     "default_variant": "off",
     "rules": [{"when": {"attribute": "country", "op": "in", "values": ["US", "CA"]}, "variant": "on"}]},
    {"key": "checkout", "type": "json",
     "variants": [{"key": "control", "value": {"steps": 1}}, {"key": "treatment", "value": {"steps": 2}}],
     "default_variant": "control",
     "rules": [{"split": [{"variant": "control", "weight": 5000}, {"variant": "treatment", "weight": 5000}],
                "experiment": "checkout-test"}]}
  ]
}"#;

fn user() -> User {
    User::new("user-42")
        .with("country", "US")
        .with("plan", "pro")
        .with("tags", ["a", "b"])
}

/// Calls `variant` the way an application does (reads key and value, drops the result).
fn evaluate(client: &Client, user: &User, flag: &str) {
    let v = client.variant(user, flag);
    black_box(v.key());
    black_box(v.value());
}

/// Warms up (first call), then asserts that 1,000 further calls allocate nothing.
fn assert_no_allocations(client: &Client, flag: &str) {
    let user = user();
    evaluate(client, &user, flag);
    let n = allocations(|| {
        for _ in 0..1_000 {
            evaluate(client, &user, flag);
        }
    });
    assert_eq!(
        n, 0,
        "{flag}: {n} allocations in 1,000 warm calls to variant()"
    );
}

fn offline() -> Client {
    Client::offline(ConfigDocument::from_json(CONFIG).unwrap()).unwrap()
}

/// A client with an event queue and delivery task but no server: its URL is a closed port and
/// its config comes from a bootstrap file. The runtime is a current-thread one that nobody
/// drives after `build`, so the background tasks stay parked while the test counts.
fn delivering(rt: &tokio::runtime::Runtime, dir: &tempfile::TempDir) -> Client {
    let path = dir.path().join("bootstrap.json");
    std::fs::write(&path, CONFIG).unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    rt.block_on(
        Client::builder(format!("http://127.0.0.1:{port}"), "tlr_sdk_test")
            .start_timeout(Duration::from_millis(50))
            .bootstrap_file(path)
            .build(),
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn plain_flag_on_an_offline_client() {
    let client = offline();
    assert_eq!(client.variant(&user(), "dark-mode").key(), Some("on"));
    assert_no_allocations(&client, "dark-mode");
}

#[test]
fn experiment_flag_on_an_offline_client() {
    let client = offline();
    assert!(matches!(
        client.variant_detail(&user(), "checkout").reason,
        Reason::Split { .. }
    ));
    assert_no_allocations(&client, "checkout");
}

#[test]
fn plain_flag_on_a_delivering_client() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let client = delivering(&rt, &dir);
    assert_no_allocations(&client, "dark-mode");
    assert_eq!(
        client.event_stats().queued,
        0,
        "a plain flag records no exposure"
    );
}

#[test]
fn duplicate_exposure_on_a_delivering_client() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let client = delivering(&rt, &dir);
    // The warm-up call records the exposure (and allocates for it); every later call is a
    // duplicate and must neither record nor allocate.
    assert_no_allocations(&client, "checkout");
    let stats = client.event_stats();
    assert_eq!(
        (stats.queued, stats.dropped),
        (1, 0),
        "one exposure recorded: {stats:?}"
    );

    // A new user is a new exposure: it is recorded (this is the path that may allocate).
    client.variant(&User::new("someone-else"), "checkout");
    assert_eq!(client.event_stats().queued, 2);
}

/// A flag whose rule reads a computed trait, for a user whose profile is cached: the lookup in
/// the profile cache allocates nothing, like an attribute rule.
#[test]
fn trait_flag_with_a_cached_profile_and_without_one() {
    let doc = ConfigDocument::from_yaml(
        r#"
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
"#,
    )
    .unwrap();
    let client = Client::offline(doc).unwrap();
    // Without a profile: the trait is missing, counted, and still nothing is allocated after
    // the first call (which logs the warning).
    assert_eq!(client.variant(&user(), "loyalty").key(), Some("off"));
    assert_no_allocations(&client, "loyalty");
    assert_eq!(client.profile_stats().missing, 1_002);
    let profile: tailor::Profile = serde_json::from_value(serde_json::json!({
        "user_key": "user-42", "as_of": 0, "traits": {"purchases_30d": 3}
    }))
    .unwrap();
    client.set_profile(profile);
    assert_eq!(client.variant(&user(), "loyalty").key(), Some("on"));
    assert_no_allocations(&client, "loyalty");
    // Read-your-writes touches the cached profile only.
    client.track(&user(), "purchase", None);
    assert_eq!(
        client
            .profile(&user())
            .unwrap()
            .trait_value("purchases_30d"),
        Some(tailor::TraitValue::Number(4.0))
    );
}
