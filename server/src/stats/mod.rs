//! Statistics engine for experiment results (DESIGN §6): pure functions from per-arm
//! sufficient statistics to lifts, intervals, p-values, Bayesian chance to win, always-valid
//! sequential intervals and a sample-ratio-mismatch check. No I/O.
//!
//! # Layout
//! - [`input`]: [`ArmStats`], [`ExperimentStats`], [`AnalysisConfig`], validation, [`StatsError`].
//! - [`report`]: the output types; [`Outcome`] carries either numbers or a [`NotEnoughData`] reason.
//! - `frequentist`: effect and variance per scale, Welch's t-test, the sequential test.
//! - `bayesian`: chance to win, risk and credible interval.
//! - [`srm`]: the sample-ratio-mismatch check.
//! - [`special`]: log-gamma, incomplete beta/gamma, normal, t and chi-square distributions.
//! - `golden` (tests): agreement with every number in `server/fixtures/stats/*.json`.
//! - `aa_simulation` (tests): seeded A/A experiments reject at the nominal 5%.
//! - `cuped`: CUPED's regression adjustment; `cuped_simulation` (tests): its coverage and the
//!   narrowing over 500 seeded experiments.
//! - [`bandit`]: Thompson sampling weights of an optimize rule (period-weighted posteriors,
//!   probability best by integration, the exploration floor).
//! - [`corrections`]: Holm–Bonferroni and Benjamini–Hochberg adjusted p-values and intervals;
//!   `corrections_simulation` (tests): error rates in a 5-variant × 4-metric A/A.
//!
//! # Reference and formulas
//!
//! GrowthBook's `gbstats` (PyPI) is the reference; `server/fixtures/stats/generate.py` runs it
//! and scipy to produce the golden fixtures that the tests in this module compare against
//! (1e-6 relative, 1e-9 absolute near zero). For arm `i` with `nᵢ` users, mean `mᵢ` and
//! per-user variance `vᵢ`:
//!
//! | quantity | formula | gbstats |
//! |---|---|---|
//! | binomial mean, variance | `x/n`, `m(1 − m)` | `ProportionStatistic` |
//! | continuous mean, variance | `Σx/n`, `(Σx² − (Σx)²/n)/(n − 1)` | `SampleMeanStatistic` |
//! | absolute lift | `Δ = m_t − m_c`, `Var = v_t/n_t + v_c/n_c` | `frequentist_diff`/`_variance`, `difference_type="absolute"` |
//! | relative lift | `Δ = (m_t − m_c)/m_c`, `Var = v_t/(m_c² n_t) + v_c m_t²/(m_c⁴ n_c)` (delta method) | same, `"relative"` |
//! | degrees of freedom | Welch–Satterthwaite on `vᵢ/nᵢ` (both scales) | `TTest.dof` |
//! | p-value, CI | `2 P(T > \|Δ/se\|)`, `Δ ± t_{1−α/2} se` | `TwoSidedTTest` |
//! | sequential | confidence sequence of Waudby-Smith et al., tuning 5000 | `SequentialTwoSidedTTest` |
//! | chance to win, risk, credible interval | normal posterior `N(Δ_rel, se_rel²)`, closed form | `EffectBayesianABTest` (flat prior) |
//! | SRM | Pearson χ² against weights, `k − 1` dof, flagged at p < 0.001 | `check_srm` |
//! | CUPED | `θ = cov(x,y)/var(x)` pooled over both arms, `ȳ − θx̄`, `var(y) + θ²var(x) − 2θcov` | `RegressionAdjustedStatistic`, `compute_theta` |
//! | ratio metric | `r = Σm/Σd`, `Var = v_m/d̄² − 2 cov(m,d) m̄/d̄³ + m̄² v_d/d̄⁴` per user (delta method) | `RatioStatistic` |
//! | proper prior | posterior precision `1/se² + 1/σ₀²`, mean `(δ̂/se² + μ₀/σ₀²)/precision`; an absolute prior divided by the control mean | `GaussianPrior(proper=True)`, `prior_type` |
//! | corrections | Holm step-down, Benjamini–Hochberg step-up adjusted p-values; interval `δ ± z_{1−α/2}\|δ/z_{1−p̃/2}\|`, only ever wider | GrowthBook `adjustPValues…`, `adjustedCI`; statsmodels `multipletests` |
//!
//! # Decisions
//!
//! - Undefined numbers are never NaN: each result is an [`Outcome`]. Precedence of reasons:
//!   empty arm, fewer than 2 users, overflowing sums, zero variance in either arm, zero control
//!   mean (relative lift and Bayesian only). gbstats returns zeros plus an error message in
//!   these cases; the fixtures record which reason Tailor gives instead.
//! - gbstats also refuses the *absolute* lift when the control mean is 0. Here the absolute
//!   lift is still computed when both variances are positive (a continuous metric whose values
//!   sum to zero): the Welch test is well defined. The fixtures take that case from the same
//!   gbstats formulas with the guard bypassed, and cross-check it with scipy's
//!   `ttest_ind_from_stats`.
//! - The two-sided p-value is `2 · sf(|t|)` rather than gbstats' `2 · (1 − cdf(|t|))`: equal
//!   mathematically, but it keeps relative accuracy for tiny p-values.
//! - The Bayesian results use gbstats' defaults: relative scale and an improper prior, so the
//!   posterior is the delta-method normal approximation and nothing is simulated (gbstats'
//!   chance to win is `norm.sf`, its risk `truncnorm` means; both are closed forms here).
//! - With zero users in every arm the SRM check is `NotEnoughData(NoUsers)` (gbstats: p = 1).
//! - A ratio arm whose denominator sums to 0 makes its moments and every comparison with it
//!   `NotEnoughData(ZeroDenominator)`, before any other reason (gbstats: mean 0, variance 0,
//!   refused as zero variance). CUPED does not adjust ratio metrics (gbstats 0.8 has no
//!   regression-adjusted ratio).
//! - A proper prior is set per experiment or per query; the flat prior stays the default.

