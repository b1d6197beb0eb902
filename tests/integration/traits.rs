//! Computed traits and large list segments end to end: events tracked through the SDK put a
//! user in a segment within a second on the server (OFREP, preview, user lookup) and in an SDK
//! in another process (the `lifecycle` example); backdated events fall out of their window; a
//! restart reproduces every value; a 1M-key list uploads and is served per user; with two
//! instances on Redis an event sent to one changes the traits the other serves, including for a
//! trait defined after the events.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tailor::{Client, User};

use crate::multi_instance::{instances, post_events};
use crate::support::{eventually, example_binary, send, Redis, Server, ADMIN_KEY};

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn purchase(id: &str, user: &str, ts: i64, value: f64) -> Value {
    json!({"type": "conversion", "id": id, "timestamp": ts, "user_key": user,
           "event": "purchase", "value": value})
}

/// Traits, a `repeat-buyers` segment, a `vip` list segment and a `homepage` flag serving them.
async fn configure(server: &Server, env: &str) {
    for t in [
        json!({"key": "purchases_30d", "events": ["purchase"], "aggregate": "count", "window_days": 30}),
        json!({"key": "lifetime_value", "events": ["purchase"], "aggregate": "sum"}),
        json!({"key": "last_purchase", "events": ["purchase"], "aggregate": "last_seen"}),
    ] {
        server.create(env, "traits", &t).await;
    }
    for s in [
        json!({"key": "repeat-buyers", "conditions": {"trait": "purchases_30d", "op": "gte", "values": [2]}}),
        json!({"key": "vip", "list": true}),
    ] {
        server.create(env, "segments", &s).await;
    }
    server
        .create(
            env,
            "flags",
            &json!({
                "key": "homepage", "type": "string",
                "variants": [{"key": "generic", "value": "g"}, {"key": "loyalty", "value": "l"},
                             {"key": "vip", "value": "v"}],
                "default_variant": "generic",
                "rules": [{"when": {"segment": "vip"}, "variant": "vip"},
                          {"when": {"segment": "repeat-buyers"}, "variant": "loyalty"}]
            }),
        )
        .await;
}

async fn ofrep_variant(server: &Server, key: &str, user: &str) -> String {
    let res = send(
        server
            .with_key(Method::POST, "/ofrep/v1/evaluate/flags/homepage", key)
            .json(&json!({"context": {"targetingKey": user}})),
    )
    .await;
    res.assert_status(StatusCode::OK);
    res.body["variant"].as_str().unwrap_or_default().to_string()
}

async fn profile(server: &Server, sdk_key: &str, user: &str) -> Value {
    let res =
        send(server.with_key(Method::GET, &format!("/sdk/v1/profiles/{user}"), sdk_key)).await;
    res.assert_status(StatusCode::OK);
    res.body
}

/// The traits of a profile without the ones that move with the clock.
fn stable(profile: &Value) -> Value {
    json!({"traits": profile["traits"], "lists": profile["lists"]})
}

