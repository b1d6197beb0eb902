//! The optimizer in running servers: an optimize rule's weights are learned from the events an
//! SDK key sends and published once per update period, through the write path (audited as
//! `optimizer`, old and new weights in the entry) to SDKs; the weights survive a restart and
//! learning continues from them; two instances on one Redis publish each update once.
//!
//! Update periods are whole minutes since the Unix epoch (`update_minutes: 1` here), so each
//! test waits for a minute boundary or two.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{eventually, fixtures, send, Redis, Server};

/// Long enough for the next minute boundary and a tick of the optimizer.
const UPDATE: Duration = Duration::from_secs(150);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Experiment `hp` and flag `homepage`: an optimize rule over `a`, `b`, `c` for everyone, with
/// `beginners` as a context, a 10% holdout and one-minute updates.
async fn configure(server: &Server) -> String {
    server
        .create(
            "development",
            "segments",
            &json!({"key": "beginners",
                    "conditions": {"attribute": "lifecycle", "op": "eq", "values": ["new"]}}),
        )
        .await;
    server
        .create("development", "experiments", &fixtures::experiment("hp"))
        .await;
    server
        .create(
            "development",
            "flags",
            &json!({
                "key": "homepage", "type": "string", "default_variant": "generic",
                "variants": [{"key": "generic", "value": "g"}, {"key": "a", "value": "a"},
                             {"key": "b", "value": "b"}, {"key": "c", "value": "c"}],
                "rules": [{
                    "optimize": {"variants": ["a", "b", "c"], "contexts": ["beginners"],
                                 "burn_in_users": 30, "update_minutes": 1},
                    "holdout": {"basis_points": 1000},
                    "experiment": "hp",
                }],
            }),
        )
        .await;
    server.create_key("sdk", Some("development")).await.1
}

/// `users` users of `context` (`beginners`, or none) per arm, exposed now; the arm at index
/// `best` converts for half of them, the others for a tenth. Keys start with `prefix`.
fn events(prefix: &str, context: Option<&str>, best: usize, users: u32) -> Vec<Value> {
    let ts = now_ms() - 5_000;
    let mut out = Vec::new();
    for (i, arm) in ["a", "b", "c"].iter().enumerate() {
        for u in 0..users {
            let user = format!("{prefix}-{arm}-{u}");
            out.push(
                json!({"type": "exposure", "id": format!("e-{user}"), "timestamp": ts,
                            "user_key": user, "flag": "homepage", "variant": arm,
                            "experiment": "hp", "rule": 0, "segment": context,
                            "personalized": true, "revision": 4, "spec_version": 1}),
            );
            let converts = if i == best { u % 2 == 0 } else { u % 10 == 0 };
            if converts {
                out.push(json!({"type": "conversion", "id": format!("c-{user}"),
                                "timestamp": ts + 1_000, "user_key": user, "event": "purchase"}));
            }
        }
    }
    // The holdout: a tenth as many users, shown the generic default; a tenth convert.
    for u in 0..users.div_ceil(10) * 3 {
        let user = format!("{prefix}-held-{u}");
        out.push(
            json!({"type": "exposure", "id": format!("e-{user}"), "timestamp": ts,
                        "user_key": user, "flag": "homepage", "variant": "generic",
                        "experiment": "hp", "rule": 0, "segment": context,
                        "personalized": false, "revision": 4, "spec_version": 1}),
        );
        if u % 10 == 0 {
            out.push(json!({"type": "conversion", "id": format!("c-{user}"),
                            "timestamp": ts + 1_000, "user_key": user, "event": "purchase"}));
        }
    }
    out
}

async fn post(server: &Server, sdk: &str, events: Vec<Value>) {
    for chunk in events.chunks(500) {
        let res = send(
            server
                .with_key(Method::POST, "/sdk/v1/events", sdk)
                .json(&json!({"events": chunk})),
        )
        .await;
        res.assert_status(StatusCode::OK);
    }
}

/// The rule's published weights per context, once the optimizer has published any.
async fn weights(server: &Server) -> Option<Value> {
    let res = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/flags/homepage",
    ))
    .await;
    let w = res.body["rules"][0]["optimize"]["weights"].clone();
    w.as_array().is_some_and(|a| !a.is_empty()).then_some(w)
}

fn of<'a>(weights: &'a Value, context: &str) -> &'a Value {
    weights
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["context"] == context)
        .unwrap_or_else(|| panic!("no weights for {context}: {weights}"))
}

fn share(weights: &Value, context: &str, arm: usize) -> u64 {
    of(weights, context)["weights"][arm].as_u64().unwrap()
}

