//! Event wire format shared by the SDK (producer) and the collector (consumer): exposures and
//! conversions, batched (DESIGN §5).

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
}

/// What the SDK posts to the collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch {
    /// The events.
    pub events: Vec<Event>,
}
