//! Event wire format shared by the SDK (producer) and the collector (consumer): exposures and
//! conversions, batched (DESIGN §5).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Most events accepted in one batch.
pub const MAX_BATCH_EVENTS: usize = 1_000;

/// A user was assigned within a running experiment or holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    /// Unique event id; resending the same id is a no-op.
    pub id: String,
    /// When, Unix milliseconds.
    pub timestamp: i64,
    /// The user key.
    pub user_key: String,
    /// Flag key.
    pub flag: String,
    /// Variant served.
    pub variant: String,
    /// Experiment key.
    pub experiment: String,
    /// Index of the matched rule.
    pub rule: usize,
    /// The matched rule's segment, if its audience is one segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// True for tailored content, false for the generic default (holdout).
    pub personalized: bool,
    /// Config revision the assignment was made with.
    pub revision: u64,
    /// Bucketing spec version ([`crate::bucketing::SPEC_VERSION`]).
    pub spec_version: u32,
}

/// A conversion: something the business wants more of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    /// Unique event id; resending the same id is a no-op.
    pub id: String,
    /// When, Unix milliseconds.
    pub timestamp: i64,
    /// The user key.
    pub user_key: String,
    /// Event name, e.g. `purchase`.
    pub event: String,
    /// Optional value, e.g. revenue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An exposure.
    Exposure(Exposure),
    /// A conversion.
    Conversion(Conversion),
}

impl Event {
    /// The event id.
    pub fn id(&self) -> &str {
        match self {
            Event::Exposure(e) => &e.id,
            Event::Conversion(c) => &c.id,
        }
    }

    /// Whose event it is (which also decides its partition, [`crate::partition`]).
    pub fn user_key(&self) -> &str {
        match self {
            Event::Exposure(e) => &e.user_key,
            Event::Conversion(c) => &c.user_key,
        }
    }

    /// When it happened, Unix milliseconds.
    pub fn timestamp(&self) -> i64 {
        match self {
            Event::Exposure(e) => e.timestamp,
            Event::Conversion(c) => c.timestamp,
        }
    }

    /// Sets when it happened, Unix milliseconds.
    pub fn set_timestamp(&mut self, timestamp: i64) {
        match self {
            Event::Exposure(e) => e.timestamp = timestamp,
            Event::Conversion(c) => c.timestamp = timestamp,
        }
    }
}

/// What the SDK posts to the collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch {
    /// The events.
    pub events: Vec<Event>,
}

/// Why one event's JSON was not accepted: the field path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct EventParseError {
    /// Where in the event, e.g. `timestamp` (`.` for the event itself).
    pub path: String,
    /// What is wrong, e.g. `invalid type: string "x", expected i64`.
    pub message: String,
}

/// Every field of either event type, borrowed from the input where it has no escapes: parsed in
/// one pass, without the buffering serde needs for an internally tagged enum.
#[derive(Deserialize)]
struct FlatEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    timestamp: Option<i64>,
    #[serde(borrow)]
    user_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    flag: Option<Cow<'a, str>>,
    #[serde(borrow)]
    variant: Option<Cow<'a, str>>,
    #[serde(borrow)]
    experiment: Option<Cow<'a, str>>,
    rule: Option<usize>,
    #[serde(borrow)]
    segment: Option<Cow<'a, str>>,
    personalized: Option<bool>,
    revision: Option<u64>,
    spec_version: Option<u32>,
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    value: Option<f64>,
}

impl FlatEvent<'_> {
    /// The event, if every field its type requires is present.
    fn into_event(self) -> Option<Event> {
        let own = |c: Cow<'_, str>| c.into_owned();
        match self.kind.as_ref() {
            "exposure" => Some(Event::Exposure(Exposure {
                id: own(self.id?),
                timestamp: self.timestamp?,
                user_key: own(self.user_key?),
                flag: own(self.flag?),
                variant: own(self.variant?),
                experiment: own(self.experiment?),
                rule: self.rule?,
                segment: self.segment.map(own),
                personalized: self.personalized?,
                revision: self.revision?,
                spec_version: self.spec_version?,
            })),
            "conversion" => Some(Event::Conversion(Conversion {
                id: own(self.id?),
                timestamp: self.timestamp?,
                user_key: own(self.user_key?),
                event: own(self.event?),
                value: self.value,
            })),
            _ => None,
        }
    }
}

