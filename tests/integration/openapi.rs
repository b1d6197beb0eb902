//! `server/openapi.yaml` documents exactly the routes the server mounts, and its schemas match
//! the config model.
//!
//! The mounted routes are found without a hand-kept list: the app is built in process with
//! `routes::configure`, its resource tree is read from actix-web's `ResourceMap` (every path
//! pattern, scopes included), and each pattern is probed with every HTTP method to see which
//! ones reach a handler rather than the default service. Adding a route, a method or a path
//! without documenting it fails here; so does documenting one that does not exist.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::test as actix_test;
use actix_web::{web, App, HttpRequest, HttpResponse};
use serde_json::Value;
use tailor_server::metrics::Metrics;
use tailor_server::routes::{self, ops::OPENAPI_YAML, sdk::KeepAlive};
use tailor_server::state::AppState;
use tailor_server::store::sqlite::SqliteStore;

/// Mounted path prefixes deliberately left out of the API document (e.g. HTML pages for people,
/// not programs). Everything else must be documented.
///
/// - `/dashboard`: the web dashboard's HTML pages and forms (session cookie, not API keys; see
///   `server/src/dashboard/`), tested in [`crate::dashboard`].
const NOT_API: &[&str] = &["/dashboard"];

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
const UNROUTED: &str = "x-test-unrouted";

type Route = (String, String);

fn spec() -> Value {
    serde_yaml_ng::from_str(OPENAPI_YAML)
        .expect("server/openapi.yaml is valid YAML with string keys")
}

/// `(METHOD, path)` of every documented operation.
fn documented(spec: &Value) -> BTreeSet<Route> {
    let paths = spec["paths"].as_object().expect("`paths` is a map");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("a path item is a map").keys() {
            let upper = method.to_ascii_uppercase();
            if METHODS.contains(&upper.as_str()) || upper == "TRACE" {
                out.insert((upper, path.clone()));
            }
        }
    }
    out
}

/// `(METHOD, pattern)` of every route the server mounts.
async fn mounted() -> BTreeSet<Route> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let state = AppState::load(store, Metrics::new().unwrap(), Default::default())
        .await
        .unwrap();
    let app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(state))
            .app_data(web::Data::new(KeepAlive(Duration::from_secs(15))))
            .configure(routes::configure)
            .default_service(web::to(|req: HttpRequest| async move {
                HttpResponse::NotFound()
                    .insert_header((UNROUTED, "1"))
                    .body(format!("{:?}", req.resource_map()))
            })),
    )
    .await;

    let res = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/__unrouted__")
            .to_request(),
    )
    .await;
    assert!(res.headers().contains_key(UNROUTED));
    let debug = String::from_utf8(actix_test::read_body(res).await.to_vec()).unwrap();
    let tree = debug_value::parse(&debug);
    let mut patterns = BTreeSet::new();
    leaf_patterns(&tree, "", &mut patterns);
    assert!(
        patterns.len() >= 10,
        "could not read the routes from actix-web's ResourceMap (has its Debug format changed?): {patterns:?}\n{debug}"
    );

    let mut out = BTreeSet::new();
    for pattern in patterns {
        let uri = concrete(&pattern);
        for method in METHODS {
            let req = actix_test::TestRequest::default()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(&uri)
                .to_request();
            let res = actix_test::call_service(&app, req).await;
            if !res.headers().contains_key(UNROUTED) {
                out.insert((method.to_string(), pattern.clone()));
            }
        }
    }
    out
}

/// A path matching a pattern: `{name}` → `sample-name`.
fn concrete(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .expect("balanced braces");
        out.push_str("sample-");
        out.push_str(&rest[start + 1..end]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Full patterns of the leaves of a `ResourceMap` tree (scopes are prefixes of their children).
fn leaf_patterns(map: &debug_value::Value, prefix: &str, out: &mut BTreeSet<String>) {
    use debug_value::Value as V;
    let V::Struct(name, fields) = map else {
        panic!("expected a ResourceMap, got {map:?}")
    };
    assert_eq!(name, "ResourceMap");
    let def = field(fields, "pattern");
    let V::Struct(_, def_fields) = def else {
        panic!("expected a ResourceDef, got {def:?}")
    };
    let own: Vec<String> = match field(def_fields, "patterns") {
        V::Tuple(kind, items) if kind == "Single" => vec![string(&items[0])],
        V::Tuple(kind, items) if kind == "List" => match &items[0] {
            V::List(list) => list.iter().map(string).collect(),
            other => panic!("unexpected pattern list {other:?}"),
        },
        other => panic!("unexpected patterns {other:?}"),
    };
    for own in own {
        let full = format!("{prefix}{own}");
        match field(fields, "nodes") {
            V::Atom(none) if none == "None" => {
                out.insert(full);
            }
            V::Tuple(some, items) if some == "Some" => match &items[0] {
                V::List(children) => {
                    for child in children {
                        leaf_patterns(child, &full, out);
                    }
                }
                other => panic!("unexpected nodes {other:?}"),
            },
            other => panic!("unexpected nodes {other:?}"),
        }
    }
}

fn field<'a>(fields: &'a [(String, debug_value::Value)], name: &str) -> &'a debug_value::Value {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field `{name}` in {fields:?}"))
}

