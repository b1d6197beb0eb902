//! The config document: plain serde data for segments, flags, experiments and layers (JSON or YAML).
//!
//! This is what admins write, what the server stores and what SDKs download. It is deliberately
//! dumb data: every check lives in [`crate::compile`]. Unknown fields are ignored everywhere so an
//! older SDK can read a document written by a newer server.
//!
//! Percentages are integers in basis points (1 = 0.01%, 10,000 = 100%) everywhere: split
//! weights, rollout coverage, holdouts and layer slices.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Basis points meaning "everyone": 100.00%.
pub const FULL_COVERAGE: u32 = 10_000;

/// One environment's whole configuration at one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ConfigDocument {
    /// Environment key, e.g. `production`.
    #[serde(default)]
    pub environment: String,
    /// Monotonically increasing per environment; bumped by every published change.
    #[serde(default)]
    pub revision: u64,
    /// Reusable audiences.
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// Flags (experiences).
    #[serde(default)]
    pub flags: Vec<Flag>,
    /// Tracked allocations.
    #[serde(default)]
    pub experiments: Vec<Experiment>,
    /// Mutual-exclusion groups.
    #[serde(default)]
    pub layers: Vec<Layer>,
    /// Computed traits: per-user values the server derives from the events it collects
    /// ([`crate::traits`]), usable in conditions as `{trait: key, op, values}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<TraitDefinition>,
}

/// A computed trait (the contract is in [`crate::traits`]): an aggregate of one user's events
/// with these names, optionally over a sliding window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraitDefinition {
    /// Unique key, referenced by `{trait: key}` conditions.
    pub key: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The event names (as sent to `track`) this trait reads; at least one.
    pub events: Vec<String>,
    /// What is computed.
    pub aggregate: Aggregate,
    /// Only events in the last `window_days` days count (1..=3650); none: all events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u32>,
}

/// What a trait computes from a user's matching events ([`crate::traits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Number of events (each event id once). A number; 0 without events.
    Count,
    /// Sum of the events' values (an event without a value adds 0). A number; 0 without events.
    Sum,
    /// Number of distinct UTC days with at least one event. A number; 0 without events.
    DistinctDays,
    /// Time of the earliest event: a datetime (for `before`/`after`); missing without events.
    FirstSeen,
    /// Time of the latest event: a datetime; missing without events.
    LastSeen,
    /// Whole days since the earliest event; missing without events.
    DaysSinceFirst,
    /// Whole days since the latest event; missing without events.
    DaysSinceLast,
}

impl Aggregate {
    /// Whether the trait's value is a datetime (otherwise a number).
    pub fn is_datetime(self) -> bool {
        matches!(self, Aggregate::FirstSeen | Aggregate::LastSeen)
    }

    /// The aggregate's name as written in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::DistinctDays => "distinct_days",
            Aggregate::FirstSeen => "first_seen",
            Aggregate::LastSeen => "last_seen",
            Aggregate::DaysSinceFirst => "days_since_first",
            Aggregate::DaysSinceLast => "days_since_last",
        }
    }
}

/// A named, reusable audience.
///
/// Membership: a unit listed in `include` is a member; otherwise one listed in `exclude` is not;
/// otherwise the `conditions` decide (no conditions: not a member). This is LaunchDarkly's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Unique key, referenced by `{segment: key}` conditions.
    pub key: String,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// User keys that are always members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// User keys that are never members (unless also included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// A large list segment: its members are a key list uploaded to the server
    /// (`PUT …/segments/{key}/members`), not shipped in this document; SDKs learn a user's
    /// membership from the user's profile, like traits. Checked after `include`/`exclude`
    /// and before `conditions`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub list: bool,
    /// The audience rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Condition>,
}

/// A targeting condition: plain data, nested with all / any / not.
///
/// YAML examples: `{all: [...]}`, `{not: {segment: lapsed}}`,
/// `{attribute: country, op: in, values: [US, CA]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, try_from = "RawCondition")]
pub enum Condition {
    /// Every child matches (an empty list matches).
    All {
        /// Children.
        all: Vec<Condition>,
    },
    /// At least one child matches (an empty list does not match).
    Any {
        /// Children.
        any: Vec<Condition>,
    },
    /// The child does not match.
    Not {
        /// The negated child.
        not: Box<Condition>,
    },
    /// The user is a member of the named segment.
    Segment {
        /// Segment key.
        segment: String,
    },
    /// A test on one user attribute.
    Attribute(AttributeCondition),
    /// A test on one computed trait of the user ([`crate::traits`]).
    Trait(TraitCondition),
}

