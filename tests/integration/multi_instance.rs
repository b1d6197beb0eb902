//! Several `tailor-server` processes sharing one Redis (`TAILOR_REDIS_URL`), each test with its
//! own `redis-server` (or 3-master cluster) on free loopback ports:
//! - a write on one instance reaches SSE clients of the others within a second; keys and new
//!   environments propagate; concurrent first starts agree;
//! - events split across instances (and resent to the other one) are counted once, with the same
//!   results on every instance;
//! - Redis killed and restarted mid-traffic: configs still served, clear 503s for writes and
//!   events, `/readyz` not ready, then recovery without a restart and no acknowledged event lost;
//! - an instance cut off from Redis (through a proxy) while another keeps writing catches up by
//!   revision when it is back;
//! - a Redis without the append-only file losing its data on restart: SDKs are still served and
//!   the instances store their configs and keys again;
//! - the same over a Redis Cluster;
//! - a dashboard session opened on one instance is accepted, and ended, on another;
//! - an instance started after events were stored replays the shared log to the same results.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    eventually, fixtures, send, Redis, RedisCluster, Resp, Server, TcpProxy, PATIENCE,
};

/// The propagation target: a change made through one instance reaches SDKs on the others.
const PROPAGATION: Duration = Duration::from_secs(1);

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000
}

/// Starts `n` instances on `redis_url` at the same time (they race through the first start).
pub(crate) async fn instances(n: usize, redis_url: &str) -> Vec<Server> {
    let env = [("TAILOR_REDIS_URL", redis_url)];
    join_all((0..n).map(|_| Server::start_with(&env))).await
}

pub(crate) fn exposure(id: &str, user: &str, variant: &str, ts: i64) -> Value {
    json!({"type": "exposure", "id": id, "timestamp": ts, "user_key": user, "flag": "homepage",
           "variant": variant, "experiment": "hp", "rule": 0,
           "personalized": variant == "treatment", "revision": 2, "spec_version": 1})
}

pub(crate) fn conversion(id: &str, user: &str, ts: i64) -> Value {
    json!({"type": "conversion", "id": id, "timestamp": ts, "user_key": user,
           "event": "purchase", "value": 10.0})
}

pub(crate) async fn post_events(server: &Server, key: &str, events: &[Value]) -> Resp {
    send(
        server
            .with_key(Method::POST, "/sdk/v1/events", key)
            .json(&json!({"events": events})),
    )
    .await
}

/// A running experiment `hp` on a 50/50 flag in `production`, and an SDK key; waits until every
/// instance serves both.
pub(crate) async fn experiment_setup(servers: &[Server]) -> String {
    let a = &servers[0];
    a.create("production", "experiments", &fixtures::experiment("hp"))
        .await;
    let mut flag = fixtures::split_flag("homepage", 10_000);
    flag["rules"][0]["experiment"] = json!("hp");
    let created = a.create("production", "flags", &flag).await;
    let revision = created.revision();
    let (_, sdk) = a.create_key("sdk", Some("production")).await;
    for server in servers {
        let sdk = sdk.clone();
        eventually(
            "every instance to serve the key and config",
            PATIENCE,
            || {
                let sdk = sdk.clone();
                async move {
                    let res = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
                    (res.status == StatusCode::OK && res.revision() >= revision).then_some(())
                }
            },
        )
        .await;
    }
    sdk
}

/// The sum of a per-key count (`XLEN`, `SCARD`) over an environment's partition keys ending in
/// `suffix` (`events`: the streams; `ids:*`: the de-duplication id sets).
pub(crate) fn partition_count(
    redis: &Redis,
    environment: &str,
    suffix: &str,
    count: &str,
) -> usize {
    let keys = redis.cli(&[
        "--scan",
        "--pattern",
        &format!("tailor:{{p:{environment}:*}}:{suffix}"),
    ]);
    keys.split_whitespace()
        .map(|k| redis.cli(&[count, k]).trim().parse::<usize>().unwrap())
        .sum()
}