fn string(v: &debug_value::Value) -> String {
    match v {
        debug_value::Value::Str(s) => s.clone(),
        other => panic!("expected a string, got {other:?}"),
    }
}

#[actix_web::test]
async fn every_mounted_route_is_documented_and_every_documented_route_is_mounted() {
    let spec = spec();
    let documented = documented(&spec);
    let mounted: BTreeSet<Route> = mounted()
        .await
        .into_iter()
        .filter(|(_, path)| !NOT_API.iter().any(|p| path.starts_with(p)))
        .collect();
    let undocumented: Vec<_> = mounted.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&mounted).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "server/openapi.yaml is out of sync with the routes.\n  mounted but not documented: {undocumented:?}\n  documented but not mounted: {missing:?}"
    );
}

/// Every `$ref` in the document, with where it is.
fn refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref" {
                    if let Some(r) = child.as_str() {
                        out.push((at.clone(), r));
                    }
                } else {
                    refs(child, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => spec
            .pointer(r.strip_prefix('#').expect("local reference"))
            .unwrap_or_else(|| panic!("unresolved {r}")),
        None => v,
    }
}

#[test]
fn the_document_is_well_formed() {
    let spec = spec();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec["info"]["title"].is_string() && spec["info"]["version"].is_string());
    let schemes = spec["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["BearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["ApiKeyAuth"]["name"], "X-API-Key");

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&spec, String::new(), &mut all);
    assert!(all.len() > 50);
    for (at, r) in &all {
        let target = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: non-local $ref {r}"));
        assert!(spec.pointer(target).is_some(), "{at}: unresolved $ref {r}");
    }

    let mut operation_ids = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let path_params: Vec<&Value> = item["parameters"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" || method == "summary" || method == "description" {
                continue;
            }
            let what = format!("{} {path}", method.to_ascii_uppercase());
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no operationId"));
            assert!(
                operation_ids.insert(id.to_string()),
                "{what}: duplicate operationId {id}"
            );
            assert!(op["summary"].is_string(), "{what}: no summary");
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{what}: no responses"));
            assert!(!responses.is_empty());
            for code in responses.keys() {
                assert!(
                    code.len() == 3 && code.parse::<u16>().is_ok(),
                    "{what}: response code {code}"
                );
            }

            // Path parameters are declared, by name, in the path item or the operation.
            let params: Vec<&Value> = path_params
                .iter()
                .copied()
                .chain(op["parameters"].as_array().into_iter().flatten())
                .map(|p| resolve(&spec, p))
                .collect();
            let mut rest = path.as_str();
            while let Some(start) = rest.find('{') {
                let end = rest.find('}').unwrap();
                let name = &rest[start + 1..end];
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                    "{what}: path parameter `{name}` is not declared"
                );
                rest = &rest[end + 1..];
            }

            // Authentication: everything but the ops endpoints needs a key, and says what a
            // missing one gets.
            let public =
                ["/healthz", "/readyz", "/metrics", "/openapi.yaml"].contains(&path.as_str());
            let security = op.get("security").unwrap_or(&spec["security"]);
            if public {
                assert_eq!(
                    security,
                    &Value::Array(vec![]),
                    "{what}: ops endpoints are public"
                );
            } else {
                let names: BTreeSet<&str> = security
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|s| s.as_object().unwrap().keys().map(String::as_str))
                    .collect();
                assert_eq!(
                    names,
                    BTreeSet::from(["ApiKeyAuth", "BearerAuth"]),
                    "{what}"
                );
                assert!(responses.contains_key("401"), "{what}: no 401");
                assert!(responses.contains_key("403"), "{what}: no 403");
            }
            // Conditional writes of a keyed resource document their preconditions. (A PUT
            // below one, such as a list segment's `members` upload, replaces data that has no
            // ETag: it takes no `If-Match`.)
            if path.starts_with("/api/")
                && (method == "put" || method == "delete")
                && path.ends_with("{key}")
            {
                for code in ["404", "412", "428"] {
                    assert!(responses.contains_key(code), "{what}: no {code}");
                }
            }
            if path.starts_with("/api/") && method == "post" && op.get("requestBody").is_some() {
                assert!(responses.contains_key("400"), "{what}: no 400");
                assert!(responses.contains_key("413"), "{what}: no 413");
            }
        }
    }
}

