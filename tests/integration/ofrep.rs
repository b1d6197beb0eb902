//! OFREP (OpenFeature Remote Evaluation Protocol, `shared/spec/ofrep/openapi.yaml`): single and
//! bulk evaluation, the bulk ETag, and the protocol's error codes.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{fixtures, send, Resp, Server};

const BULK: &str = "/ofrep/v1/evaluate/flags";

async fn setup() -> (Server, String) {
    let server = Server::start().await;
    server
        .create("development", "segments", &fixtures::segment("pro"))
        .await;
    let mut banner = fixtures::segment_flag("banner", "pro");
    banner["description"] = json!("Promo banner");
    server.create("development", "flags", &banner).await;
    server
        .create("development", "flags", &fixtures::bool_flag("static"))
        .await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    (server, sdk)
}

async fn evaluate(server: &Server, key: &str, flag: &str, body: Value) -> Resp {
    send(
        server
            .with_key(Method::POST, &format!("{BULK}/{flag}"), key)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn single_flag_evaluation() {
    let (server, sdk) = setup().await;
    let res = evaluate(
        &server,
        &sdk,
        "banner",
        json!({"context": {"targetingKey": "u1", "plan": "pro", "age": 31, "beta": true, "tags": ["a"], "gone": null}}),
    )
    .await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["key"], "banner");
    assert_eq!(res.body["value"], true);
    assert_eq!(res.body["variant"], "on");
    assert_eq!(res.body["reason"], "TARGETING_MATCH");
    assert_eq!(res.body["metadata"]["tailorReason"], "rule");
    assert_eq!(res.body["metadata"]["segment"], "pro");
    assert_eq!(res.body["metadata"]["description"], "Promo banner");
    assert!(res.body["metadata"]["revision"].is_u64());

    let res = evaluate(
        &server,
        &sdk,
        "banner",
        json!({"context": {"targetingKey": "u2", "plan": "free"}}),
    )
    .await;
    assert_eq!(res.body["value"], false);
    assert_eq!(res.body["reason"], "DEFAULT");
    let res = evaluate(
        &server,
        &sdk,
        "static",
        json!({"context": {"targetingKey": "u2"}}),
    )
    .await;
    assert_eq!(res.body["reason"], "STATIC");

    send(
        server
            .admin(
                Method::POST,
                "/api/v1/environments/development/flags/banner/toggle",
            )
            .json(&json!({"enabled": false})),
    )
    .await
    .assert_status(StatusCode::OK);
    let res = evaluate(
        &server,
        &sdk,
        "banner",
        json!({"context": {"targetingKey": "u1", "plan": "pro"}}),
    )
    .await;
    assert_eq!(res.body["reason"], "DISABLED");
    assert_eq!(res.body["value"], false);
}

#[tokio::test]
async fn bulk_evaluation_with_etag() {
    let (server, sdk) = setup().await;
    let context = json!({"context": {"targetingKey": "u1", "plan": "pro"}});
    let bulk = |body: &Value, etag: Option<&str>| {
        let mut req = server.with_key(Method::POST, BULK, &sdk).json(body);
        if let Some(tag) = etag {
            req = req.header("If-None-Match", tag);
        }
        send(req)
    };

    let res = bulk(&context, None).await;
    res.assert_status(StatusCode::OK);
    let etag = res.etag();
    let flags = res.body["flags"].as_array().unwrap();
    let keys: Vec<_> = flags.iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&"banner") && keys.contains(&"static"));
    let banner = flags.iter().find(|f| f["key"] == "banner").unwrap();
    assert_eq!(banner["value"], true);
    assert_eq!(res.body["metadata"]["environment"], "development");

    // Same context, same config: 304.
    let res = bulk(&context, Some(&etag)).await;
    res.assert_status(StatusCode::NOT_MODIFIED);
    assert!(res.text.is_empty());
    // Another context: a different result, so a different ETag.
    let other = json!({"context": {"targetingKey": "u1", "plan": "free"}});
    let res = bulk(&other, Some(&etag)).await;
    res.assert_status(StatusCode::OK);
    assert_ne!(res.etag(), etag);
    // A config change: 200 again.
    server
        .create("development", "flags", &fixtures::bool_flag("third"))
        .await;
    let res = bulk(&context, Some(&etag)).await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["flags"].as_array().unwrap().len(), 3);
    let new_etag = res.etag();
    assert_ne!(new_etag, etag);
    bulk(&context, Some(&new_etag))
        .await
        .assert_status(StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn protocol_errors() {
    let (server, sdk) = setup().await;

    let res = evaluate(
        &server,
        &sdk,
        "nope",
        json!({"context": {"targetingKey": "u1"}}),
    )
    .await;
    res.assert_status(StatusCode::NOT_FOUND);
    assert_eq!(res.body["key"], "nope");
    assert_eq!(res.body["errorCode"], "FLAG_NOT_FOUND");
    assert!(res.body["errorDetails"].as_str().unwrap().contains("nope"));

    let cases = [
        (json!({"context": {"plan": "pro"}}), "TARGETING_KEY_MISSING"),
        (
            json!({"context": {"targetingKey": ""}}),
            "TARGETING_KEY_MISSING",
        ),
        (json!({"context": {"targetingKey": 42}}), "INVALID_CONTEXT"),
        (json!({"context": "u1"}), "INVALID_CONTEXT"),
        (json!({}), "INVALID_CONTEXT"),
        (
            json!({"context": {"targetingKey": "u", "address": {"city": "x"}}}),
            "INVALID_CONTEXT",
        ),
    ];
    for (body, code) in cases {
        for path in [format!("{BULK}/banner"), BULK.to_string()] {
            let res = send(server.with_key(Method::POST, &path, &sdk).json(&body)).await;
            res.assert_status(StatusCode::BAD_REQUEST);
            assert_eq!(res.body["errorCode"], code, "{path} {body}: {}", res.text);
            assert!(res.body["errorDetails"].is_string());
        }
    }
    for path in [format!("{BULK}/banner"), BULK.to_string()] {
        let res = send(
            server
                .with_key(Method::POST, &path, &sdk)
                .header("content-type", "application/json")
                .body("{context: nope"),
        )
        .await;
        res.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(res.body["errorCode"], "PARSE_ERROR", "{}", res.text);
    }

    // Admin keys have no environment to evaluate: 403. No key: 401.
    let res = send(
        server
            .admin(Method::POST, &format!("{BULK}/banner"))
            .json(&json!({"context": {"targetingKey": "u1"}})),
    )
    .await;
    res.assert_status(StatusCode::FORBIDDEN);
    let res = send(
        server
            .anon(Method::POST, &format!("{BULK}/banner"))
            .json(&json!({"context": {"targetingKey": "u1"}})),
    )
    .await;
    res.assert_status(StatusCode::UNAUTHORIZED);
}

/// OpenFeature's reason name, as OFREP writes it.
fn reason_name(reason: Option<open_feature::EvaluationReason>) -> &'static str {
    use open_feature::EvaluationReason as R;
    match reason {
        Some(R::Static) => "STATIC",
        Some(R::Default) => "DEFAULT",
        Some(R::TargetingMatch) => "TARGETING_MATCH",
        Some(R::Split) => "SPLIT",
        Some(R::Disabled) => "DISABLED",
        other => panic!("unexpected reason {other:?}"),
    }
}

