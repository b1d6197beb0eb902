//! Admin CRUD of every resource kind, and bad input of every kind: each rejected with a 4xx JSON
//! error that names the offending field, and none of them changing the stored config.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{fixtures, send, Resp, Server};

const DEV: &str = "/api/v1/environments/development";

fn path(plural: &str, key: &str) -> String {
    format!("{DEV}/{plural}/{key}")
}

async fn post(server: &Server, plural: &str, body: &Value) -> Resp {
    send(
        server
            .admin(Method::POST, &format!("{DEV}/{plural}"))
            .json(body),
    )
    .await
}

async fn put(
    server: &Server,
    plural: &str,
    key: &str,
    if_match: Option<&str>,
    body: &Value,
) -> Resp {
    let mut req = server.admin(Method::PUT, &path(plural, key)).json(body);
    if let Some(tag) = if_match {
        req = req.header("If-Match", tag);
    }
    send(req).await
}

async fn delete(server: &Server, plural: &str, key: &str, if_match: Option<&str>) -> Resp {
    let mut req = server.admin(Method::DELETE, &path(plural, key));
    if let Some(tag) = if_match {
        req = req.header("If-Match", tag);
    }
    send(req).await
}

/// Create, read, list, update (with `If-Match`), delete: the lifecycle every kind shares.
async fn lifecycle(server: &Server, plural: &str, item: Value, edit: impl FnOnce(&mut Value)) {
    let key = item["key"].as_str().unwrap().to_string();
    let before = server.revision("development").await;

    let created = post(server, plural, &item).await;
    created.assert_status(StatusCode::CREATED);
    assert_eq!(created.revision(), before + 1);
    assert_eq!(
        created.header("location"),
        Some(path(plural, &key).as_str())
    );
    assert_eq!(created.body["key"], key);

    let read = server.get("development", plural, &key).await;
    assert_eq!(
        read.etag(),
        created.etag(),
        "create and read agree on the ETag"
    );
    assert!(!read.etag().starts_with("W/"), "ETags are strong");

    let list = send(server.admin(Method::GET, &format!("{DEV}/{plural}"))).await;
    list.assert_status(StatusCode::OK);
    assert_eq!(list.body["revision"], before + 1);
    assert!(list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["key"] == key));

    let mut changed = read.body.clone();
    edit(&mut changed);
    assert_ne!(changed, read.body, "the edit changes something");
    let updated = put(server, plural, &key, Some(&read.etag()), &changed).await;
    updated.assert_status(StatusCode::OK);
    assert_eq!(updated.revision(), before + 2);
    assert_ne!(updated.etag(), read.etag());
    let reread = server.get("development", plural, &key).await;
    assert_eq!(reread.body, updated.body);
    assert_eq!(reread.etag(), updated.etag());

    let deleted = delete(server, plural, &key, Some(&updated.etag())).await;
    deleted.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(deleted.revision(), before + 3);
    let gone = send(server.admin(Method::GET, &path(plural, &key))).await;
    gone.assert_error(StatusCode::NOT_FOUND, "not_found", &key);

    let audit = server.audit("development", &format!("key={key}")).await;
    let actions: Vec<_> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["delete", "update", "create"],
        "audit log, newest first"
    );
}

