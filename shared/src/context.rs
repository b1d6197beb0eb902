//! An OpenFeature evaluation context's fields as user attributes: nested objects become dotted
//! names (`{"address": {"city": "Oslo"}}` is `address.city`; when two spellings give one name,
//! the shallower value wins), and values Tailor cannot use (`null`, lists holding anything but
//! strings) are skipped, never an error. OFREP (`server/src/routes/ofrep.rs`) reads contexts
//! with it, and so does the `ofrep_context` fuzz target.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::user::AttributeValue;

/// The attributes of `context` (every field but the top-level `targetingKey`), by name.
pub fn context_attributes(context: &Map<String, Value>) -> BTreeMap<String, AttributeValue> {
    let mut found = BTreeMap::new();
    collect("", context, 0, &mut found);
    found.into_iter().map(|(name, (_, v))| (name, v)).collect()
}

/// Flattens `object` into attributes named by dotted path, keeping for each name the value
/// found at the smallest depth (serde_json's nesting limit bounds the recursion).
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
        } else if let Some(attribute) = attribute_value(value) {
            if out.get(&path).is_none_or(|(d, _)| depth < *d) {
                out.insert(path, (depth, attribute));
            }
        }
    }
}

/// A context value as an attribute; `None` for what Tailor does not use (`null`, lists that
/// hold anything but strings, objects).
pub fn attribute_value(value: &Value) -> Option<AttributeValue> {
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
