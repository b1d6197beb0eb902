//! A user's profile: their computed trait values and large-list memberships as of one time, the
//! per-user data evaluation reads besides the attributes the caller passes in.
//!
//! The server computes profiles ([`crate::traits::compute`]); the SDK loads one per user ahead of
//! evaluation and keeps it up to date with the events it tracks itself ([`Profile::record`]).
//! On the wire (`GET /sdk/v1/profiles/{user_key}`) it is plain JSON:
//!
//! ```json
//! {"user_key": "u1", "as_of": 1765108800000,
//!  "traits": {"purchases_30d": 2, "first_purchase": "2026-11-02T09:30:00.000Z"},
//!  "last_events": {"purchases_30d": 1765108700000, "first_purchase": 1765108700000},
//!  "lists": ["crm-vip"]}
//! ```
//!
//! `traits` holds the traits that have a value (numbers, or RFC 3339 datetimes for
//! `first_seen`/`last_seen`); `last_events` the time of each trait's latest event (window
//! aside), which the read-your-writes update needs; `lists` the large list segments the user is
//! a member of.

use serde::{Deserialize, Serialize};

use crate::model::{Aggregate, TraitDefinition};
use crate::traits::{day_of, micros_of, Computed, TraitValue, MICROS};
use crate::user::parse_rfc3339_millis;

/// One user's trait values and list memberships as of [`Profile::as_of`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    user_key: String,
    as_of: i64,
    /// Sorted by key.
    traits: Vec<(Box<str>, TraitValue)>,
    /// Sorted by key.
    last_events: Vec<(Box<str>, i64)>,
    /// Sorted.
    lists: Vec<Box<str>>,
}

impl Profile {
    /// A profile from computed values, in `definitions` order, and list memberships.
    pub fn new(
        user_key: &str,
        as_of: i64,
        definitions: &[TraitDefinition],
        computed: &[Computed],
        lists: impl IntoIterator<Item = String>,
    ) -> Profile {
        let mut traits: Vec<(Box<str>, TraitValue)> = Vec::new();
        let mut last_events: Vec<(Box<str>, i64)> = Vec::new();
        for (def, c) in definitions.iter().zip(computed) {
            if let Some(v) = c.value {
                traits.push((def.key.as_str().into(), v));
            }
            if let Some(t) = c.last_event {
                last_events.push((def.key.as_str().into(), t));
            }
        }
        let mut lists: Vec<Box<str>> = lists.into_iter().map(String::into_boxed_str).collect();
        traits.sort_by(|a, b| a.0.cmp(&b.0));
        last_events.sort_by(|a, b| a.0.cmp(&b.0));
        lists.sort_unstable();
        lists.dedup();
        Profile {
            user_key: user_key.to_string(),
            as_of,
            traits,
            last_events,
            lists,
        }
    }

    /// Whose profile it is.
    pub fn user_key(&self) -> &str {
        &self.user_key
    }

    /// When the values were computed, Unix milliseconds.
    pub fn as_of(&self) -> i64 {
        self.as_of
    }

    /// A trait's value; `None` when the trait is missing (or unknown).
    #[inline]
    pub fn trait_value(&self, key: &str) -> Option<TraitValue> {
        self.traits
            .iter()
            .find(|(k, _)| **k == *key)
            .map(|(_, v)| *v)
    }

    /// Every trait that has a value, sorted by key.
    pub fn traits(&self) -> impl Iterator<Item = (&str, TraitValue)> {
        self.traits.iter().map(|(k, v)| (&**k, *v))
    }

    /// Whether the user is a member of the large list segment `segment`.
    #[inline]
    pub fn in_list(&self, segment: &str) -> bool {
        self.lists.iter().any(|l| **l == *segment)
    }

    /// The large list segments the user is a member of, sorted.
    pub fn lists(&self) -> impl Iterator<Item = &str> {
        self.lists.iter().map(|l| &**l)
    }

