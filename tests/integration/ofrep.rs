//! OFREP (OpenFeature Remote Evaluation Protocol 0.3.0, github.com/open-feature/protocol):
//! single and bulk evaluation, the bulk ETag, the protocol's error codes, contexts without a
//! targeting key or with nested attributes, and the real OpenFeature clients people use (Node's
//! server and web SDKs, Python's SDK, each with its OFREP provider) run as child processes.
//!
//! The clients live in `tests/ofrep-clients/`: `npm ci --prefix tests/ofrep-clients` and
//! `pip install -r tests/ofrep-clients/requirements.txt` install them (`.ci/run` does). A missing
//! `node`, `python3` or package fails the test with that command; it never skips. `NODE` and
//! `PYTHON` override the programs.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::support::{fixtures, send, Resp, Server, ADMIN_KEY};

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

    // (A context without a key, or with nested attributes, is not an error: see
    // `evaluation_without_a_targeting_key` and `nested_attributes_and_odd_lists`.)
    let cases = [
        (json!({"context": {"targetingKey": 42}}), "INVALID_CONTEXT"),
        (json!({"context": "u1"}), "INVALID_CONTEXT"),
        (json!(["u1"]), "INVALID_CONTEXT"),
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

// ---------------------------------------------------------------------------------------------
// Contexts without a key, nested attributes, number values, error bodies (over HTTP).
// ---------------------------------------------------------------------------------------------

/// A flag of `type` serving `variants[default]`, plus `rules`.
fn flag(key: &str, kind: &str, variants: Value, default: &str, rules: Value) -> Value {
    json!({"key": key, "type": kind, "variants": variants, "default_variant": default, "rules": rules})
}

fn on_off() -> Value {
    json!([{"key": "off", "value": false}, {"key": "on", "value": true}])
}

/// The flags the client programs evaluate: every type, every reason, a split (needs a key), a
/// rule on a nested attribute, a number flag whose value is an integer.
async fn client_flags(server: &Server) {
    server
        .create("development", "segments", &fixtures::segment("pro"))
        .await;
    let mut banner = fixtures::segment_flag("banner", "pro");
    banner["description"] = json!("Promo banner");
    server.create("development", "flags", &banner).await;
    server
        .create("development", "flags", &fixtures::bool_flag("static"))
        .await;
    server
        .create(
            "development",
            "flags",
            &fixtures::split_flag("headline", 10_000),
        )
        .await;
    let limit = flag(
        "limit",
        "number",
        json!([{"key": "ten", "value": 10}, {"key": "two", "value": 2}]),
        "ten",
        json!([]),
    );
    server.create("development", "flags", &limit).await;
    let oslo = json!([{"id": "oslo", "when": {"attribute": "address.city", "op": "eq", "values": ["Oslo"]}, "variant": "quarter"}]);
    let ratio = flag(
        "ratio",
        "number",
        json!([{"key": "none", "value": 0}, {"key": "quarter", "value": 0.25}]),
        "none",
        oslo,
    );
    server.create("development", "flags", &ratio).await;
    let theme = flag(
        "theme",
        "json",
        json!([{"key": "dark", "value": {"color": "dark", "size": 3, "ratio": 0.5}}]),
        "dark",
        json!([]),
    );
    server.create("development", "flags", &theme).await;
    let mut killed = fixtures::segment_flag("killed", "pro");
    killed["enabled"] = json!(false);
    server.create("development", "flags", &killed).await;
}

/// A bulk item by flag key.
fn item<'a>(res: &'a Resp, key: &str) -> &'a Value {
    res.body["flags"]
        .as_array()
        .and_then(|flags| flags.iter().find(|f| f["key"] == key))
        .unwrap_or_else(|| panic!("no `{key}` in {}", res.text))
}