#[tokio::test]
async fn every_kind_goes_through_its_lifecycle() {
    let server = Server::start().await;
    lifecycle(&server, "segments", fixtures::segment("pro"), |s| {
        s["include"] = json!(["vip-1"]);
    })
    .await;
    lifecycle(
        &server,
        "flags",
        fixtures::split_flag("homepage", 5000),
        |f| {
            f["description"] = json!("now with a description");
        },
    )
    .await;
    lifecycle(&server, "experiments", fixtures::experiment("exp"), |e| {
        e["status"] = json!("stopped");
    })
    .await;
    // A layer needs an experiment to slice.
    server
        .create(
            "development",
            "experiments",
            &fixtures::experiment("sliced"),
        )
        .await;
    lifecycle(
        &server,
        "layers",
        fixtures::layer("checkout", "sliced"),
        |l| {
            l["slices"][0]["end"] = json!(2500);
        },
    )
    .await;
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_field() {
    let server = Server::start().await;
    let before = server.revision("development").await;

    // Wrong types, at every depth: the path of the offending field is in the message.
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "segments",
            json!({"key": "s", "include": "not-a-list"}),
            "include",
        ),
        ("segments", json!({"key": 7}), "key"),
        (
            "segments",
            json!({"key": "s", "conditions": {"attribute": "plan", "op": "is_kind_of", "values": ["x"]}}),
            "conditions",
        ),
        (
            "flags",
            json!({"key": "f", "type": "bool", "variants": "on,off", "default_variant": "on"}),
            "variants",
        ),
        (
            "flags",
            json!({"key": "f", "type": "boolean", "variants": [], "default_variant": "on"}),
            "type",
        ),
        (
            "flags",
            json!({"key": "f", "type": "bool", "variants": [{"key": 1, "value": true}], "default_variant": "on"}),
            "variants[0].key",
        ),
        (
            "flags",
            json!({"key": "f", "type": "bool", "variants": []}),
            "default_variant",
        ),
        (
            "flags",
            {
                let mut f = fixtures::split_flag("f", 10000);
                f["rules"][0]["split"][1]["weight"] = json!("half");
                f
            },
            "rules[0].split[1].weight",
        ),
        (
            "flags",
            {
                let mut f = fixtures::split_flag("f", 10000);
                f["rules"][0]["coverage"] = json!(-1);
                f
            },
            "rules[0].coverage",
        ),
        (
            "experiments",
            json!({"key": "e", "status": "paused"}),
            "status",
        ),
        (
            "experiments",
            json!({"key": "e", "guardrail_metrics": "latency"}),
            "guardrail_metrics",
        ),
        (
            "layers",
            json!({"key": "l", "slices": [{"experiment": "e", "start": "0"}]}),
            "slices[0].start",
        ),
    ];
    for (plural, body, field) in cases {
        let res = post(&server, plural, &body).await;
        res.assert_error(StatusCode::BAD_REQUEST, "bad_request", field);
    }

    // Not JSON at all, and an empty body.
    let res = send(
        server
            .admin(Method::POST, &format!("{DEV}/flags"))
            .header("content-type", "application/json")
            .body("{\"key\": \"f\", \"type\": "),
    )
    .await;
    res.assert_error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "invalid JSON body at `type`",
    );
    let res = send(server.admin(Method::POST, &format!("{DEV}/flags"))).await;
    res.assert_error(StatusCode::BAD_REQUEST, "bad_request", "empty");

    // An empty key.
    let res = post(&server, "segments", &json!({"key": ""})).await;
    res.assert_error(StatusCode::BAD_REQUEST, "bad_request", "key");

    assert_eq!(
        server.revision("development").await,
        before,
        "nothing was written"
    );
}

