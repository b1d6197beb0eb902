//! OFREP request bodies → a `User`, then evaluation of every conformance flag for that user.
//!
//! It follows the server's reader (`Context::read` in server/src/routes/ofrep.rs): `serde_json`
//! parses the body, `context.targetingKey` (absent, `null` or empty: the empty key) becomes
//! `User::new`, and the attributes come from the same `tailor_core::context::context_attributes`
//! the server calls (dotted names, the shallowest value wins, unusable values skipped), each
//! stored with `User::set`. It checks that the
//! compact user encoding (`User::set` and `User::get`, shared/src/user.rs) keeps every
//! attribute, sorted and intact, that it equals the same user read through `User`'s own
//! `Deserialize` (a second encoder) and survives a serialize/deserialize round trip, that
//! `AttributeValue`'s `Deserialize` accepts exactly the values the OFREP mapping keeps, and that
//! `assign` never panics for such a user.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tailor_core::context::{attribute_value, context_attributes};
use tailor_core::{assign, AttributeValue, OpenFeatureReason, User};

/// Checks, over every leaf of the context, that `AttributeValue`'s reader takes exactly the
/// values the OFREP mapping ([`attribute_value`]) keeps, with the same value.
fn check_leaves(object: &Map<String, Value>) {
    for value in object.values() {
        if let Value::Object(inner) = value {
            check_leaves(inner);
            continue;
        }
        let read = serde_json::from_value::<AttributeValue>(value.clone());
        match (attribute_value(value), &read) {
            (None, Ok(r)) => panic!("{value} skipped by OFREP but read as {r:?}"),
            (Some(kept), Ok(r)) => {
                assert!(same_value(r, &kept), "{value}: read {r:?}, OFREP {kept:?}")
            }
            (Some(_), Err(e)) => panic!("{value}: OFREP keeps it, AttributeValue refuses: {e}"),
            (None, Err(_)) => {}
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
    check_leaves(&context);
    let expected: BTreeMap<String, AttributeValue> = context_attributes(&context);
    let mut user = User::new(key.clone());
    for (name, value) in &expected {
        user.set(name.clone(), value.clone());
    }

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
