//! Partitioned event logs across instances (`server/src/collector.rs`):
//! - three instances on a 3-master Redis Cluster, two of them killed (`kill -9`) and restarted
//!   during ingest, report results identical, field for field, to one embedded instance that
//!   received the same events; the partitions are spread over the live instances;
//! - checkpoints trim Redis' partition streams, and instances restarted afterwards load the
//!   checkpoints to the same results;
//! - the embedded store restarts from its checkpoints plus the events after them.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::multi_instance::{
    conversion, experiment_setup, exposure, now_ms, partition_count, post_events, stored_events,
};
use crate::support::{eventually, send, Redis, RedisCluster, Server, PATIENCE};

/// The report fields that must agree between deployments (all but the analysis time).
fn comparable(report: &Value) -> Value {
    let mut report = report.clone();
    if let Some(object) = report.as_object_mut() {
        object.remove("analyzed_at");
    }
    report
}

async fn report(server: &Server) -> Option<Value> {
    let res = send(server.admin(
        Method::GET,
        "/api/v1/environments/production/experiments/hp/results",
    ))
    .await;
    (res.status == StatusCode::OK).then_some(res.body)
}

/// Waits until `server` reports `expected` (but for the analysis time); the last report seen
/// if it does not within `within`.
async fn reports_the_same(
    server: &Server,
    expected: &Value,
    within: Duration,
) -> Result<(), Value> {
    let mut last = Value::Null;
    let agreed = tokio::time::timeout(within, async {
        loop {
            if let Some(got) = report(server).await {
                if comparable(&got) == comparable(expected) {
                    return;
                }
                last = got;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    agreed.map_err(|_| last)
}

/// Users, exposures to both variants for some, conversions with values (some before the
/// exposure, so not attributed): 3 events or fewer per user, 600 users.
fn events(now: i64) -> Vec<Value> {
    let mut events = Vec::new();
    for u in 0..600 {
        let user = format!("user-{u}");
        let variant = if u % 2 == 0 { "control" } else { "treatment" };
        events.push(exposure(&format!("x{u}"), &user, variant, now - 10_000 + u));
        if u % 11 == 0 {
            let other = if u % 2 == 0 { "treatment" } else { "control" };
            events.push(exposure(&format!("y{u}"), &user, other, now - 5_000 + u));
        }
        if u % 3 == 0 {
            let mut c = conversion(&format!("c{u}"), &user, now - 20_000 + (u % 5) * 10_000);
            c["value"] = serde_json::json!((u % 7) as f64 + 0.25);
            events.push(c);
        }
    }
    events
}

/// Sends a request; `None` when the connection fails (the server died under it).
async fn try_post(request: reqwest::RequestBuilder) -> Option<StatusCode> {
    let res = request.send().await.ok()?;
    let status = res.status();
    res.bytes().await.ok()?;
    Some(status)
}

/// Sum over the instances of the partitions each owns (from `/readyz`).
async fn owned(servers: &[&Server]) -> Vec<u64> {
    let mut out = Vec::new();
    for server in servers {
        let ready = send(server.anon(Method::GET, "/readyz")).await;
        out.push(
            ready.body["partitions"]["production"]["owned"]
                .as_u64()
                .unwrap_or(0),
        );
    }
    out
}

#[tokio::test]
async fn three_instances_with_kills_report_what_one_instance_reports() {
    let cluster = RedisCluster::start(3).await;
    let url = cluster.url();
    let env = [
        ("TAILOR_REDIS_URL", url.as_str()),
        ("TAILOR_CHECKPOINT_SECS", "1"),
    ];
    let mut servers = join_all((0..3).map(|_| Server::start_with(&env))).await;
    let sdk = experiment_setup(&servers).await;
    let single = Server::start().await;
    let single_sdk = experiment_setup(std::slice::from_ref(&single)).await;

    // Every partition gets an owner, and each instance some of them.
    eventually(
        "the partitions spread over three instances",
        PATIENCE,
        || async {
            let owned = owned(&servers.iter().collect::<Vec<_>>()).await;
            (owned.iter().sum::<u64>() == 16 && owned.iter().all(|n| *n > 0)).then_some(())
        },
    )
    .await;

    let all = events(now_ms());
    let batches: Vec<&[Value]> = all.chunks(25).collect();
    let third = batches.len() / 3;
    for (n, batch) in batches.iter().enumerate() {
        post_events(&single, &single_sdk, batch)
            .await
            .assert_status(StatusCode::OK);
        if n == third || n == 2 * third {
            // Killed mid-batch: this batch is in flight to the victim when it dies; whatever was
            // not acknowledged is resent to a live instance, as SDKs do.
            let victim = if n == third { 1 } else { 2 };
            let in_flight = tokio::spawn(try_post(
                servers[victim]
                    .with_key(Method::POST, "/sdk/v1/events", &sdk)
                    .json(&serde_json::json!({"events": batch})),
            ));
            tokio::time::sleep(Duration::from_millis(2)).await;
            servers[victim].kill9();
            let sent = in_flight.await.unwrap();
            if sent != Some(StatusCode::OK) {
                post_events(&servers[0], &sdk, batch)
                    .await
                    .assert_status(StatusCode::OK);
            }
            continue;
        }
        if n == third + 5 {
            servers[1].spawn().await;
        }
        let live: Vec<usize> = (0..3).filter(|i| servers[*i].is_running()).collect();
        let target = &servers[live[n % live.len()]];
        post_events(target, &sdk, batch)
            .await
            .assert_status(StatusCode::OK);
    }
    servers[2].spawn().await;

    let expected = eventually("the embedded instance's results", PATIENCE, || async {
        report(&single).await
    })
    .await;
    let users: u64 = expected["overall"]["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["users"].as_u64().unwrap())
        .sum();
    assert_eq!(users, 600, "{expected}");
    for (i, server) in servers.iter().enumerate() {
        if let Err(last) = reports_the_same(server, &expected, Duration::from_secs(60)).await {
            panic!(
                "instance {i} reports\n{}\nnot\n{}",
                comparable(&last),
                comparable(&expected)
            );
        }
    }
    // The restarted instances own partitions again.
    eventually(
        "every instance to own partitions again",
        PATIENCE,
        || async {
            let owned = owned(&servers.iter().collect::<Vec<_>>()).await;
            (owned.iter().sum::<u64>() == 16 && owned.iter().all(|n| *n > 0)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn checkpoints_trim_the_streams_and_restarts_load_them() {
    let redis = Redis::start().await;
    let url = redis.url();
    let env = [
        ("TAILOR_REDIS_URL", url.as_str()),
        ("TAILOR_CHECKPOINT_SECS", "1"),
    ];
    let mut servers = join_all((0..2).map(|_| Server::start_with(&env))).await;
    let sdk = experiment_setup(&servers).await;
    let all = events(now_ms());
    for (n, batch) in all.chunks(50).enumerate() {
        post_events(&servers[n % 2], &sdk, batch)
            .await
            .assert_status(StatusCode::OK);
    }
    let before = eventually("results of every event", PATIENCE, || async {
        let got = report(&servers[0]).await?;
        let users: u64 = got["overall"]["arms"]
            .as_array()?
            .iter()
            .filter_map(|a| a["users"].as_u64())
            .sum();
        (users == 600).then_some(got)
    })
    .await;
    // Each partition's checkpoint covers its stream: all but the entry at each cursor are gone.
    assert_eq!(stored_events(&redis, "production"), all.len());
    eventually("checkpoints to trim every stream", PATIENCE, || async {
        (partition_count(&redis, "production", "events", "XLEN") <= 16).then_some(())
    })
    .await;
    for server in &mut servers {
        server.kill9();
    }
    for server in &mut servers {
        server.spawn().await;
    }
    for server in &servers {
        if let Err(last) = reports_the_same(server, &before, PATIENCE).await {
            panic!("after the restart: {last}\nbefore: {before}");
        }
    }
    // Resends inside the de-duplication window are still recognised after the trim.
    let again = post_events(&servers[1], &sdk, &all[..50]).await;
    assert_eq!(again.body["duplicates"], 50, "{}", again.text);
}

#[tokio::test]
async fn the_embedded_store_restarts_from_its_checkpoints() {
    let mut server = Server::start_with(&[("TAILOR_CHECKPOINT_SECS", "1")]).await;
    let sdk = experiment_setup(std::slice::from_ref(&server)).await;
    let all = events(now_ms());
    let (first, rest) = all.split_at(all.len() - 40);
    for batch in first.chunks(100) {
        post_events(&server, &sdk, batch)
            .await
            .assert_status(StatusCode::OK);
    }
    // Every partition checkpointed (a checkpoint age on each in /readyz).
    eventually("a checkpoint of every partition", PATIENCE, || async {
        let ready = send(server.anon(Method::GET, "/readyz")).await;
        let metrics = send(server.anon(Method::GET, "/metrics")).await;
        let ages = metrics
            .text
            .lines()
            .filter(|l| l.starts_with("tailor_partition_checkpoint_age_seconds{"))
            .count();
        (ready.body["partitions"]["production"]["owned"] == 16 && ages == 16).then_some(())
    })
    .await;
    post_events(&server, &sdk, rest)
        .await
        .assert_status(StatusCode::OK);
    let before = eventually("results", PATIENCE, || async { report(&server).await }).await;
    server.kill9();
    server.spawn().await;
    let after = eventually("results after the restart", PATIENCE, || async {
        report(&server).await
    })
    .await;
    assert_eq!(comparable(&after), comparable(&before));
    // The load applied the events after the checkpoints, not the whole log.
    let log = server.log();
    let loaded = log
        .lines()
        .rfind(|l| l.contains("attribution loaded") && l.contains("production"))
        .unwrap_or_default()
        .to_string();
    let applied = serde_json::from_str::<Value>(&loaded).unwrap()["fields"]["events"]
        .as_u64()
        .unwrap();
    assert!(
        applied <= rest.len() as u64,
        "loaded {applied} events after the checkpoints (log line: {loaded})"
    );
    // A clean stop checkpoints everything: the next start applies no event from the log.
    server.stop().await;
    server.spawn().await;
    let again = eventually("results after a clean restart", PATIENCE, || async {
        report(&server).await
    })
    .await;
    assert_eq!(comparable(&again), comparable(&before));
    let log = server.log();
    assert!(
        log.contains("handed partitions over (checkpointed) at shutdown"),
        "{log}"
    );
    let loaded = log
        .lines()
        .rfind(|l| l.contains("attribution loaded") && l.contains("production"))
        .unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Value>(loaded).unwrap()["fields"]["events"],
        0,
        "{loaded}"
    );
}