/// Events stored for an environment: the ids in its partitions' de-duplication sets (the
/// streams themselves are trimmed by checkpoints).
pub(crate) fn stored_events(redis: &Redis, environment: &str) -> usize {
    partition_count(redis, environment, "ids:*", "SCARD")
}

/// `(users, converted)` per variant of experiment `hp`, from one instance (once its results
/// are loaded: a starting instance replays the stored events in the background).
pub(crate) async fn arms(server: &Server) -> Vec<(String, u64, u64)> {
    let res = eventually("results loaded", PATIENCE, || async {
        let res = send(server.admin(
            Method::GET,
            "/api/v1/environments/production/experiments/hp/results",
        ))
        .await;
        (res.status != StatusCode::SERVICE_UNAVAILABLE).then_some(res)
    })
    .await;
    res.assert_status(StatusCode::OK);
    let mut out: Vec<(String, u64, u64)> = res.body["overall"]["arms"]
        .as_array()
        .map(|arms| {
            arms.iter()
                .map(|a| {
                    (
                        a["variant"].as_str().unwrap_or_default().to_string(),
                        a["users"].as_u64().unwrap_or(0),
                        a["converted"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

async fn total_users(server: &Server) -> u64 {
    arms(server).await.iter().map(|a| a.1).sum()
}

/// Waits until every instance reports exactly `expected`.
async fn results_agree(servers: &[Server], expected: &[(String, u64, u64)]) {
    for (i, server) in servers.iter().enumerate() {
        let seen = Mutex::new(Vec::new());
        let outcome = tokio::time::timeout(PATIENCE, async {
            loop {
                let got = arms(server).await;
                if got == expected {
                    return;
                }
                *seen.lock().unwrap() = got;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            outcome.is_ok(),
            "instance {i}: results {:?}, expected {expected:?}",
            seen.lock().unwrap()
        );
    }
}

#[tokio::test]
async fn a_write_on_one_instance_reaches_sse_clients_of_the_others() {
    let redis = Redis::start().await;
    let servers = instances(3, &redis.url()).await;
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    // The concurrent first starts agree on one set of environments.
    for server in &servers {
        let res = send(server.admin(Method::GET, "/api/v1/environments")).await;
        res.assert_status(StatusCode::OK);
        assert!(
            res.text.contains("development") && res.text.contains("production"),
            "{}",
            res.text
        );
    }

    // A key created on A is accepted by B and C.
    let (key_id, sdk) = a.create_key("sdk", Some("production")).await;
    for server in [b, c] {
        eventually("the key to reach every instance", PATIENCE, || async {
            let res = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
            (res.status == StatusCode::OK).then_some(())
        })
        .await;
    }
    let mut on_b = b.sse(&sdk, None).await;
    let mut on_c = c.sse(&sdk, None).await;
    let first = on_b.next_config(PATIENCE).await.revision;
    assert_eq!(on_c.next_config(PATIENCE).await.revision, first);

    // A write on A: on B and C within a second.
    for round in 0..3 {
        let written = a
            .create(
                "production",
                "flags",
                &fixtures::bool_flag(&format!("flag-{round}")),
            )
            .await;
        let at = Instant::now();
        let revision = written.revision();
        for (name, sse) in [("B", &mut on_b), ("C", &mut on_c)] {
            let event = sse.next_config(PATIENCE).await;
            let elapsed = at.elapsed();
            assert_eq!(event.revision, revision, "{name} got the newest revision");
            assert!(
                event.document["flags"]
                    .to_string()
                    .contains(&format!("flag-{round}")),
                "{name}: {}",
                event.document
            );
            assert!(
                elapsed <= PROPAGATION,
                "{name} received revision {revision} after {elapsed:?}"
            );
        }
    }

    // A write on C reaches A's and B's clients; the writer's own clients get it once.
    let mut on_a = a.sse(&sdk, None).await;
    let current = on_a.next_config(PATIENCE).await.revision;
    let mut on_c = c.sse(&sdk, Some(&current.to_string())).await;
    let toggled = send(
        c.admin(
            Method::POST,
            "/api/v1/environments/production/flags/flag-0/toggle",
        )
        .json(&json!({"enabled": true})),
    )
    .await;
    toggled.assert_status(StatusCode::OK);
    let revision = toggled.revision();
    assert_eq!(revision, current + 1, "C wrote on top of A's revisions");
    assert_eq!(on_a.next_config(PROPAGATION).await.revision, revision);
    assert_eq!(on_b.next_config(PROPAGATION).await.revision, revision);
    assert_eq!(on_c.next_config(PATIENCE).await.revision, revision);
    let duplicate = on_c.next_frame(Duration::from_millis(300)).await;
    assert!(
        duplicate
            .as_ref()
            .is_none_or(|f| f.event.as_deref() != Some("config")),
        "a revision is pushed once: {duplicate:?}"
    );

    // An environment created on B appears on A.
    send(
        b.admin(Method::POST, "/api/v1/environments")
            .json(&json!({"key": "staging"})),
    )
    .await
    .assert_status(StatusCode::CREATED);
    eventually("the new environment on A", PATIENCE, || async {
        let res = send(a.admin(Method::GET, "/api/v1/environments/staging/config")).await;
        (res.status == StatusCode::OK).then_some(())
    })
    .await;

    // A key revoked on A stops the streams on B.
    send(a.admin(Method::DELETE, &format!("/api/v1/keys/{key_id}")))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    eventually("the revocation on B", PATIENCE, || async {
        let res = send(b.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
        (res.status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
}

#[tokio::test]
async fn events_split_across_instances_are_counted_once() {
    let redis = Redis::start().await;
    let servers = instances(2, &redis.url()).await;
    let sdk = experiment_setup(&servers).await;
    let now = now_ms();
    let users = 100;
    let mut batches: Vec<Vec<Value>> = Vec::new();
    for chunk in (0..users).collect::<Vec<_>>().chunks(10) {
        let batch = chunk
            .iter()
            .flat_map(|&i| {
                let user = format!("u{i}");
                let variant = if i % 2 == 0 { "control" } else { "treatment" };
                let mut events = vec![exposure(&format!("x{i}"), &user, variant, now + i)];
                if i % 3 == 0 {
                    events.push(conversion(&format!("c{i}"), &user, now + 1000 + i));
                }
                events
            })
            .collect();
        batches.push(batch);
    }
    // Each batch goes to one instance, then is resent to the other (an SDK retrying after a
    // lost acknowledgement, say, through a load balancer).
    for (n, batch) in batches.iter().enumerate() {
        let (first, second) = if n % 2 == 0 {
            (&servers[0], &servers[1])
        } else {
            (&servers[1], &servers[0])
        };
        let res = post_events(first, &sdk, batch).await;
        res.assert_status(StatusCode::OK);
        assert_eq!(res.body["accepted"], batch.len(), "{}", res.text);
        assert_eq!(res.body["duplicates"], 0, "{}", res.text);
        let again = post_events(second, &sdk, batch).await;
        again.assert_status(StatusCode::OK);
        assert_eq!(again.body["duplicates"], batch.len(), "{}", again.text);
    }
    // Both halves at once, concurrently, to both instances: still once.
    let resend = join_all(
        batches
            .iter()
            .zip(servers.iter().cycle())
            .map(|(batch, server)| post_events(server, &sdk, batch)),
    )
    .await;
    assert!(resend
        .iter()
        .all(|r| r.body["duplicates"] == r.body["accepted"]));
    // Converters: i % 3 == 0, split by parity: 17 of each.
    let expected = vec![
        ("control".to_string(), 50, 17),
        ("treatment".to_string(), 50, 17),
    ];
    results_agree(&servers, &expected).await;
    let stored = stored_events(&redis, "production");
    assert_eq!(
        stored,
        users as usize + 34,
        "each event stored once in Redis"
    );
}

/// One client posting unique batches alternately to the instances, retrying each batch until
/// one acknowledges it (as the SDK does): `(acknowledged user keys, 503s seen)`.
struct Traffic {
    acked: Arc<Mutex<BTreeSet<String>>>,
    refused: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(urls: Vec<String>, sdk: String) -> Traffic {
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
            tokio::spawn(async move {
                let http = crate::support::client();
                let now = now_ms();
                let mut n = 0usize;
                // Bounded: at most 5000 batches, and it stops when told.
                while !stop.load(Ordering::SeqCst) && n < 5000 {
                    let users: Vec<String> = (0..5).map(|i| format!("t{n}-{i}")).collect();
                    let events: Vec<Value> = users
                        .iter()
                        .enumerate()
                        .map(|(i, u)| {
                            let variant = if i % 2 == 0 { "control" } else { "treatment" };
                            exposure(&format!("x-{u}"), u, variant, now)
                        })
                        .collect();
                    let body = json!({"events": events});
                    let mut attempt = 0usize;
                    loop {
                        let url = &urls[(n + attempt) % urls.len()];
                        let res = http
                            .post(format!("{url}/sdk/v1/events"))
                            .bearer_auth(&sdk)
                            .json(&body)
                            .send()
                            .await;
                        match res {
                            Ok(r) if r.status() == StatusCode::OK => {
                                acked.lock().unwrap().extend(users.iter().cloned());
                                break;
                            }
                            Ok(r) => {
                                let status = r.status();
                                let text = r.text().await.unwrap_or_default();
                                assert_eq!(
                                    status,
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    "only 503 while Redis is away: {text}"
                                );
                                refused.lock().unwrap().push(text);
                            }
                            Err(e) => panic!("request failed: {e}"),
                        }
                        attempt += 1;
                        if stop.load(Ordering::SeqCst) && attempt > 200 {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    n += 1;
                }
            })
        };
        Traffic {
            acked,
            refused,
            stop,
            task,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn refused(&self) -> usize {
        self.refused.lock().unwrap().len()
    }

    async fn finish(self) -> (BTreeSet<String>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the traffic task");
        let acked = self.acked.lock().unwrap().clone();
        let refused = self.refused.lock().unwrap().clone();
        (acked, refused)
    }
}

#[tokio::test]
async fn redis_killed_and_restarted_mid_traffic() {
    let mut redis = Redis::start_durable().await;
    let servers = instances(2, &redis.url()).await;
    let (a, b) = (&servers[0], &servers[1]);
    let sdk = experiment_setup(&servers).await;
    let mut on_b = b.sse(&sdk, None).await;
    let before = on_b.next_config(PATIENCE).await.revision;
    let traffic = Traffic::start(vec![a.url(""), b.url("")], sdk.clone());
    eventually("traffic before the outage", PATIENCE, || async {
        (traffic.acked() >= 50).then_some(())
    })
    .await;

    redis.kill9();
    for server in [a, b] {
        // Readiness reports the store, with a reason.
        let ready = eventually("/readyz to report the outage", PATIENCE, || async {
            let res = send(server.anon(Method::GET, "/readyz")).await;
            (res.status == StatusCode::SERVICE_UNAVAILABLE).then_some(res)
        })
        .await;
        assert_eq!(ready.body["status"], "store_unavailable", "{}", ready.text);
        // Configs are still served, from memory.
        let config = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
        config.assert_status(StatusCode::OK);
        assert_eq!(config.revision(), before);
        // Writes are refused with a clear 503.
        let write = send(
            server
                .admin(Method::POST, "/api/v1/environments/production/flags")
                .json(&fixtures::bool_flag("during-outage")),
        )
        .await;
        write.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(write.body["error"], "unavailable", "{}", write.text);
        let message = write.body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("Redis at 127.0.0.1") && message.contains("unavailable"),
            "{message}"
        );
        let events = post_events(
            server,
            &sdk,
            &[exposure("x-outage", "outage", "control", now_ms())],
        )
        .await;
        events.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Redis");
    }
    eventually(
        "the traffic to be refused during the outage",
        PATIENCE,
        || async { (traffic.refused() > 0).then_some(()) },
    )
    .await;
    let during = traffic.acked();

    redis.restart().await;
    for server in [a, b] {
        eventually("/readyz after the restart", PATIENCE, || async {
            let res = send(server.anon(Method::GET, "/readyz")).await;
            (res.status == StatusCode::OK).then_some(())
        })
        .await;
    }
    eventually("traffic after the outage", PATIENCE, || async {
        (traffic.acked() >= during + 50).then_some(())
    })
    .await;
    let (acked, refused) = traffic.finish().await;
    assert!(!refused.is_empty(), "the outage was seen by the client");
    assert!(
        refused.iter().all(|r| r.contains("\"unavailable\"")),
        "{refused:?}"
    );

    // Propagation recovered without a restart: a write on A reaches B's (still open) stream.
    let written = a
        .create("production", "flags", &fixtures::bool_flag("after-outage"))
        .await;
    assert_eq!(
        on_b.next_config(PATIENCE).await.revision,
        written.revision()
    );
    // Every acknowledged event is counted, once, on both instances.
    let expected = acked.len() as u64;
    for server in [a, b] {
        let users = eventually(
            "every acknowledged event in the results",
            PATIENCE,
            || async {
                let users = total_users(server).await;
                (users >= expected).then_some(users)
            },
        )
        .await;
        assert_eq!(
            users, expected,
            "no acknowledged event lost or counted twice"
        );
    }
    // The same arms on both (each serves the partitions it does not own from what their owner
    // published, which follows within seconds).
    eventually(
        "both instances to report the same arms",
        PATIENCE,
        || async {
            let (on_a, on_b) = (arms(a).await, arms(b).await);
            (on_a == on_b).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn an_instance_cut_off_from_redis_serves_its_last_config_then_catches_up() {
    let redis = Redis::start().await;
    let proxy = TcpProxy::start(redis.port).await;
    let a = Server::start_with(&[("TAILOR_REDIS_URL", &redis.url())]).await;
    let b = Server::start_with(&[("TAILOR_REDIS_URL", &proxy.url())]).await;
    let servers = [a, b];
    let sdk = experiment_setup(&servers).await;
    let [a, b] = &servers;
    let mut on_b = b.sse(&sdk, None).await;
    let before = on_b.next_config(PATIENCE).await.revision;

    proxy.cut();
    let ready = eventually("B to notice", PATIENCE, || async {
        let res = send(b.anon(Method::GET, "/readyz")).await;
        (res.status == StatusCode::SERVICE_UNAVAILABLE).then_some(res)
    })
    .await;
    assert_eq!(ready.body["status"], "store_unavailable");
    // A keeps working: three changes and some events that B does not see yet.
    for i in 0..3 {
        a.create(
            "production",
            "segments",
            &fixtures::segment(&format!("seg-{i}")),
        )
        .await;
    }
    let now = now_ms();
    let events: Vec<Value> = (0..10)
        .map(|i| exposure(&format!("cut-{i}"), &format!("cut-{i}"), "control", now))
        .collect();
    post_events(a, &sdk, &events)
        .await
        .assert_status(StatusCode::OK);
    // B serves what it has and refuses writes clearly.
    let config = send(b.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
    config.assert_status(StatusCode::OK);
    assert_eq!(config.revision(), before);
    let write = send(
        b.admin(Method::POST, "/api/v1/environments/production/segments")
            .json(&fixtures::segment("from-b")),
    )
    .await;
    write.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Redis");

    proxy.restore();
    // B catches up by revision: its clients get the newest config (intermediate revisions are
    // skipped: each event is a whole config).
    let caught_up = on_b.next_config(PATIENCE).await;
    assert_eq!(caught_up.revision, before + 3);
    assert!(caught_up.document["segments"].to_string().contains("seg-2"));
    // Its results include the events stored through A meanwhile.
    eventually("B's results to include A's events", PATIENCE, || async {
        (total_users(b).await == 10).then_some(())
    })
    .await;
    // And it writes again, on top of A's revisions.
    let res = send(
        b.admin(Method::POST, "/api/v1/environments/production/segments")
            .json(&fixtures::segment("from-b")),
    )
    .await;
    res.assert_status(StatusCode::CREATED);
    assert_eq!(res.revision(), before + 4);
    eventually("A to see B's write", PATIENCE, || async {
        (a.revision("production").await == before + 4).then_some(())
    })
    .await;
}

#[tokio::test]
async fn instances_share_a_redis_cluster() {
    let cluster = RedisCluster::start(3).await;
    let servers = instances(2, &cluster.url()).await;
    let sdk = experiment_setup(&servers).await;
    let (a, b) = (&servers[0], &servers[1]);
    let mut on_b = b.sse(&sdk, None).await;
    on_b.next_config(PATIENCE).await;
    let written = a
        .create("production", "flags", &fixtures::bool_flag("clustered"))
        .await;
    let at = Instant::now();
    assert_eq!(
        on_b.next_config(PATIENCE).await.revision,
        written.revision()
    );
    assert!(at.elapsed() <= PROPAGATION, "took {:?}", at.elapsed());

    let now = now_ms();
    let events: Vec<Value> = (0..40)
        .map(|i| {
            let variant = if i % 2 == 0 { "control" } else { "treatment" };
            exposure(&format!("k{i}"), &format!("k{i}"), variant, now)
        })
        .collect();
    for (n, chunk) in events.chunks(10).enumerate() {
        let server = &servers[n % 2];
        post_events(server, &sdk, chunk)
            .await
            .assert_status(StatusCode::OK);
        let other = &servers[(n + 1) % 2];
        let again = post_events(other, &sdk, chunk).await;
        assert_eq!(again.body["duplicates"], chunk.len(), "{}", again.text);
    }
    results_agree(
        &servers,
        &[
            ("control".to_string(), 20, 0),
            ("treatment".to_string(), 20, 0),
        ],
    )
    .await;
    // The environments' keys are spread over the masters (distinct hash tags).
    let used = cluster
        .nodes
        .iter()
        .filter(|n| n.cli(&["DBSIZE"]).trim() != "0")
        .count();
    assert!(used >= 2, "keys on {used} of 3 masters");
}

#[tokio::test]
async fn redis_losing_its_data_does_not_take_sdks_down() {
    let mut redis = Redis::start_volatile().await;
    let servers = instances(2, &redis.url()).await;
    let sdk = experiment_setup(&servers).await;
    let (a, b) = (&servers[0], &servers[1]);
    let mut on_b = b.sse(&sdk, None).await;
    let before = on_b.next_config(PATIENCE).await.revision;
    assert!(
        a.log().contains("appendonly no"),
        "the missing AOF is warned about at start"
    );

    redis.kill9();
    redis.restart().await; // empty: no AOF
    for server in [a, b] {
        eventually("/readyz after the restart", PATIENCE, || async {
            let res = send(server.anon(Method::GET, "/readyz")).await;
            (res.status == StatusCode::OK).then_some(())
        })
        .await;
    }
    // The instances resynced with the empty store, noticed the loss and stored what they serve
    // again ...
    eventually("the data loss to be repaired", PATIENCE, || async {
        let revision = redis.cli(&["HGET", "tailor:{env:production}:config", "revision"]);
        (revision.trim() == before.to_string()).then_some(())
    })
    .await;
    assert!(
        a.log().contains("was Redis data lost") || b.log().contains("was Redis data lost"),
        "the loss is logged"
    );
    // ... and still accept the SDK key and serve the config they had.
    for server in [a, b] {
        let config = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
        config.assert_status(StatusCode::OK);
        assert_eq!(config.revision(), before);
    }
    let frame = on_b.next_frame(Duration::from_millis(500)).await;
    assert!(
        frame
            .as_ref()
            .is_none_or(|f| f.event.as_deref() != Some("config")),
        "no config is pushed over the one served: {frame:?}"
    );
    // Redis has the keys back too, and changes work again, reaching the other instance.
    let keys: usize = redis
        .cli(&["HLEN", "tailor:{global}:keys"])
        .trim()
        .parse()
        .unwrap();
    assert!(keys >= 2, "admin and SDK keys restored: {keys}");
    let written = a
        .create("production", "flags", &fixtures::bool_flag("after-loss"))
        .await;
    assert_eq!(written.revision(), before + 1);
    assert_eq!(on_b.next_config(PATIENCE).await.revision, before + 1);
}

/// A key an instance serves keeps authenticating when the shared store lacks it (Redis lost its
/// data and another instance is storing the keys again one at a time, the window in which this
/// used to answer 401), and is stored again. Deterministic: the key is removed from Redis, then
/// a key change makes every instance re-read the keys.
#[tokio::test]
async fn a_key_missing_from_redis_keeps_authenticating_and_is_stored_again() {
    use sha2::{Digest, Sha256};

    let redis = Redis::start().await;
    let servers = instances(2, &redis.url()).await;
    let sdk = experiment_setup(&servers).await;
    let digest = hex::encode(Sha256::digest(sdk.as_bytes()));
    let id = redis
        .cli(&["HGET", "tailor:{global}:key-digests", &digest])
        .trim()
        .to_string();
    assert!(id.starts_with("key_"), "the SDK key's id: {id:?}");
    redis.cli(&["HDEL", "tailor:{global}:keys", &id]);
    redis.cli(&["HDEL", "tailor:{global}:key-digests", &digest]);

    servers[0].create_key("sdk", Some("production")).await;
    eventually("the SDK key to be stored again", PATIENCE, || async {
        let stored = redis.cli(&["HEXISTS", "tailor:{global}:keys", &id]);
        (stored.trim() == "1").then_some(())
    })
    .await;
    for server in &servers {
        send(server.with_key(Method::GET, "/sdk/v1/config", &sdk))
            .await
            .assert_status(StatusCode::OK);
    }
}

/// A dashboard session opened on one instance is accepted by another (no sticky sessions), and
/// signing out on that other instance ends it on the first.
#[tokio::test]
async fn a_dashboard_session_works_on_every_instance() {
    use reqwest::header::COOKIE;

    use crate::dashboard::{get_with_cookie, http_sign_in, no_redirects};
    use crate::support::ADMIN_KEY;

    let redis = Redis::start().await;
    let servers = instances(2, &redis.url()).await;
    let http = no_redirects();
    let (session, csrf) = http_sign_in(&servers[0], &http, ADMIN_KEY).await;
    let cookie = format!("tailor_session={session}");
    let page = get_with_cookie(&http, servers[1].url("/dashboard"), &cookie).await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the other instance knows the session"
    );
    let res = http
        .post(servers[1].url("/dashboard/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = get_with_cookie(&http, servers[0].url("/dashboard"), &cookie).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed out everywhere");
}

/// An instance started after events were stored serves configs at once and, once it has replayed
/// the shared log, reports the same results as the instances that saw the events arrive.
#[tokio::test]
async fn an_instance_started_later_replays_the_shared_log() {
    let redis = Redis::start().await;
    let servers = instances(1, &redis.url()).await;
    let sdk = experiment_setup(&servers).await;
    let now = now_ms();
    let events: Vec<Value> = (0..300)
        .map(|i| {
            let variant = if i % 2 == 0 { "control" } else { "treatment" };
            exposure(&format!("x{i}"), &format!("u{i}"), variant, now + i)
        })
        .collect();
    for batch in events.chunks(100) {
        post_events(&servers[0], &sdk, batch)
            .await
            .assert_status(StatusCode::OK);
    }
    let expected = vec![
        ("control".to_string(), 150, 0),
        ("treatment".to_string(), 150, 0),
    ];
    results_agree(&servers, &expected).await;

    let later = Server::start_with(&[("TAILOR_REDIS_URL", &redis.url())]).await;
    send(later.with_key(Method::GET, "/sdk/v1/config", &sdk))
        .await
        .assert_status(StatusCode::OK);
    results_agree(std::slice::from_ref(&later), &expected).await;
    // Events after its start reach it through its tail.
    post_events(
        &servers[0],
        &sdk,
        &[exposure("late", "late-user", "treatment", now)],
    )
    .await
    .assert_status(StatusCode::OK);
    let expected = vec![
        ("control".to_string(), 150, 0),
        ("treatment".to_string(), 151, 0),
    ];
    results_agree(&[servers.into_iter().next().unwrap(), later], &expected).await;
}

/// An instance started while Redis is still replaying its append-only file (`LOADING`) waits
/// for it rather than exiting: bound meanwhile, `/readyz` answers 503 `store_loading` and SDK
/// requests a clear 503; then it serves the config stored before. A wrong password still fails
/// the start at once.
#[tokio::test]
async fn an_instance_started_while_redis_loads_its_data_waits_for_it() {
    let mut redis = Redis::start().await;
    let url = redis.url();
    let (sdk, revision) = {
        let first = Server::start_with(&[("TAILOR_REDIS_URL", &url)]).await;
        let created = first
            .create("production", "flags", &fixtures::bool_flag("stored-before"))
            .await;
        let (_, sdk) = first.create_key("sdk", Some("production")).await;
        (sdk, created.revision())
    };
    // 20 000 keys at 100 µs each: a LOADING phase of a few seconds after the restart.
    let ballast = "for i = 1, 20000 do redis.call('SET', 'ballast:' .. i, 'x') end return 1";
    assert_eq!(redis.cli(&["EVAL", ballast, "0"]).trim(), "1");
    redis.kill9();
    redis.restart_loading_slowly(100).await;

    let mut server = Server::start_unready(&[("TAILOR_REDIS_URL", &url)]);
    let waiting = server
        .wait_for_readyz(StatusCode::SERVICE_UNAVAILABLE)
        .await;
    assert_eq!(waiting["status"], "store_loading", "{waiting}");
    let message = waiting["message"].as_str().unwrap_or_default();
    assert!(message.contains("loading its dataset"), "{message}");
    send(server.anon(Method::GET, "/healthz"))
        .await
        .assert_status(StatusCode::OK);
    let early = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
    early.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Redis");

    server.wait_for_readyz(StatusCode::OK).await;
    let config = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
    config.assert_status(StatusCode::OK);
    assert_eq!(config.revision(), revision);
    assert_eq!(
        config.body["flags"][0]["key"], "stored-before",
        "{}",
        config.text
    );
    let log = server.log();
    assert!(
        log.contains("waiting for Redis to load its dataset"),
        "{log}"
    );

    // Not a state that passes: a wrong password ends the start at once, saying why.
    redis.cli(&["CONFIG", "SET", "requirepass", "the-right-password"]);
    let started = Instant::now();
    let wrong = format!("redis://:a-wrong-password@127.0.0.1:{}", redis.port);
    let mut refused = Server::start_unready(&[("TAILOR_REDIS_URL", &wrong)]);
    let exit = refused.exit_within(PATIENCE).await;
    let log = refused.log();
    assert!(exit.is_some_and(|e| !e.success()), "{exit:?}\n{log}");
    assert!(started.elapsed() < Duration::from_secs(5), "{log}");
    assert!(
        log.contains("could not connect to Redis at 127.0.0.1"),
        "{log}"
    );
    assert!(!log.contains("a-wrong-password"), "{log}");
}