/// A test of one computed trait against a list of values: the attribute operators that apply
/// to the trait's type (numbers: `eq`, `neq`, `in`, `not_in`, `lt`, `lte`, `gt`, `gte`,
/// `exists`; datetimes: `before`, `after`, `exists`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraitCondition {
    /// The trait's key.
    #[serde(rename = "trait")]
    pub trait_key: String,
    /// The operator.
    pub op: Operator,
    /// Operand values, as for attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Value>,
}

/// A test of one attribute of the user against a list of values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeCondition {
    /// Attribute name; `key` is the user key.
    pub attribute: String,
    /// The operator.
    pub op: Operator,
    /// Operand values. Positive operators match when any value matches; `neq` and `not_in` match
    /// when none does. Scalar operators (`lt`, `semver_gt`, `before`, `regex`, …) take one value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Value>,
    /// Compare strings case-insensitively (Unicode lowercase) for the string operators.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ignore_case: bool,
}

/// The flat shape a condition is read from, so a malformed one gets a message that says what is
/// wrong instead of serde's "did not match any variant".
#[derive(Deserialize)]
struct RawCondition {
    all: Option<Vec<Condition>>,
    any: Option<Vec<Condition>>,
    not: Option<Box<Condition>>,
    segment: Option<String>,
    attribute: Option<String>,
    #[serde(rename = "trait")]
    trait_key: Option<String>,
    op: Option<Operator>,
    #[serde(default)]
    values: Vec<Value>,
    #[serde(default)]
    ignore_case: bool,
}

impl TryFrom<RawCondition> for Condition {
    type Error = String;

    fn try_from(raw: RawCondition) -> Result<Self, Self::Error> {
        let kinds = [
            raw.all.is_some(),
            raw.any.is_some(),
            raw.not.is_some(),
            raw.segment.is_some(),
            raw.attribute.is_some(),
            raw.trait_key.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(
                "a condition needs exactly one of `all`, `any`, `not`, `segment`, `attribute` or `trait`"
                    .to_string(),
            );
        }
        if let Some(all) = raw.all {
            return Ok(Condition::All { all });
        }
        if let Some(any) = raw.any {
            return Ok(Condition::Any { any });
        }
        if let Some(not) = raw.not {
            return Ok(Condition::Not { not });
        }
        if let Some(segment) = raw.segment {
            return Ok(Condition::Segment { segment });
        }
        if let Some(trait_key) = raw.trait_key {
            let op = raw
                .op
                .ok_or_else(|| format!("trait condition on `{trait_key}` needs an `op`"))?;
            return Ok(Condition::Trait(TraitCondition {
                trait_key,
                op,
                values: raw.values,
            }));
        }
        let attribute = raw.attribute.unwrap_or_default();
        let op = raw
            .op
            .ok_or_else(|| format!("attribute condition on `{attribute}` needs an `op`"))?;
        Ok(Condition::Attribute(AttributeCondition {
            attribute,
            op,
            values: raw.values,
            ignore_case: raw.ignore_case,
        }))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Targeting operators (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Equal to the single value (string, number or bool).
    Eq,
    /// Not equal to the single value (also true when the attribute is missing).
    Neq,
    /// Equal to one of the values.
    In,
    /// Equal to none of the values (also true when the attribute is missing).
    NotIn,
    /// String contains one of the values.
    Contains,
    /// String starts with one of the values.
    StartsWith,
    /// String ends with one of the values.
    EndsWith,
    /// String matches the regular expression (Rust `regex` syntax, unanchored).
    Regex,
    /// Number is less than the value.
    Lt,
    /// Number is less than or equal to the value.
    Lte,
    /// Number is greater than the value.
    Gt,
    /// Number is greater than or equal to the value.
    Gte,
    /// Semantic version equals the value.
    SemverEq,
    /// Semantic version is lower than the value.
    SemverLt,
    /// Semantic version is lower than or equal to the value.
    SemverLte,
    /// Semantic version is greater than the value.
    SemverGt,
    /// Semantic version is greater than or equal to the value.
    SemverGte,
    /// Datetime (RFC 3339 string or Unix milliseconds) is before the value.
    Before,
    /// Datetime (RFC 3339 string or Unix milliseconds) is after the value.
    After,
    /// The attribute is present (takes no values).
    Exists,
    /// List attribute contains at least one of the values.
    ContainsAny,
    /// List attribute contains all of the values.
    ContainsAll,
}

/// A flag (an "experience"): typed variants, a generic default and ordered rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// Unique key, e.g. `homepage`.
    pub key: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Type every variant's value must have.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// The possible values (content) this flag serves.
    pub variants: Vec<Variant>,
    /// Key of the generic variant: served when off, when no rule matches, and to holdouts.
    pub default_variant: String,
    /// The on/off switch. Off serves the default variant to everyone.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Bucketing salt for rules without their own; defaults to the flag key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Attribute used as the bucketing unit for rules without their own; defaults to `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<String>,
    /// Individual overrides, checked before rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
    /// Ordered rules: the first whose audience matches (and whose rollout includes the user)
    /// decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

fn default_true() -> bool {
    true
}

/// The type of a flag's variant values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// `true` / `false`.
    Bool,
    /// A string.
    String,
    /// A number.
    Number,
    /// Any JSON value (personalized content).
    Json,
}

/// One possible value of a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Key, unique within the flag, e.g. `beginner-onboarding`.
    pub key: String,
    /// The payload.
    pub value: Value,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Users (by key) who always get one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// The variant they get.
    pub variant: String,
    /// User keys (values of the flag's bucketing attribute are not used here: always `key`).
    pub keys: Vec<String>,
}