pub mod bandit;
pub mod corrections;
mod cuped;
pub mod input;
pub mod report;
pub mod special;
pub mod srm;

mod bayesian;
mod frequentist;

#[cfg(test)]
mod aa_simulation;
#[cfg(test)]
mod corrections_simulation;
#[cfg(test)]
mod cuped_simulation;
#[cfg(test)]
mod golden;

pub use corrections::{adjust_p_values, adjusted_interval, Correction};
pub use input::{
    AnalysisConfig, ArmStats, Covariate, ExperimentStats, LiftScale, MetricKind, Prior,
    SequentialConfig, StatsError,
};
pub use report::{
    ArmMoments, ArmResult, BayesianLift, Comparison, CupedAdjustment, ExperimentResult,
    FrequentistLift, Interval, NotEnoughData, Outcome, Risk, SequentialLift, SequentialLifts, Srm,
};
pub use srm::{check_srm, SRM_THRESHOLD};

use frequentist::Scale;
use input::Moments;
use report::checked;

/// Analyses one experiment for one metric: every arm's moments, every non-control arm against
/// the control, and the sample-ratio-mismatch check.
///
/// ```
/// use tailor_server::stats::{analyze, AnalysisConfig, ArmStats, ExperimentStats};
/// let experiment = ExperimentStats {
///     arms: vec![ArmStats::binomial(1000, 100), ArmStats::binomial(1000, 140)],
///     weights: vec![0.5, 0.5],
///     control: 0,
///     covariates: None,
/// };
/// let result = analyze(&experiment, &AnalysisConfig::default()).unwrap();
/// let cmp = result.arms[1].comparison.unwrap();
/// let relative = cmp.relative.value().unwrap();
/// assert!((relative.estimate - 0.4).abs() < 1e-12); // 14% vs 10%: +40%
/// assert!(relative.ci.lower > 0.0 && relative.p_value < 0.05);
/// assert!(cmp.bayesian.value().unwrap().chance_to_win > 0.95);
/// assert!(!result.srm.value().unwrap().mismatch);
/// ```
pub fn analyze(
    experiment: &ExperimentStats,
    config: &AnalysisConfig,
) -> Result<ExperimentResult, StatsError> {
    config.validate()?;
    experiment.validate()?;
    let moments: Vec<Moments> = experiment.arms.iter().map(ArmStats::moments).collect();
    let control = &moments[experiment.control];
    let arms = experiment
        .arms
        .iter()
        .zip(&moments)
        .enumerate()
        .map(|(i, (arm, m))| ArmResult {
            users: arm.users(),
            moments: if arm.zero_denominator() {
                Outcome::missing(NotEnoughData::ZeroDenominator)
            } else {
                arm_moments(m)
            },
            comparison: (i != experiment.control).then(|| match &experiment.covariates {
                _ if experiment.arms[experiment.control].zero_denominator()
                    || arm.zero_denominator() =>
                {
                    undefined(NotEnoughData::ZeroDenominator, config)
                }
                Some(covariates) => compare_adjusted(
                    cuped::Arm {
                        stats: &experiment.arms[experiment.control],
                        covariate: &covariates[experiment.control],
                    },
                    cuped::Arm {
                        stats: arm,
                        covariate: &covariates[i],
                    },
                    config,
                ),
                None => compare_moments(control, m, config),
            }),
        })
        .collect();
    let users: Vec<u64> = experiment.arms.iter().map(ArmStats::users).collect();
    Ok(ExperimentResult {
        metric: experiment.arms[0].kind(),
        control: experiment.control,
        arms,
        srm: check_srm(&users, &experiment.weights)?,
    })
}