#[tokio::test]
async fn the_optimizer_publishes_learned_weights_that_survive_a_restart() {
    let mut server = Server::start().await;
    let sdk = configure(&server).await;
    // Beginners buy most on `b`, everyone else on `c`.
    let mut batch = events("new", Some("beginners"), 1, 60);
    batch.extend(events("other", None, 2, 60));
    post(&server, &sdk, batch).await;

    let first = eventually("learned weights", UPDATE, || weights(&server)).await;
    assert!(share(&first, "beginners", 1) > 8_000, "{first}");
    assert!(share(&first, "*", 2) > 8_000, "{first}");
    for w in first.as_array().unwrap() {
        let list: Vec<u64> = w["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(list.iter().sum::<u64>(), 10_000, "{first}");
        assert!(list.iter().all(|&x| x >= 500), "the floor holds: {first}");
    }
    // Audited as the optimizer, with the weights before and after.
    let audit = server.audit("development", "kind=flag&key=homepage").await;
    let entry = audit
        .iter()
        .find(|e| e["action"] == "optimize")
        .unwrap_or_else(|| panic!("no optimize entry: {audit:?}"));
    assert_eq!(entry["actor"], "optimizer");
    assert_eq!(entry["before"], json!([]));
    assert_eq!(entry["after"], first);
    // SDKs evaluate with them: the config they download carries the weights.
    let res = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
    res.assert_status(StatusCode::OK);
    let served = &res.body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "homepage")
        .unwrap()["rules"][0]["optimize"]["weights"];
    assert_eq!(served, &first);

    // The report shows each context's weights and its arms, weighted by update period.
    let report = crate::results::results(&server, "").await;
    let contexts = report["optimization"]["contexts"].as_array().unwrap();
    assert_eq!(contexts.len(), 2, "{report}");
    let beginners = &contexts[0];
    assert_eq!(
        (&beginners["context"], &beginners["label"]),
        (&json!("beginners"), &json!("beginners"))
    );
    assert_eq!(beginners["weights"], of(&first, "beginners")["weights"]);
    let best = |c: &Value| {
        let arms = c["arms"].as_array().unwrap();
        (0..arms.len())
            .max_by(|&x, &y| {
                let p = |i: usize| arms[i]["probability_best"].as_f64().unwrap();
                p(x).total_cmp(&p(y))
            })
            .unwrap()
    };
    assert_eq!(best(beginners), 1, "{beginners}");
    assert_eq!(contexts[1]["label"], "rule 0");
    assert_eq!(best(&contexts[1]), 2, "{}", contexts[1]);
    assert_eq!(beginners["arms"][1]["users"], 60);

    // A restart keeps the weights, and learning continues from new evidence: `a` now wins
    // for everyone else, by far.
    server.restart().await;
    assert_eq!(weights(&server).await.as_ref(), Some(&first));
    post(&server, &sdk, events("later", None, 0, 400)).await;
    let period = of(&first, "*")["period"].as_u64().unwrap();
    let second = eventually("an update after the restart", UPDATE, || async {
        weights(&server)
            .await
            .filter(|w| of(w, "*")["period"].as_u64().unwrap() > period)
    })
    .await;
    assert!(
        share(&second, "*", 0) > share(&first, "*", 0),
        "{first} → {second}"
    );

    // Two updates: the dashboard draws each context's weights over them.
    let browser = crate::browser::Browser::start().await;
    browser
        .goto(&server.url("/dashboard/env/development/experiments/hp"))
        .await;
    crate::dashboard::sign_in(&browser, crate::support::ADMIN_KEY).await;
    browser.wait_for_url("/experiments/hp").await;
    let lines = browser
        .find_all("#optimization section[data-context=\"*\"] svg.chart-wide polyline")
        .await;
    assert_eq!(lines.len(), 3, "one line per variant");
    browser.close().await;
}

#[tokio::test]
async fn two_instances_on_redis_publish_each_update_once() {
    let redis = Redis::start().await;
    let servers = crate::multi_instance::instances(2, &redis.url()).await;
    let sdk = configure(&servers[0]).await;
    let mut batch = events("new", Some("beginners"), 0, 60);
    batch.extend(events("other", None, 1, 60));
    // Half the events through each instance.
    let half = batch.len() / 2;
    post(&servers[0], &sdk, batch[..half].to_vec()).await;
    post(&servers[1], &sdk, batch[half..].to_vec()).await;
    let published = eventually("learned weights", UPDATE, || weights(&servers[1])).await;
    // Both instances tick every few seconds; give the slower one time to try too.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let audit = servers[0]
        .audit("development", "kind=flag&key=homepage")
        .await;
    let updates: Vec<&Value> = audit.iter().filter(|e| e["action"] == "optimize").collect();
    let period = of(&published, "*")["period"].clone();
    let this_period = updates
        .iter()
        .filter(|e| of(&e["after"], "*")["period"] == period)
        .count();
    assert_eq!(this_period, 1, "one publication per period: {updates:?}");
    assert_eq!(weights(&servers[0]).await, Some(published));
}

