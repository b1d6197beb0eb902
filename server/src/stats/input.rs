//! The engine's inputs: per-arm sufficient statistics, the experiment around them, the analysis
//! options, their validation, and [`StatsError`] for input that cannot be analysed at all.

use serde::{Deserialize, Serialize};
pub use tailor_core::model::{LiftScale, Prior};

/// Sufficient statistics of one arm (variant) for one metric.
///
/// `users` is the number of exposed users (the experiment unit). Metrics are per user: a
/// binomial metric counts users who converted at least once; a continuous metric sums one
/// value per user (users without a conversion contribute 0 to both sums).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "metric", rename_all = "snake_case")]
pub enum ArmStats {
    /// Conversion-rate metric: `conversions` of `users` converted (gbstats `ProportionStatistic`).
    Binomial {
        /// Exposed users.
        users: u64,
        /// Users who converted; at most `users`.
        conversions: u64,
    },
    /// Value-per-user metric (gbstats `SampleMeanStatistic`).
    Continuous {
        /// Exposed users.
        users: u64,
        /// Sum over users of each user's value.
        sum: f64,
        /// Sum over users of each user's value squared.
        sum_squares: f64,
    },
    /// Ratio metric `Σm / Σd` over the arm's users (gbstats `RatioStatistic` of two
    /// `SampleMeanStatistic`s), analysed with the delta method.
    Ratio {
        /// Exposed users.
        users: u64,
        /// `Σm`: the numerator summed over users.
        numerator_sum: f64,
        /// `Σm²`.
        numerator_sum_squares: f64,
        /// `Σd`: the denominator summed over users.
        denominator_sum: f64,
        /// `Σd²`.
        denominator_sum_squares: f64,
        /// `Σm·d`, over users.
        sum_products: f64,
    },
}

/// Which kind of metric an [`ArmStats`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Conversion rate (users converted / users).
    Binomial,
    /// Mean value per user.
    Continuous,
    /// One per-user sum over another.
    Ratio,
}

/// Mean and variance of one arm, computed exactly as gbstats does.
///
/// `variance` is gbstats' per-user variance: `p(1 − p)` for a proportion (no Bessel
/// correction) and `(Σx² − (Σx)²/n) / (n − 1)` for a continuous metric, 0 when `n ≤ 1`. It can
/// be slightly negative through rounding when all values are equal; the tests treat any
/// `variance ≤ 0` as "zero variance", like gbstats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Moments {
    /// Users, as a float for the formulas.
    pub n: f64,
    /// Mean per user (0 when `n = 0`, as in gbstats).
    pub mean: f64,
    /// Per-user variance (see above).
    pub variance: f64,
    /// The mean before any CUPED adjustment (equal to `mean` without one): the relative lift
    /// divides by the control's, as gbstats' `unadjusted_mean`.
    pub unadjusted_mean: f64,
}

/// One arm's pre-exposure covariate for CUPED (gbstats `RegressionAdjustedStatistic`): `x` is
/// each user's value of the same metric in the lookback before their first exposure (for a
/// binomial metric 1 if they converted then, else 0), `y` the metric itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Covariate {
    /// Σx over the arm's users.
    pub sum: f64,
    /// Σx² (for a binomial metric, equal to `sum`).
    pub sum_squares: f64,
    /// Σxy.
    pub sum_products: f64,
}

impl Covariate {
    /// Checks the sums against their arm; `arm` names the arm in the error.
    pub fn validate(&self, arm: usize, stats: &ArmStats) -> Result<(), StatsError> {
        for (field, value) in [
            ("covariate sum", self.sum),
            ("covariate sum_squares", self.sum_squares),
            ("covariate sum_products", self.sum_products),
        ] {
            if !value.is_finite() {
                return Err(StatsError::NonFiniteInput { arm, field });
            }
        }
        if self.sum_squares < 0.0 {
            return Err(StatsError::NegativeSumOfSquares {
                arm,
                sum_squares: self.sum_squares,
            });
        }
        if let ArmStats::Binomial { users, .. } = *stats {
            if self.sum > users as f64 || self.sum < 0.0 {
                return Err(StatsError::CovariateOutOfRange { arm });
            }
        }
        if stats.users() == 0 && (self.sum != 0.0 || self.sum_products != 0.0) {
            return Err(StatsError::ValuesWithoutUsers { arm });
        }
        Ok(())
    }