#[tokio::test]
async fn purchases_through_the_sdk_make_a_repeat_buyer_everywhere_and_survive_a_restart() {
    let mut server = Server::start().await;
    configure(&server, "production").await;
    let (_, sdk_key) = server.create_key("sdk", Some("production")).await;
    let (_, client_key) = server.create_key("client", Some("production")).await;
    let client = Client::builder(server.url(""), sdk_key.as_str())
        .build()
        .await
        .unwrap();
    let buyer = User::new("buyer-1");
    assert_eq!(
        ofrep_variant(&server, &client_key, "buyer-1").await,
        "generic"
    );

    // Two purchases through `track`: the SDK sees them at once (read-your-writes) ...
    client.load_profile(&buyer).await.unwrap();
    assert_eq!(client.variant(&buyer, "homepage").key(), Some("generic"));
    client.track(&buyer, "purchase", Some(20.0));
    client.track(&buyer, "purchase", Some(9.5));
    assert_eq!(client.variant(&buyer, "homepage").key(), Some("loyalty"));
    let local = client.profile(&buyer).unwrap();
    assert_eq!(
        local.trait_value("lifetime_value"),
        Some(tailor::TraitValue::Number(29.5))
    );
    // ... and the server within a second of delivery (OFREP with a client key, preview).
    client.flush().await.unwrap();
    let delivered = std::time::Instant::now();
    eventually(
        "OFREP to serve the repeat-buyer content",
        Duration::from_secs(1),
        || async {
            (ofrep_variant(&server, &client_key, "buyer-1").await == "loyalty").then_some(())
        },
    )
    .await;
    assert!(delivered.elapsed() < Duration::from_secs(1));
    let preview = send(
        server
            .admin(Method::POST, "/api/v1/environments/production/preview")
            .json(&json!({"user": {"key": "buyer-1"}, "flags": ["homepage"]})),
    )
    .await;
    assert_eq!(
        preview.body["assignments"][0]["variant"], "loyalty",
        "{}",
        preview.text
    );
    assert_eq!(
        preview.body["traits"]["purchases_30d"], 2.0,
        "{}",
        preview.text
    );

    // A client-side key never reads a profile.
    let refused = send(server.with_key(Method::GET, "/sdk/v1/profiles/buyer-1", &client_key)).await;
    refused.assert_status(StatusCode::FORBIDDEN);
    // An unknown user has no history: zero counts, no datetimes.
    let nobody = profile(&server, &sdk_key, "nobody").await;
    assert_eq!(
        nobody["traits"],
        json!({"purchases_30d": 0.0, "lifetime_value": 0.0})
    );

    // Backdated: a purchase 31 days ago is outside the window, one 29 days ago inside.
    let now = now_ms();
    post_events(
        &server,
        &sdk_key,
        &[
            purchase("old-1", "backdated", now - 31 * DAY_MS, 5.0),
            purchase("old-2", "backdated", now - 29 * DAY_MS, 5.0),
        ],
    )
    .await
    .assert_status(StatusCode::OK);
    let backdated = profile(&server, &sdk_key, "backdated").await;
    assert_eq!(backdated["traits"]["purchases_30d"], 1.0, "{backdated}");
    assert_eq!(backdated["traits"]["lifetime_value"], 10.0, "{backdated}");
    assert_eq!(
        ofrep_variant(&server, &client_key, "backdated").await,
        "generic"
    );

    // An SDK's cached profile that evaluations read is reloaded when it expires.
    let refreshing = Client::builder(server.url(""), sdk_key.as_str())
        .profile_ttl(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let backdated_user = User::new("backdated");
    refreshing.load_profile(&backdated_user).await.unwrap();
    assert_eq!(
        refreshing.variant(&backdated_user, "homepage").key(),
        Some("generic")
    );
    post_events(
        &server,
        &sdk_key,
        &[purchase("new-1", "backdated", now_ms(), 1.0)],
    )
    .await
    .assert_status(StatusCode::OK);
    eventually(
        "the expired profile to be reloaded",
        Duration::from_secs(10),
        || async {
            let _ = refreshing.variant(&backdated_user, "homepage");
            let count = refreshing
                .profile(&backdated_user)
                .and_then(|p| p.trait_value("purchases_30d"));
            (count == Some(tailor::TraitValue::Number(2.0))).then_some(())
        },
    )
    .await;
    assert_eq!(
        refreshing.variant(&backdated_user, "homepage").key(),
        Some("loyalty")
    );
    assert!(refreshing.profile_stats().loads >= 2);
    refreshing.close().await.unwrap();

    // The user lookup: traits, segments, and what each flag serves.
    let lookup =
        send(server.admin(Method::GET, "/api/v1/environments/production/users/buyer-1")).await;
    lookup.assert_status(StatusCode::OK);
    assert_eq!(
        lookup.body["segments"],
        json!(["repeat-buyers"]),
        "{}",
        lookup.text
    );
    assert_eq!(
        lookup.body["flags"][0]["variant"], "loyalty",
        "{}",
        lookup.text
    );
    let sizes =
        send(server.admin(Method::GET, "/api/v1/environments/production/segment-sizes")).await;
    sizes.assert_status(StatusCode::OK);
    assert_eq!(sizes.body["known_users"], 2, "{}", sizes.text);
    assert_eq!(sizes.body["segments"][0]["size"], 2, "{}", sizes.text);

    // A rebuild from the stored events and a restart reproduce every value.
    let before: Vec<Value> = [
        profile(&server, &sdk_key, "buyer-1").await,
        profile(&server, &sdk_key, "backdated").await,
    ]
    .iter()
    .map(stable)
    .collect();
    send(server.admin(
        Method::POST,
        "/api/v1/environments/production/results/rebuild",
    ))
    .await
    .assert_status(StatusCode::OK);
    let rebuilt: Vec<Value> = [
        profile(&server, &sdk_key, "buyer-1").await,
        profile(&server, &sdk_key, "backdated").await,
    ]
    .iter()
    .map(stable)
    .collect();
    assert_eq!(before, rebuilt);
    client.close().await.unwrap();
    server.restart().await;
    // Until its partitions are loaded, the server answers 503 (as results do), never stale values.
    eventually(
        "the restarted server to load",
        Duration::from_secs(30),
        || async {
            let res =
                send(server.with_key(Method::GET, "/sdk/v1/profiles/buyer-1", &sdk_key)).await;
            (res.status == StatusCode::OK).then_some(())
        },
    )
    .await;
    let after: Vec<Value> = [
        profile(&server, &sdk_key, "buyer-1").await,
        profile(&server, &sdk_key, "backdated").await,
    ]
    .iter()
    .map(stable)
    .collect();
    assert_eq!(before, after);
}

fn run_example(url: &str, sdk_key: &str, args: &[&str]) -> String {
    let output = Command::new(example_binary("lifecycle"))
        .args(args)
        .env("TAILOR_URL", url)
        .env("TAILOR_ADMIN_KEY", ADMIN_KEY)
        .env("TAILOR_SDK_KEY", sdk_key)
        .stdin(Stdio::null())
        .output()
        .expect("running the lifecycle example");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    text
}

#[tokio::test]
async fn the_lifecycle_example_and_an_sdk_in_another_process() {
    let server = Server::start().await;
    let url = server.url("");
    let (_, sdk_key) = server.create_key("sdk", Some("development")).await;
    let sdk = sdk_key.clone();
    let demo = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run_example(&url, &sdk, &[])
    })
    .await
    .unwrap();
    for line in ["ada: welcome", "bo: win-back", "cy: generic", "cy: loyalty"] {
        assert!(demo.contains(line), "expected `{line}` in\n{demo}");
    }
    // This process buys twice; another process loading the user serves the loyalty banner.
    let client = Client::builder(&url, sdk_key.as_str())
        .build()
        .await
        .unwrap();
    let zed = User::new("zed");
    client.track(&zed, "purchase", Some(5.0));
    client.track(&zed, "purchase", Some(5.0));
    client.flush().await.unwrap();
    let sdk = sdk_key.clone();
    let shown = tokio::task::spawn_blocking(move || run_example(&url, &sdk, &["show", "zed"]))
        .await
        .unwrap();
    assert!(shown.contains("zed: loyalty"), "{shown}");
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_million_key_list_uploads_and_is_served_per_user() {
    let server = Server::start().await;
    configure(&server, "production").await;
    let (_, sdk_key) = server.create_key("sdk", Some("production")).await;
    let (_, client_key) = server.create_key("client", Some("production")).await;
    let mut csv = String::from("user_key,email\n");
    for i in 0..1_000_000 {
        csv.push_str(&format!("crm-{i},crm-{i}@example.com\n"));
    }
    let upload = send(
        server
            .admin(
                Method::PUT,
                "/api/v1/environments/production/segments/vip/members",
            )
            .header("Content-Type", "text/csv")
            .timeout(Duration::from_secs(120))
            .body(csv),
    )
    .await;
    upload.assert_status(StatusCode::OK);
    assert_eq!(upload.body["members"], 1_000_000, "{}", upload.text);
    // The list is not in the config SDKs download.
    let config = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk_key)).await;
    assert!(config.text.len() < 10_000, "{} bytes", config.text.len());
    assert!(!config.text.contains("crm-1"));
    // Served per user: members and non-members, SDK and OFREP.
    assert_eq!(
        profile(&server, &sdk_key, "crm-999999").await["lists"],
        json!(["vip"])
    );
    assert_eq!(
        profile(&server, &sdk_key, "someone-else").await["lists"],
        json!([])
    );
    assert_eq!(
        ofrep_variant(&server, &client_key, "crm-123456").await,
        "vip"
    );
    assert_eq!(
        ofrep_variant(&server, &client_key, "someone-else").await,
        "generic"
    );
    let client = Client::builder(server.url(""), sdk_key.as_str())
        .build()
        .await
        .unwrap();
    let member = User::new("crm-42");
    assert!(client.variant_detail(&member, "homepage").profile_missing);
    client.load_profile(&member).await.unwrap();
    let detail = client.variant_detail(&member, "homepage");
    assert_eq!(detail.key.as_deref(), Some("vip"));
    assert!(!detail.profile_missing);
    let sizes =
        send(server.admin(Method::GET, "/api/v1/environments/production/segment-sizes")).await;
    assert_eq!(
        sizes.body["segments"][1]["list_size"], 1_000_000,
        "{}",
        sizes.text
    );
    // Bad uploads: not a list segment, not UTF-8, a control character.
    let not_list = send(
        server
            .admin(
                Method::PUT,
                "/api/v1/environments/production/segments/repeat-buyers/members",
            )
            .body("a\nb"),
    )
    .await;
    not_list.assert_status(StatusCode::BAD_REQUEST);
    assert!(not_list.text.contains("list: true"), "{}", not_list.text);
    let garbage = send(
        server
            .admin(
                Method::PUT,
                "/api/v1/environments/production/segments/vip/members",
            )
            .body(vec![b'a', b'\n', 0xff]),
    )
    .await;
    garbage.assert_status(StatusCode::BAD_REQUEST);
    client.close().await.unwrap();
}

