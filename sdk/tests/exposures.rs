//! Exposure de-duplication is per client: one user evaluated from several threads (or through
//! clones of the client) is one exposure, not one per thread.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Barrier;
use std::time::Duration;

use tailor::{Client, User};

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

/// A client with an event queue whose server is a closed port (nothing is delivered, so the
/// queue counters show exactly what was recorded) and whose config is a bootstrap file.
async fn delivering(dir: &tempfile::TempDir) -> Client {
    let path = dir.path().join("bootstrap.json");
    std::fs::write(&path, CONFIG).unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    Client::builder(format!("http://127.0.0.1:{port}"), "tlr_sdk_test")
        .start_without_waiting()
        .bootstrap_file(path)
        .flush_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn one_exposure_per_user_across_threads_and_clones() {
    let dir = tempfile::tempdir().unwrap();
    let client = delivering(&dir).await;
    let users: Vec<User> = (0..45).map(|i| User::new(format!("user-{i}"))).collect();
    let threads = 4;
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            // Each thread has its own clone: clones share the de-duplication.
            let (client, users, barrier) = (client.clone(), &users, &barrier);
            s.spawn(move || {
                barrier.wait();
                for u in users.iter().cycle().skip(t * 7).take(users.len() * 3) {
                    assert!(client.variant(u, "checkout").key().is_some());
                }
            });
        }
    });
    let stats = client.event_stats();
    assert_eq!(stats.queued + stats.dropped, 45, "{stats:?}");
    let _ = client.close().await;
}