/// The web provider before sign-in sends `{"context": {}}` (and Python with no context `{}`):
/// flags that need no key evaluate; the ones that do report `TARGETING_KEY_MISSING` each, in a
/// `200` bulk answer (a `400` from the single endpoint).
#[tokio::test]
async fn evaluation_without_a_targeting_key() {
    let server = Server::start().await;
    client_flags(&server).await;
    let rules = |rules: Value| flag("f", "bool", on_off(), "off", rules);
    // A fixed rule on `plan` decides pro users before the split is reached.
    let mut pro_first = rules(json!([
        {"when": {"segment": "pro"}, "variant": "on"},
        {"split": [{"variant": "off", "weight": 5000}, {"variant": "on", "weight": 5000}]},
    ]));
    pro_first["key"] = json!("pro-first");
    let mut rollout = rules(json!([{"variant": "on", "coverage": 2500}]));
    rollout["key"] = json!("rollout");
    let mut by_key = rules(
        json!([{"when": {"attribute": "key", "op": "in", "values": ["u1"]}, "variant": "on"}]),
    );
    by_key["key"] = json!("by-key");
    let mut by_device = rules(
        json!([{"split": [{"variant": "off", "weight": 5000}, {"variant": "on", "weight": 5000}], "bucket_by": "device"}]),
    );
    by_device["key"] = json!("by-device");
    let mut overridden = fixtures::bool_flag("overridden");
    overridden["overrides"] = json!([{"variant": "on", "keys": ["u1"]}]);
    for f in [pro_first, rollout, by_key, by_device, overridden] {
        server.create("development", "flags", &f).await;
    }
    let (_, client) = server.create_key("client", Some("development")).await;

    for body in [
        json!({"context": {}}),
        json!({}),
        json!({"context": null}),
        json!({"context": {"targetingKey": null}}),
        json!({"context": {"targetingKey": ""}}),
    ] {
        let res = send(server.with_key(Method::POST, BULK, &client).json(&body)).await;
        res.assert_status(StatusCode::OK);
        for (key, value, reason) in [
            ("static", json!(false), "STATIC"),
            ("banner", json!(false), "DEFAULT"),
            ("limit", json!(10.0), "STATIC"),
            (
                "theme",
                json!({"color": "dark", "size": 3, "ratio": 0.5}),
                "STATIC",
            ),
            ("killed", json!(false), "DISABLED"),
            ("ratio", json!(0.0), "DEFAULT"),
            ("overridden", json!(false), "DEFAULT"),
        ] {
            let f = item(&res, key);
            assert_eq!(f["value"], value, "{key} for {body}: {f}");
            assert_eq!(f["reason"], reason, "{key} for {body}: {f}");
        }
        // (`pro-first` reaches its split: nobody here is on the pro plan.)
        for key in ["headline", "rollout", "by-key", "pro-first"] {
            let f = item(&res, key);
            assert_eq!(f["errorCode"], "TARGETING_KEY_MISSING", "{key}: {f}");
            assert!(f["errorDetails"].as_str().unwrap().contains(key), "{f}");
            assert!(f.get("value").is_none(), "{f}");
        }
        // Bucketing by another attribute that is missing serves the default, as for any user.
        assert_eq!(item(&res, "by-device")["value"], false);
    }

    // A pro user without a key: decided by the rule on `plan`, before the split.
    let res = evaluate(
        &server,
        &client,
        "pro-first",
        json!({"context": {"plan": "pro"}}),
    )
    .await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["value"], true);
    assert_eq!(res.body["reason"], "TARGETING_MATCH");
    let res = evaluate(
        &server,
        &client,
        "pro-first",
        json!({"context": {"plan": "free"}}),
    )
    .await;
    res.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(res.body["key"], "pro-first");
    assert_eq!(res.body["errorCode"], "TARGETING_KEY_MISSING");
    let res = evaluate(&server, &client, "static", json!({})).await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["reason"], "STATIC");

    // The bulk ETag works without a key too, and differs from a keyed context's.
    let res = send(
        server
            .with_key(Method::POST, BULK, &client)
            .json(&json!({"context": {}})),
    )
    .await;
    let etag = res.etag();
    let again = send(
        server
            .with_key(Method::POST, BULK, &client)
            .header("If-None-Match", &etag)
            .json(&json!({"context": {}})),
    )
    .await;
    again.assert_status(StatusCode::NOT_MODIFIED);
    let keyed = send(
        server
            .with_key(Method::POST, BULK, &client)
            .header("If-None-Match", &etag)
            .json(&json!({"context": {"targetingKey": "u1"}})),
    )
    .await;
    keyed.assert_status(StatusCode::OK);
    assert_eq!(item(&keyed, "overridden")["value"], true);
}

