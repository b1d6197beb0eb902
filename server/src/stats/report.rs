//! The engine's outputs: plain serde data, every number finite, every undefined number an
//! explicit [`Outcome::NotEnoughData`] with a [`NotEnoughData`] reason.

use serde::{Deserialize, Serialize};

use super::input::MetricKind;

/// A computed result, or the reason it is undefined. Serialized with a `status` tag:
/// `{"status": "ok", …fields}` or `{"status": "not_enough_data", "reason": "zero_variance"}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome<T> {
    /// The result; all its numbers are finite.
    Ok(T),
    /// The result is undefined for this data.
    NotEnoughData {
        /// Why.
        reason: NotEnoughData,
    },
}

impl<T> Outcome<T> {
    /// The result, if there is one.
    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Ok(v) => Some(v),
            Self::NotEnoughData { .. } => None,
        }
    }

    /// The reason there is no result, if there is none.
    pub fn reason(&self) -> Option<NotEnoughData> {
        match self {
            Self::Ok(_) => None,
            Self::NotEnoughData { reason } => Some(*reason),
        }
    }

    /// `NotEnoughData` with `reason`.
    pub(crate) fn missing(reason: NotEnoughData) -> Self {
        Self::NotEnoughData { reason }
    }
}

/// `Ok(value)` if every number in it is finite, else `NotEnoughData(NonFinite)`: the last line
/// of defence that keeps NaN and infinities out of the output.
pub(crate) fn checked<T: Finite>(value: T) -> Outcome<T> {
    if value.is_finite() {
        Outcome::Ok(value)
    } else {
        Outcome::missing(NotEnoughData::NonFinite)
    }
}

/// Why a number is undefined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotEnoughData {
    /// An arm in the comparison has no users.
    EmptyArm,
    /// An arm in the comparison has a single user: no variance estimate.
    TooFewUsers,
    /// An arm's variance is zero (e.g. 0% or 100% conversion, or all values equal).
    ZeroVariance,
    /// The control mean is zero, so a relative lift is undefined.
    ZeroBaseline,
    /// No users at all (sample-ratio check).
    NoUsers,
    /// The inputs are so extreme that a result overflows `f64`.
    NonFinite,
    /// A ratio metric's denominator sums to zero in an arm: its ratio is undefined.
    ZeroDenominator,
}

impl NotEnoughData {
    /// A sentence for people.
    pub fn message(self) -> &'static str {
        match self {
            Self::EmptyArm => "an arm has no users yet",
            Self::TooFewUsers => "an arm needs at least 2 users",
            Self::ZeroVariance => "an arm has zero variance (all users alike)",
            Self::ZeroBaseline => "the control mean is zero, so a relative lift is undefined",
            Self::NoUsers => "no users yet",
            Self::NonFinite => "the values are too large to analyse",
            Self::ZeroDenominator => "an arm has no denominator events, so its ratio is undefined",
        }
    }
}

impl std::fmt::Display for NotEnoughData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Output values that can say whether all their numbers are finite.
pub(crate) trait Finite {
    fn is_finite(&self) -> bool;
}

impl Finite for f64 {
    fn is_finite(&self) -> bool {
        f64::is_finite(*self)
    }
}

/// A two-sided interval `[lower, upper]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

impl Finite for Interval {
    fn is_finite(&self) -> bool {
        self.lower.is_finite() && self.upper.is_finite()
    }
}

/// Welch t-test of one lift (gbstats `TwoSidedTTest`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrequentistLift {
    /// Point estimate: `m_t − m_c` (absolute) or `m_t / m_c − 1` (relative).
    pub estimate: f64,
    /// Standard error of the estimate (delta method for the relative lift).
    pub std_error: f64,
    /// `1 − alpha` confidence interval: `estimate ± t_{1−α/2, dof} · std_error`.
    pub ci: Interval,
    /// Two-sided p-value of "no difference".
    pub p_value: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub dof: f64,
}

impl Finite for FrequentistLift {
    fn is_finite(&self) -> bool {
        self.estimate.is_finite()
            && self.std_error.is_finite()
            && self.ci.is_finite()
            && self.p_value.is_finite()
            && self.dof.is_finite()
    }
}

/// Always-valid interval and p-value of one lift (gbstats `SequentialTwoSidedTTest`): valid
/// however often it is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialLift {
    /// Point estimate (same as the fixed-horizon one).
    pub estimate: f64,
    /// Standard error (same as the fixed-horizon one).
    pub std_error: f64,
    /// Confidence sequence at this sample size.
    pub ci: Interval,
    /// Always-valid p-value (`min(1, 1/e-value)`).
    pub p_value: f64,
}