/// A rule: an audience and what it serves.
///
/// Exactly one of `variant` (fixed, rule-based personalization) and `split` (an A/B/n
/// experiment) must be set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Rule {
    /// Optional stable identifier shown in reasons and results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Audience; absent means everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// Serve this fixed variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Serve a weighted split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Vec<WeightedVariant>>,
    /// Serve a split whose weights the server's optimizer learns per context ([`Optimize`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimize: Option<Optimize>,
    /// Rollout in basis points; users outside it fall through to the next rule.
    #[serde(default = "full_coverage")]
    pub coverage: u32,
    /// Share of the matched (and covered) users who get the generic default instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<Holdout>,
    /// Bucketing salt; defaults to the flag's salt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Bucketing attribute; defaults to the flag's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<String>,
    /// Key of the experiment that tracks this rule's allocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
}

fn full_coverage() -> u32 {
    FULL_COVERAGE
}

/// One arm of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedVariant {
    /// Variant key.
    pub variant: String,
    /// Weight in basis points; a split's weights sum to 10,000.
    pub weight: u32,
}

/// Learned personalization (README, "Learned personalization"): a split over `variants` whose
/// weights the server's optimizer moves, per context, toward the variant that converts best,
/// by Thompson sampling. SDKs evaluate it locally like a split, with the weights published here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Optimize {
    /// The variants it chooses among (at least two).
    pub variants: Vec<String>,
    /// The conversion event to maximise; one of the linked experiment's metrics (absent: its
    /// primary metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `conversion` (the share of users who convert, the default) or `value` (value per user).
    #[serde(default)]
    pub kind: OptimizeKind,
    /// Segments whose users the optimizer learns for separately, in order (a user is in the
    /// first that matches); users in none share the [`NO_CONTEXT`] weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<String>,
    /// Exploration floor: no variant gets less, in basis points (default 500).
    #[serde(default = "default_min_weight")]
    pub min_weight: u32,
    /// Equal weights in a context until each variant has this many users there (default 200).
    #[serde(default = "default_burn_in_users")]
    pub burn_in_users: u64,
    /// Minutes between updates (default 15, at least 1). Updates happen at multiples of it
    /// since the Unix epoch, and each such period is a stratum of the results. Fixed once the
    /// linked experiment has started.
    #[serde(default = "default_update_minutes")]
    pub update_minutes: u32,
    /// Set by the optimizer: the current weights per context (a context without an entry
    /// splits equally).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<ContextWeights>,
    /// Stop learning: the published weights stay as they are (freezing a policy publishes
    /// each context's best variant at 10,000 with it; a normal, audited change).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
}

/// The context of users in none of an [`Optimize`] rule's contexts.
pub const NO_CONTEXT: &str = "*";

fn default_min_weight() -> u32 {
    500
}

fn default_burn_in_users() -> u64 {
    200
}

fn default_update_minutes() -> u32 {
    15
}

/// What an [`Optimize`] rule maximises per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OptimizeKind {
    /// Whether the user converted (Beta–Bernoulli).
    #[default]
    Conversion,
    /// The user's summed value (normal model).
    Value,
}

/// One context's weights, as the optimizer last published them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextWeights {
    /// A context segment, or [`NO_CONTEXT`].
    pub context: String,
    /// Basis points per variant, in the rule's `variants` order; they sum to 10,000.
    pub weights: Vec<u32>,
    /// The update period they were computed at: `floor(unix ms / (update_minutes · 60,000))`.
    pub period: u64,
}

