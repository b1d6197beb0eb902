//! Admin actions beyond CRUD: rollout, toggle, restore from the audit log, import/export
//! (config as code, with a dry run), the evaluation preview, environments.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{fixtures, send, Resp, Server, PATIENCE};

const FLAGS: &str = "/api/v1/environments/development/flags";

async fn action(server: &Server, flag: &str, what: &str, body: &Value) -> Resp {
    send(
        server
            .admin(Method::POST, &format!("{FLAGS}/{flag}/{what}"))
            .json(body),
    )
    .await
}

#[tokio::test]
async fn rollout_changes_coverage_everywhere() {
    let server = Server::start().await;
    server
        .create(
            "development",
            "flags",
            &fixtures::split_flag("homepage", 1000),
        )
        .await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let mut stream = server.sse(&sdk, None).await;
    let before = stream.next_config(PATIENCE).await.revision;

    let res = action(
        &server,
        "homepage",
        "rollout",
        &json!({"rule": 0, "coverage": 7500}),
    )
    .await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.revision(), before + 1, "a rollout bumps the revision");
    assert_eq!(res.body["rules"][0]["coverage"], 7500);
    assert_eq!(
        res.etag(),
        server.get("development", "flags", "homepage").await.etag()
    );

    // Audit: who, what, before and after.
    let audit = server.audit("development", "kind=flag&key=homepage").await;
    let entry = &audit[0];
    assert_eq!(entry["action"], "rollout");
    assert_eq!(entry["revision"], before + 1);
    assert_eq!(entry["before"]["rules"][0]["coverage"], 1000);
    assert_eq!(entry["after"]["rules"][0]["coverage"], 7500);
    assert!(
        entry["actor"]
            .as_str()
            .unwrap()
            .contains("TAILOR_ADMIN_KEY"),
        "{entry}"
    );

    // SSE clients get the new coverage.
    let event = stream.next_config(PATIENCE).await;
    assert_eq!(event.revision, before + 1);
    assert_eq!(event.document["flags"][0]["rules"][0]["coverage"], 7500);

    // The rule by id; and the SDK config agrees.
    let res = action(
        &server,
        "homepage",
        "rollout",
        &json!({"rule": "main", "coverage": 10000}),
    )
    .await;
    res.assert_status(StatusCode::OK);
    let config = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
    assert_eq!(config.body["flags"][0]["rules"][0]["coverage"], 10000);
    assert_eq!(stream.next_config(PATIENCE).await.revision, before + 2);

    // Raising coverage only adds users: everyone in a variant at 10% keeps it at 100%.
    let preview = |coverage: u32| {
        let server = &server;
        async move {
            action(
                server,
                "homepage",
                "rollout",
                &json!({"rule": 0, "coverage": coverage}),
            )
            .await
            .assert_status(StatusCode::OK);
            let users: Vec<Value> = (0..200).map(|i| json!({"key": format!("u{i}")})).collect();
            let mut out = Vec::new();
            for user in users {
                let res = send(
                    server
                        .admin(Method::POST, "/api/v1/environments/development/preview")
                        .json(&json!({"user": user, "flags": ["homepage"]})),
                )
                .await;
                let a = &res.body["assignments"][0];
                out.push((a["reason"]["kind"] == "split").then(|| a["variant"].clone()));
            }
            out
        }
    };
    let small = preview(1000).await;
    let full = preview(10000).await;
    assert!(small.iter().flatten().count() < full.iter().flatten().count());
    for (s, f) in small.iter().zip(&full) {
        if let Some(v) = s {
            assert_eq!(Some(v), f.as_ref(), "raising coverage moved a user");
        }
    }
}