    /// Applies an event this process just tracked for the user (read-your-writes), so the next
    /// evaluation sees it before the server's values do. Exact for an event at or after every
    /// event the profile has seen (the normal case: it happened now). For an older one the
    /// `distinct_days` and `days_since_*` values are left as they are, since the profile does
    /// not know which days it already counted; the next load from the server replaces them.
    pub fn record(
        &mut self,
        definitions: &[TraitDefinition],
        name: &str,
        timestamp: i64,
        value: Option<f64>,
    ) {
        for def in definitions
            .iter()
            .filter(|d| d.events.iter().any(|e| e == name))
        {
            let last = self.last_event(&def.key);
            let newest = last.is_none_or(|l| timestamp >= l);
            let current = self.trait_value(&def.key);
            let number = |v: Option<TraitValue>| match v {
                Some(TraitValue::Number(n)) => n,
                _ => 0.0,
            };
            let updated = match def.aggregate {
                Aggregate::Count => Some(TraitValue::Number(number(current) + 1.0)),
                Aggregate::Sum => {
                    let micros = (number(current) * MICROS).round() as i64 + micros_of(value);
                    Some(TraitValue::Number(micros as f64 / MICROS))
                }
                Aggregate::DistinctDays => {
                    let new_day = newest && last.map(day_of) != Some(day_of(timestamp));
                    Some(TraitValue::Number(
                        number(current) + if new_day { 1.0 } else { 0.0 },
                    ))
                }
                Aggregate::FirstSeen => Some(TraitValue::Datetime(match current {
                    Some(TraitValue::Datetime(f)) => f.min(timestamp),
                    _ => timestamp,
                })),
                Aggregate::LastSeen => Some(TraitValue::Datetime(match current {
                    Some(TraitValue::Datetime(l)) => l.max(timestamp),
                    _ => timestamp,
                })),
                Aggregate::DaysSinceFirst => current.or(Some(TraitValue::Number(0.0))),
                Aggregate::DaysSinceLast if newest => Some(TraitValue::Number(0.0)),
                Aggregate::DaysSinceLast => current,
            };
            if let Some(v) = updated {
                set(&mut self.traits, &def.key, v);
            }
            if newest {
                set(&mut self.last_events, &def.key, timestamp);
            }
        }
    }

    fn last_event(&self, key: &str) -> Option<i64> {
        self.last_events
            .iter()
            .find(|(k, _)| **k == *key)
            .map(|(_, t)| *t)
    }
}

/// Sets `key` in a vector sorted by key.
fn set<T>(entries: &mut Vec<(Box<str>, T)>, key: &str, value: T) {
    match entries.binary_search_by(|(k, _)| (**k).cmp(key)) {
        Ok(i) => {
            if let Some(e) = entries.get_mut(i) {
                e.1 = value;
            }
        }
        Err(i) => entries.insert(i, (key.into(), value)),
    }
}

/// Formats Unix milliseconds as RFC 3339 UTC with milliseconds, e.g. `2026-12-07T10:00:00.000Z`.
pub fn format_millis(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => ms.to_string(),
    }
}

#[derive(Serialize, Deserialize)]
struct ProfileWire {
    user_key: String,
    as_of: i64,
    #[serde(default)]
    traits: std::collections::BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    last_events: std::collections::BTreeMap<String, i64>,
    #[serde(default)]
    lists: Vec<String>,
}

impl Serialize for Profile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ProfileWire {
            user_key: self.user_key.clone(),
            as_of: self.as_of,
            traits: self
                .traits
                .iter()
                .map(|(k, v)| {
                    let json = match *v {
                        TraitValue::Number(n) => serde_json::Value::from(n),
                        TraitValue::Datetime(ms) => serde_json::Value::from(format_millis(ms)),
                    };
                    (k.to_string(), json)
                })
                .collect(),
            last_events: self
                .last_events
                .iter()
                .map(|(k, t)| (k.to_string(), *t))
                .collect(),
            lists: self.lists.iter().map(|l| l.to_string()).collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let wire = ProfileWire::deserialize(deserializer)?;
        let mut traits = Vec::with_capacity(wire.traits.len());
        for (key, value) in wire.traits {
            let v = match &value {
                serde_json::Value::Number(n) => TraitValue::Number(
                    n.as_f64()
                        .ok_or_else(|| D::Error::custom(format!("trait `{key}`: bad number")))?,
                ),
                serde_json::Value::String(s) => {
                    TraitValue::Datetime(parse_rfc3339_millis(s).map_err(|e| {
                        D::Error::custom(format!("trait `{key}`: not an RFC 3339 datetime: {e}"))
                    })?)
                }
                other => {
                    return Err(D::Error::custom(format!(
                        "trait `{key}`: expected a number or a datetime, got {other}"
                    )))
                }
            };
            traits.push((key.into_boxed_str(), v));
        }
        let mut lists: Vec<Box<str>> = wire.lists.into_iter().map(String::into_boxed_str).collect();
        lists.sort_unstable();
        lists.dedup();
        Ok(Profile {
            user_key: wire.user_key,
            as_of: wire.as_of,
            traits,
            last_events: wire
                .last_events
                .into_iter()
                .map(|(k, t)| (k.into_boxed_str(), t))
                .collect(),
            lists,
        })
    }
}