impl Optimize {
    /// The weights of `context` (equal when none are published), in `variants` order.
    pub fn weights_of(&self, context: &str) -> Vec<u32> {
        match self.weights.iter().find(|w| w.context == context) {
            Some(w) if w.weights.len() == self.variants.len() => w.weights.clone(),
            _ => equal_weights(self.variants.len()),
        }
    }

    /// Every context the rule learns for: its segments, then [`NO_CONTEXT`].
    pub fn all_contexts(&self) -> Vec<&str> {
        self.contexts
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(NO_CONTEXT))
            .collect()
    }

    /// The length of one update period, milliseconds.
    pub fn period_ms(&self) -> i64 {
        i64::from(self.update_minutes.max(1)) * 60_000
    }
}

/// `n` weights in basis points summing to 10,000, as equal as integers allow (the first ones
/// get the remainder).
pub fn equal_weights(n: usize) -> Vec<u32> {
    if n == 0 {
        return Vec::new();
    }
    let base = FULL_COVERAGE / n as u32;
    let extra = (FULL_COVERAGE - base * n as u32) as usize;
    (0..n).map(|i| base + u32::from(i < extra)).collect()
}

/// A personalization holdout: matched users who get the generic default, for measuring lift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    /// Share held out, in basis points.
    pub basis_points: u32,
    /// Salt for holdout membership; defaults to `<rule salt>:holdout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

/// A tracked allocation and how it is analysed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Unique key.
    pub key: String,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypothesis: Option<String>,
    /// Lifecycle; only running experiments record exposures.
    #[serde(default)]
    pub status: ExperimentStatus,
    /// Conversion event that decides the experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_metric: Option<String>,
    /// Metrics reported beside the primary one: event names or [`RatioMetric`] keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary_metrics: Vec<String>,
    /// Metrics that must not get worse: event names or [`RatioMetric`] keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrail_metrics: Vec<String>,
    /// Metrics defined as one per-user measure over another (revenue per order, orders per
    /// session), analysed with the delta method; named by their key wherever a metric is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ratio_metrics: Vec<RatioMetric>,
    /// Multiple-comparison correction of the relative lifts across variants × metrics (none:
    /// each comparison stands alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction: Option<Correction>,
    /// Prior of the Bayesian analysis (none: the improper flat prior).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<Prior>,
    /// Conversions count only within this many hours after first exposure (none: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_window_hours: Option<u32>,
    /// CUPED: how many whole UTC days before the day of a user's first exposure their
    /// pre-exposure value of each metric is taken from (none: [`DEFAULT_CUPED_LOOKBACK_DAYS`]);
    /// 1 to [`MAX_CUPED_LOOKBACK_DAYS`], fixed once the experiment has started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuped_lookback_days: Option<u32>,
    /// Control variant for comparisons; defaults to the flag's default variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_variant: Option<String>,
}

/// A ratio metric: `Σ numerator / Σ denominator` over each arm's users (server `stats`,
/// "Ratio metrics").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioMetric {
    /// Its name in `primary_metric`, `secondary_metrics`, `guardrail_metrics` and
    /// `?metric=`; it takes precedence over an event of the same name.
    pub key: String,
    /// What is counted above the line.
    pub numerator: EventMeasure,
    /// What it is divided by.
    pub denominator: EventMeasure,
}

/// One per-user measure of a conversion event, attributed like every metric (after first
/// exposure, within the attribution window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMeasure {
    /// Conversion event name.
    pub event: String,
    /// `count` of the user's events (the default) or the `value` summed over them.
    #[serde(default)]
    pub measure: Measure,
}

/// What is taken of a user's conversion events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// How many there were.
    #[default]
    Count,
    /// Their values summed (an event without a value counts 0).
    Value,
}

/// A multiple-comparison correction (server `stats`, "Multiple comparisons").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Holm–Bonferroni: controls the family-wise error rate.
    HolmBonferroni,
    /// Benjamini–Hochberg: controls the false discovery rate.
    BenjaminiHochberg,
}

impl Correction {
    /// The name config and queries use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HolmBonferroni => "holm_bonferroni",
            Self::BenjaminiHochberg => "benjamini_hochberg",
        }
    }
}

/// A proper normal prior on the lift, `N(mean, std_dev²)` (gbstats `GaussianPrior`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    /// Prior mean of the lift.
    pub mean: f64,
    /// Prior standard deviation; positive.
    pub std_dev: f64,
    /// Whether the prior is on the `relative` lift (the default: 0.1 is +10%) or the
    /// `absolute` one (in the metric's units; rescaled by the control mean).
    #[serde(default)]
    pub scale: LiftScale,
}