    /// The covariate's own moments, by the metric kind's formulas (a proportion's `p(1 − p)`,
    /// a sample's `(Σx² − (Σx)²/n)/(n − 1)`).
    pub(crate) fn moments(&self, kind: MetricKind, users: u64) -> Moments {
        let stats = match kind {
            MetricKind::Binomial => ArmStats::Binomial {
                users,
                // Validated: 0 ≤ sum ≤ users, an integer count of users.
                conversions: self.sum.round() as u64,
            },
            MetricKind::Continuous | MetricKind::Ratio => {
                ArmStats::continuous(users, self.sum, self.sum_squares)
            }
        };
        stats.moments()
    }
}

impl ArmStats {
    /// A binomial arm: `conversions` of `users` converted.
    pub fn binomial(users: u64, conversions: u64) -> Self {
        Self::Binomial { users, conversions }
    }

    /// A continuous arm: `users` values with the given sum and sum of squares.
    pub fn continuous(users: u64, sum: f64, sum_squares: f64) -> Self {
        Self::Continuous {
            users,
            sum,
            sum_squares,
        }
    }

    /// Exposed users.
    pub fn users(&self) -> u64 {
        match *self {
            Self::Binomial { users, .. }
            | Self::Continuous { users, .. }
            | Self::Ratio { users, .. } => users,
        }
    }

    /// The metric kind.
    pub fn kind(&self) -> MetricKind {
        match self {
            Self::Binomial { .. } => MetricKind::Binomial,
            Self::Continuous { .. } => MetricKind::Continuous,
            Self::Ratio { .. } => MetricKind::Ratio,
        }
    }

    /// A ratio arm whose denominator sums to zero: its ratio is undefined.
    pub(crate) fn zero_denominator(&self) -> bool {
        matches!(*self, Self::Ratio { users, denominator_sum, .. } if users > 0 && denominator_sum == 0.0)
    }

    /// Checks the statistics are internally consistent; `arm` names the arm in the error.
    pub fn validate(&self, arm: usize) -> Result<(), StatsError> {
        match *self {
            Self::Binomial { users, conversions } if conversions > users => {
                Err(StatsError::ConversionsExceedUsers {
                    arm,
                    users,
                    conversions,
                })
            }
            Self::Binomial { .. } => Ok(()),
            Self::Continuous {
                users,
                sum,
                sum_squares,
            } => {
                if !sum.is_finite() {
                    return Err(StatsError::NonFiniteInput { arm, field: "sum" });
                }
                if !sum_squares.is_finite() {
                    return Err(StatsError::NonFiniteInput {
                        arm,
                        field: "sum_squares",
                    });
                }
                if sum_squares < 0.0 {
                    return Err(StatsError::NegativeSumOfSquares { arm, sum_squares });
                }
                if users == 0 && (sum != 0.0 || sum_squares != 0.0) {
                    return Err(StatsError::ValuesWithoutUsers { arm });
                }
                Ok(())
            }
            Self::Ratio {
                users,
                numerator_sum,
                numerator_sum_squares,
                denominator_sum,
                denominator_sum_squares,
                sum_products,
            } => {
                for (field, value) in [
                    ("numerator_sum", numerator_sum),
                    ("numerator_sum_squares", numerator_sum_squares),
                    ("denominator_sum", denominator_sum),
                    ("denominator_sum_squares", denominator_sum_squares),
                    ("sum_products", sum_products),
                ] {
                    if !value.is_finite() {
                        return Err(StatsError::NonFiniteInput { arm, field });
                    }
                }
                for sum_squares in [numerator_sum_squares, denominator_sum_squares] {
                    if sum_squares < 0.0 {
                        return Err(StatsError::NegativeSumOfSquares { arm, sum_squares });
                    }
                }
                let any = [
                    numerator_sum,
                    numerator_sum_squares,
                    denominator_sum,
                    denominator_sum_squares,
                    sum_products,
                ]
                .iter()
                .any(|v| *v != 0.0);
                if users == 0 && any {
                    return Err(StatsError::ValuesWithoutUsers { arm });
                }
                Ok(())
            }
        }
    }

