//! The storage contract (`server/src/store/mod.rs`), checked against every backend: the embedded
//! SQLite store, Redis on one node, and Redis Cluster with three masters. Each check is one
//! async function over `&dyn Store`; [`contract_tests!`] instantiates it per backend.
//!
//! Redis-only behaviour follows: the shared event log (`events_after`), the change feed, faults
//! (Redis killed: `Unavailable`, then recovery on the same store object) and durability across
//! a `kill -9` of Redis with the append-only file.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tailor_core::events::{Conversion, Event, Exposure};
use tailor_core::partition::{partition, DEFAULT_PARTITIONS};
use tailor_core::ConfigDocument;
use tailor_server::store::redis::RedisStore;
use tailor_server::store::sqlite::SqliteStore;
use tailor_server::store::{
    unix_now, ApiKey, AuditEntry, AuditQuery, Checkpoint, EncodedEvent, EventCursor, KeyKind,
    PublishedAggregates, Store, StoreChange, StoreError, StoredSession,
};
use tempfile::TempDir;

use crate::support::{fixtures, Redis, RedisCluster, PATIENCE};

// ----- fixtures -------------------------------------------------------------------------------

fn document(env: &str, revision: u64) -> ConfigDocument {
    serde_json::from_value(json!({
        "environment": env,
        "revision": revision,
        "segments": [fixtures::segment(&format!("segment-{revision}"))],
    }))
    .unwrap()
}

fn audit(env: &str, revision: u64, kind: &str, key: &str) -> AuditEntry {
    AuditEntry {
        id: 0,
        environment: env.into(),
        revision,
        at: format!("2030-01-01T00:00:{:02}Z", revision % 60),
        actor: "tester".into(),
        action: "update".into(),
        kind: kind.into(),
        key: key.into(),
        before: Some(json!({"n": revision - 1, "text": "ünïcode / \"quoted\""})),
        after: Some(json!({"n": revision, "big": 12345678901234567u64, "float": 0.1})),
    }
}

fn api_key(id: &str, digest: &str, created_at: &str) -> ApiKey {
    ApiKey {
        id: id.into(),
        name: format!("key {id}"),
        kind: KeyKind::Sdk,
        environment: Some("production".into()),
        digest: digest.into(),
        created_at: created_at.into(),
        revoked_at: None,
    }
}

fn exposure(id: &str, user: &str) -> EncodedEvent<'static> {
    encoded(Event::Exposure(Exposure {
        id: id.into(),
        timestamp: 1_900_000_000_000,
        user_key: user.into(),
        flag: "homepage".into(),
        variant: "personal".into(),
        experiment: "exp".into(),
        rule: 0,
        segment: Some("beginners".into()),
        personalized: true,
        revision: 2,
        spec_version: 1,
    }))
}

fn encoded(event: Event) -> EncodedEvent<'static> {
    EncodedEvent::new(event).unwrap()
}

fn conversion(id: &str, user: &str) -> EncodedEvent<'static> {
    encoded(Event::Conversion(Conversion {
        id: id.into(),
        timestamp: 1_900_000_000_001,
        user_key: user.into(),
        event: "purchase".into(),
        value: Some(9.99),
    }))
}

/// Every stored event of the environment (all partitions), sorted by id.
async fn scanned_events(store: &dyn Store, env: &str) -> Vec<Event> {
    let mut events = Vec::new();
    for part in 0..DEFAULT_PARTITIONS {
        events.extend(
            scan_partition(store, env, part, &EventCursor::default())
                .await
                .0,
        );
    }
    events.sort_by(|a, b| a.id().cmp(b.id()));
    events
}

/// Every page of one partition after `after`: its events in log order and the last `next`.
async fn scan_partition(
    store: &dyn Store,
    env: &str,
    part: u32,
    after: &EventCursor,
) -> (Vec<Event>, EventCursor) {
    let mut events = Vec::new();
    let mut next = after.clone();
    loop {
        let page = store.events_after(env, part, &next, 7).await.unwrap();
        events.extend(page.events);
        next = page.next;
        if !page.more {
            return (events, next);
        }
    }
}

async fn scanned_ids(store: &dyn Store, env: &str) -> Vec<String> {
    let events = scanned_events(store, env).await;
    events.iter().map(|e| e.id().to_string()).collect()
}

// ----- the contract ---------------------------------------------------------------------------