/// The scale of a lift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LiftScale {
    /// `(treatment − control) / control`.
    #[default]
    Relative,
    /// `treatment − control`.
    Absolute,
}

impl Experiment {
    /// Every metric the experiment names, in order: primary, secondary, guardrails; each once.
    pub fn metrics(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for m in self
            .primary_metric
            .iter()
            .chain(&self.secondary_metrics)
            .chain(&self.guardrail_metrics)
        {
            if !out.contains(&m.as_str()) {
                out.push(m);
            }
        }
        out
    }

    /// The ratio metric named `key`, if the experiment defines one.
    pub fn ratio_metric(&self, key: &str) -> Option<&RatioMetric> {
        self.ratio_metrics.iter().find(|r| r.key == key)
    }
}

/// The CUPED lookback of an experiment that sets none, days.
pub const DEFAULT_CUPED_LOOKBACK_DAYS: u32 = 14;
/// The longest CUPED lookback, days.
pub const MAX_CUPED_LOOKBACK_DAYS: u32 = 365;

impl Experiment {
    /// The CUPED lookback in days, the default applied.
    pub fn lookback_days(&self) -> u32 {
        self.cuped_lookback_days
            .unwrap_or(DEFAULT_CUPED_LOOKBACK_DAYS)
    }
}

/// Experiment lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentStatus {
    /// Being set up: assignments happen but no exposures are recorded.
    #[default]
    Draft,
    /// Recording exposures.
    Running,
    /// Finished: assignments still happen, no new exposures.
    Stopped,
}

/// A mutual-exclusion group: its experiments own disjoint slices of one bucket space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Unique key.
    pub key: String,
    /// Salt for the layer bucket; defaults to `layer:<key>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Attribute used as the unit; defaults to `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<String>,
    /// Which experiment owns which part of the layer.
    #[serde(default)]
    pub slices: Vec<LayerSlice>,
}

/// The bucket range `[start, end)` of a layer owned by one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSlice {
    /// Experiment key.
    pub experiment: String,
    /// First bucket (inclusive), basis points.
    pub start: u32,
    /// Last bucket (exclusive), basis points.
    pub end: u32,
}

/// Errors writing a document (JSON or YAML). Plain data does not fail to serialize today; the
/// error exists so that a future field that can fail is reported, not written as an empty
/// document.
#[derive(Debug, thiserror::Error)]
pub enum SerializeError {
    /// Writing JSON failed.
    #[error("could not write the config document as JSON")]
    Json(#[source] serde_json::Error),
    /// Writing YAML failed.
    #[error("could not write the config document as YAML")]
    Yaml(#[source] serde_yaml_ng::Error),
}

/// Errors reading a document (syntax or shape; semantic checks are in [`crate::compile`]).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Invalid JSON or a field of the wrong shape.
    #[error("invalid JSON config at {path}: {source}")]
    Json {
        /// Where in the document.
        path: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The text nests too deeply to be parsed (see [`crate::nesting`]).
    #[error("invalid config: {0}")]
    TooDeep(#[from] crate::nesting::NestingError),
    /// Invalid YAML or a field of the wrong shape.
    #[error("invalid YAML config at {path}: {source}")]
    Yaml {
        /// Where in the document.
        path: String,
        /// The underlying error.
        #[source]
        source: serde_yaml_ng::Error,
    },
}

impl ConfigDocument {
    /// Reads a document from JSON; the error names the path of the offending field.
    pub fn from_json(text: &str) -> Result<Self, ParseError> {
        crate::nesting::check_json(text.as_bytes())?;
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| ParseError::Json {
            path: e.path().to_string(),
            source: e.into_inner(),
        })
    }

    /// Reads a document from YAML; the error names the path of the offending field.
    pub fn from_yaml(text: &str) -> Result<Self, ParseError> {
        crate::nesting::check_yaml(text)?;
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| ParseError::Yaml {
            path: e.path().to_string(),
            source: e.into_inner(),
        })
    }

    /// Writes the document as pretty JSON.
    pub fn try_to_json_pretty(&self) -> Result<String, SerializeError> {
        serde_json::to_string_pretty(self).map_err(SerializeError::Json)
    }

    /// Writes the document as YAML, quoting every string that some YAML version would read as
    /// a boolean, null, number or date (`off`, `yes`, `1_000`: [`crate::yaml_out`]).
    pub fn try_to_yaml(&self) -> Result<String, SerializeError> {
        crate::yaml_out::to_yaml(self).map_err(SerializeError::Yaml)
    }

    /// The flag with this key, if any.
    pub fn flag(&self, key: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.key == key)
    }
}