/// The documented model schemas list exactly the fields the model has: each schema's
/// `examples` deserialize into the Rust type and serialize back unchanged (so no documented
/// field is unknown to the model, which would drop it), and together they set every documented
/// property.
#[test]
fn model_schemas_match_the_config_model() {
    use tailor_core::model::{
        AttributeCondition, Condition, EventMeasure, Experiment, Flag, Holdout, Layer, LayerSlice,
        Override, Prior, RatioMetric, Rule, Segment, TraitCondition, TraitDefinition, Variant,
        WeightedVariant,
    };
    use tailor_core::{ConfigDocument, Profile};

    fn check<T: serde::Serialize + serde::de::DeserializeOwned>(spec: &Value, name: &str) {
        let schema = &spec["components"]["schemas"][name];
        let examples = schema["examples"]
            .as_array()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| panic!("schema {name} has no `examples`"));
        let mut set = BTreeSet::new();
        for example in examples {
            let typed: T = serde_json::from_value(example.clone()).unwrap_or_else(|e| {
                panic!("an example of {name} is not a valid {name}: {e}\n{example}")
            });
            let back = serde_json::to_value(&typed).unwrap();
            assert_eq!(
                &back, example,
                "an example of {name} does not round-trip (an undocumented or misspelt field?)"
            );
            set.extend(
                example
                    .as_object()
                    .into_iter()
                    .flat_map(|o| o.keys().cloned()),
            );
        }
        if let Some(props) = schema["properties"].as_object() {
            let documented: BTreeSet<String> = props.keys().cloned().collect();
            assert_eq!(
                documented, set,
                "schema {name}: documented properties vs. the examples'"
            );
            for required in schema["required"].as_array().into_iter().flatten() {
                let required = required.as_str().unwrap();
                assert!(
                    props.contains_key(required),
                    "{name}: required `{required}` is not a property"
                );
            }
        }
    }
    let spec = spec();
    check::<Segment>(&spec, "Segment");
    check::<Condition>(&spec, "Condition");
    check::<AttributeCondition>(&spec, "AttributeCondition");
    check::<Flag>(&spec, "Flag");
    check::<Variant>(&spec, "Variant");
    check::<Override>(&spec, "Override");
    check::<Rule>(&spec, "Rule");
    check::<WeightedVariant>(&spec, "WeightedVariant");
    check::<tailor_core::model::Optimize>(&spec, "Optimize");
    check::<tailor_core::model::ContextWeights>(&spec, "ContextWeights");
    check::<Holdout>(&spec, "Holdout");
    check::<Experiment>(&spec, "Experiment");
    check::<RatioMetric>(&spec, "RatioMetric");
    check::<EventMeasure>(&spec, "EventMeasure");
    check::<Prior>(&spec, "Prior");
    check::<Layer>(&spec, "Layer");
    check::<LayerSlice>(&spec, "LayerSlice");
    check::<TraitDefinition>(&spec, "TraitDefinition");
    check::<TraitCondition>(&spec, "TraitCondition");
    check::<Profile>(&spec, "Profile");
    check::<ConfigDocument>(&spec, "ConfigDocument");

    // The new fields are shown: a large list segment, a trait condition, trait definitions.
    let example_has = |name: &str, what: &dyn Fn(&Value) -> bool| {
        spec["components"]["schemas"][name]["examples"]
            .as_array()
            .is_some_and(|e| e.iter().any(what))
    };
    assert!(example_has("Segment", &|e| e["list"] == true));
    assert!(example_has("Condition", &|e| e["trait"].is_string()));
    assert!(example_has("ConfigDocument", &|e| e["traits"]
        .as_array()
        .is_some_and(|t| !t.is_empty())));

    // The example document is a valid config.
    let doc: ConfigDocument = serde_json::from_value(
        spec["components"]["schemas"]["ConfigDocument"]["examples"][0].clone(),
    )
    .unwrap();
    tailor_core::compile(doc).expect("the ConfigDocument example compiles");

    // Enums list exactly the model's values.
    let enum_values = |name: &str| -> BTreeSet<String> {
        let schema = &spec["components"]["schemas"][name];
        schema["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    fn all_parse<T: serde::de::DeserializeOwned>(values: &BTreeSet<String>, name: &str) {
        for v in values {
            serde_json::from_value::<T>(Value::String(v.clone()))
                .unwrap_or_else(|e| panic!("{name} value `{v}` is not one of the model's: {e}"));
        }
    }
    // Every documented value is valid, and as many as the model has.
    let operators = enum_values("Operator");
    all_parse::<tailor_core::model::Operator>(&operators, "Operator");
    assert_eq!(operators.len(), 22, "every operator is documented");
    let statuses = enum_values("ExperimentStatus");
    all_parse::<tailor_core::model::ExperimentStatus>(&statuses, "ExperimentStatus");
    assert_eq!(statuses.len(), 3);
    let types = enum_values("ValueType");
    all_parse::<tailor_core::model::ValueType>(&types, "ValueType");
    assert_eq!(types.len(), 4);
    let kinds = enum_values("KeyKind");
    all_parse::<tailor_server::store::KeyKind>(&kinds, "KeyKind");
    assert_eq!(kinds.len(), 3);
    let aggregates = enum_values("Aggregate");
    all_parse::<tailor_core::model::Aggregate>(&aggregates, "Aggregate");
    assert_eq!(aggregates.len(), 7, "every aggregate is documented");
}

