//! Hostile input never breaks the server (DESIGN §9): every documented operation that takes a
//! body gets garbage (empty, wrong shapes, invalid UTF-8, deep nesting, a YAML alias bomb,
//! absurd numbers), as JSON and as YAML. Each answer is a 4xx with a JSON error, the process
//! stays up, and the stored config does not change.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{fixtures, send, Server};

/// Operations with a request body, from the OpenAPI document (so new ones are covered too).
fn operations_with_bodies() -> Vec<(Method, String)> {
    let spec: Value = serde_yaml_ng::from_str(tailor_server::routes::ops::OPENAPI_YAML).unwrap();
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_none() {
                continue;
            }
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let concrete = path
                .replace("{env}", "development")
                .replace("{key}", "target")
                .replace("{id}", "key_0000000000000000");
            out.push((method, concrete));
        }
    }
    assert!(out.len() >= 15, "{out:?}");
    out
}

fn garbage() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    // libyaml's scanner is quadratic in flow nesting depth (100,000 levels took minutes), so
    // the nesting pre-check must refuse this at once, before libyaml sees it.
    // (Under a known field: an import of a document without any is a valid empty config.)
    let deep_yaml = format!("flags: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    bomb.push_str("key: *i\nflags: *i\nsegments: *i\n");
    let json = "application/json";
    let yaml = "application/yaml";
    vec![
        ("empty", json, Vec::new()),
        ("null", json, b"null".to_vec()),
        ("array", json, b"[1, 2, 3]".to_vec()),
        ("string", json, b"\"flags\"".to_vec()),
        ("truncated", json, b"{\"key\": \"x\", \"type\": ".to_vec()),
        ("invalid UTF-8", json, vec![0xff, 0xfe, b'{', 0xc3, 0x28, b'}']),
        ("wrong shapes", json, br#"{"key": ["x"], "kind": 7, "user": 1, "events": "e", "rule": null, "enabled": "yes", "audit_id": 1e400, "coverage": 99999999999999999999, "context": 5, "flags": {"a": 1}}"#.to_vec()),
        ("deep JSON", json, deep_json.into_bytes()),
        ("YAML null", yaml, b"~".to_vec()),
        ("YAML tags", yaml, b"!!binary AAAA".to_vec()),
        ("invalid YAML", yaml, b"key: [unclosed\n  - : :".to_vec()),
        ("deep YAML", yaml, deep_yaml.into_bytes()),
        ("YAML alias bomb", yaml, bomb.into_bytes()),
    ]
}

#[tokio::test]
async fn garbage_bodies_get_4xx_and_change_nothing() {
    let server = Server::start().await;
    server
        .create("development", "segments", &fixtures::segment("target"))
        .await;
    server
        .create(
            "development",
            "flags",
            &fixtures::split_flag("target", 5000),
        )
        .await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let export = || async {
        send(server.admin(Method::GET, "/api/v1/environments/development/export"))
            .await
            .text
    };
    let before = export().await;

    for (method, path) in operations_with_bodies() {
        // OFREP and event ingestion take SDK keys; everything else an admin key.
        let key = if path.starts_with("/api/") {
            crate::support::ADMIN_KEY
        } else {
            sdk.as_str()
        };
        for (what, content_type, body) in garbage() {
            let res = send(
                server
                    .with_key(method.clone(), &path, key)
                    .header("content-type", content_type)
                    .body(body),
            )
            .await;
            if path == "/sdk/v1/events" && res.status == StatusCode::OK {
                // Batches are validated event by event: garbage may read as a batch whose
                // events are all rejected. Then nothing may be stored.
                assert_eq!(res.body["accepted"], 0, "{path} with {what}: {}", res.text);
                continue;
            }
            assert!(
                res.status.is_client_error(),
                "{method} {path} with {what}: {} {}",
                res.status,
                res.text
            );
            let shaped = res.body["error"].is_string() && res.body["message"].is_string()
                || res.body["errorCode"].is_string();
            assert!(
                shaped,
                "{method} {path} with {what}: not a JSON error: {}",
                res.text
            );
        }
    }

    // Still up, nothing changed.
    send(server.anon(Method::GET, "/readyz"))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(export().await, before, "garbage changed the stored config");
}

/// Deep nesting is refused with a message that says so, before the parser's quadratic work.
#[tokio::test]
async fn deeply_nested_configs_are_refused_naming_the_nesting() {
    let server = Server::start().await;
    let import = "/api/v1/environments/development/import?dry_run=true";
    for (content_type, body) in [
        ("application/yaml", format!("x: {}", "[".repeat(40_000))),
        (
            "application/json",
            format!("{{\"flags\": {}", "[".repeat(40_000)),
        ),
    ] {
        let res = send(
            server
                .admin(Method::POST, import)
                .header("content-type", content_type)
                .body(body),
        )
        .await;
        res.assert_status(StatusCode::BAD_REQUEST);
        assert!(
            res.body["message"]
                .as_str()
                .is_some_and(|m| m.contains("nests more than 64 levels deep (at line 1)")),
            "{content_type}: {}",
            res.text
        );
    }
}

/// A public client key cannot post unlimited events: past its bucket, batches get `429` with
/// `Retry-After` (the SDKs retry them later); SDK keys are not limited by default.
#[tokio::test]
async fn client_keys_are_rate_limited_per_key() {
    let server = Server::start_with(&[("TAILOR_CLIENT_KEY_EVENTS_PER_SECOND", "10")]).await;
    server
        .create("development", "flags", &fixtures::bool_flag("banner"))
        .await;
    let (_, client) = server.create_key("client", Some("development")).await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let batch = |prefix: &str, n: usize| {
        let events: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                serde_json::json!({"type": "conversion", "id": format!("{prefix}-{i}"),
                    "timestamp": 1_790_000_000_000i64, "user_key": "u", "event": "purchase"})
            })
            .collect();
        serde_json::json!({ "events": events })
    };
    let post = |key: &str, body: serde_json::Value| {
        send(
            server
                .with_key(Method::POST, "/sdk/v1/events", key)
                .json(&body),
        )
    };
    // The bucket holds at least one full batch of 1,000.
    let res = post(&client, batch("a", 1_000)).await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["accepted"], 1_000);
    let res = post(&client, batch("b", 50)).await;
    res.assert_error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "over its events-per-second limit",
    );
    let retry_after: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    for round in 0..3 {
        post(&sdk, batch(&format!("s{round}"), 1_000))
            .await
            .assert_status(StatusCode::OK);
    }
}