/// Number flags go out as floats (`10.0`), so Python's `get_float_*` accepts an integral value.
#[tokio::test]
async fn number_flags_are_written_as_floats() {
    let server = Server::start().await;
    client_flags(&server).await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    // (A flat context, so that this fails on the numbers alone before the fix.)
    let context = json!({"context": {"targetingKey": "u1", "address.city": "Oslo"}});
    let res = evaluate(&server, &sdk, "limit", context.clone()).await;
    res.assert_status(StatusCode::OK);
    assert!(res.text.contains(r#""value":10.0"#), "{}", res.text);
    let res = evaluate(&server, &sdk, "ratio", context.clone()).await;
    assert!(res.text.contains(r#""value":0.25"#), "{}", res.text);
    let res = send(server.with_key(Method::POST, BULK, &sdk).json(&context)).await;
    res.assert_status(StatusCode::OK);
    assert!(res.text.contains(r#""value":10.0"#), "{}", res.text);
    // JSON flags keep their numbers as written.
    assert!(res.text.contains(r#""size":3"#), "{}", res.text);
}

/// Nested objects are dotted attributes; lists holding anything but strings are ignored. Real
/// contexts carry both, and neither fails the evaluation.
#[tokio::test]
async fn nested_attributes_and_odd_lists() {
    let server = Server::start().await;
    client_flags(&server).await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let context = json!({"context": {
        "targetingKey": "u1",
        "plan": "pro",
        "address": {"city": "Oslo", "geo": {"lat": 59.9, "tags": [{"a": 1}]}},
        "scores": [1, 2.5],
        "mixed": ["a", null],
        "tags": ["a", "b"],
    }});
    for path in [format!("{BULK}/ratio"), BULK.to_string()] {
        let res = send(server.with_key(Method::POST, &path, &sdk).json(&context)).await;
        res.assert_status(StatusCode::OK);
    }
    let res = evaluate(&server, &sdk, "ratio", context).await;
    assert_eq!(res.body["value"], 0.25);
    assert_eq!(res.body["reason"], "TARGETING_MATCH");
    let res = evaluate(
        &server,
        &sdk,
        "ratio",
        json!({"context": {"targetingKey": "u1", "address": {"city": "Bergen"}}}),
    )
    .await;
    assert_eq!(res.body["value"], 0.0);
    assert_eq!(res.body["reason"], "DEFAULT");
}

/// A missing or wrong key is `401` and an admin key `403`, each with a JSON body OFREP clients
/// read (`errorCode`, `errorDetails`) next to the API's (`error`, `message`). Keys are accepted
/// as `Authorization: Bearer` and as `X-API-Key`.
#[tokio::test]
async fn authentication_errors_have_a_body_and_both_header_forms_work() {
    let server = Server::start().await;
    client_flags(&server).await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let context = json!({"context": {"targetingKey": "u1"}});
    for path in [format!("{BULK}/static"), BULK.to_string()] {
        let requests = [
            (
                server.anon(Method::POST, &path),
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
            ),
            (
                server.with_key(Method::POST, &path, "tlr_sdk_wrong"),
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
            ),
            (
                server
                    .anon(Method::POST, &path)
                    .header("X-API-Key", "tlr_sdk_wrong"),
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
            ),
            (
                server.with_key(Method::POST, &path, ADMIN_KEY),
                StatusCode::FORBIDDEN,
                "forbidden",
            ),
        ];
        for (req, status, error) in requests {
            let res = send(req.json(&context)).await;
            res.assert_status(status);
            assert_eq!(res.body["errorCode"], "GENERAL", "{path}: {}", res.text);
            let details = res.body["errorDetails"].as_str().unwrap_or_default();
            assert!(details.contains("key"), "{path}: {}", res.text);
            assert_eq!(res.body["error"], error, "{path}: {}", res.text);
            assert_eq!(res.body["message"], details, "{path}: {}", res.text);
        }
        let res = send(
            server
                .anon(Method::POST, &path)
                .header("X-API-Key", &sdk)
                .json(&context),
        )
        .await;
        res.assert_status(StatusCode::OK);
    }
}

// ---------------------------------------------------------------------------------------------
// The real clients.
// ---------------------------------------------------------------------------------------------

/// How long one client program may take.
const CLIENT_PATIENCE: Duration = Duration::from_secs(60);

/// `tests/ofrep-clients/`.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ofrep-clients")
}

const INSTALL: &str = "install the client programs' packages: \
    `npm ci --prefix tests/ofrep-clients` and \
    `pip install -r tests/ofrep-clients/requirements.txt` (`.ci/run` does both)";

/// A program named by `env`, else the first of `names` on `PATH`; a missing one fails the
/// test with how to install it.
fn program(env: &str, names: &[&str], what: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = match std::env::var_os(env) {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => std::env::split_paths(&path)
            .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
            .find(|p| p.is_file()),
    };
    found.unwrap_or_else(|| {
        panic!(
            "the OFREP client tests need {what} ({}), which was not found: install it (or \
                 point {env} at it), then {INSTALL}.",
            names.join(" or ")
        )
    })
}

/// Node, with the npm packages installed.
fn node() -> PathBuf {
    let node = program("NODE", &["node", "nodejs"], "Node.js");
    for package in [
        "server-sdk",
        "ofrep-provider",
        "web-sdk",
        "ofrep-web-provider",
    ] {
        let manifest = clients_dir()
            .join("node_modules/@openfeature")
            .join(package)
            .join("package.json");
        assert!(
            manifest.is_file(),
            "@openfeature/{package} is not installed in tests/ofrep-clients: {INSTALL}."
        );
    }
    node
}

/// Python, with the pip packages installed.
fn python() -> PathBuf {
    let python = program("PYTHON", &["python3", "python"], "Python 3");
    let check = Command::new(&python)
        .args([
            "-c",
            "import openfeature.api, openfeature.contrib.provider.ofrep",
        ])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        check.status.success(),
        "openfeature-sdk or openfeature-provider-ofrep is not installed for {}: {}\nTo fix it, {INSTALL}.",
        python.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    python
}

/// A client program running against a server: reads its JSON lines, answers on its stdin, is
/// killed on drop.
struct ClientRun {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl ClientRun {
    fn start(interpreter: &Path, script: &str, server: &Server, key: &str) -> ClientRun {
        let mut child = Command::new(interpreter)
            .arg(script)
            .current_dir(clients_dir())
            .env("OFREP_URL", server.url(""))
            .env("OFREP_KEY", key)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} {script}: {e}", interpreter.display()));
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        ClientRun {
            name: script.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        }
    }

    /// Waits for the line whose `event` is `name`.
    async fn event(&mut self, name: &str) -> Value {
        let deadline = tokio::time::Instant::now() + CLIENT_PATIENCE;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv()).await;
            let line = match line {
                Ok(Some(line)) => line,
                Ok(None) => {
                    let status = self.child.wait().ok();
                    // Give the stderr reader a moment to finish.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    panic!(
                        "{} exited ({status:?}) before `{name}`:\n{}",
                        self.name,
                        self.stderr.lock().unwrap()
                    );
                }
                Err(_) => panic!(
                    "{} sent no `{name}` within {CLIENT_PATIENCE:?}:\n{}",
                    self.name,
                    self.stderr.lock().unwrap()
                ),
            };
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {line}", self.name));
            if value["event"] == name {
                return value;
            }
        }
    }

    /// Writes a line to the program's stdin.
    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for ClientRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts one evaluation's value, variant and reason, and that it has no error.
fn assert_evaluated(results: &Value, name: &str, value: Value, variant: &str, reason: &str) {
    let r = &results[name];
    let at = format!("{name}: {r}");
    assert_eq!(r["value"], value, "{at}");
    assert_eq!(r["variant"], variant, "{at}");
    assert_eq!(r["reason"], reason, "{at}");
    assert_eq!(r["errorCode"], Value::Null, "{at}");
}

/// Asserts that an evaluation failed with `code` and returned the caller's default.
fn assert_failed(results: &Value, name: &str, default: Value, code: &str) {
    let r = &results[name];
    let at = format!("{name}: {r}");
    assert_eq!(r["errorCode"], code, "{at}");
    assert_eq!(r["reason"], "ERROR", "{at}");
    assert_eq!(r["value"], default, "{at}");
}

/// What the Node server SDK and the Python SDK (single-flag evaluation) must both report.
fn assert_server_side_results(results: &Value) {
    assert_evaluated(results, "banner", json!(true), "on", "TARGETING_MATCH");
    assert_eq!(results["banner"]["flagMetadata"]["segment"], "pro");
    assert_eq!(
        results["banner"]["flagMetadata"]["description"],
        "Promo banner"
    );
    assert_eq!(results["banner"]["flagMetadata"]["tailorReason"], "rule");
    assert_evaluated(results, "bannerFree", json!(false), "off", "DEFAULT");
    assert_evaluated(results, "static", json!(false), "off", "STATIC");
    let headline = &results["headline"];
    assert_eq!(headline["reason"], "SPLIT", "{headline}");
    assert!(
        ["Welcome", "Welcome back!"].contains(&headline["value"].as_str().unwrap_or_default()),
        "{headline}"
    );
    assert_evaluated(results, "ratio", json!(0.25), "quarter", "TARGETING_MATCH");
    assert_evaluated(
        results,
        "theme",
        json!({"color": "dark", "size": 3, "ratio": 0.5}),
        "dark",
        "STATIC",
    );
    assert_evaluated(results, "killed", json!(false), "off", "DISABLED");
    assert_failed(results, "missing", json!(true), "FLAG_NOT_FOUND");
    assert!(results["missing"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("nope"));
    assert_failed(results, "wrongType", json!(true), "TYPE_MISMATCH");
    // No key: what needs none evaluates, the split reports its own error.
    assert_evaluated(results, "bannerNoKey", json!(true), "on", "TARGETING_MATCH");
    assert_failed(
        results,
        "headlineNoKey",
        json!("fallback"),
        "TARGETING_KEY_MISSING",
    );
    assert!(results["headlineNoKey"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("targetingKey"));
    // Both header forms.
    assert_evaluated(results, "xApiKey", json!(true), "on", "TARGETING_MATCH");
    assert_failed(results, "wrongKey", json!(true), "GENERAL");
}

/// The server sent a JSON error body for the wrong key (the clients do not show it: Node's
/// message is empty, Python's is "unauthorized").
fn assert_auth_failure_body(requests: &Value) {
    let sent = requests
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == 401)
        .unwrap_or_else(|| panic!("no 401 among {requests}"));
    let body: Value = serde_json::from_str(sent["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["errorCode"], "GENERAL", "{body}");
    assert!(
        body["errorDetails"].as_str().unwrap().contains("API key"),
        "{body}"
    );
    assert!(sent["contentType"]
        .as_str()
        .unwrap()
        .starts_with("application/json"));
}

/// `@openfeature/server-sdk` + `@openfeature/ofrep-provider`.
#[tokio::test]
async fn node_server_sdk_with_the_ofrep_provider() {
    let node = node();
    let server = Server::start().await;
    client_flags(&server).await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let mut run = ClientRun::start(&node, "server-provider.mjs", &server, &sdk);
    let done = run.event("done").await;
    let results = &done["results"];
    assert_server_side_results(results);
    // JavaScript has one number type: `10.0` is the number 10.
    assert_evaluated(results, "limit", json!(10), "ten", "STATIC");
    assert_evaluated(results, "ratioElsewhere", json!(0), "none", "DEFAULT");
    assert_evaluated(results, "staticNoKey", json!(false), "off", "STATIC");
    assert_eq!(results["wrongKey"]["errorMessage"], "");
    assert_auth_failure_body(&done["requests"]);
}

/// `openfeature-sdk` + `openfeature-provider-ofrep` (Python).
#[tokio::test]
async fn python_sdk_with_the_ofrep_provider() {
    let python = python();
    let server = Server::start().await;
    client_flags(&server).await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let mut run = ClientRun::start(&python, "python_provider.py", &server, &sdk);
    let done = run.event("done").await;
    let results = &done["results"];
    assert_server_side_results(results);
    // `get_float_details` on a number flag whose value is 10.
    assert_evaluated(results, "limitFloat", json!(10.0), "ten", "STATIC");
    // The provider checks `isinstance(value, int)`: an integral float is not an int for it
    // (README: use a float getter, or a `json` flag for integers).
    assert_failed(results, "limitInteger", json!(-1), "TYPE_MISMATCH");
    // No context at all: the provider sends `{"context": {}}` (or `{}`).
    assert_evaluated(results, "staticNoContext", json!(false), "off", "STATIC");
    assert_eq!(results["wrongKey"]["errorMessage"], "unauthorized");
    assert_auth_failure_body(&done["requests"]);
}

/// `@openfeature/web-sdk` + `@openfeature/ofrep-web-provider` with a client key: ready with no
/// user (bulk `{"context": {}}`), per-flag `TARGETING_KEY_MISSING`, then signed in; polling
/// with the ETag gets `304`, and a config change reaches it.
#[tokio::test]
async fn node_web_sdk_with_the_ofrep_web_provider() {
    let node = node();
    let server = Server::start().await;
    client_flags(&server).await;
    let (_, client) = server.create_key("client", Some("development")).await;
    let mut run = ClientRun::start(&node, "web-provider.mjs", &server, &client);
    run.event("polled").await;
    run.event("waiting").await;
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
    run.say("changed");
    let done = run.event("done").await;
    let results = &done["results"];

    assert_eq!(results["ready"], true, "{results}");
    assert_eq!(results["providerStatus"], "READY", "{results}");
    let no_user = &results["noUser"];
    assert_evaluated(no_user, "static", json!(false), "off", "STATIC");
    assert_evaluated(no_user, "banner", json!(false), "off", "DEFAULT");
    assert_evaluated(no_user, "limit", json!(10), "ten", "STATIC");
    assert_evaluated(no_user, "ratio", json!(0), "none", "DEFAULT");
    assert_evaluated(no_user, "killed", json!(false), "off", "DISABLED");
    assert_failed(
        no_user,
        "headline",
        json!("fallback"),
        "TARGETING_KEY_MISSING",
    );
    assert_failed(no_user, "missing", json!(true), "FLAG_NOT_FOUND");

    let user = &results["user"];
    assert_evaluated(user, "banner", json!(true), "on", "TARGETING_MATCH");
    assert_evaluated(user, "ratio", json!(0.25), "quarter", "TARGETING_MATCH");
    assert_eq!(user["headline"]["reason"], "SPLIT", "{user}");
    assert_evaluated(
        user,
        "theme",
        json!({"color": "dark", "size": 3, "ratio": 0.5}),
        "dark",
        "STATIC",
    );
    assert_failed(user, "missing", json!(true), "FLAG_NOT_FOUND");
    assert_evaluated(results, "afterChange", json!(false), "off", "DISABLED");

    // The exchanges: no user, the user, 304s with the ETag, then 200 with a new one.
    let requests = done["requests"].as_array().unwrap();
    assert_eq!(requests[0]["requestBody"], r#"{"context":{}}"#);
    assert_eq!(requests[0]["status"], 200);
    assert_eq!(requests[0]["authorization"], format!("Bearer {client}"));
    let signed_in = &requests[1];
    assert_eq!(signed_in["status"], 200);
    let etag = signed_in["etag"].as_str().unwrap();
    let polls = &requests[2..];
    let changed = polls
        .iter()
        .position(|p| p["status"] == 200)
        .unwrap_or_else(|| panic!("no poll saw the change: {requests:?}"));
    assert!(changed >= 1, "no 304 before the change: {requests:?}");
    for poll in &polls[..changed] {
        assert_eq!(poll["ifNoneMatch"], etag, "{poll}");
        assert_eq!(poll["status"], 304, "{poll}");
    }
    let change = &polls[changed];
    assert_eq!(change["ifNoneMatch"], etag, "{change}");
    assert_ne!(change["etag"], etag, "{change}");
}