    /// gbstats' mean and variance of this arm.
    pub(crate) fn moments(&self) -> Moments {
        match *self {
            Self::Binomial { users, conversions } => {
                let n = users as f64;
                let mean = if users == 0 {
                    0.0
                } else {
                    conversions as f64 / n
                };
                Moments {
                    n,
                    mean,
                    variance: mean * (1.0 - mean),
                    unadjusted_mean: mean,
                }
            }
            Self::Continuous {
                users,
                sum,
                sum_squares,
            } => {
                let n = users as f64;
                let mean = if users == 0 { 0.0 } else { sum / n };
                let variance = if users <= 1 {
                    0.0
                } else {
                    (sum_squares - sum * sum / n) / (n - 1.0)
                };
                Moments {
                    n,
                    mean,
                    variance,
                    unadjusted_mean: mean,
                }
            }
            Self::Ratio {
                users,
                numerator_sum,
                numerator_sum_squares,
                denominator_sum,
                denominator_sum_squares,
                sum_products,
            } => {
                // gbstats `RatioStatistic`: the delta method on the two sample means.
                let n = users as f64;
                let numerator =
                    Self::continuous(users, numerator_sum, numerator_sum_squares).moments();
                let denominator =
                    Self::continuous(users, denominator_sum, denominator_sum_squares).moments();
                let mean = if denominator_sum == 0.0 {
                    0.0
                } else {
                    numerator_sum / denominator_sum
                };
                let variance = if denominator.mean == 0.0 || users <= 1 {
                    0.0
                } else {
                    let covariance =
                        (sum_products - numerator_sum * denominator_sum / n) / (n - 1.0);
                    numerator.variance / denominator.mean.powi(2)
                        - 2.0 * covariance * numerator.mean / denominator.mean.powi(3)
                        + numerator.mean.powi(2) * denominator.variance / denominator.mean.powi(4)
                };
                Moments {
                    n,
                    mean,
                    variance,
                    unadjusted_mean: mean,
                }
            }
        }
    }

    /// The sum of the metric over users (`Σy`): conversions, or the sum of values (for a ratio,
    /// which CUPED does not adjust, its numerator's).
    pub(crate) fn sum(&self) -> f64 {
        match *self {
            Self::Binomial { conversions, .. } => conversions as f64,
            Self::Continuous { sum, .. } => sum,
            Self::Ratio { numerator_sum, .. } => numerator_sum,
        }
    }

    /// `Σy²`: conversions again for a binomial metric.
    pub(crate) fn sum_squares(&self) -> f64 {
        match *self {
            Self::Binomial { conversions, .. } => conversions as f64,
            Self::Continuous { sum_squares, .. } => sum_squares,
            Self::Ratio {
                numerator_sum_squares,
                ..
            } => numerator_sum_squares,
        }
    }
}

/// One experiment's data for one metric: every arm's statistics, the configured split, and
/// which arm is the control (or, for personalization, the generic experience).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentStats {
    /// Arms in variant order; all of the same [`MetricKind`].
    pub arms: Vec<ArmStats>,
    /// Configured traffic weights, one per arm, any positive scale (basis points, fractions…).
    /// Used only by the sample-ratio-mismatch check.
    pub weights: Vec<f64>,
    /// Index of the control arm in `arms`.
    pub control: usize,
    /// CUPED: one pre-exposure covariate per arm, in arm order (`None`: no adjustment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covariates: Option<Vec<Covariate>>,
}