#[tokio::test]
async fn rollout_rejects_bad_requests() {
    let server = Server::start().await;
    server
        .create(
            "development",
            "flags",
            &fixtures::split_flag("homepage", 1000),
        )
        .await;
    let before = server.revision("development").await;
    let cases = [
        (
            json!({"rule": 0, "coverage": 10001}),
            StatusCode::BAD_REQUEST,
            "coverage",
        ),
        (
            json!({"rule": 0, "coverage": -5}),
            StatusCode::BAD_REQUEST,
            "coverage",
        ),
        (json!({"rule": 0}), StatusCode::BAD_REQUEST, "coverage"),
        (
            json!({"rule": 3, "coverage": 10}),
            StatusCode::BAD_REQUEST,
            "rule",
        ),
        (
            json!({"rule": "nope", "coverage": 10}),
            StatusCode::BAD_REQUEST,
            "rule",
        ),
    ];
    for (body, status, field) in cases {
        let res = action(&server, "homepage", "rollout", &body).await;
        assert_eq!(res.status, status, "{body}: {}", res.text);
        assert!(
            res.body["message"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{}",
            res.text
        );
    }
    action(
        &server,
        "missing",
        "rollout",
        &json!({"rule": 0, "coverage": 10}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found", "missing");
    // If-Match is optional on actions, but honoured.
    let res = send(
        server
            .admin(Method::POST, &format!("{FLAGS}/homepage/rollout"))
            .header("If-Match", "\"stale\"")
            .json(&json!({"rule": 0, "coverage": 10})),
    )
    .await;
    res.assert_status(StatusCode::PRECONDITION_FAILED);
    assert_eq!(server.revision("development").await, before);
}

#[tokio::test]
async fn toggle_switches_a_flag_off_and_on() {
    let server = Server::start().await;
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
    let pro = json!({"key": "u1", "attributes": {"plan": "pro"}});
    let reason = |server: &Server| {
        let server_http = server.http.clone();
        let url = server.url("/api/v1/environments/development/preview");
        let pro = pro.clone();
        async move {
            let res = send(
                server_http
                    .post(url)
                    .bearer_auth(crate::support::ADMIN_KEY)
                    .json(&json!({"user": pro, "flags": ["banner"]})),
            )
            .await;
            res.body["assignments"][0].clone()
        }
    };
    assert_eq!(reason(&server).await["variant"], "on");

    let res = action(&server, "banner", "toggle", &json!({"enabled": false})).await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["enabled"], false);
    let a = reason(&server).await;
    assert_eq!(a["reason"]["kind"], "flag_off");
    assert_eq!(a["variant"], "off");
    assert_eq!(
        server.audit("development", "key=banner").await[0]["action"],
        "toggle"
    );

    action(&server, "banner", "toggle", &json!({"enabled": true}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(reason(&server).await["variant"], "on");

    action(&server, "banner", "toggle", &json!({"enabled": "no"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request", "enabled");
    action(&server, "banner", "toggle", &json!({}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request", "enabled");
}

#[tokio::test]
async fn restore_rolls_a_flag_back_to_an_audited_version() {
    let server = Server::start().await;
    let created = server
        .create(
            "development",
            "flags",
            &fixtures::split_flag("homepage", 1000),
        )
        .await;
    let original = created.body.clone();
    let mut edited = original.clone();
    edited["description"] = json!("a change we regret");
    edited["rules"][0]["split"] = json!([{"variant": "treatment", "weight": 10000}]);
    send(
        server
            .admin(Method::PUT, &format!("{FLAGS}/homepage"))
            .header("If-Match", created.etag())
            .json(&edited),
    )
    .await
    .assert_status(StatusCode::OK);
    action(&server, "homepage", "toggle", &json!({"enabled": false}))
        .await
        .assert_status(StatusCode::OK);

    let audit = server.audit("development", "kind=flag&key=homepage").await;
    let actions: Vec<_> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["toggle", "update", "create"]);
    let update_id = audit[1]["id"].clone();
    let create_id = audit[2]["id"].clone();

    // Restoring the update brings back the version before it.
    let before = server.revision("development").await;
    let res = action(
        &server,
        "homepage",
        "restore",
        &json!({"audit_id": update_id}),
    )
    .await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.revision(), before + 1);
    assert_eq!(res.body, original);
    assert_eq!(
        server.get("development", "flags", "homepage").await.body,
        original
    );
    let entry = &server.audit("development", "key=homepage").await[0];
    assert_eq!(entry["action"], "restore");
    assert_eq!(entry["after"], original);
    assert_eq!(entry["before"]["enabled"], false);

    // A create has no earlier version; unknown ids are rejected.
    action(
        &server,
        "homepage",
        "restore",
        &json!({"audit_id": create_id}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request", "audit_id");
    action(
        &server,
        "homepage",
        "restore",
        &json!({"audit_id": 999_999}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request", "audit_id");
    action(
        &server,
        "homepage",
        "restore",
        &json!({"audit_id": "latest"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request", "audit_id");
    assert_eq!(server.revision("development").await, before + 1);
}

#[tokio::test]
async fn import_dry_run_diffs_and_real_import_applies() {
    let server = Server::start().await;
    server
        .create("development", "segments", &fixtures::segment("pro"))
        .await;
    server
        .create("development", "flags", &fixtures::bool_flag("old"))
        .await;
    server
        .create("development", "flags", &fixtures::bool_flag("kept"))
        .await;
    let export = send(server.admin(Method::GET, "/api/v1/environments/development/export")).await;
    export.assert_status(StatusCode::OK);
    let etag = export.etag();
    let revision = export.revision();

    let mut doc = export.body.clone();
    doc["flags"] = json!([
        {"key": "kept", "type": "bool", "variants": [{"key": "off", "value": false}, {"key": "on", "value": true}], "default_variant": "on"},
        fixtures::segment_flag("new", "pro"),
    ]);
    let import = |dry_run: bool, body: &Value, if_match: Option<&str>| {
        let mut req = server
            .admin(
                Method::POST,
                &format!("/api/v1/environments/development/import?dry_run={dry_run}"),
            )
            .json(body);
        if let Some(tag) = if_match {
            req = req.header("If-Match", tag);
        }
        send(req)
    };

    // Dry run: the diff, and nothing changes.
    let res = import(true, &doc, Some(&etag)).await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["dry_run"], true);
    let mut changes: Vec<(String, String, String)> = res.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().into(),
                c["key"].as_str().unwrap().into(),
                c["change"].as_str().unwrap().into(),
            )
        })
        .collect();
    changes.sort();
    let expected = [
        ("flag", "kept", "changed"),
        ("flag", "new", "added"),
        ("flag", "old", "removed"),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(changes, expected);
    let after = send(server.admin(Method::GET, "/api/v1/environments/development/export")).await;
    assert_eq!(after.text, export.text, "a dry run changes nothing");
    assert_eq!(after.etag(), etag);

    // An invalid document: 422 with problems, in dry runs and for real.
    let mut invalid = doc.clone();
    invalid["flags"][1]["rules"][0]["when"] = json!({"segment": "ghosts"});
    for dry_run in [true, false] {
        import(dry_run, &invalid, None)
            .await
            .assert_problem_at("flags.new.rules[0].when.segment");
    }
    // A stale If-Match: 412.
    import(false, &doc, Some("\"1-0000000000000000\""))
        .await
        .assert_status(StatusCode::PRECONDITION_FAILED);
    assert_eq!(server.revision("development").await, revision);

    // Real import.
    let res = import(false, &doc, Some(&etag)).await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["dry_run"], false);
    assert_eq!(res.body["revision"], revision + 1);
    assert_eq!(res.body["changes"].as_array().unwrap().len(), 3);
    let now = send(server.admin(Method::GET, "/api/v1/environments/development/config")).await;
    assert_eq!(now.revision(), revision + 1);
    // As imported, with defaults filled in (`enabled: true`, `coverage: 10000`).
    let normalized: tailor_core::ConfigDocument = serde_json::from_value(doc.clone()).unwrap();
    let normalized = serde_json::to_value(normalized).unwrap();
    assert_eq!(now.body["flags"], normalized["flags"]);
    assert_eq!(now.body["segments"], normalized["segments"]);
    assert_eq!(
        server.audit("development", "kind=environment").await[0]["action"],
        "import"
    );

    // Re-importing the same document changes nothing but the revision.
    let res = import(true, &now.body, None).await;
    assert_eq!(res.body["changes"], json!([]));
}

#[tokio::test]
async fn export_and_import_yaml_round_trip() {
    let server = Server::start().await;
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
    let yaml = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/export?format=yaml",
    ))
    .await;
    yaml.assert_status(StatusCode::OK);
    assert!(yaml.header("content-type").unwrap().contains("yaml"));
    assert!(yaml.text.contains("key: banner"), "{}", yaml.text);

    // Import it into production.
    let res = send(
        server
            .admin(Method::POST, "/api/v1/environments/production/import")
            .header("content-type", "application/yaml")
            .body(yaml.text.clone()),
    )
    .await;
    res.assert_status(StatusCode::OK);
    let prod = send(server.admin(Method::GET, "/api/v1/environments/production/config")).await;
    let dev = send(server.admin(Method::GET, "/api/v1/environments/development/config")).await;
    assert_eq!(prod.body["flags"], dev.body["flags"]);
    assert_eq!(
        prod.body["environment"], "production",
        "the URL decides the environment"
    );

    send(server.admin(
        Method::GET,
        "/api/v1/environments/development/export?format=xml",
    ))
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request", "format");
    send(
        server
            .admin(
                Method::POST,
                "/api/v1/environments/development/import?dry_run=maybe",
            )
            .json(&json!({})),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request", "dry_run");
    send(
        server
            .admin(Method::POST, "/api/v1/environments/development/import")
            .json(&json!({"flags": 3})),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request", "flags");
}

#[tokio::test]
async fn preview_explains_assignments() {
    let server = Server::start().await;
    server
        .create("development", "segments", &fixtures::segment("pro"))
        .await;
    server
        .create("development", "experiments", &fixtures::experiment("exp"))
        .await;
    let mut flag = fixtures::split_flag("homepage", 10000);
    flag["rules"][0]["experiment"] = json!("exp");
    server.create("development", "flags", &flag).await;
    server
        .create(
            "development",
            "flags",
            &fixtures::segment_flag("banner", "pro"),
        )
        .await;
    let preview = |body: Value| {
        send(
            server
                .admin(Method::POST, "/api/v1/environments/development/preview")
                .json(&body),
        )
    };

    let res = preview(json!({"user": {"key": "u1", "attributes": {"plan": "pro"}}})).await;
    res.assert_status(StatusCode::OK);
    let items = res.body["assignments"].as_array().unwrap();
    assert_eq!(items.len(), 2, "every flag when none is named");
    let banner = items.iter().find(|a| a["flag"] == "banner").unwrap();
    assert_eq!(banner["variant"], "on");
    assert_eq!(banner["value"], true);
    assert_eq!(banner["reason"], json!({"kind": "rule", "rule": 0}));
    assert_eq!(banner["rule_id"], "members");
    assert_eq!(banner["segment"], "pro");
    let homepage = items.iter().find(|a| a["flag"] == "homepage").unwrap();
    assert_eq!(homepage["reason"]["kind"], "split");
    assert!(homepage["reason"]["bucket"].as_u64().unwrap() < 10000);
    assert_eq!(homepage["experiment"], "exp");

    let res = preview(
        json!({"user": {"key": "u2", "attributes": {"plan": "free"}}, "flags": ["banner", "nope"]}),
    )
    .await;
    let items = res.body["assignments"].as_array().unwrap();
    assert_eq!(items[0]["reason"]["kind"], "fallthrough");
    assert_eq!(items[0]["variant"], "off");
    assert_eq!(items[1]["reason"]["kind"], "unknown_flag");
    assert_eq!(items[1]["variant"], Value::Null);

    preview(json!({"user": {"attributes": {}}}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request", "user");
    preview(json!({"user": {"key": "u", "attributes": {"tags": [1, 2]}}}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request", "user.attributes");
}

#[tokio::test]
async fn environments_can_be_listed_and_created() {
    let server = Server::start().await;
    let list = send(server.admin(Method::GET, "/api/v1/environments")).await;
    list.assert_status(StatusCode::OK);
    let keys: Vec<_> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].clone())
        .collect();
    assert_eq!(keys, [json!("development"), json!("production")]);

    let res = send(
        server
            .admin(Method::POST, "/api/v1/environments")
            .json(&json!({"key": "staging"})),
    )
    .await;
    res.assert_status(StatusCode::CREATED);
    assert_eq!(
        res.body,
        json!({"key": "staging", "revision": 1, "partitions": 16})
    );
    // The partition count is chosen at creation, within 1-1024.
    let res = send(
        server
            .admin(Method::POST, "/api/v1/environments")
            .json(&json!({"key": "small", "partitions": 2})),
    )
    .await;
    res.assert_status(StatusCode::CREATED);
    assert_eq!(res.body["partitions"], 2);
    for bad in [json!(0), json!(1025)] {
        let res = send(
            server
                .admin(Method::POST, "/api/v1/environments")
                .json(&json!({"key": "bad", "partitions": bad})),
        )
        .await;
        res.assert_status(StatusCode::BAD_REQUEST);
        assert!(
            res.text.contains("partitions must be between 1 and 1024"),
            "{}",
            res.text
        );
    }
    server
        .create("staging", "flags", &fixtures::bool_flag("banner"))
        .await;
    let (_, sdk) = server.create_key("sdk", Some("staging")).await;
    let config = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
    assert_eq!(config.body["environment"], "staging");

    send(
        server
            .admin(Method::POST, "/api/v1/environments")
            .json(&json!({"key": "staging"})),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "conflict", "staging");
    send(
        server
            .admin(Method::POST, "/api/v1/environments")
            .json(&json!({"key": "Bad Key"})),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request", "key");
    send(
        server
            .admin(Method::POST, "/api/v1/environments")
            .json(&json!({"name": "x"})),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request", "key");
}

#[tokio::test]
async fn audit_log_can_be_filtered() {
    let server = Server::start().await;
    server
        .create("development", "segments", &fixtures::segment("pro"))
        .await;
    for i in 0..3 {
        server
            .create(
                "development",
                "flags",
                &fixtures::bool_flag(&format!("f{i}")),
            )
            .await;
    }
    let all = server.audit("development", "").await;
    assert_eq!(all.len(), 4);
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(server.audit("development", "kind=segment").await.len(), 1);
    assert_eq!(server.audit("development", "key=f1").await.len(), 1);
    assert_eq!(
        server.audit("development", "kind=flag&limit=2").await.len(),
        2
    );
    assert_eq!(server.audit("production", "").await.len(), 0);
    let entry = &server.audit("development", "key=f1").await[0];
    assert_eq!(entry["before"], Value::Null);
    assert_eq!(entry["after"]["key"], "f1");
    assert!(entry["at"].as_str().unwrap().contains('T'));

    send(server.admin(
        Method::GET,
        "/api/v1/environments/development/audit?limit=many",
    ))
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request", "limit");
    send(server.admin(Method::GET, "/api/v1/environments/nowhere/audit"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", "nowhere");
}

#[tokio::test]
async fn an_import_of_the_wrong_document_is_refused_instead_of_wiping_the_environment() {
    let server = Server::start().await;
    server
        .create("development", "flags", &fixtures::bool_flag("banner"))
        .await;
    let before = server.revision("development").await;
    for (body, field) in [
        (json!({}), "body"),
        (json!({"flgas": []}), "flgas"),
        (json!({"flags": [], "extra": 1}), "extra"),
        (json!([1, 2]), "body"),
    ] {
        let res = send(
            server
                .admin(Method::POST, "/api/v1/environments/development/import")
                .json(&body),
        )
        .await;
        res.assert_error(StatusCode::BAD_REQUEST, "bad_request", field);
    }
    assert_eq!(
        server.revision("development").await,
        before,
        "nothing was imported"
    );
    // Emptying an environment stays possible, explicitly.
    let res = send(
        server
            .admin(Method::POST, "/api/v1/environments/development/import")
            .json(&json!({"flags": [], "segments": []})),
    )
    .await;
    res.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn key_listings_never_show_digests_and_yaml_bodies_are_capped() {
    let server = Server::start().await;
    let res = send(server.admin(Method::GET, "/api/v1/keys")).await;
    res.assert_status(StatusCode::OK);
    assert!(!res.text.contains("digest"), "{}", res.text);
    assert!(res.body.as_array().is_some_and(|k| !k.is_empty()));
    let big = format!("flags: []\nsegments: []\n# {}\n", "x".repeat(300 * 1024));
    let res = send(
        server
            .admin(Method::POST, "/api/v1/environments/development/import")
            .header("Content-Type", "application/yaml")
            .body(big),
    )
    .await;
    res.assert_status(StatusCode::BAD_REQUEST);
    assert!(res.text.contains("YAML bodies are limited"), "{}", res.text);
}
