//! Sustained load with the event server unreachable: memory stays bounded and every event is
//! accounted for.
//!
//! Four threads record 600,000 unique exposures and conversions (each carrying a 1 KiB user
//! key, so an unbounded queue would grow by over 600 MiB) into a client whose queue holds 1,000
//! events and whose collector URL is a closed port. Checked:
//! - the queue never holds more than its capacity (sampled by a monitor thread throughout);
//! - accepted events not yet delivered ≤ capacity + `max_batch` (the batch the delivery task
//!   keeps retrying);
//! - `dropped` = produced − accepted before close, and = produced after close (nothing could
//!   be delivered);
//! - the process RSS once all 600,000 events (600 queue-fuls) were recorded exceeds the RSS
//!   right after the queue first filled by less than 4 KiB per queue slot (4 MiB; a queue that
//!   grew would add over 600 MiB; measured growth is about 0.2 MiB).
//!
//! This test is alone in its binary so no other test's allocations move the RSS.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tailor::{Client, User};

const CAPACITY: usize = 1_000;
const MAX_BATCH: usize = 100;
const THREADS: usize = 4;
/// Events per thread in the first phase (fills the queue) and in the second.
const FIRST_PHASE: usize = 1_000;
const SECOND_PHASE: usize = 149_000;
const KEY_PADDING: usize = 1_024;

const CONFIG: &str = r#"{
  "environment": "test",
  "revision": 1,
  "experiments": [{"key": "checkout-test", "status": "running"}],
  "flags": [
    {"key": "checkout", "type": "string",
     "variants": [{"key": "control", "value": "one-page"}, {"key": "treatment", "value": "two-step"}],
     "default_variant": "control",
     "rules": [{"split": [{"variant": "control", "weight": 5000}, {"variant": "treatment", "weight": 5000}],
                "experiment": "checkout-test"}]}
  ]
}"#;

/// Resident set size in bytes (`VmRSS` of /proc/self/status, reported in kB).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// `per_thread` events from each of `THREADS` threads: even threads record exposures of new
/// users, odd threads conversions. Each event is unique (a new user key), so none is
/// de-duplicated away.
fn produce(client: &Client, phase: &str, per_thread: usize) -> usize {
    let padding = "x".repeat(KEY_PADDING);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (client, padding) = (client, &padding);
            s.spawn(move || {
                for i in 0..per_thread {
                    let user = User::new(format!("{phase}-{t}-{i}-{padding}"));
                    if t % 2 == 0 {
                        let v = client.variant(&user, "checkout");
                        assert!(v.key().is_some());
                    } else {
                        client.track(&user, "purchase", Some(9.99));
                    }
                }
            });
        }
    });
    THREADS * per_thread
}

#[test]
fn the_event_queue_stays_bounded_when_the_server_is_unreachable() {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap.json");
    std::fs::write(&bootstrap, CONFIG).unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = rt
        .block_on(
            Client::builder(format!("http://127.0.0.1:{port}"), "tlr_sdk_test")
                .start_timeout(Duration::from_millis(50))
                .bootstrap_file(&bootstrap)
                .event_capacity(CAPACITY)
                .max_batch(MAX_BATCH)
                .flush_interval(Duration::from_millis(50))
                .flush_timeout(Duration::from_millis(200))
                .backoff(Duration::from_millis(50), Duration::from_millis(200))
                .build(),
        )
        .unwrap();

    // A monitor samples the queue length while the producers run.
    let done = AtomicBool::new(false);
    let max_seen = AtomicUsize::new(0);
    let (produced, rss_after_first_fill, rss_after_all) = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                max_seen.fetch_max(client.queued_len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let mut produced = produce(&client, "first", FIRST_PHASE);
        assert_eq!(
            client.queued_len(),
            CAPACITY,
            "the first phase fills the queue"
        );
        let rss_after_first_fill = rss_bytes();
        produced += produce(&client, "second", SECOND_PHASE);
        let rss_after_all = rss_bytes();
        done.store(true, Ordering::Relaxed);
        (produced, rss_after_first_fill, rss_after_all)
    });

    let stats = client.event_stats();
    let max_seen = max_seen.into_inner();
    eprintln!(
        "produced {produced}, {stats:?}, max queue length seen {max_seen}, RSS {} KiB after the \
         first fill, {} KiB after {} fills",
        rss_after_first_fill / 1024,
        rss_after_all / 1024,
        produced / CAPACITY
    );
    assert!(
        max_seen <= CAPACITY,
        "queue length {max_seen} exceeded {CAPACITY}"
    );
    assert!(max_seen > 0, "the monitor saw the queue");
    assert_eq!(stats.delivered, 0, "nothing can be delivered");
    assert_eq!(
        stats.queued + stats.dropped,
        produced as u64,
        "every event is accepted or dropped"
    );
    assert!(
        stats.queued <= (CAPACITY + MAX_BATCH) as u64,
        "{} accepted and undelivered events: more than the queue and one batch hold",
        stats.queued
    );
    let growth = rss_after_all.saturating_sub(rss_after_first_fill);
    let bound = (CAPACITY * 4 * 1024) as u64;
    assert!(
        growth < bound,
        "RSS grew by {} KiB after the queue was full (bound {} KiB)",
        growth / 1024,
        bound / 1024
    );

    // Closing gives up on the undeliverable events: all of them end up counted as dropped.
    rt.block_on(async {
        assert!(client.close().await.is_err(), "nothing could be flushed");
        let deadline = Instant::now() + Duration::from_secs(5);
        while client.event_stats().dropped < produced as u64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let stats = client.event_stats();
    assert_eq!(stats.dropped, produced as u64, "{stats:?}");
    assert_eq!(client.queued_len(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}