impl ExperimentStats {
    /// Checks arm count, weights, control index, metric kinds and every arm.
    pub fn validate(&self) -> Result<(), StatsError> {
        let arms = self.arms.len();
        if arms < 2 {
            return Err(StatsError::TooFewArms { arms });
        }
        if self.control >= arms {
            return Err(StatsError::ControlOutOfRange {
                control: self.control,
                arms,
            });
        }
        validate_weights(arms, &self.weights)?;
        let kind = self.arms[0].kind();
        for (i, arm) in self.arms.iter().enumerate() {
            if arm.kind() != kind {
                return Err(StatsError::MixedMetricKinds { arm: i });
            }
            arm.validate(i)?;
        }
        if let Some(covariates) = &self.covariates {
            if kind == MetricKind::Ratio {
                return Err(StatsError::CupedOnRatio);
            }
            if covariates.len() != arms {
                return Err(StatsError::CovariateCount {
                    arms,
                    covariates: covariates.len(),
                });
            }
            for (i, (c, arm)) in covariates.iter().zip(&self.arms).enumerate() {
                c.validate(i, arm)?;
            }
        }
        Ok(())
    }
}

/// Checks `weights` has one finite, non-negative entry per arm and a positive total.
pub(crate) fn validate_weights(arms: usize, weights: &[f64]) -> Result<(), StatsError> {
    if weights.len() != arms {
        return Err(StatsError::WeightCount {
            arms,
            weights: weights.len(),
        });
    }
    if let Some((index, &weight)) = weights
        .iter()
        .enumerate()
        .find(|(_, w)| !w.is_finite() || **w < 0.0)
    {
        return Err(StatsError::InvalidWeight { index, weight });
    }
    if weights.iter().sum::<f64>() <= 0.0 {
        return Err(StatsError::ZeroTotalWeight);
    }
    Ok(())
}

/// Analysis options. The defaults are gbstats' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalysisConfig {
    /// Significance level: intervals are `1 − alpha` (default 0.05 → 95%).
    pub alpha: f64,
    /// Lower is better for this metric (e.g. page load time): flips the Bayesian chance to win
    /// and swaps the two risks, as gbstats' `inverse` metric setting does.
    pub inverse: bool,
    /// Also compute always-valid sequential intervals and p-values.
    pub sequential: Option<SequentialConfig>,
    /// A proper prior for the Bayesian analysis (`None`: gbstats' improper flat prior).
    pub prior: Option<Prior>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            inverse: false,
            sequential: None,
            prior: None,
        }
    }
}

impl AnalysisConfig {
    /// Checks `alpha ∈ (0, 1)` and a positive, finite tuning parameter.
    pub fn validate(&self) -> Result<(), StatsError> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(StatsError::InvalidAlpha { alpha: self.alpha });
        }
        if let Some(seq) = self.sequential {
            if !(seq.tuning_parameter > 0.0 && seq.tuning_parameter.is_finite()) {
                return Err(StatsError::InvalidTuningParameter {
                    value: seq.tuning_parameter,
                });
            }
        }
        if let Some(prior) = self.prior {
            if !prior.mean.is_finite() {
                return Err(StatsError::InvalidPriorMean { mean: prior.mean });
            }
            if !(prior.std_dev > 0.0 && prior.std_dev.is_finite()) {
                return Err(StatsError::InvalidPriorStdDev {
                    std_dev: prior.std_dev,
                });
            }
        }
        Ok(())
    }
}

/// Options of the always-valid sequential test (gbstats `SequentialConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SequentialConfig {
    /// The sample size (both arms together) at which the interval is tightest; gbstats'
    /// `sequential_tuning_parameter`, default 5000.
    pub tuning_parameter: f64,
}

