//! Frequentist lifts: the effect estimate and its variance on the absolute and relative scale,
//! Welch's t-test (gbstats `TwoSidedTTest`) and the always-valid sequential test (gbstats
//! `SequentialTwoSidedTTest`).

use super::input::Moments;
use super::report::{checked, FrequentistLift, Interval, NotEnoughData, Outcome, SequentialLift};
use super::special::{student_t_isf, student_t_two_sided};

/// The scale a lift is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// `m_t − m_c` (gbstats `difference_type="absolute"`).
    Absolute,
    /// `(m_t − m_c) / m_c` (gbstats `difference_type="relative"`, its default).
    Relative,
}

/// A lift estimate and the variance of that estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Effect {
    pub estimate: f64,
    pub variance: f64,
}

impl Effect {
    pub fn std_error(&self) -> f64 {
        self.variance.sqrt()
    }
}

/// Whether two arms support any comparison: both have users, at least 2 of them, and a
/// positive variance (gbstats refuses zero or negative variance in either arm).
pub(crate) fn check_arms(control: &Moments, treatment: &Moments) -> Result<(), NotEnoughData> {
    if control.n == 0.0 || treatment.n == 0.0 {
        Err(NotEnoughData::EmptyArm)
    } else if control.n < 2.0 || treatment.n < 2.0 {
        Err(NotEnoughData::TooFewUsers)
    } else if [
        control.mean,
        control.variance,
        treatment.mean,
        treatment.variance,
    ]
    .iter()
    .any(|v| !v.is_finite())
    {
        // Sums near f64::MAX overflow the variance formula.
        Err(NotEnoughData::NonFinite)
    } else if control.variance <= 0.0 || treatment.variance <= 0.0 {
        Err(NotEnoughData::ZeroVariance)
    } else {
        Ok(())
    }
}

/// gbstats `frequentist_diff` and `frequentist_variance` (delta method on the relative scale):
///
/// - absolute: `Δ = m_t − m_c`, `Var = v_t/n_t + v_c/n_c`;
/// - relative: `Δ = (m_t − m_c)/m_c`, `Var = v_t/(m_c² n_t) + v_c m_t²/(m_c⁴ n_c)`.
pub(crate) fn effect(
    control: &Moments,
    treatment: &Moments,
    scale: Scale,
) -> Result<Effect, NotEnoughData> {
    check_arms(control, treatment)?;
    let (a, b) = (control, treatment);
    Ok(match scale {
        Scale::Absolute => Effect {
            estimate: b.mean - a.mean,
            variance: b.variance / b.n + a.variance / a.n,
        },
        Scale::Relative => {
            // Divided by the control's unadjusted mean (the same as `mean` without CUPED), and
            // refused when either is 0, as gbstats does.
            if a.mean == 0.0 || a.unadjusted_mean == 0.0 {
                return Err(NotEnoughData::ZeroBaseline);
            }
            let (ua, ub) = (a.unadjusted_mean, b.unadjusted_mean);
            Effect {
                estimate: (b.mean - a.mean) / ua,
                variance: b.variance / (ua.powi(2) * b.n)
                    + a.variance * ub.powi(2) / (ua.powi(4) * a.n),
            }
        }
    })
}

/// Welch–Satterthwaite degrees of freedom, in gbstats' operation order.
pub(crate) fn welch_dof(control: &Moments, treatment: &Moments) -> f64 {
    let (a, b) = (control, treatment);
    (b.variance / b.n + a.variance / a.n).powi(2)
        / (b.variance.powi(2) / (b.n.powi(2) * (b.n - 1.0))
            + a.variance.powi(2) / (a.n.powi(2) * (a.n - 1.0)))
}

/// Two-sided Welch t-test of the lift on `scale` (gbstats `TwoSidedTTest.compute_result`):
/// `t = Δ/se`, `p = 2 P(T_dof > |t|)`, `CI = Δ ± t_{1−α/2, dof} se`.
///
/// The degrees of freedom come from the per-arm variances on both scales, as in gbstats.
pub(crate) fn t_test(
    control: &Moments,
    treatment: &Moments,
    scale: Scale,
    alpha: f64,
) -> Outcome<FrequentistLift> {
    let effect = match effect(control, treatment, scale) {
        Ok(e) => e,
        Err(reason) => return Outcome::missing(reason),
    };
    let dof = welch_dof(control, treatment);
    let se = effect.std_error();
    let t = effect.estimate / se;
    let width = student_t_isf(alpha / 2.0, dof) * se;
    checked(FrequentistLift {
        estimate: effect.estimate,
        std_error: se,
        ci: Interval {
            lower: effect.estimate - width,
            upper: effect.estimate + width,
        },
        p_value: student_t_two_sided(t, dof),
        dof,
    })
}