#[tokio::test]
async fn invalid_configs_are_422_with_exact_problem_paths() {
    let server = Server::start().await;
    server
        .create("development", "segments", &fixtures::segment("pro"))
        .await;
    server
        .create("development", "experiments", &fixtures::experiment("exp"))
        .await;
    let before = server.revision("development").await;

    // Weights not summing to 10000.
    let mut flag = fixtures::split_flag("homepage", 10000);
    flag["rules"][0]["split"][1]["weight"] = json!(4000);
    let res = post(&server, "flags", &flag).await;
    res.assert_problem_at("flags.homepage.rules[0].split");
    assert!(res.text.contains("10000"), "{}", res.text);

    // Unknown variants: the default, a fixed rule's, a split arm's.
    let mut flag = fixtures::bool_flag("banner");
    flag["default_variant"] = json!("maybe");
    post(&server, "flags", &flag)
        .await
        .assert_problem_at("flags.banner.default_variant");
    let mut flag = fixtures::bool_flag("banner");
    flag["rules"] = json!([{"variant": "sometimes"}]);
    post(&server, "flags", &flag)
        .await
        .assert_problem_at("flags.banner.rules[0].variant");
    let mut flag = fixtures::split_flag("homepage", 10000);
    flag["rules"][0]["split"][0]["variant"] = json!("nope");
    post(&server, "flags", &flag)
        .await
        .assert_problem_at("flags.homepage.rules[0].split[0].variant");

    // A variant value of the wrong type for the flag.
    let mut flag = fixtures::bool_flag("banner");
    flag["variants"][1]["value"] = json!("yes");
    post(&server, "flags", &flag)
        .await
        .assert_problem_at("flags.banner.variants[1].value");

    // Unknown segment, in a flag rule and in a segment.
    let flag = fixtures::segment_flag("banner", "ghosts");
    post(&server, "flags", &flag)
        .await
        .assert_problem_at("flags.banner.rules[0].when.segment");
    let segment =
        json!({"key": "fans", "conditions": {"any": [{"segment": "pro"}, {"segment": "ghosts"}]}});
    post(&server, "segments", &segment)
        .await
        .assert_problem_at("segments.fans.conditions.any[1].segment");

    // Coverage above 100%, an unknown experiment, a bad regex.
    let mut flag = fixtures::split_flag("homepage", 10001);
    flag["rules"][0]["experiment"] = json!("missing");
    let res = post(&server, "flags", &flag).await;
    res.assert_problem_at("flags.homepage.rules[0].coverage");
    res.assert_problem_at("flags.homepage.rules[0].experiment");
    let segment = json!({"key": "odd", "conditions": {"attribute": "email", "op": "regex", "values": ["(unclosed"]}});
    post(&server, "segments", &segment)
        .await
        .assert_problem_at("segments.odd.conditions.values[0]");

    // Experiments and layers.
    let res = post(
        &server,
        "experiments",
        &json!({"key": "e2", "attribution_window_hours": 0}),
    )
    .await;
    res.assert_problem_at("experiments.e2.attribution_window_hours");
    let layer = json!({"key": "l", "slices": [{"experiment": "nobody", "start": 0, "end": 100}]});
    post(&server, "layers", &layer)
        .await
        .assert_problem_at("layers.l.slices[0].experiment");
    let layer = json!({"key": "l", "slices": [{"experiment": "exp", "start": 500, "end": 100}]});
    post(&server, "layers", &layer)
        .await
        .assert_problem_at("layers.l.slices[0]");

    assert_eq!(
        server.revision("development").await,
        before,
        "nothing was written"
    );
}

#[tokio::test]
async fn resources_in_use_cannot_be_deleted() {
    let server = Server::start().await;
    let segment = server
        .create("development", "segments", &fixtures::segment("pro"))
        .await;
    server
        .create(
            "development",
            "flags",
            &fixtures::segment_flag("banner", "pro"),
        )
        .await;
    let experiment = server
        .create("development", "experiments", &fixtures::experiment("exp"))
        .await;
    let mut flag = fixtures::split_flag("homepage", 10000);
    flag["rules"][0]["experiment"] = json!("exp");
    server.create("development", "flags", &flag).await;
    let before = server.revision("development").await;

    let res = delete(&server, "segments", "pro", Some(&segment.etag())).await;
    res.assert_problem_at("flags.banner.rules[0].when.segment");
    assert!(res.text.contains("pro"), "{}", res.text);
    let res = delete(&server, "experiments", "exp", Some(&experiment.etag())).await;
    res.assert_problem_at("flags.homepage.rules[0].experiment");

    assert_eq!(server.revision("development").await, before);
    server.get("development", "segments", "pro").await;
    server.get("development", "experiments", "exp").await;
}

