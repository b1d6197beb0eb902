//! The user being evaluated: a key (the default bucketing unit) plus typed attributes.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// Text.
    String(String),
    /// A number (integers are exact up to 2^53).
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings (interests, tags, purchased categories).
    List(Vec<String>),
    /// A point in time, as Unix milliseconds (UTC).
    Datetime(i64),
}

impl AttributeValue {
    /// A datetime attribute from an RFC 3339 string such as `2026-01-31T12:00:00Z`.
    pub fn datetime_rfc3339(text: &str) -> Result<Self, time::error::Parse> {
        Ok(AttributeValue::Datetime(parse_rfc3339_millis(text)?))
    }
}

/// Parses an RFC 3339 datetime into Unix milliseconds.
pub(crate) fn parse_rfc3339_millis(text: &str) -> Result<i64, time::error::Parse> {
    let t = OffsetDateTime::parse(text, &Rfc3339)?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

impl From<&str> for AttributeValue {
    fn from(v: &str) -> Self {
        AttributeValue::String(v.to_string())
    }
}
impl From<String> for AttributeValue {
    fn from(v: String) -> Self {
        AttributeValue::String(v)
    }
}
impl From<bool> for AttributeValue {
    fn from(v: bool) -> Self {
        AttributeValue::Bool(v)
    }
}
impl From<f64> for AttributeValue {
    fn from(v: f64) -> Self {
        AttributeValue::Number(v)
    }
}
impl From<i64> for AttributeValue {
    fn from(v: i64) -> Self {
        AttributeValue::Number(v as f64)
    }
}
impl From<i32> for AttributeValue {
    fn from(v: i32) -> Self {
        AttributeValue::Number(f64::from(v))
    }
}
impl From<u32> for AttributeValue {
    fn from(v: u32) -> Self {
        AttributeValue::Number(f64::from(v))
    }
}
impl From<Vec<String>> for AttributeValue {
    fn from(v: Vec<String>) -> Self {
        AttributeValue::List(v)
    }
}
impl From<Vec<&str>> for AttributeValue {
    fn from(v: Vec<&str>) -> Self {
        AttributeValue::List(v.into_iter().map(str::to_string).collect())
    }
}
impl<const N: usize> From<[&str; N]> for AttributeValue {
    fn from(v: [&str; N]) -> Self {
        AttributeValue::List(v.iter().map(|s| s.to_string()).collect())
    }
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AttributeValue::String(v) => s.serialize_str(v),
            AttributeValue::Number(v) => s.serialize_f64(*v),
            AttributeValue::Bool(v) => s.serialize_bool(*v),
            AttributeValue::List(v) => v.serialize(s),
            AttributeValue::Datetime(ms) => {
                let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(*ms) * 1_000_000)
                    .map_err(serde::ser::Error::custom)?;
                let text = t.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
                s.serialize_str(&text)
            }
        }
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AttributeValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean or list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AttributeValue::String(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(AttributeValue::String(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(AttributeValue::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(AttributeValue::Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(AttributeValue::Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(AttributeValue::Number(v))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(AttributeValue::List(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// A user: the key is the default bucketing unit; attributes feed targeting.
///
/// Attributes are kept sorted by name so a lookup is a binary search with no allocation.
/// The name `key` always means the user key.
///
/// ```
/// use tailor_core::User;
/// let user = User::new("user-42")
///     .with("country", "US")
///     .with("age", 31)
///     .with("interests", ["yoga", "running"]);
/// assert_eq!(user.key(), "user-42");
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct User {
    key: String,
    attributes: Vec<(String, AttributeValue)>,
}

impl User {
    /// A user with this key and no attributes.
    pub fn new(key: impl Into<String>) -> Self {
        User {
            key: key.into(),
            attributes: Vec::new(),
        }
    }

    /// Sets an attribute, builder style.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<AttributeValue>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets (or replaces) an attribute.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<AttributeValue>) {
        let name = name.into();
        let value = value.into();
        match self
            .attributes
            .binary_search_by(|(n, _)| n.as_str().cmp(&name))
        {
            Ok(i) => self.attributes[i].1 = value,
            Err(i) => self.attributes.insert(i, (name, value)),
        }
    }

    /// The user key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// An attribute by name (not `key`; use [`User::key`]).
    pub fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.attributes
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| &self.attributes[i].1)
    }

    /// All attributes, sorted by name.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &AttributeValue)> {
        self.attributes.iter().map(|(n, v)| (n.as_str(), v))
    }
}

#[derive(Serialize, Deserialize)]
struct UserWire {
    key: String,
    #[serde(default)]
    attributes: BTreeMap<String, AttributeValue>,
}

impl Serialize for User {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        UserWire {
            key: self.key.clone(),
            attributes: self.attributes.iter().cloned().collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for User {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = UserWire::deserialize(d)?;
        Ok(User {
            key: wire.key,
            // A BTreeMap iterates in key order, which is the order lookups rely on.
            attributes: wire.attributes.into_iter().collect(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is the test failure
mod tests {
    use super::*;

    #[test]
    fn set_keeps_attributes_sorted_and_replaces() {
        let mut u = User::new("u").with("b", 1).with("a", "x").with("c", true);
        u.set("b", 2);
        let names: Vec<_> = u.attributes().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(u.get("b"), Some(&AttributeValue::Number(2.0)));
        assert_eq!(u.get("zzz"), None);
    }

    #[test]
    fn json_round_trip() {
        let u = User::new("u1")
            .with("country", "US")
            .with("tags", ["a", "b"])
            .with("vip", true)
            .with("age", 30);
        let text = serde_json::to_string(&u).unwrap();
        let back: User = serde_json::from_str(&text).unwrap();
        assert_eq!(back, u);
    }

    #[test]
    fn datetime_serializes_as_rfc3339() {
        let v = AttributeValue::datetime_rfc3339("2026-01-31T12:00:00Z").unwrap();
        assert_eq!(v, AttributeValue::Datetime(1_769_860_800_000));
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            "\"2026-01-31T12:00:00Z\""
        );
    }

    #[test]
    fn list_of_non_strings_is_rejected() {
        let err = serde_json::from_str::<AttributeValue>("[1, 2]").unwrap_err();
        assert!(err.to_string().contains("expected a string"), "{err}");
    }
}