/// Always-valid confidence sequence and p-value (gbstats `SequentialTwoSidedTTest`, after
/// Waudby-Smith et al. 2023, eqs. 9, 155 and 161), with `N = n_c + n_t`:
///
/// - `ρ = √((−2 ln α + ln(−2 ln α + 1)) / tuning)`;
/// - half-width `= √(Var·N) · √(2 (Nρ² + 1) ln(√(Nρ² + 1)/α) / (Nρ)²)`;
/// - e-value `= exp(ρ² (Δ² N / Var) / (2 (Nρ² + 1))) / √(Nρ² + 1)`, `p = min(1, 1/e)`,
///   computed in log space so a huge e-value gives `p = 0` instead of overflowing.
pub(crate) fn sequential(
    control: &Moments,
    treatment: &Moments,
    scale: Scale,
    alpha: f64,
    tuning_parameter: f64,
) -> Outcome<SequentialLift> {
    let effect = match effect(control, treatment, scale) {
        Ok(e) => e,
        Err(reason) => return Outcome::missing(reason),
    };
    let n = control.n + treatment.n;
    let rho = sequential_rho(alpha, tuning_parameter);
    let n_rho2_plus_1 = n * rho * rho + 1.0;
    let s2 = effect.variance * n;
    let width = s2.sqrt()
        * (2.0 * n_rho2_plus_1 * (n_rho2_plus_1.sqrt() / alpha).ln() / (n * rho).powi(2)).sqrt();
    let st2 = effect.estimate.powi(2) * n / effect.variance;
    let ln_evalue = rho * rho * st2 / (2.0 * n_rho2_plus_1) - 0.5 * n_rho2_plus_1.ln();
    checked(SequentialLift {
        estimate: effect.estimate,
        std_error: effect.std_error(),
        ci: Interval {
            lower: effect.estimate - width,
            upper: effect.estimate + width,
        },
        p_value: (-ln_evalue).exp().min(1.0),
    })
}

/// The mixing parameter ρ that makes the confidence sequence tightest at `N = tuning`.
fn sequential_rho(alpha: f64, tuning_parameter: f64) -> f64 {
    let l = -2.0 * alpha.ln();
    ((l + (l + 1.0).ln()) / tuning_parameter).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(n: f64, mean: f64, variance: f64) -> Moments {
        Moments {
            n,
            mean,
            variance,
            unadjusted_mean: mean,
        }
    }

    #[test]
    fn status_precedence() {
        let good = arm(100.0, 0.2, 0.16);
        assert_eq!(
            effect(&arm(0.0, 0.0, 0.0), &good, Scale::Absolute),
            Err(NotEnoughData::EmptyArm)
        );
        assert_eq!(
            effect(&good, &arm(1.0, 3.0, 0.0), Scale::Absolute),
            Err(NotEnoughData::TooFewUsers)
        );
        assert_eq!(
            effect(&good, &arm(50.0, 1.0, 0.0), Scale::Relative),
            Err(NotEnoughData::ZeroVariance)
        );
        // Zero mean with spread (values of both signs): absolute is fine, relative is not.
        let zero_mean = arm(50.0, 0.0, 4.0);
        assert!(effect(&zero_mean, &good, Scale::Absolute).is_ok());
        assert_eq!(
            effect(&zero_mean, &good, Scale::Relative),
            Err(NotEnoughData::ZeroBaseline)
        );
    }

    #[test]
    fn equal_arms_have_p_one_and_symmetric_interval() {
        let a = arm(400.0, 0.3, 0.21);
        let Outcome::Ok(lift) = t_test(&a, &a, Scale::Relative, 0.05) else {
            panic!("equal arms must give a result");
        };
        assert_eq!(lift.estimate, 0.0);
        assert!((lift.p_value - 1.0).abs() < 1e-15);
        assert!((lift.ci.lower + lift.ci.upper).abs() < 1e-15);
        // Equal variances and sizes: Welch's dof is n_a + n_b − 2.
        assert!((lift.dof - 798.0).abs() < 1e-9);
        let Outcome::Ok(seq) = sequential(&a, &a, Scale::Relative, 0.05, 5000.0) else {
            panic!("equal arms must give a sequential result");
        };
        assert_eq!(seq.p_value, 1.0);
        // Always-valid intervals are wider than fixed-horizon ones.
        assert!(seq.ci.upper > lift.ci.upper);
    }

    #[test]
    fn overwhelming_evidence_gives_zero_sequential_p_not_nan() {
        let a = arm(1e7, 0.1, 0.09);
        let b = arm(1e7, 0.2, 0.16);
        let Outcome::Ok(seq) = sequential(&a, &b, Scale::Absolute, 0.05, 5000.0) else {
            panic!("expected a result");
        };
        assert_eq!(seq.p_value, 0.0);
    }
}