impl Finite for SequentialLift {
    fn is_finite(&self) -> bool {
        self.estimate.is_finite()
            && self.std_error.is_finite()
            && self.ci.is_finite()
            && self.p_value.is_finite()
    }
}

/// Sequential results on both scales.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialLifts {
    /// Difference of means.
    pub absolute: Outcome<SequentialLift>,
    /// Ratio of means minus one.
    pub relative: Outcome<SequentialLift>,
}

/// Expected loss of each decision, in relative-lift units (gbstats `risk`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// Expected lift forgone by keeping the control: `E[max(δ, 0)]` (`E[max(−δ, 0)]` for an
    /// inverse metric).
    pub control: f64,
    /// Expected loss from shipping the treatment: `E[max(−δ, 0)]` (`E[max(δ, 0)]` when inverse).
    pub treatment: f64,
}

/// Bayesian view of the relative lift δ (gbstats `EffectBayesianABTest`, improper flat prior):
/// the posterior is `N(δ̂, se²)` with the frequentist delta-method estimate and error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BayesianLift {
    /// Posterior probability that the treatment beats the control (`P(δ > 0)`, or `P(δ < 0)`
    /// for an inverse metric).
    pub chance_to_win: f64,
    /// Posterior mean of the relative lift.
    pub expected: f64,
    /// Posterior standard deviation.
    pub std_dev: f64,
    /// Equal-tailed `1 − alpha` credible interval of the relative lift.
    pub credible_interval: Interval,
    /// Expected loss of each decision.
    pub risk: Risk,
}

impl Finite for BayesianLift {
    fn is_finite(&self) -> bool {
        self.chance_to_win.is_finite()
            && self.expected.is_finite()
            && self.std_dev.is_finite()
            && self.credible_interval.is_finite()
            && self.risk.control.is_finite()
            && self.risk.treatment.is_finite()
    }
}

/// One arm against the control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Difference of means with Welch's t-test. Its p-value is the classic Welch test.
    pub absolute: Outcome<FrequentistLift>,
    /// Relative lift (ratio − 1) with a delta-method interval.
    pub relative: Outcome<FrequentistLift>,
    /// Chance to beat control, risk and credible interval of the relative lift.
    pub bayesian: Outcome<BayesianLift>,
    /// Always-valid results, when [`AnalysisConfig::sequential`](super::AnalysisConfig) is set.
    pub sequential: Option<SequentialLifts>,
    /// The CUPED adjustment behind these numbers, when covariates were given (`super::cuped`).
    #[serde(default)]
    pub cuped: Option<CupedAdjustment>,
}

/// What CUPED did to one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CupedAdjustment {
    /// The pooled regression coefficient θ (0: no adjustment, a covariate without variance).
    pub theta: f64,
    /// `1 − Var(adjusted absolute lift) / Var(unadjusted)`: the share of the variance removed
    /// (`None` when either variance is undefined).
    pub variance_reduction: Option<f64>,
}

/// An arm's own numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArmMoments {
    /// Conversion rate or value per user.
    pub mean: f64,
    /// Per-user variance as gbstats defines it (`p(1 − p)`; sample variance, 0 for one user).
    pub variance: f64,
    /// `√variance` (0 when the variance is not positive, as in gbstats).
    pub std_dev: f64,
}

impl Finite for ArmMoments {
    fn is_finite(&self) -> bool {
        self.mean.is_finite() && self.variance.is_finite() && self.std_dev.is_finite()
    }
}

/// One arm of an analysed experiment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArmResult {
    /// Exposed users.
    pub users: u64,
    /// Mean and variance; `NotEnoughData(EmptyArm)` without users.
    pub moments: Outcome<ArmMoments>,
    /// This arm against the control; `None` for the control itself.
    pub comparison: Option<Comparison>,
}

/// Sample-ratio-mismatch check (gbstats `check_srm`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Srm {
    /// Pearson's chi-square statistic of observed users against the configured weights.
    pub chi_square: f64,
    /// Degrees of freedom: arms − 1.
    pub dof: u32,
    /// `P(χ²_dof > chi_square)`.
    pub p_value: f64,
    /// `p_value < 0.001`: the split is broken and the results should not be trusted.
    pub mismatch: bool,
}

impl Finite for Srm {
    fn is_finite(&self) -> bool {
        self.chi_square.is_finite() && self.p_value.is_finite()
    }
}

/// Everything the engine computes for one experiment and metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResult {
    /// The metric kind of all arms.
    pub metric: MetricKind,
    /// Index of the control arm.
    pub control: usize,
    /// Per arm, in input order.
    pub arms: Vec<ArmResult>,
    /// Sample-ratio-mismatch check over all arms.
    pub srm: Outcome<Srm>,
}