async fn environments_are_created_once_and_listed(store: &dyn Store) {
    assert!(store.environments().await.unwrap().is_empty());
    store
        .create_environment("staging", &document("staging", 1), DEFAULT_PARTITIONS)
        .await
        .unwrap();
    store
        .create_environment("dev", &document("dev", 1), DEFAULT_PARTITIONS)
        .await
        .unwrap();
    let again = store
        .create_environment("dev", &document("dev", 7), DEFAULT_PARTITIONS)
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::AlreadyExists(_)), "{again:?}");
    let all = store.environments().await.unwrap();
    let keys: Vec<&str> = all.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["dev", "staging"]);
    assert_eq!(
        all[0].document,
        document("dev", 1),
        "a failed create changed nothing"
    );
    let one = store.environment("staging").await.unwrap().unwrap();
    assert_eq!(one.document, document("staging", 1));
    assert!(store.environment("nope").await.unwrap().is_none());
    store.ping().await.unwrap();
}

async fn commits_compare_and_swap_atomically(store: &dyn Store) {
    store
        .create_environment("prod", &document("prod", 1), DEFAULT_PARTITIONS)
        .await
        .unwrap();
    store
        .commit(
            "prod",
            1,
            &document("prod", 2),
            &audit("prod", 2, "flag", "a"),
        )
        .await
        .unwrap();
    // A stale writer loses and changes nothing (neither document nor audit log).
    let stale = store
        .commit(
            "prod",
            1,
            &document("prod", 2),
            &audit("prod", 2, "flag", "b"),
        )
        .await
        .unwrap_err();
    match stale {
        StoreError::Conflict {
            environment,
            expected,
            current,
        } => assert_eq!((environment.as_str(), expected, current), ("prod", 1, 2)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The new document must carry expected + 1.
    let skipping = store
        .commit(
            "prod",
            2,
            &document("prod", 4),
            &audit("prod", 4, "flag", "c"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(skipping, StoreError::Conflict { .. }),
        "{skipping:?}"
    );
    let missing = store
        .commit(
            "ghost",
            1,
            &document("ghost", 2),
            &audit("ghost", 2, "flag", "d"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::NoSuchEnvironment(_)),
        "{missing:?}"
    );
    let stored = store.environment("prod").await.unwrap().unwrap();
    assert_eq!(stored.document, document("prod", 2));
    let log = store.audit("prod", &AuditQuery::default()).await.unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].key, "a");
    assert!(store
        .audit("ghost", &AuditQuery::default())
        .await
        .unwrap()
        .is_empty());
}

async fn concurrent_commits_have_one_winner(store: Arc<dyn Store>) {
    store
        .create_environment("race", &document("race", 1), DEFAULT_PARTITIONS)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .commit(
                    "race",
                    1,
                    &document("race", 2),
                    &audit("race", 2, "flag", &format!("w{i}")),
                )
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict { current: 2, .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1);
    let log = store.audit("race", &AuditQuery::default()).await.unwrap();
    assert_eq!(log.len(), 1);
}

async fn the_audit_log_is_newest_first_and_filters(store: &dyn Store) {
    store
        .create_environment("prod", &document("prod", 1), DEFAULT_PARTITIONS)
        .await
        .unwrap();
    let changes = [
        ("flag", "homepage"),
        ("segment", "pro"),
        ("flag", "banner"),
        ("flag", "homepage"),
        ("experiment", "exp"),
    ];
    for (i, (kind, key)) in changes.iter().enumerate() {
        let rev = i as u64 + 2;
        store
            .commit(
                "prod",
                rev - 1,
                &document("prod", rev),
                &audit("prod", rev, kind, key),
            )
            .await
            .unwrap();
    }
    let all = store.audit("prod", &AuditQuery::default()).await.unwrap();
    let revisions: Vec<u64> = all.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, [6, 5, 4, 3, 2]);
    assert!(
        all.windows(2).all(|w| w[0].id > w[1].id && w[1].id > 0),
        "ids grow with each entry: {all:?}"
    );
    assert_eq!(all[0], {
        let mut expected = audit("prod", 6, "experiment", "exp");
        expected.id = all[0].id;
        expected
    });
    let flags = store
        .audit(
            "prod",
            &AuditQuery {
                kind: Some("flag".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        flags.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [5, 4, 2]
    );
    let homepage = store
        .audit(
            "prod",
            &AuditQuery {
                kind: Some("flag".into()),
                key: Some("homepage".into()),
                limit: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(homepage.len(), 1);
    assert_eq!(homepage[0].revision, 5);
}

async fn keys_are_stored_listed_and_revoked(store: &dyn Store) {
    store
        .put_key(&api_key("key_b", "digest-b", "2030-01-02T00:00:00Z"))
        .await
        .unwrap();
    store
        .put_key(&api_key("key_a", "digest-a", "2030-01-01T00:00:00Z"))
        .await
        .unwrap();
    let same_id = store
        .put_key(&api_key("key_a", "digest-z", "2030-01-03T00:00:00Z"))
        .await
        .unwrap_err();
    assert!(
        matches!(same_id, StoreError::AlreadyExists(_)),
        "{same_id:?}"
    );
    let same_digest = store
        .put_key(&api_key("key_z", "digest-a", "2030-01-03T00:00:00Z"))
        .await
        .unwrap_err();
    assert!(
        matches!(same_digest, StoreError::AlreadyExists(_)),
        "{same_digest:?}"
    );
    let keys = store.keys().await.unwrap();
    assert_eq!(
        keys,
        [
            api_key("key_a", "digest-a", "2030-01-01T00:00:00Z"),
            api_key("key_b", "digest-b", "2030-01-02T00:00:00Z")
        ]
    );
    assert!(store
        .revoke_key("key_b", "2030-02-01T00:00:00Z")
        .await
        .unwrap());
    assert!(!store
        .revoke_key("key_b", "2030-03-01T00:00:00Z")
        .await
        .unwrap());
    assert!(!store
        .revoke_key("key_unknown", "2030-03-01T00:00:00Z")
        .await
        .unwrap());
    let keys = store.keys().await.unwrap();
    assert_eq!(keys[0].revoked_at, None);
    assert_eq!(keys[1].revoked_at.as_deref(), Some("2030-02-01T00:00:00Z"));
}

/// The ids of user `u`'s partition after `after`, in log order, and the last `next`.
async fn scan_after(
    store: &dyn Store,
    env: &str,
    after: &EventCursor,
) -> (Vec<String>, EventCursor) {
    let (events, next) =
        scan_partition(store, env, partition("u", DEFAULT_PARTITIONS), after).await;
    (events.iter().map(|e| e.id().to_string()).collect(), next)
}

async fn scans_are_in_log_order_and_resume_after_a_cursor(store: &dyn Store) {
    let first: Vec<EncodedEvent<'static>> =
        (0..30).map(|i| exposure(&format!("a{i}"), "u")).collect();
    store.append_events("prod", &first[..20]).await.unwrap();
    store.append_events("prod", &first[20..]).await.unwrap();
    store
        .append_events("dev", &[exposure("other", "u")])
        .await
        .unwrap();
    let (ids, cursor) = scan_after(store, "prod", &EventCursor::default()).await;
    let expected: Vec<String> = (0..30).map(|i| format!("a{i}")).collect();
    assert_eq!(ids, expected, "log order");
    let (ids, same) = scan_after(store, "prod", &cursor).await;
    assert!(ids.is_empty(), "nothing after the end: {ids:?}");
    assert_eq!(same, cursor);
    store
        .append_events("prod", &[exposure("b0", "u"), exposure("b1", "u")])
        .await
        .unwrap();
    let (ids, _) = scan_after(store, "prod", &cursor).await;
    assert_eq!(ids, ["b0", "b1"], "only what was stored after the cursor");
}

async fn sessions_are_stored_found_and_ended(store: &dyn Store) {
    let now = unix_now();
    let live = StoredSession {
        key_digest: "key-digest".into(),
        key_name: "admin".into(),
        csrf: "token".into(),
        expires_at: now + 3600,
    };
    store.put_session("d1", &live).await.unwrap();
    assert_eq!(store.session("d1", now).await.unwrap(), Some(live.clone()));
    assert_eq!(store.session("unknown", now).await.unwrap(), None);
    assert_eq!(
        store.session("d1", now + 3600).await.unwrap(),
        None,
        "void from its expiry on"
    );
    let expired = StoredSession {
        expires_at: now - 1,
        ..live.clone()
    };
    store.put_session("d2", &expired).await.unwrap();
    assert_eq!(store.session("d2", now).await.unwrap(), None);
    store.delete_session("d1").await.unwrap();
    assert_eq!(store.session("d1", now).await.unwrap(), None);
    store.delete_session("d1").await.unwrap();
}

async fn events_are_appended_once(store: &dyn Store) {
    let fresh = store
        .append_events(
            "prod",
            &[
                exposure("e1", "u1"),
                conversion("c1", "u1"),
                exposure("e1", "u1"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(fresh, [true, true, false], "a duplicate within a batch");
    let fresh = store
        .append_events("prod", &[conversion("c1", "u1"), exposure("e2", "u2")])
        .await
        .unwrap();
    assert_eq!(fresh, [false, true], "a duplicate across batches");
    // Ids are per environment.
    let fresh = store
        .append_events("dev", &[exposure("e1", "u1")])
        .await
        .unwrap();
    assert_eq!(fresh, [true]);
    assert!(store.append_events("prod", &[]).await.unwrap().is_empty());
    assert_eq!(scanned_ids(store, "prod").await, ["c1", "e1", "e2"]);
    assert_eq!(scanned_ids(store, "dev").await, ["e1"]);
    assert!(scanned_ids(store, "empty").await.is_empty());

    // An event is stored as the JSON it arrived as (key order, extra fields) and scans back as
    // the same event; every field survives the round trip.
    let json = r#"{"user_key":"u3","type":"conversion","id":"c3","timestamp":1900000000002,"event":"signup","value":null,"extra":{"note":"kept"}}"#;
    let received = EncodedEvent::received(Event::from_json(json).unwrap(), json);
    assert_eq!(
        store
            .append_events("prod", std::slice::from_ref(&received))
            .await
            .unwrap(),
        [true]
    );
    let expected = vec![
        conversion("c1", "u1").event,
        received.event,
        exposure("e1", "u1").event,
        exposure("e2", "u2").event,
    ];
    assert_eq!(scanned_events(store, "prod").await, expected);
}

async fn concurrent_appends_store_each_id_once(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for t in 0..6 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            // Every task sends the same 50 ids (in a different order) plus 10 of its own.
            let mut batch: Vec<EncodedEvent<'static>> = (0..50)
                .map(|i| exposure(&format!("shared-{}", (i * 7 + t) % 50), "u"))
                .collect();
            batch.extend((0..10).map(|i| exposure(&format!("own-{t}-{i}"), "u")));
            store.append_events("prod", &batch).await.unwrap()
        }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap().iter().filter(|f| **f).count();
    }
    assert_eq!(stored, 50 + 6 * 10);
    let ids = scanned_ids(store.as_ref(), "prod").await;
    assert_eq!(ids.len(), 110);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 110);
}

/// Writes never fail because of ingest: with event appends running flat out on other tasks, every
/// config commit, key and session write succeeds (each waits its turn). Before the embedded
/// store's write gate, a commit that read its revision while the event writer committed failed
/// at once with "database is locked".
async fn writes_succeed_under_continuous_appends(store: Arc<dyn Store>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    store
        .create_environment("prod", &document("prod", 1), DEFAULT_PARTITIONS)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut appenders = Vec::new();
    for task in 0..4 {
        let store = Arc::clone(&store);
        let stop = Arc::clone(&stop);
        appenders.push(tokio::spawn(async move {
            let mut batches = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<EncodedEvent<'static>> = (0..20)
                    .map(|i| exposure(&format!("t{task}-{batches}-{i}"), "u"))
                    .collect();
                store.append_events("prod", &batch).await.unwrap();
                batches += 1;
            }
            batches
        }));
    }
    for revision in 2..=80u64 {
        let committed = store
            .commit(
                "prod",
                revision - 1,
                &document("prod", revision),
                &audit("prod", revision, "segment", "s"),
            )
            .await;
        if let Err(e) = committed {
            panic!("commit of revision {revision} failed under ingest: {e:?}");
        }
        let session = StoredSession {
            key_digest: "d".into(),
            key_name: "n".into(),
            csrf: "c".into(),
            expires_at: unix_now() + 60,
        };
        if let Err(e) = store.put_session(&format!("s{revision}"), &session).await {
            panic!("session write {revision} failed under ingest: {e:?}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut batches = 0;
    for task in appenders {
        batches += task.await.unwrap();
    }
    assert!(batches > 0, "events were appended meanwhile");
}

/// Instantiates every contract check for one backend: `$make` is an async expression giving
/// `(Arc<dyn Store>, guard)`; the guard keeps the backend alive.
macro_rules! contract_tests {
    ($backend:ident, $make:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn environments_are_created_once_and_listed() {
                let (store, _guard) = $make;
                super::environments_are_created_once_and_listed(store.as_ref()).await;
            }

            #[tokio::test]
            async fn commits_compare_and_swap_atomically() {
                let (store, _guard) = $make;
                super::commits_compare_and_swap_atomically(store.as_ref()).await;
            }

            #[tokio::test]
            async fn concurrent_commits_have_one_winner() {
                let (store, _guard) = $make;
                super::concurrent_commits_have_one_winner(store).await;
            }

            #[tokio::test]
            async fn the_audit_log_is_newest_first_and_filters() {
                let (store, _guard) = $make;
                super::the_audit_log_is_newest_first_and_filters(store.as_ref()).await;
            }

            #[tokio::test]
            async fn keys_are_stored_listed_and_revoked() {
                let (store, _guard) = $make;
                super::keys_are_stored_listed_and_revoked(store.as_ref()).await;
            }

            #[tokio::test]
            async fn scans_are_in_log_order_and_resume_after_a_cursor() {
                let (store, _guard) = $make;
                super::scans_are_in_log_order_and_resume_after_a_cursor(store.as_ref()).await;
            }

            #[tokio::test]
            async fn sessions_are_stored_found_and_ended() {
                let (store, _guard) = $make;
                super::sessions_are_stored_found_and_ended(store.as_ref()).await;
            }

            #[tokio::test]
            async fn events_are_appended_once() {
                let (store, _guard) = $make;
                super::events_are_appended_once(store.as_ref()).await;
            }

            #[tokio::test]
            async fn writes_succeed_under_continuous_appends() {
                let (store, _guard) = $make;
                super::writes_succeed_under_continuous_appends(store).await;
            }

            #[tokio::test]
            async fn concurrent_appends_store_each_id_once() {
                let (store, _guard) = $make;
                super::concurrent_appends_store_each_id_once(store).await;
            }
        }
    };
}

async fn sqlite() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    (Arc::new(store), dir)
}

async fn redis() -> (Arc<dyn Store>, Redis) {
    let redis = Redis::start().await;
    let store = RedisStore::connect(&redis.url(), "tailor").await.unwrap();
    (Arc::new(store), redis)
}

contract_tests!(on_sqlite, sqlite().await);
contract_tests!(on_redis, redis().await);

/// The whole contract on a 3-master Redis Cluster (one cluster; each check gets its own key
/// prefix, so it starts from an empty store). Keys of the different environments land on
/// different masters, and every multi-key script stays within one slot.
#[tokio::test]
async fn the_contract_holds_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3).await;
    let url = cluster.url();
    let fresh = |name: &'static str| {
        let url = url.clone();
        async move {
            let store: Arc<dyn Store> = Arc::new(RedisStore::connect(&url, name).await.unwrap());
            store
        }
    };
    environments_are_created_once_and_listed(fresh("c1").await.as_ref()).await;
    commits_compare_and_swap_atomically(fresh("c2").await.as_ref()).await;
    concurrent_commits_have_one_winner(fresh("c3").await).await;
    the_audit_log_is_newest_first_and_filters(fresh("c4").await.as_ref()).await;
    keys_are_stored_listed_and_revoked(fresh("c5").await.as_ref()).await;
    events_are_appended_once(fresh("c6").await.as_ref()).await;
    concurrent_appends_store_each_id_once(fresh("c7").await).await;
    sessions_are_stored_found_and_ended(fresh("c8").await.as_ref()).await;
    scans_are_in_log_order_and_resume_after_a_cursor(fresh("c9").await.as_ref()).await;
    let used: Vec<usize> = cluster
        .nodes
        .iter()
        .map(|n| n.cli(&["DBSIZE"]).trim().parse().unwrap())
        .collect();
    assert!(
        used.iter().filter(|n| **n > 0).count() >= 2,
        "keys should spread over the masters: {used:?}"
    );
}

// ----- Redis only -----------------------------------------------------------------------------

async fn next(feed: &mut tailor_server::store::ChangeFeed) -> StoreChange {
    tokio::time::timeout(PATIENCE, feed.recv())
        .await
        .expect("a change notification")
        .expect("the feed is open")
}

#[tokio::test]
async fn the_shared_event_log_pages_in_one_order_for_every_reader() {
    let redis = Redis::start().await;
    let writer = RedisStore::connect(&redis.url(), "tailor").await.unwrap();
    let reader = RedisStore::connect(&redis.url(), "tailor").await.unwrap();
    for b in 0..5 {
        let batch: Vec<EncodedEvent<'static>> = (0..10)
            .map(|i| exposure(&format!("e{b}-{i}"), "u"))
            .collect();
        writer.append_events("prod", &batch).await.unwrap();
    }
    let part = partition("u", DEFAULT_PARTITIONS);
    let mut cursor = EventCursor::default();
    let mut order = Vec::new();
    loop {
        let page = reader.events_after("prod", part, &cursor, 7).await.unwrap();
        if page.events.is_empty() {
            assert_eq!(page.next, cursor, "an empty page keeps the cursor");
            break;
        }
        assert!(page.events.len() <= 7);
        order.extend(page.events.iter().map(|e| e.id().to_string()));
        cursor = page.next;
    }
    let expected: Vec<String> = (0..5)
        .flat_map(|b| (0..10).map(move |i| format!("e{b}-{i}")))
        .collect();
    assert_eq!(order, expected, "log order is append order");
    // Resent events do not reappear after the cursor.
    writer
        .append_events("prod", &[exposure("e0-0", "u"), exposure("late", "u")])
        .await
        .unwrap();
    let page = reader
        .events_after("prod", part, &cursor, 100)
        .await
        .unwrap();
    let ids: Vec<&str> = page.events.iter().map(|e| e.id()).collect();
    assert_eq!(ids, ["late"]);
}

#[tokio::test]
async fn the_change_feed_reports_every_kind_of_change() {
    let redis = Redis::start().await;
    let watcher = RedisStore::connect(&redis.url(), "tailor").await.unwrap();
    let writer = RedisStore::connect(&redis.url(), "tailor").await.unwrap();
    let other_prefix = RedisStore::connect(&redis.url(), "other").await.unwrap();
    let mut feed = watcher.shared().unwrap().changes();
    assert_eq!(next(&mut feed).await, StoreChange::Resync);
    // A deployment under another prefix is invisible.
    other_prefix
        .create_environment("prod", &document("prod", 1), DEFAULT_PARTITIONS)
        .await
        .unwrap();
    writer
        .create_environment("prod", &document("prod", 1), DEFAULT_PARTITIONS)
        .await
        .unwrap();
    assert_eq!(
        next(&mut feed).await,
        StoreChange::Environment {
            environment: "prod".into(),
            revision: 1
        }
    );
    writer
        .commit(
            "prod",
            1,
            &document("prod", 2),
            &audit("prod", 2, "flag", "a"),
        )
        .await
        .unwrap();
    assert_eq!(
        next(&mut feed).await,
        StoreChange::Environment {
            environment: "prod".into(),
            revision: 2
        }
    );
    // A failed commit announces nothing; the next change is the key.
    let _ = writer
        .commit(
            "prod",
            1,
            &document("prod", 2),
            &audit("prod", 2, "flag", "a"),
        )
        .await
        .unwrap_err();
    writer
        .put_key(&api_key("key_a", "digest-a", "2030-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(next(&mut feed).await, StoreChange::Keys);
    writer
        .append_events("prod", &[exposure("e1", "u")])
        .await
        .unwrap();
    assert_eq!(
        next(&mut feed).await,
        StoreChange::Events {
            environment: "prod".into(),
            partition: partition("u", DEFAULT_PARTITIONS),
        }
    );
    // Only duplicates: nothing new, nothing announced; the revocation comes next.
    writer
        .append_events("prod", &[exposure("e1", "u")])
        .await
        .unwrap();
    writer
        .revoke_key("key_a", "2030-02-01T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(next(&mut feed).await, StoreChange::Keys);
}

#[tokio::test]
async fn redis_going_away_is_unavailable_then_recovers_with_nothing_lost() {
    let mut redis = Redis::start_durable().await;
    let store = RedisStore::connect(&redis.url(), "tailor").await.unwrap();
    let mut feed = store.shared().unwrap().changes();
    assert_eq!(
        tokio::time::timeout(PATIENCE, feed.recv()).await.unwrap(),
        Some(StoreChange::Resync)
    );
    store
        .create_environment("prod", &document("prod", 1), DEFAULT_PARTITIONS)
        .await
        .unwrap();
    store
        .commit(
            "prod",
            1,
            &document("prod", 2),
            &audit("prod", 2, "flag", "a"),
        )
        .await
        .unwrap();
    let acked = store
        .append_events("prod", &[exposure("e1", "u1"), exposure("e2", "u2")])
        .await
        .unwrap();
    assert_eq!(acked, [true, true]);

    redis.kill9();
    for attempt in 0..3 {
        let started = std::time::Instant::now();
        let e = store
            .append_events("prod", &[exposure("e3", "u3")])
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Unavailable { .. }),
            "attempt {attempt}: {e:?}"
        );
        assert!(
            e.to_string().contains(&format!("127.0.0.1:{}", redis.port)),
            "names the server: {e}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "fails fast");
        let e = store.ping().await.unwrap_err();
        assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
    }

    redis.restart().await;
    // The same store object reconnects by itself; the AOF kept every acknowledged write.
    crate::support::eventually("the store to answer again", PATIENCE, || async {
        store.ping().await.ok()
    })
    .await;
    let prod = store.environment("prod").await.unwrap().unwrap();
    assert_eq!(prod.document.revision, 2);
    assert_eq!(
        store
            .audit("prod", &AuditQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(scanned_ids(&store, "prod").await, ["e1", "e2"]);
    // Duplicates are still recognised after the restart (the id set was persisted too).
    let again = store
        .append_events("prod", &[exposure("e2", "u2"), exposure("e3", "u3")])
        .await
        .unwrap();
    assert_eq!(again, [false, true]);
    // The feed reconnected and asks for a resync (changes may have been missed).
    let resynced = tokio::time::timeout(PATIENCE, async {
        while let Some(change) = feed.recv().await {
            if change == StoreChange::Resync {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(resynced);
}

#[tokio::test]
async fn bad_redis_settings_fail_clearly() {
    let e = RedisStore::connect("http://127.0.0.1:1", "tailor")
        .await
        .err()
        .unwrap();
    assert!(format!("{e}").contains("invalid Redis URL"), "{e}");
    // Nothing listens on a port just released: connection refused, named.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = RedisStore::connect(&format!("redis://127.0.0.1:{port}"), "tailor")
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains(&format!("could not connect to Redis at 127.0.0.1:{port}")),
        "{e}"
    );
    let redis = Redis::start().await;
    let e = RedisStore::connect(&redis.url(), "bad{prefix}")
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("invalid Redis key prefix"), "{e}");
}

/// Leases: one holder at a time; a holder whose lease lapsed and was granted again cannot
/// write a checkpoint or publish aggregates (fenced, nothing changed), and the new holder can.
#[tokio::test]
async fn a_lapsed_lease_fences_its_former_holder() {
    let redis = Redis::start().await;
    let a = RedisStore::connect(&redis.url(), "tailor").await.unwrap();
    let b = RedisStore::connect(&redis.url(), "tailor").await.unwrap();
    let (sa, sb) = (a.shared().unwrap(), b.shared().unwrap());
    let short = Duration::from_millis(300);
    let lease_a = sa
        .acquire_lease("prod", 3, "a", short)
        .await
        .unwrap()
        .unwrap();
    assert!(sb
        .acquire_lease("prod", 3, "b", short)
        .await
        .unwrap()
        .is_none());
    assert!(sa.renew_lease("prod", 3, &lease_a, short).await.unwrap());
    let checkpoint = |cursor: &str, state: &[u8]| Checkpoint {
        cursor: EventCursor(cursor.into()),
        state: state.to_vec(),
        written_at: 1,
    };
    a.put_checkpoint("prod", 3, &checkpoint("", b"from a"), Some(&lease_a))
        .await
        .unwrap();
    // A pauses past its lease; B is granted the partition.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let lease_b = sb
        .acquire_lease("prod", 3, "b", Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(lease_a, lease_b);
    assert!(!sa.renew_lease("prod", 3, &lease_a, short).await.unwrap());
    let fenced = a
        .put_checkpoint("prod", 3, &checkpoint("", b"stale"), Some(&lease_a))
        .await
        .unwrap_err();
    assert!(
        matches!(fenced, StoreError::Fenced { partition: 3, .. }),
        "{fenced}"
    );
    let aggregates = PublishedAggregates {
        json: "{}".into(),
        cursor: EventCursor("1-0".into()),
    };
    assert!(matches!(
        sa.publish_aggregates("prod", 3, &lease_a, &aggregates)
            .await,
        Err(StoreError::Fenced { .. })
    ));
    assert_eq!(
        b.checkpoint("prod", 3).await.unwrap().unwrap().state,
        b"from a",
        "the stale write changed nothing"
    );
    b.put_checkpoint("prod", 3, &checkpoint("", b"from b"), Some(&lease_b))
        .await
        .unwrap();
    sb.publish_aggregates("prod", 3, &lease_b, &aggregates)
        .await
        .unwrap();
    assert_eq!(
        b.checkpoint("prod", 3).await.unwrap().unwrap().state,
        b"from b"
    );
    let published = sa.published_aggregates("prod", 16).await.unwrap();
    assert_eq!(published[3].as_ref(), Some(&aggregates));
    assert!(published[0].is_none());
    // Without a lease nothing is written; releasing frees the partition for another.
    assert!(matches!(
        b.put_checkpoint("prod", 3, &checkpoint("", b"x"), None)
            .await,
        Err(StoreError::Fenced { .. })
    ));
    sa.release_lease("prod", 3, &lease_a).await.unwrap();
    assert!(sa
        .acquire_lease("prod", 3, "a", short)
        .await
        .unwrap()
        .is_none());
    sb.release_lease("prod", 3, &lease_b).await.unwrap();
    assert!(sa
        .acquire_lease("prod", 3, "a", short)
        .await
        .unwrap()
        .is_some());
}

/// The de-duplication window `W`: an id is remembered in the set of the `W`-day period it was
/// stored in; a resend is recognised while that period is the current or the previous one, and
/// stored again after. (The test moves the id set to an earlier period instead of waiting.)
#[tokio::test]
async fn event_ids_are_remembered_for_the_dedup_window() {
    let redis = Redis::start().await;
    let store = RedisStore::connect(&redis.url(), "tailor")
        .await
        .unwrap()
        .with_dedup_window_days(2);
    let fresh = store
        .append_events("prod", &[exposure("e1", "u"), exposure("e1", "u")])
        .await
        .unwrap();
    assert_eq!(fresh, [true, false]);
    let period = unix_now().div_euclid(86_400).div_euclid(2);
    let sets = redis.cli(&["--scan", "--pattern", "tailor:{p:prod:*}:ids:*"]);
    let set = sets.split_whitespace().next().unwrap().to_string();
    assert!(set.ends_with(&format!(":ids:{period}")), "{set}");
    // It expires when the next period ends: between 2 and 4 days from now.
    let ttl: i64 = redis.cli(&["TTL", &set]).trim().parse().unwrap();
    assert!(ttl > 2 * 86_400 && ttl <= 4 * 86_400, "TTL {ttl}");
    let base = set.trim_end_matches(&period.to_string()).to_string();
    // Stored in the previous period: still recognised.
    redis.cli(&["RENAME", &set, &format!("{base}{}", period - 1)]);
    assert_eq!(
        store
            .append_events("prod", &[exposure("e1", "u")])
            .await
            .unwrap(),
        [false]
    );
    // Two periods ago: outside the window, so the resend is stored again.
    redis.cli(&[
        "RENAME",
        &format!("{base}{}", period - 1),
        &format!("{base}{}", period - 2),
    ]);
    assert_eq!(
        store
            .append_events("prod", &[exposure("e1", "u")])
            .await
            .unwrap(),
        [true]
    );
}

/// Redis data written before partitions (one stream and id set per environment) moves into the
/// partitions at start: every event once, the old keys gone, resends still recognised.
#[tokio::test]
async fn events_stored_before_partitions_move_into_them() {
    let redis = Redis::start().await;
    let store = RedisStore::connect(&redis.url(), "tailor").await.unwrap();
    store
        .create_environment("prod", &document("prod", 1), DEFAULT_PARTITIONS)
        .await
        .unwrap();
    redis.cli(&["HDEL", "tailor:{env:prod}:config", "partitions"]);
    let old: Vec<EncodedEvent<'static>> = (0..40)
        .map(|i| exposure(&format!("old{i}"), &format!("user{}", i % 9)))
        .collect();
    for e in &old {
        redis.cli(&["SADD", "tailor:{env:prod}:event-ids", e.event.id()]);
        redis.cli(&[
            "XADD",
            "tailor:{env:prod}:events",
            "*",
            "e",
            e.json.as_ref(),
        ]);
    }
    let fresh = RedisStore::connect(&redis.url(), "tailor").await.unwrap();
    assert_eq!(fresh.migrate_unpartitioned_logs().await.unwrap(), 40);
    assert_eq!(fresh.migrate_unpartitioned_logs().await.unwrap(), 0);
    let ids: Vec<String> = scanned_events(&fresh, "prod")
        .await
        .iter()
        .map(|e| e.id().to_string())
        .collect();
    let mut expected: Vec<String> = (0..40).map(|i| format!("old{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(
        redis.cli(&["EXISTS", "tailor:{env:prod}:events"]).trim(),
        "0"
    );
    assert_eq!(
        redis
            .cli(&["HGET", "tailor:{env:prod}:config", "partitions"])
            .trim(),
        "16"
    );
    assert_eq!(
        fresh.append_events("prod", &old[..3]).await.unwrap(),
        [false, false, false]
    );
}