#[tokio::test]
async fn with_two_instances_on_redis_an_event_sent_to_one_changes_traits_on_the_other() {
    let redis = Redis::start().await;
    let servers = instances(2, &redis.url()).await;
    let (a, b) = (&servers[0], &servers[1]);
    configure(a, "production").await;
    let (_, sdk_key) = a.create_key("sdk", Some("production")).await;
    let revision = a.revision("production").await;
    eventually("B to serve the config", Duration::from_secs(10), || async {
        (b.revision("production").await >= revision).then_some(())
    })
    .await;
    // Enough users that both instances own some of their partitions.
    let users: Vec<String> = (0..24).map(|i| format!("user-{i}")).collect();
    let now = now_ms();
    let events: Vec<Value> = users
        .iter()
        .flat_map(|u| {
            [
                purchase(&format!("{u}-1"), u, now - DAY_MS, 10.0),
                purchase(&format!("{u}-2"), u, now - 1_000, 2.5),
                json!({"type": "conversion", "id": format!("{u}-v"), "timestamp": now - 2 * DAY_MS,
                       "user_key": u, "event": "page_view"}),
            ]
        })
        .collect();
    post_events(a, &sdk_key, &events)
        .await
        .assert_status(StatusCode::OK);
    for server in [a, b] {
        for user in &users {
            eventually(
                "both instances to serve the user's traits",
                Duration::from_secs(10),
                || async {
                    let p = profile(server, &sdk_key, user).await;
                    (p["traits"]["purchases_30d"] == 2.0 && p["traits"]["lifetime_value"] == 12.5)
                        .then_some(())
                },
            )
            .await;
        }
    }
    // A trait defined after the events: every owner writes its users' records again.
    a.create(
        "production",
        "traits",
        &json!({"key": "visit_days", "events": ["page_view"], "aggregate": "distinct_days"}),
    )
    .await;
    for server in [a, b] {
        for user in &users {
            eventually(
                "the new trait on both instances",
                Duration::from_secs(10),
                || async {
                    let p = profile(server, &sdk_key, user).await;
                    (p["traits"]["visit_days"] == 1.0).then_some(())
                },
            )
            .await;
        }
    }
    let on_a = send(a.admin(Method::GET, "/api/v1/environments/production/segment-sizes")).await;
    let on_b = send(b.admin(Method::GET, "/api/v1/environments/production/segment-sizes")).await;
    assert_eq!(on_a.body["known_users"], 24, "{}", on_a.text);
    assert_eq!(on_a.body["segments"], on_b.body["segments"]);
    assert_eq!(on_a.body["segments"][0]["size"], 24, "{}", on_a.text);
}