impl Default for SequentialConfig {
    fn default() -> Self {
        Self {
            tuning_parameter: 5000.0,
        }
    }
}

/// Input the engine refuses to analyse. (Valid input with too little data is not an error: it
/// yields a [`NotEnoughData`](super::NotEnoughData) status.)
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// Fewer than two arms: nothing to compare.
    #[error("an experiment needs at least 2 arms, got {arms}")]
    TooFewArms {
        /// Arms given.
        arms: usize,
    },
    /// The control index is not an arm.
    #[error("control arm {control} does not exist (there are {arms} arms)")]
    ControlOutOfRange {
        /// The given control index.
        control: usize,
        /// Arms given.
        arms: usize,
    },
    /// Not one weight per arm.
    #[error("expected {arms} weights (one per arm), got {weights}")]
    WeightCount {
        /// Arms given.
        arms: usize,
        /// Weights given.
        weights: usize,
    },
    /// A weight is negative, NaN or infinite.
    #[error("weight {index} is {weight}; weights must be finite and non-negative")]
    InvalidWeight {
        /// Index of the offending weight.
        index: usize,
        /// Its value.
        weight: f64,
    },
    /// All weights are zero.
    #[error("weights sum to zero")]
    ZeroTotalWeight,
    /// Arms mix binomial and continuous statistics.
    #[error("arm {arm} has a different metric kind from arm 0")]
    MixedMetricKinds {
        /// First arm whose kind differs.
        arm: usize,
    },
    /// More conversions than users.
    #[error("arm {arm} has {conversions} conversions but only {users} users")]
    ConversionsExceedUsers {
        /// Offending arm.
        arm: usize,
        /// Its users.
        users: u64,
        /// Its conversions.
        conversions: u64,
    },
    /// A sum is NaN or infinite.
    #[error("arm {arm}: {field} is not finite")]
    NonFiniteInput {
        /// Offending arm.
        arm: usize,
        /// `sum` or `sum_squares`.
        field: &'static str,
    },
    /// A sum of squares below zero.
    #[error("arm {arm}: sum_squares is {sum_squares}; it cannot be negative")]
    NegativeSumOfSquares {
        /// Offending arm.
        arm: usize,
        /// Its value.
        sum_squares: f64,
    },
    /// `covariates` does not have one entry per arm.
    #[error("expected {arms} covariates (one per arm), got {covariates}")]
    CovariateCount {
        /// Arms.
        arms: usize,
        /// Covariates given.
        covariates: usize,
    },
    /// A binomial covariate outside `[0, users]`.
    #[error(
        "arm {arm}: a binomial covariate counts users, so it must be between 0 and the arm's users"
    )]
    CovariateOutOfRange {
        /// The arm.
        arm: usize,
    },
    /// Non-zero sums with zero users.
    #[error("arm {arm} has values but no users")]
    ValuesWithoutUsers {
        /// Offending arm.
        arm: usize,
    },
    /// `alpha` outside `(0, 1)`.
    #[error("alpha must be in (0, 1), got {alpha}")]
    InvalidAlpha {
        /// The given alpha.
        alpha: f64,
    },
    /// Sequential tuning parameter not positive and finite.
    #[error("the sequential tuning parameter must be positive and finite, got {value}")]
    InvalidTuningParameter {
        /// The given value.
        value: f64,
    },
    /// A prior mean that is not a finite number.
    #[error("prior mean must be finite, got {mean}")]
    InvalidPriorMean {
        /// The given mean.
        mean: f64,
    },
    /// A prior standard deviation that is not positive and finite.
    #[error("prior std_dev must be positive and finite, got {std_dev}")]
    InvalidPriorStdDev {
        /// The given standard deviation.
        std_dev: f64,
    },
    /// CUPED covariates given for a ratio metric, which gbstats does not adjust.
    #[error("CUPED does not adjust ratio metrics")]
    CupedOnRatio,
}
