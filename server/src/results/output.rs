//! The report's shape: plain serializable data, the JSON the results API returns.

use serde::Serialize;

use crate::attribution::VariantSeries;
use crate::stats::{self, Comparison};

/// One arm in one scope.
#[derive(Debug, Clone, Serialize)]
pub struct ArmReport {
    /// Variant key.
    pub variant: String,
    /// Users counted (first exposure).
    pub users: u64,
    /// Users who converted (at least once, after exposure).
    pub converted: u64,
    /// Sum of attributed values.
    pub value_sum: f64,
    /// A ratio metric's sums over the arm's users (`None` for an event metric).
    pub ratio: Option<RatioReport>,
    /// The engine's result for this arm (moments and, except for the control, the comparison).
    pub result: stats::ArmResult,
    /// The relative lift corrected for multiple comparisons, when a correction is chosen and
    /// the lift is defined (not for the control).
    pub adjusted: Option<AdjustedLift>,
}

/// A ratio metric's numerator and denominator summed over an arm's users.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RatioReport {
    /// `Σ numerator`.
    pub numerator: f64,
    /// `Σ denominator`.
    pub denominator: f64,
}

/// A relative lift's p-value and interval after the report's correction.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AdjustedLift {
    /// The adjusted p-value.
    pub p_value: f64,
    /// The interval implied by it, never narrower than the unadjusted one; `None` when it is
    /// unbounded (the adjusted p-value is 1).
    pub ci: Option<stats::Interval>,
}

/// Which correction a report applied, and over which family.
#[derive(Debug, Clone, Serialize)]
pub struct CorrectionReport {
    /// `holm_bonferroni` or `benjamini_hochberg`.
    pub method: &'static str,
    /// The metrics whose relative lifts form each scope's family, with every non-control arm.
    pub metrics: Vec<String>,
}

/// One scope's analysis.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeReport {
    /// `overall`, a segment key or `rule <n>`.
    pub scope: String,
    /// Arms in the flag's variant order; the control first.
    pub arms: Vec<ArmReport>,
    /// Sample-ratio mismatch against the configured split, over the arms the scope's rules
    /// serve; `None` when fewer than two arms are served (or no rule of the current config
    /// tracks this scope), so there is no split to compare with.
    pub srm: Option<stats::Outcome<stats::Srm>>,
    /// Variants with users that the scope's rules never serve (a data-quality problem).
    pub unexpected_variants: Vec<String>,
}

/// Personalized content against the generic default, in one segment or pooled.
#[derive(Debug, Clone, Serialize)]
pub struct LiftReport {
    /// Segment, or `pooled`.
    pub segment: String,
    /// Users who saw tailored content.
    pub personalized_users: u64,
    /// Their conversions.
    pub personalized_converted: u64,
    /// Users held out to the generic default.
    pub generic_users: u64,
    /// Their conversions.
    pub generic_converted: u64,
    /// Personalized (treatment) vs generic (control).
    pub comparison: Comparison,
}

/// Data-quality findings.
#[derive(Debug, Clone, Serialize)]
pub struct DataQuality {
    /// Users exposed to more than one variant (counted in their first).
    pub multi_variant_users: u64,
    /// Exposures that arrived more than 15 minutes behind their user's later events and count
    /// from the user's settle point (README, "Memory bounded by users").
    pub late_exposures: u64,
    /// Human-readable warnings (SRM, multiple exposures, late exposures).
    pub warnings: Vec<String>,
}

/// The full results of an experiment for one metric.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentReport {
    /// Environment key.
    pub environment: String,
    /// Experiment key.
    pub experiment: String,
    /// The flag whose rules the experiment tracks.
    pub flag: Option<String>,
    /// Metric (event name).
    pub metric: String,
    /// `conversion`, `value` or `ratio`.
    pub kind: &'static str,
    /// Control variant.
    pub control: String,
    /// Config revision the analysis used.
    pub revision: u64,
    /// When, RFC 3339.
    pub analyzed_at: String,
    /// Significance level.
    pub alpha: f64,
    /// The CUPED lookback the comparisons were adjusted with, days (`None`: not adjusted).
    pub cuped_lookback_days: Option<u32>,
    /// The Bayesian prior the comparisons used (`None`: the improper flat prior).
    pub prior: Option<stats::Prior>,
    /// The multiple-comparison correction applied (`None`: none).
    pub correction: Option<CorrectionReport>,
    /// The optimize rule this experiment measures, if any.
    pub optimization: Option<OptimizationReport>,
    /// All tracked rules together.
    pub overall: ScopeReport,
    /// Each segment (or rule) alone.
    pub segments: Vec<ScopeReport>,
    /// Personalized vs generic, per segment and pooled; present when any holdout data exists.
    pub personalization: Option<Personalization>,
    /// Warnings about the data.
    pub data_quality: DataQuality,
    /// Cumulative users and converted users per variant over time (filled in by the caller that
    /// holds the attribution state; empty otherwise).
    pub timeline: Vec<VariantSeries>,
}

/// An optimize rule's state: what the optimizer publishes and what it learned, per context.
#[derive(Debug, Clone, Serialize)]
pub struct OptimizationReport {
    /// The rule's index in the flag.
    pub rule: usize,
    /// The metric it maximises.
    pub metric: String,
    /// `conversion` or `value`.
    pub kind: &'static str,
    /// Minutes per update period.
    pub update_minutes: u32,
    /// Learning is stopped: the weights stay as published.
    pub frozen: bool,
    /// How the per-variant estimates are made.
    pub note: &'static str,
    /// Per context: its segments, then `*` (users in none).
    pub contexts: Vec<OptimizedContext>,
}

/// One context of an optimize rule.
#[derive(Debug, Clone, Serialize)]
pub struct OptimizedContext {
    /// A context segment, or `*`.
    pub context: String,
    /// The label of its users in `segments` and `personalization`.
    pub label: String,
    /// The weights SDKs split by now, basis points in variant order.
    pub weights: Vec<u32>,
    /// The update period they were published at (`None`: none published, equal weights).
    pub period: Option<u64>,
    /// Per variant.
    pub arms: Vec<OptimizedArm>,
}

/// One variant in one context, weighted by update period.
#[derive(Debug, Clone, Serialize)]
pub struct OptimizedArm {
    /// Variant key.
    pub variant: String,
    /// Its policy users in the context.
    pub users: u64,
    /// The period-weighted mean (conversion rate or value per user).
    pub mean: f64,
    /// Its `1 − alpha` interval (normal).
    pub ci: stats::Interval,
    /// Posterior probability that it is the context's best variant.
    pub probability_best: f64,
}

/// Personalization lift.
#[derive(Debug, Clone, Serialize)]
pub struct Personalization {
    /// Per segment.
    pub segments: Vec<LiftReport>,
    /// Pooled over segments (sums of users and conversions).
    pub pooled: LiftReport,
}