impl Event {
    /// Parses one event from JSON, exactly as `serde_json::from_str::<Event>` would, but faster
    /// on the collector's hot path; on failure the error names the offending field.
    ///
    /// The fast pass reads every known field of both types in one go. Anything it does not
    /// accept (a missing field, a wrong type, a field of the other event type with a value that
    /// type would not take) is decided by the derived deserializer, so the set of accepted
    /// events and their values are the same either way.
    pub fn from_json(json: &str) -> Result<Event, EventParseError> {
        if let Some(event) = serde_json::from_str::<FlatEvent<'_>>(json)
            .ok()
            .and_then(FlatEvent::into_event)
        {
            return Ok(event);
        }
        match serde_json::from_str::<Event>(json) {
            Ok(event) => Ok(event),
            Err(error) => Err(explain(json, error)),
        }
    }
}

/// Names the field an event was rejected for: the derived enum deserializer buffers the object
/// before it knows the type, which loses the path, so the event is parsed again as its type.
fn explain(json: &str, error: serde_json::Error) -> EventParseError {
    #[derive(Deserialize)]
    struct Tag<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Cow<'a, str>>,
    }
    fn field_error<T: serde::de::DeserializeOwned>(json: &str) -> Option<EventParseError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize::<_, T>(de)
            .err()
            .map(|e| EventParseError {
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })
    }
    let whole = |message: String| EventParseError {
        path: ".".into(),
        message,
    };
    match serde_json::from_str::<Tag<'_>>(json) {
        Ok(Tag { kind: None }) => EventParseError {
            path: "type".into(),
            message: "missing field `type` (exposure or conversion)".into(),
        },
        Ok(Tag { kind: Some(kind) }) => match kind.as_ref() {
            "exposure" => field_error::<Exposure>(json),
            "conversion" => field_error::<Conversion>(json),
            _ => Some(EventParseError {
                path: "type".into(),
                message: format!("unknown event type `{kind}`; expected exposure or conversion"),
            }),
        }
        .unwrap_or_else(|| whole(error.to_string())),
        Err(_) => whole(error.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The fast path and the derived deserializer agree on acceptance and on the value.
    #[test]
    fn from_json_agrees_with_the_derived_deserializer() {
        let cases = [
            r#"{"type":"exposure","id":"e1","timestamp":1790000000000,"user_key":"u","flag":"f","variant":"a","experiment":"x","rule":0,"personalized":true,"revision":3,"spec_version":1}"#,
            r#"{"id":"e1","timestamp":1790000000000,"user_key":"u","flag":"f","variant":"a","experiment":"x","rule":0,"segment":"s","personalized":false,"revision":3,"spec_version":1,"type":"exposure"}"#,
            r#"{"type":"conversion","id":"c\"1","timestamp":1,"user_key":"\u00e9","event":"buy","value":2.5}"#,
            r#"{"type":"conversion","id":"c1","timestamp":1,"user_key":"u","event":"buy","value":null}"#,
            r#"{"type":"conversion","id":"c1","timestamp":1,"user_key":"u","event":"buy","flag":5}"#,
            r#"{"type":"conversion","id":"c1","timestamp":1,"user_key":"u","event":"buy","extra":[1,2]}"#,
            r#"{"type":"exposure","id":"e1","timestamp":1,"user_key":"u","flag":"f","variant":"a","experiment":"x","rule":0,"personalized":true,"revision":3,"spec_version":1,"value":"x"}"#,
            r#"{"type":"exposure","id":"e1","timestamp":1,"user_key":"u","flag":"f","variant":"a","experiment":"x","rule":-1,"personalized":true,"revision":3,"spec_version":1}"#,
            r#"{"type":"exposure","id":"e1","timestamp":1,"user_key":"u"}"#,
            r#"{"type":"conversion","id":"c1","id":"c2","timestamp":1,"user_key":"u","event":"buy"}"#,
            r#"{"type":"click","id":"c1","timestamp":1,"user_key":"u","event":"buy"}"#,
            r#"{"id":"c1","timestamp":1,"user_key":"u","event":"buy"}"#,
            r#"{"type":"conversion","id":"c1","timestamp":"1","user_key":"u","event":"buy"}"#,
            r#"{"type":"conversion","id":"c1","timestamp":1,"user_key":"u","event":"buy"} x"#,
            r#"[1,2]"#,
            r#"null"#,
        ];
        for json in cases {
            let derived = serde_json::from_str::<Event>(json);
            let fast = Event::from_json(json);
            match (&derived, &fast) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{json}"),
                (Err(_), Err(_)) => {}
                _ => panic!("disagree on {json}: derived {derived:?}, fast {fast:?}"),
            }
        }
    }

    #[test]
    fn from_json_names_the_offending_field() {
        let err = Event::from_json(
            r#"{"type":"conversion","id":"c1","timestamp":"soon","user_key":"u","event":"buy"}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, "timestamp");
        assert!(err.message.contains("invalid type"), "{err}");
        let err = Event::from_json(r#"{"type":"exposure","id":"e1"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
