//! Multiple-comparison corrections: adjusted p-values for a family of tests (Holm–Bonferroni,
//! Benjamini–Hochberg) and the widened interval that goes with an adjusted p-value, as
//! GrowthBook computes them (`adjustPValuesHolmBonferroni`, `adjustPValuesBenjaminiHochberg`,
//! `adjustedCI` in its `shared/experiments`; statsmodels' `multipletests` gives the same
//! p-values).
//!
//! For `m` p-values:
//! - **Holm–Bonferroni** (family-wise error): sorted ascending `p₍₁₎ ≤ … ≤ p₍ₘ₎`, the `i`-th
//!   (from 1) becomes `min(1, (m − i + 1) p₍ᵢ₎)`, then a running maximum keeps the order.
//! - **Benjamini–Hochberg** (false discovery rate): the `i`-th becomes `min(1, m p₍ᵢ₎ / i)`,
//!   then a running minimum from the largest down keeps the order.
//! - **Interval**: an adjusted p-value `p̃` for an estimate `δ` implies the standard error
//!   `|δ / z_{1−p̃/2}|`, so the interval is `δ ± z_{1−α/2} |δ / z_{1−p̃/2}|` (normal quantiles).
//!   It is used only when it contains the unadjusted interval (an adjustment never narrows
//!   it); when `p̃` rounds to 1 it is unbounded (`None`): no lift is excluded.

use super::report::Interval;
use super::special::normal_quantile;
pub use tailor_core::model::Correction;

/// The adjusted p-values of `p_values`, in the same order.
pub fn adjust_p_values(p_values: &[f64], correction: Correction) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    match correction {
        Correction::HolmBonferroni => {
            let mut running = 0.0_f64;
            for (rank, &i) in order.iter().enumerate() {
                let p = (p_values[i] * (m - rank) as f64).min(1.0);
                running = running.max(p);
                adjusted[i] = running;
            }
        }
        Correction::BenjaminiHochberg => {
            let mut running = 1.0_f64;
            for (rank, &i) in order.iter().enumerate().rev() {
                let p = (p_values[i] * m as f64 / (rank + 1) as f64).min(1.0);
                running = running.min(p);
                adjusted[i] = running;
            }
        }
    }
    adjusted
}

/// The interval of `estimate` implied by the adjusted p-value `p_adjusted` at level `alpha`,
/// never narrower than `ci` (module docs); `None` when it is unbounded.
pub fn adjusted_interval(
    estimate: f64,
    ci: Interval,
    p_adjusted: f64,
    alpha: f64,
) -> Option<Interval> {
    if p_adjusted > 0.999_999 {
        return None;
    }
    if estimate == 0.0 {
        return Some(ci);
    }
    let std_error = (estimate / normal_quantile(1.0 - p_adjusted / 2.0)).abs();
    let width = normal_quantile(1.0 - alpha / 2.0) * std_error;
    let wider = Interval {
        lower: estimate - width,
        upper: estimate + width,
    };
    if wider.lower < ci.lower && wider.upper > ci.upper && wider.lower.is_finite() {
        Some(wider)
    } else {
        Some(ci)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The textbook procedures, written out from their definitions (step-down Holm: reject
    /// `p₍ᵢ₎` while `p₍ᵢ₎ ≤ α/(m − i + 1)`; step-up BH: reject up to the largest `i` with
    /// `p₍ᵢ₎ ≤ iα/m`), checked against "adjusted p ≤ α" at many α.
    fn rejections(p: &[f64], correction: Correction, alpha: f64) -> Vec<bool> {
        let m = p.len();
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        let mut reject = vec![false; m];
        match correction {
            Correction::HolmBonferroni => {
                for (rank, &i) in order.iter().enumerate() {
                    if p[i] <= alpha / (m - rank) as f64 {
                        reject[i] = true;
                    } else {
                        break;
                    }
                }
            }
            Correction::BenjaminiHochberg => {
                let last = (0..m)
                    .rev()
                    .find(|&rank| p[order[rank]] <= (rank + 1) as f64 * alpha / m as f64);
                if let Some(last) = last {
                    for &i in &order[..=last] {
                        reject[i] = true;
                    }
                }
            }
        }
        reject
    }

    #[test]
    fn adjusted_p_values_reject_exactly_what_the_procedures_reject() {
        let families: [&[f64]; 4] = [
            &[0.01, 0.04, 0.03, 0.005, 0.5, 0.2],
            &[0.001, 0.001, 0.02, 0.02, 0.02, 0.9],
            &[0.3],
            &[0.049, 0.051, 0.0125, 0.025],
        ];
        for p in families {
            for correction in [Correction::HolmBonferroni, Correction::BenjaminiHochberg] {
                let adjusted = adjust_p_values(p, correction);
                for alpha in [0.001, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2] {
                    let by_adjusted: Vec<bool> = adjusted.iter().map(|a| *a <= alpha).collect();
                    assert_eq!(
                        by_adjusted,
                        rejections(p, correction, alpha),
                        "{correction:?} {p:?} at {alpha}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_interval_only_widens() {
        let ci = Interval {
            lower: 0.01,
            upper: 0.09,
        };
        let wide = adjusted_interval(0.05, ci, 0.2, 0.05).unwrap();
        assert!(wide.lower < ci.lower && wide.upper > ci.upper);
        assert!(((wide.lower + wide.upper) / 2.0 - 0.05).abs() < 1e-15);
        // An adjusted p-value that implies a narrower interval keeps the original.
        assert_eq!(adjusted_interval(0.05, ci, 1e-12, 0.05), Some(ci));
        assert_eq!(adjusted_interval(0.05, ci, 1.0, 0.05), None);
        assert_eq!(adjusted_interval(0.0, ci, 0.5, 0.05), Some(ci));
    }
}