/// A parser for the `{:?}` output of Rust values: enough structure to walk a `ResourceMap`.
mod debug_value {
    /// A parsed Debug value.
    #[derive(Debug, Clone)]
    #[allow(dead_code)] // Some parts are only ever shown in failure messages.
    pub enum Value {
        /// `Name { field: value, .. }`
        Struct(String, Vec<(String, Value)>),
        /// `Name(a, b)` or `(a, b)` (empty name).
        Tuple(String, Vec<Value>),
        /// `[a, b]`
        List(Vec<Value>),
        /// `{k: v}` or `{a, b}` (keys only, values `Atom("")`).
        Map(Vec<(Value, Value)>),
        /// `"text"`
        Str(String),
        /// Anything else: numbers, `None`, `true`, type names.
        Atom(String),
    }

    pub fn parse(text: &str) -> Value {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value();
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing text in Debug output at {}", p.i);
        v
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }

        fn peek(&mut self) -> u8 {
            self.ws();
            self.s.get(self.i).copied().unwrap_or(0)
        }

        fn eat(&mut self, c: u8) -> bool {
            if self.peek() == c {
                self.i += 1;
                true
            } else {
                false
            }
        }

        fn expect(&mut self, c: u8) {
            assert!(
                self.eat(c),
                "expected `{}` at {} in Debug output",
                c as char,
                self.i
            );
        }

        /// Items separated by commas (a trailing comma allowed) until `close`.
        fn seq<T>(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> T) -> Vec<T> {
            let mut out = Vec::new();
            loop {
                if self.eat(close) {
                    return out;
                }
                out.push(item(self));
                if !self.eat(b',') {
                    self.expect(close);
                    return out;
                }
            }
        }

        fn value(&mut self) -> Value {
            match self.peek() {
                b'"' => Value::Str(self.string()),
                b'[' => {
                    self.i += 1;
                    Value::List(self.seq(b']', Self::value))
                }
                b'(' => {
                    self.i += 1;
                    Value::Tuple(String::new(), self.seq(b')', Self::value))
                }
                b'{' => {
                    self.i += 1;
                    Value::Map(self.seq(b'}', |p| {
                        let k = p.value();
                        let v = if p.eat(b':') {
                            p.value()
                        } else {
                            Value::Atom(String::new())
                        };
                        (k, v)
                    }))
                }
                _ => {
                    let name = self.atom();
                    match self.peek() {
                        b'{' => {
                            self.i += 1;
                            Value::Struct(
                                name,
                                self.seq(b'}', |p| {
                                    let field = p.atom();
                                    if field == ".." {
                                        return (field, Value::Atom(String::new()));
                                    }
                                    p.expect(b':');
                                    (field, p.value())
                                }),
                            )
                        }
                        b'(' => {
                            self.i += 1;
                            Value::Tuple(name, self.seq(b')', Self::value))
                        }
                        _ => Value::Atom(name),
                    }
                }
            }
        }

        fn string(&mut self) -> String {
            self.expect(b'"');
            let mut out = Vec::new();
            while self.i < self.s.len() {
                let c = self.s[self.i];
                self.i += 1;
                match c {
                    b'"' => return String::from_utf8(out).expect("UTF-8 in Debug output"),
                    b'\\' => {
                        let e = self.s[self.i];
                        self.i += 1;
                        out.push(match e {
                            b'n' => b'\n',
                            b't' => b'\t',
                            other => other,
                        });
                    }
                    other => out.push(other),
                }
            }
            panic!("unterminated string in Debug output")
        }

        /// A bare token: up to whitespace, a delimiter, or `: ` (a field or map separator).
        fn atom(&mut self) -> String {
            self.ws();
            let start = self.i;
            while self.i < self.s.len() {
                let c = self.s[self.i];
                if c.is_ascii_whitespace() || b",()[]{}\"".contains(&c) {
                    break;
                }
                if c == b':'
                    && self
                        .s
                        .get(self.i + 1)
                        .is_none_or(|n| n.is_ascii_whitespace())
                {
                    break;
                }
                self.i += 1;
            }
            assert!(
                self.i > start,
                "unexpected `{}` at {} in Debug output",
                self.s[self.i] as char,
                self.i
            );
            String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
        }
    }
}
