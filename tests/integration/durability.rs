//! Durability of the embedded store: everything survives a restart on the same data directory,
//! and every acknowledged write survives `kill -9` at a random moment.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{client, eventually, fixtures, send, Server, ADMIN_KEY};

#[tokio::test]
async fn everything_survives_a_restart() {
    let mut server = Server::start().await;
    server
        .create("development", "segments", &fixtures::segment("pro"))
        .await;
    server
        .create(
            "development",
            "flags",
            &fixtures::segment_flag("banner", "pro"),
        )
        .await;
    server
        .create("development", "experiments", &fixtures::experiment("exp"))
        .await;
    server
        .create("development", "layers", &fixtures::layer("checkout", "exp"))
        .await;
    server
        .create(
            "production",
            "flags",
            &fixtures::split_flag("homepage", 2500),
        )
        .await;
    let toggled = send(
        server
            .admin(
                Method::POST,
                "/api/v1/environments/development/flags/banner/toggle",
            )
            .json(&json!({"enabled": false})),
    )
    .await;
    toggled.assert_status(StatusCode::OK);
    let created_env = send(
        server
            .admin(Method::POST, "/api/v1/environments")
            .json(&json!({"key": "staging"})),
    )
    .await;
    created_env.assert_status(StatusCode::CREATED);
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let (revoked_id, revoked) = server.create_key("client", Some("production")).await;
    send(server.admin(Method::DELETE, &format!("/api/v1/keys/{revoked_id}")))
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let snapshot = |server: &Server| {
        let server_http = server.http.clone();
        let base = server.url("");
        async move {
            let mut out = Vec::new();
            for path in [
                "/api/v1/environments",
                "/api/v1/environments/development/config",
                "/api/v1/environments/production/config",
                "/api/v1/environments/staging/config",
                "/api/v1/environments/development/audit",
                "/api/v1/environments/production/audit",
                "/api/v1/keys",
            ] {
                let res = send(
                    server_http
                        .get(format!("{base}{path}"))
                        .bearer_auth(ADMIN_KEY),
                )
                .await;
                res.assert_status(StatusCode::OK);
                out.push((path, res.body));
            }
            out
        }
    };
    let before = snapshot(&server).await;
    let config_etag = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk))
        .await
        .etag();

    server.restart().await;

    let after = snapshot(&server).await;
    for ((path, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(a, b, "{path} differs after the restart");
    }
    // Sanity: the snapshot holds what was written.
    let dev = &after[1].1;
    assert_eq!(dev["flags"][0]["enabled"], false);
    assert_eq!(dev["layers"][0]["key"], "checkout");
    assert_eq!(
        after[4].1.as_array().unwrap().len(),
        5,
        "development audit entries"
    );

    // Keys: the SDK key still works (same ETag: same content), the revoked one still does not.
    let res = send(
        server
            .with_key(Method::GET, "/sdk/v1/config", &sdk)
            .header("If-None-Match", &config_etag),
    )
    .await;
    res.assert_status(StatusCode::NOT_MODIFIED);
    send(server.with_key(Method::GET, "/sdk/v1/config", &revoked))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", "key");

    // And it keeps working: the next write gets the next revision.
    let rev = server.revision("development").await;
    let res = server
        .create("development", "flags", &fixtures::bool_flag("after"))
        .await;
    assert_eq!(res.revision(), rev + 1);
}

/// Writers create flags as fast as they can; at a random moment the server is `kill -9`ed.
/// After the restart every acknowledged flag is there, and the revision, the flags and the audit
/// log agree (unacknowledged writes may or may not have landed, but never half).
#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    const WRITERS: usize = 3;
    let mut server = Server::start().await;
    // The kill times come from a seed printed here: `TAILOR_TEST_SEED=<seed>` replays a failure.
    let seed = std::env::var("TAILOR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("acknowledged_writes_survive_kill_9: TAILOR_TEST_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let initial = server.revision("development").await;
    let mut all_acked = BTreeSet::new();

    for round in 0..3 {
        let acked = Arc::new(Mutex::new(Vec::<String>::new()));
        let url = server.url("/api/v1/environments/development/flags");
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let acked = Arc::clone(&acked);
                let url = url.clone();
                tokio::spawn(async move {
                    let http = client();
                    for i in 0.. {
                        let key = format!("r{round}-w{w}-{i}");
                        let res = http
                            .post(&url)
                            .bearer_auth(ADMIN_KEY)
                            .json(&fixtures::bool_flag(&key))
                            .send()
                            .await;
                        match res {
                            Ok(r) if r.status() == StatusCode::CREATED => {
                                acked.lock().unwrap().push(key);
                            }
                            Ok(r) => panic!("write {key} refused: {}", r.status()),
                            // The server is gone: stop.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();

        // Let some writes be acknowledged, then kill at a random moment.
        eventually("some acknowledged writes", Duration::from_secs(30), || {
            let n = acked.lock().unwrap().len();
            async move { (n >= 5).then_some(()) }
        })
        .await;
        let delay = rng.gen_range(0..250);
        println!("round {round}: kill -9 {delay} ms after the fifth acknowledgement");
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill9();
        for w in writers {
            w.await.expect("writer task");
        }
        let acked_now = acked.lock().unwrap().clone();
        all_acked.extend(acked_now);

        server.spawn().await;
        check_consistent(&server, initial, &all_acked, round).await;
    }
    check_integrity(&server);
}

async fn check_consistent(server: &Server, initial: u64, acked: &BTreeSet<String>, round: usize) {
    let config = send(server.admin(Method::GET, "/api/v1/environments/development/config")).await;
    config.assert_status(StatusCode::OK);
    let present: BTreeSet<String> = config.body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<_> = acked.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "round {round}: acknowledged writes lost: {lost:?}"
    );
    // One revision per create, no gaps, nothing half-applied.
    let revision = config.body["revision"].as_u64().unwrap();
    assert_eq!(revision, initial + present.len() as u64, "round {round}");
    assert_eq!(server.revision("development").await, revision);
    let audit = server.audit("development", "kind=flag&limit=1000").await;
    let audited: BTreeSet<String> = audit
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        audited, present,
        "round {round}: audit log and config agree"
    );
    let revisions: Vec<u64> = audit
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (initial + 1..=revision).rev().collect();
    assert_eq!(revisions, expected, "round {round}: audit revisions");
    // The SDK sees the same revision.
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let res = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.revision(), revision);
    assert_eq!(
        res.body["flags"].as_array().map(Vec::len),
        Some(present.len())
    );
    eprintln!(
        "kill -9 round {round}: {} acknowledged, {} present, revision {revision}",
        acked.len(),
        present.len()
    );
}

/// The database file passes SQLite's own integrity check.
fn check_integrity(server: &Server) {
    let db = rusqlite::Connection::open_with_flags(
        server.data_dir().join("tailor.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("opening the database");
    let result: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(result, "ok");
    let count: i64 = db
        .query_row("SELECT count(*) FROM environments", [], |r| r.get(0))
        .expect("reading environments");
    assert_eq!(count, 2);
}