#[tokio::test]
async fn the_dashboard_shows_the_learned_policy_and_freezes_it_on_each_contexts_best() {
    use crate::browser::Browser;
    use crate::support::ADMIN_KEY;

    let server = Server::start().await;
    let sdk = configure(&server).await;
    let mut batch = events("new", Some("beginners"), 1, 60);
    batch.extend(events("other", None, 2, 60));
    post(&server, &sdk, batch).await;

    let browser = Browser::start().await;
    browser
        .goto(&server.url("/dashboard/env/development/experiments/hp"))
        .await;
    crate::dashboard::sign_in(&browser, ADMIN_KEY).await;
    browser.wait_for_url("/experiments/hp").await;
    let section = browser.text("#optimization").await;
    assert!(section.contains("Learned personalization"), "{section}");
    // Per context: each variant's weight (equal until the first update) and its chance of
    // being best, and the policy against generic content.
    let beginners = "#optimization section[data-context=\"beginners\"]";
    assert_eq!(
        browser
            .text(&format!("{beginners} tr[data-variant=\"a\"] td.weight"))
            .await
            .trim(),
        "33.34%"
    );
    let chance = browser
        .text(&format!("{beginners} tr[data-variant=\"b\"] td.best"))
        .await;
    assert!(
        chance.starts_with("99") || chance.starts_with(">"),
        "{chance}"
    );
    assert!(browser
        .text(&format!("{beginners} .policy-lift"))
        .await
        .starts_with("Policy against generic content"));
    browser.screenshot("optimization", 1280).await;

    // Freeze: the confirmation lists each context's best variant, then it is published.
    browser.click("#freeze").await;
    browser.wait_for_url("/freeze").await;
    let plan = browser.text("#freeze-plan").await;
    assert!(
        plan.contains("beginners") && plan.contains('b') && plan.contains('c'),
        "{plan}"
    );
    browser.click("#confirm").await;
    browser.wait_for_url("/experiments/hp").await;
    assert!(browser.text("#frozen").await.contains("Frozen"));
    let flag = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/flags/homepage",
    ))
    .await;
    let optimize = &flag.body["rules"][0]["optimize"];
    assert_eq!(optimize["frozen"], true);
    assert_eq!(
        of(&optimize["weights"], "beginners")["weights"],
        json!([0, 10000, 0])
    );
    assert_eq!(
        of(&optimize["weights"], "*")["weights"],
        json!([0, 0, 10000])
    );
    let audit = server.audit("development", "kind=flag&key=homepage").await;
    assert_eq!(audit[0]["action"], "freeze");
    assert!(audit[0]["actor"]
        .as_str()
        .unwrap()
        .ends_with("via dashboard"));
    // Resume learning: frozen is lifted, the weights stay until the next update.
    browser.click("#freeze").await;
    browser.wait_for_url("frozen=false").await;
    browser.click("#confirm").await;
    browser.wait_for_url("/experiments/hp").await;
    assert!(browser.find_all("#frozen").await.is_empty());
    browser.close().await;
}

#[tokio::test]
async fn with_the_store_down_the_last_weights_stay_and_updates_resume_after() {
    let mut redis = Redis::start_durable().await;
    let servers = crate::multi_instance::instances(1, &redis.url()).await;
    let server = &servers[0];
    let sdk = configure(server).await;
    let mut batch = events("new", Some("beginners"), 1, 60);
    batch.extend(events("other", None, 2, 60));
    post(server, &sdk, batch).await;
    let first = eventually("learned weights", UPDATE, || weights(server)).await;

    // New evidence (`a` wins for everyone else), then the store goes away before the next
    // update can be published.
    post(server, &sdk, events("later", None, 0, 400)).await;
    redis.kill9();
    let period = of(&first, "*")["period"].as_u64().unwrap();
    let next_boundary = i64::try_from(period + 1).unwrap() * 60_000;
    let wait = u64::try_from(next_boundary - now_ms() + 15_000).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    // Still up, still serving the last weights, none half-published.
    let res = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
    res.assert_status(StatusCode::OK);
    let served = &res.body["flags"][0]["rules"][0]["optimize"]["weights"];
    assert_eq!(
        served, &first,
        "the last weights stay while the store is down"
    );

    // Back: the update the outage held up is published.
    redis.restart().await;
    let second = eventually("the update after the outage", UPDATE, || async {
        weights(server)
            .await
            .filter(|w| of(w, "*")["period"].as_u64().unwrap() > period)
    })
    .await;
    assert!(share(&second, "*", 0) > share(&first, "*", 0), "{second}");
}