#[tokio::test]
async fn writes_need_a_current_if_match() {
    let server = Server::start().await;
    let created = server
        .create("development", "flags", &fixtures::bool_flag("banner"))
        .await;
    let etag = created.etag();
    let mut edited = created.body.clone();
    edited["enabled"] = json!(false);

    // Missing: 428, with the current ETag in the message.
    let res = put(&server, "flags", "banner", None, &edited).await;
    res.assert_error(
        StatusCode::PRECONDITION_REQUIRED,
        "precondition_required",
        "If-Match",
    );
    assert!(
        res.text.contains(&etag.replace('"', "\\\"")),
        "{}",
        res.text
    );
    delete(&server, "flags", "banner", None).await.assert_error(
        StatusCode::PRECONDITION_REQUIRED,
        "precondition_required",
        "If-Match",
    );

    // Stale: 412.
    let stale = "\"0000000000000000\"";
    put(&server, "flags", "banner", Some(stale), &edited)
        .await
        .assert_error(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "If-Match",
        );
    delete(&server, "flags", "banner", Some(stale))
        .await
        .assert_error(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "If-Match",
        );
    let unchanged = server.get("development", "flags", "banner").await;
    assert_eq!(unchanged.body, created.body);

    // Current: accepted; then the old tag is stale.
    let res = put(&server, "flags", "banner", Some(&etag), &edited).await;
    res.assert_status(StatusCode::OK);
    put(&server, "flags", "banner", Some(&etag), &created.body)
        .await
        .assert_status(StatusCode::PRECONDITION_FAILED);
    // `*` overwrites deliberately; a list of tags matches if one does.
    put(&server, "flags", "banner", Some("*"), &created.body)
        .await
        .assert_status(StatusCode::OK);
    let tags = format!("\"stale\", {etag}");
    delete(&server, "flags", "banner", Some(&tags))
        .await
        .assert_status(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn duplicates_missing_and_renames_are_rejected() {
    let server = Server::start().await;
    server
        .create("development", "segments", &fixtures::segment("pro"))
        .await;
    let flag = server
        .create("development", "flags", &fixtures::bool_flag("banner"))
        .await;
    let before = server.revision("development").await;

    post(&server, "segments", &fixtures::segment("pro"))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict", "pro");
    post(&server, "flags", &fixtures::bool_flag("banner"))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict", "banner");

    // A key in the body differing from the URL's.
    let mut renamed = flag.body.clone();
    renamed["key"] = json!("other");
    put(&server, "flags", "banner", Some(&flag.etag()), &renamed)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request", "key");
    // No key in the body: the URL's applies.
    let mut keyless = flag.body.clone();
    keyless["key"] = json!("");
    keyless["enabled"] = json!(false);
    let res = put(&server, "flags", "banner", Some(&flag.etag()), &keyless).await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["key"], "banner");

    // Missing resources and environments.
    send(server.admin(Method::GET, &path("flags", "nope")))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", "nope");
    put(
        &server,
        "flags",
        "nope",
        Some("*"),
        &fixtures::bool_flag("nope"),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found", "nope");
    delete(&server, "segments", "nope", Some("*"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", "nope");
    send(server.admin(Method::GET, "/api/v1/environments/staging/flags"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", "staging");
    send(
        server
            .admin(Method::POST, "/api/v1/environments/staging/flags")
            .json(&fixtures::bool_flag("x")),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found", "staging");

    assert_eq!(server.revision("development").await, before + 1);
}

#[tokio::test]
async fn oversized_bodies_are_413_json() {
    let server = Server::start_with(&[("TAILOR_BODY_LIMIT_BYTES", "4096")]).await;
    let mut segment = fixtures::segment("big");
    segment["include"] = json!((0..1000).map(|i| format!("user-{i}")).collect::<Vec<_>>());
    let res = post(&server, "segments", &segment).await;
    res.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        res.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "413 is a JSON error: {}",
        res.text
    );
    assert_eq!(res.body["error"], "payload_too_large", "{}", res.text);
    assert!(
        res.body["message"].as_str().unwrap().contains("4096"),
        "{}",
        res.text
    );

    // Just under the limit is fine.
    segment["include"] = json!(["one"]);
    post(&server, "segments", &segment)
        .await
        .assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn yaml_bodies_are_accepted_and_errors_name_the_path() {
    let server = Server::start().await;
    let yaml = "key: banner\ntype: bool\nvariants:\n  - {key: 'off', value: false}\n  - {key: 'on', value: true}\ndefault_variant: 'off'\n";
    let res = send(
        server
            .admin(Method::POST, &format!("{DEV}/flags"))
            .header("content-type", "application/yaml")
            .body(yaml),
    )
    .await;
    res.assert_status(StatusCode::CREATED);
    assert_eq!(res.body["variants"][1]["value"], true);

    let bad = "key: b2\ntype: bool\nvariants: 3\ndefault_variant: x\n";
    let res = send(
        server
            .admin(Method::POST, &format!("{DEV}/flags"))
            .header("content-type", "application/yaml")
            .body(bad),
    )
    .await;
    res.assert_error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "invalid YAML body at `variants`",
    );
}

/// Keys that would break a URL, a header, the dashboard or a spreadsheet are refused, each
/// problem naming its field (the key rule, `shared/src/key_rule.rs`).
#[tokio::test]
async fn keys_outside_the_key_rule_are_refused_naming_the_field() {
    let server = Server::start().await;
    let huge = "k".repeat(1 << 20);
    for key in [
        "café au lait",
        "a/b",
        "nul\0byte",
        "rtl\u{202E}gnp.exe",
        "=HYPERLINK(\"http://x\")",
        huge.as_str(),
    ] {
        let res = send(
            server
                .admin(Method::POST, "/api/v1/environments/development/flags")
                .json(&fixtures::bool_flag(key)),
        )
        .await;
        res.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            res.problem_paths().iter().any(|p| p.ends_with(".key")),
            "{}",
            &res.text[..res.text.len().min(500)]
        );
        assert!(
            res.text.len() < 4_096,
            "the message does not echo a huge key"
        );
    }
    let mut flag = fixtures::bool_flag("fine");
    flag["variants"][0]["key"] = json!("-1+1");
    let res = send(
        server
            .admin(Method::POST, "/api/v1/environments/development/flags")
            .json(&flag),
    )
    .await;
    res.assert_problem_at("flags[0].variants[0].key");
}

#[tokio::test]
async fn keys_with_url_special_characters_are_addressable() {
    let server = Server::start().await;
    for key in ["checkout.v2", "exp:2026-q4", "A_b-9"] {
        let created = server
            .create("development", "flags", &fixtures::bool_flag(key))
            .await;
        // Location is a valid, percent-encoded URL of the new resource...
        let location = created
            .header("location")
            .expect("a Location header")
            .to_string();
        assert!(location.is_ascii() && !location.contains(' '), "{location}");
        let read = send(server.admin(Method::GET, &location)).await;
        read.assert_status(StatusCode::OK);
        assert_eq!(read.body["key"], key);
        // ...that works for updates and deletes too.
        let res = send(
            server
                .admin(Method::DELETE, &location)
                .header("If-Match", read.etag()),
        )
        .await;
        res.assert_status(StatusCode::NO_CONTENT);
    }
}

/// YAML sent the way `curl --data-binary @config.yaml` sends it (form content type) is imported,
/// and the export quotes what YAML 1.1 readers would take for booleans (`off`, `on`).
#[tokio::test]
async fn yaml_imports_without_its_content_type_and_exports_quote_yaml_1_1_booleans() {
    let server = Server::start().await;
    let config = "flags:\n  - key: banner\n    type: bool\n    variants:\n      - {key: \"off\", value: false}\n      - {key: \"on\", value: true}\n    default_variant: \"off\"\n";
    let res = send(
        server
            .admin(Method::POST, "/api/v1/environments/development/import")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(config),
    )
    .await;
    res.assert_status(StatusCode::OK);
    let export = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/export?format=yaml",
    ))
    .await;
    export.assert_status(StatusCode::OK);
    for quoted in [r#"key: "off""#, r#"key: "on""#, r#"default_variant: "off""#] {
        assert!(
            export.text.contains(quoted),
            "no {quoted} in\n{}",
            export.text
        );
    }
}
