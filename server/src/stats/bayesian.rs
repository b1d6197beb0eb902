//! Bayesian chance to beat control, risk and credible interval (gbstats `EffectBayesianABTest`
//! with its defaults: relative lift, improper flat prior).
//!
//! With an improper prior the posterior of the relative lift δ is the normal approximation
//! `N(δ̂, se²)` built from the delta-method estimate, so everything here is closed-form and
//! deterministic — gbstats uses no Monte Carlo in this engine:
//!
//! - chance to win `= P(δ > 0) = Φ(δ̂/se)` (`scipy.stats.norm.sf(0, δ̂, se)`); for an inverse
//!   metric `1 − Φ(δ̂/se)`;
//! - credible interval `= δ̂ + se · Φ⁻¹(α/2)`, `δ̂ + se · Φ⁻¹(1 − α/2)` (`norm.ppf`);
//! - risk (expected loss), with `z = δ̂/se` (gbstats `get_risk`, which multiplies tail
//!   probabilities by `truncnorm` means; these are the same quantities in closed form):
//!   control `= E[max(δ, 0)] = δ̂ Φ(z) + se φ(z)`,
//!   treatment `= E[max(−δ, 0)] = −δ̂ Φ(−z) + se φ(z)`; swapped for an inverse metric.

use super::frequentist::{effect, Scale};
use super::input::Moments;
use super::report::{checked, BayesianLift, Interval, Outcome, Risk};
use super::special::{normal_cdf, normal_pdf, normal_quantile};

/// gbstats `EffectBayesianABTest(...).compute_result()` on the relative scale.
pub(crate) fn effect_test(
    control: &Moments,
    treatment: &Moments,
    alpha: f64,
    inverse: bool,
) -> Outcome<BayesianLift> {
    let effect = match effect(control, treatment, Scale::Relative) {
        Ok(e) => e,
        Err(reason) => return Outcome::missing(reason),
    };
    // Improper prior: posterior precision = data precision, posterior mean = estimate.
    let mean = effect.estimate;
    let sd = (1.0 / (1.0 / effect.variance)).sqrt();
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
            effect_test(&a, &b, 0.05, false),
            effect_test(&a, &b, 0.05, true),
        ) else {
            panic!("both must compute");
        };
        assert!((up.chance_to_win + down.chance_to_win - 1.0).abs() < 1e-15);
        assert_eq!(up.risk.control, down.risk.treatment);
        assert_eq!(up.credible_interval, down.credible_interval);
    }
}