/// Compares one treatment arm with the control.
pub fn compare(
    control: &ArmStats,
    treatment: &ArmStats,
    config: &AnalysisConfig,
) -> Result<Comparison, StatsError> {
    config.validate()?;
    control.validate(0)?;
    treatment.validate(1)?;
    if control.kind() != treatment.kind() {
        return Err(StatsError::MixedMetricKinds { arm: 1 });
    }
    Ok(compare_moments(
        &control.moments(),
        &treatment.moments(),
        config,
    ))
}

/// A comparison with CUPED (`cuped`): `θ` pooled over the two arms, both arms' moments
/// adjusted, and the variance removed from the absolute lift reported.
fn compare_adjusted(
    control: cuped::Arm<'_>,
    treatment: cuped::Arm<'_>,
    config: &AnalysisConfig,
) -> Comparison {
    let theta = cuped::theta(&control, &treatment);
    let (plain_c, plain_t) = (control.stats.moments(), treatment.stats.moments());
    let (adjusted_c, adjusted_t) = (
        cuped::adjusted(&control, theta),
        cuped::adjusted(&treatment, theta),
    );
    let reduction = match (
        frequentist::effect(&plain_c, &plain_t, Scale::Absolute),
        frequentist::effect(&adjusted_c, &adjusted_t, Scale::Absolute),
    ) {
        (Ok(plain), Ok(adjusted)) if plain.variance > 0.0 => {
            Some(1.0 - adjusted.variance / plain.variance).filter(|r| r.is_finite())
        }
        _ => None,
    };
    let mut comparison = compare_moments(&adjusted_c, &adjusted_t, config);
    comparison.cuped = Some(CupedAdjustment {
        theta,
        variance_reduction: reduction,
    });
    comparison
}

fn compare_moments(control: &Moments, treatment: &Moments, config: &AnalysisConfig) -> Comparison {
    let alpha = config.alpha;
    Comparison {
        absolute: frequentist::t_test(control, treatment, Scale::Absolute, alpha),
        relative: frequentist::t_test(control, treatment, Scale::Relative, alpha),
        bayesian: bayesian::effect_test(control, treatment, alpha, config.inverse, config.prior),
        sequential: config.sequential.map(|seq| SequentialLifts {
            absolute: frequentist::sequential(
                control,
                treatment,
                Scale::Absolute,
                alpha,
                seq.tuning_parameter,
            ),
            relative: frequentist::sequential(
                control,
                treatment,
                Scale::Relative,
                alpha,
                seq.tuning_parameter,
            ),
        }),
        cuped: None,
    }
}

/// A comparison none of whose numbers is defined, for `reason`.
fn undefined(reason: NotEnoughData, config: &AnalysisConfig) -> Comparison {
    let missing = Outcome::missing(reason);
    Comparison {
        absolute: missing,
        relative: missing,
        bayesian: Outcome::missing(reason),
        sequential: config.sequential.map(|_| SequentialLifts {
            absolute: Outcome::missing(reason),
            relative: Outcome::missing(reason),
        }),
        cuped: None,
    }
}

fn arm_moments(m: &Moments) -> Outcome<ArmMoments> {
    if m.n == 0.0 {
        return Outcome::missing(NotEnoughData::EmptyArm);
    }
    checked(ArmMoments {
        mean: m.mean,
        variance: m.variance,
        std_dev: if m.variance > 0.0 {
            m.variance.sqrt()
        } else {
            0.0
        },
    })
}
