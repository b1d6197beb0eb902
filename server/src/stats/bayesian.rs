//! Bayesian chance to beat control, risk and credible interval of the relative lift (gbstats
//! `EffectBayesianABTest`): with its default improper flat prior, or a proper normal prior.
//!
//! With an improper prior the posterior of the relative lift δ is the normal approximation
//! `N(δ̂, se²)` built from the delta-method estimate. With a proper prior `N(μ₀, σ₀²)` it is
//! the conjugate normal update (gbstats `compute_result` with `GaussianPrior(proper=True)`):
//! precision `1/se² + 1/σ₀²`, mean `(δ̂/se² + μ₀/σ₀²) / precision`. A prior given on the
//! absolute lift is first rescaled to the relative one by the control's unadjusted mean `m_c`:
//! `μ₀/|m_c|`, `σ₀²/m_c²` (gbstats `prior_type="absolute"`). Everything is closed-form and
//! deterministic — gbstats uses no Monte Carlo in this engine. Below, `δ̂` and `se` stand for
//! the posterior mean and standard deviation:
//!
//! - chance to win `= P(δ > 0) = Φ(δ̂/se)` (`scipy.stats.norm.sf(0, δ̂, se)`); for an inverse
//!   metric `1 − Φ(δ̂/se)`;
//! - credible interval `= δ̂ + se · Φ⁻¹(α/2)`, `δ̂ + se · Φ⁻¹(1 − α/2)` (`norm.ppf`);
//! - risk (expected loss), with `z = δ̂/se` (gbstats `get_risk`, which multiplies tail
//!   probabilities by `truncnorm` means; these are the same quantities in closed form):
//!   control `= E[max(δ, 0)] = δ̂ Φ(z) + se φ(z)`,
//!   treatment `= E[max(−δ, 0)] = −δ̂ Φ(−z) + se φ(z)`; swapped for an inverse metric.

use super::frequentist::{effect, Scale};
use super::input::{LiftScale, Moments, Prior};
use super::report::{checked, BayesianLift, Interval, Outcome, Risk};
use super::special::{normal_cdf, normal_pdf, normal_quantile};

/// gbstats `EffectBayesianABTest(...).compute_result()` on the relative scale.
pub(crate) fn effect_test(
    control: &Moments,
    treatment: &Moments,
    alpha: f64,
    inverse: bool,
    prior: Option<Prior>,
) -> Outcome<BayesianLift> {
    let effect = match effect(control, treatment, Scale::Relative) {
        Ok(e) => e,
        Err(reason) => return Outcome::missing(reason),
    };
    let (mean, sd) = match prior {
        // Improper prior: posterior precision = data precision, posterior mean = estimate.
        None => (effect.estimate, (1.0 / (1.0 / effect.variance)).sqrt()),
        Some(prior) => {
            let (prior_mean, prior_variance) = relative_prior(prior, control.unadjusted_mean);
            let precision = 1.0 / effect.variance + 1.0 / prior_variance;
            (
                (effect.estimate / effect.variance + prior_mean / prior_variance) / precision,
                (1.0 / precision).sqrt(),
            )
        }
    };
    let z = mean / sd;
    let p_positive = normal_cdf(z);
    let (risk_control, risk_treatment) = risk(mean, sd);
    let (chance_to_win, risk) = if inverse {
        (
            1.0 - p_positive,
            Risk {
                control: risk_treatment,
                treatment: risk_control,
            },
        )
    } else {
        (
            p_positive,
            Risk {
                control: risk_control,
                treatment: risk_treatment,
            },
        )
    };
    checked(BayesianLift {
        chance_to_win,
        expected: mean,
        std_dev: sd,
        credible_interval: Interval {
            lower: mean + sd * normal_quantile(alpha / 2.0),
            upper: mean + sd * normal_quantile(1.0 - alpha / 2.0),
        },
        risk,
    })
}

/// The prior's mean and variance on the relative scale (gbstats rescales an absolute prior by
/// the control's unadjusted mean, which `effect` has checked is not 0).
fn relative_prior(prior: Prior, control_mean: f64) -> (f64, f64) {
    let variance = prior.std_dev * prior.std_dev;
    match prior.scale {
        LiftScale::Relative => (prior.mean, variance),
        LiftScale::Absolute => (
            prior.mean / control_mean.abs(),
            variance / control_mean.powi(2),
        ),
    }
}

/// `(E[max(δ, 0)], E[max(−δ, 0)])` for `δ ~ N(mean, sd²)`.
fn risk(mean: f64, sd: f64) -> (f64, f64) {
    let z = mean / sd;
    let density = sd * normal_pdf(z);
    // Both are non-negative mathematically; clamp the rounding residue of the far tail.
    let control = (mean * normal_cdf(z) + density).max(0.0);
    let treatment = (density - mean * normal_cdf(-z)).max(0.0);
    (control, treatment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risks_differ_by_the_mean() {
        // E[max(δ,0)] − E[max(−δ,0)] = E[δ].
        for (mean, sd) in [(0.03, 0.02), (-0.1, 0.05), (0.0, 1.0), (2.0, 0.5)] {
            let (c, t) = risk(mean, sd);
            assert!((c - t - mean).abs() < 1e-15, "{mean} {sd}");
        }
    }

    #[test]
    fn inverse_flips_chance_and_risk() {
        let a = Moments {
            n: 1000.0,
            mean: 0.1,
            variance: 0.09,
            unadjusted_mean: 0.1,
        };
        let b = Moments {
            n: 1000.0,
            mean: 0.12,
            variance: 0.1056,
            unadjusted_mean: 0.12,
        };
        let (Outcome::Ok(up), Outcome::Ok(down)) = (
            effect_test(&a, &b, 0.05, false, None),
            effect_test(&a, &b, 0.05, true, None),
        ) else {
            panic!("both must compute");
        };
        assert!((up.chance_to_win + down.chance_to_win - 1.0).abs() < 1e-15);
        assert_eq!(up.risk.control, down.risk.treatment);
        assert_eq!(up.credible_interval, down.credible_interval);
    }
}