/// The SDK's OpenFeature provider (evaluating locally) and the server's OFREP endpoint give the
/// same value, variant and reason for every kind of flag and user: one reason mapping, shared.
#[tokio::test]
async fn the_sdk_provider_and_ofrep_agree_on_every_flag() {
    use open_feature::provider::FeatureProvider;
    use open_feature::EvaluationContext;

    let (server, sdk) = setup().await;
    server
        .create(
            "development",
            "flags",
            &fixtures::split_flag("checkout", 5000),
        )
        .await;
    let mut vip = fixtures::bool_flag("vip");
    vip["overrides"] = json!([{"variant": "on", "keys": ["u0"]}]);
    server.create("development", "flags", &vip).await;
    let mut killed = fixtures::segment_flag("killed", "pro");
    killed["enabled"] = json!(false);
    server.create("development", "flags", &killed).await;

    let client = tailor::Client::builder(server.url(""), &sdk)
        .build()
        .await
        .unwrap();
    let provider = tailor::openfeature::TailorProvider::new(client.clone());
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..40 {
        let user = format!("u{i}");
        let plan = if i % 3 == 0 { "pro" } else { "free" };
        let context = EvaluationContext::default()
            .with_targeting_key(user.as_str())
            .with_custom_field("plan", plan);
        for flag in ["banner", "static", "checkout", "vip", "killed"] {
            let remote = evaluate(
                &server,
                &sdk,
                flag,
                json!({"context": {"targetingKey": user, "plan": plan}}),
            )
            .await;
            remote.assert_status(StatusCode::OK);
            let (value, variant, reason) = if flag == "checkout" {
                let d = provider.resolve_string_value(flag, &context).await.unwrap();
                (json!(d.value), d.variant, reason_name(d.reason))
            } else {
                let d = provider.resolve_bool_value(flag, &context).await.unwrap();
                (json!(d.value), d.variant, reason_name(d.reason))
            };
            let at = format!("{flag} for {user}: {}", remote.body);
            assert_eq!(value, remote.body["value"], "{at}");
            assert_eq!(json!(variant), remote.body["variant"], "{at}");
            assert_eq!(reason, remote.body["reason"], "{at}");
            seen.insert(reason);
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["DEFAULT", "DISABLED", "SPLIT", "STATIC", "TARGETING_MATCH"],
        "every reason was compared"
    );
    client.close().await.unwrap();
}
