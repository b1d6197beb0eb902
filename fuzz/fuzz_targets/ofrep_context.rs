//! OFREP request bodies → a `User`, then evaluation of every conformance flag for that user.
//!
//! The server's own reader (`Context::read` with `context_object`, `targeting_key`,
//! `collect_attributes` and `attribute_value` in server/src/routes/ofrep.rs) is private, so this
//! target follows its steps with the public pure functions they call: `serde_json` parses the
//! body, `context.targetingKey` (absent, `null` or empty: the empty key) becomes `User::new`,
//! nested objects are flattened into dotted names (the shallowest value wins), values Tailor
//! cannot use are skipped, and each attribute is stored with `User::set`. It checks that the
//! compact user encoding (`User::set` and `User::get`, shared/src/user.rs) keeps every
//! attribute, sorted and intact, that it equals the same user read through `User`'s own
//! `Deserialize` (a second encoder) and survives a serialize/deserialize round trip, that
//! `AttributeValue`'s `Deserialize` accepts exactly the values the OFREP mapping keeps, and that
//! `assign` never panics for such a user.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tailor_core::{assign, AttributeValue, OpenFeatureReason, User};

/// `attribute_value`: a context value as an attribute; `None` for what Tailor does not use.
fn attribute_value(value: &Value) -> Option<AttributeValue> {
    match value {
        Value::String(s) => Some(AttributeValue::String(s.clone())),
        Value::Number(n) => n.as_f64().map(AttributeValue::Number),
        Value::Bool(b) => Some(AttributeValue::Bool(*b)),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(AttributeValue::List),
        Value::Null | Value::Object(_) => None,
    }
}

/// `collect_attributes`: dotted names, the value at the smallest depth kept per name; checks on
/// the way that `AttributeValue`'s reader takes exactly the values the mapping keeps.
fn collect(
    prefix: &str,
    object: &Map<String, Value>,
    depth: usize,
    out: &mut BTreeMap<String, (usize, AttributeValue)>,
) {
    for (name, value) in object {
        if depth == 0 && name == "targetingKey" {
            continue;
        }
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let Value::Object(inner) = value {
            collect(&path, inner, depth + 1, out);
            continue;
        }
        let read = serde_json::from_value::<AttributeValue>(value.clone());
        let Some(attribute) = attribute_value(value) else {
            assert!(
                read.is_err(),
                "{value} skipped by OFREP but read as {read:?}"
            );
            continue;
        };
        match &read {
            Ok(r) => assert!(
                same_value(r, &attribute),
                "{value}: read {r:?}, OFREP {attribute:?}"
            ),
            Err(e) => panic!("{value}: OFREP keeps it, AttributeValue refuses: {e}"),
        }
        if out.get(&path).is_none_or(|(d, _)| depth < *d) {
            out.insert(path, (depth, attribute));
        }
    }
}

fn same_value(a: &AttributeValue, b: &AttributeValue) -> bool {
    match (a, b) {
        (AttributeValue::Number(x), AttributeValue::Number(y)) => {
            x == y || (x.is_nan() && y.is_nan())
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // `context_object` and `targeting_key`: what they refuse is a 400, nothing to evaluate.
    let Value::Object(mut request) = body else {
        return;
    };
    let context = match request.remove("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(context)) => context,
        Some(_) => return,
    };
    let key = match context.get("targetingKey") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(k)) => k.clone(),
        Some(_) => return,
    };
    let mut found = BTreeMap::new();
    collect("", &context, 0, &mut found);
    let mut user = User::new(key.clone());
    for (name, (_, value)) in &found {
        user.set(name.clone(), value.clone());
    }
    let expected: BTreeMap<String, AttributeValue> =
        found.into_iter().map(|(n, (_, v))| (n, v)).collect();

    // The compact encoding keeps the key and every attribute, sorted by name.
    assert_eq!(user.key(), key);
    assert_eq!(user.attributes().len(), expected.len());
    for ((name, got), (want_name, want)) in user.attributes().zip(&expected) {
        assert_eq!(name, want_name);
        assert!(
            same_value(&got.to_value(), want),
            "{name}: {got:?} != {want:?}"
        );
    }
    for (name, want) in &expected {
        let got = user.get(name).map(|r| r.to_value());
        assert!(
            got.as_ref().is_some_and(|g| same_value(g, want)),
            "get({name:?}) = {got:?}, want {want:?}"
        );
    }

    // Replacing every attribute (rotated values) keeps the encoding consistent.
    let names: Vec<&String> = expected.keys().collect();
    let values: Vec<&AttributeValue> = expected.values().collect();
    let mut rotated = user.clone();
    for (i, name) in names.iter().enumerate() {
        rotated.set((*name).clone(), values[(i + 1) % values.len()].clone());
    }
    for (i, name) in names.iter().enumerate() {
        let got = rotated.get(name).map(|r| r.to_value());
        let want = values[(i + 1) % values.len()];
        assert!(
            got.as_ref().is_some_and(|g| same_value(g, want)),
            "rotated {name:?}"
        );
    }
    assert_eq!(rotated.attributes().len(), expected.len());

    // The same user through `User`'s Deserialize (the other encoder), and a round trip.
    let has_nan = expected
        .values()
        .any(|v| matches!(v, AttributeValue::Number(n) if n.is_nan()));
    if !has_nan {
        let wire = serde_json::json!({ "key": key, "attributes": &expected });
        let decoded: User = serde_json::from_value(wire).expect("wire user reads");
        assert_eq!(decoded, user, "set and deserialize encode differently");
        let text = serde_json::to_string(&user).expect("user writes");
        let back: User = serde_json::from_str(&text).expect("written user reads back");
        assert_eq!(back, user, "{text}");
    }
    let _ = format!("{user:?}");

    for snapshot in tailor_fuzz::conformance_snapshots() {
        for flag in snapshot.flag_keys() {
            let a = assign(snapshot, &user, flag);
            let _ = OpenFeatureReason::of(snapshot, &a).as_str();
            let _ = a.value();
        }
    }
});
