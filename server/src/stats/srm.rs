//! Sample-ratio-mismatch check: Pearson's chi-square goodness of fit of observed users per arm
//! against the configured weights (gbstats `utils.check_srm`).
//!
//! `χ² = Σ (oᵢ − eᵢ)² / eᵢ` with `eᵢ = wᵢ / Σw · Σo`, over arms with `wᵢ > 0`; the p-value is
//! `P(χ²_{k−1} > χ²)` with `k` the number of arms. Like gbstats, arms with zero weight are
//! skipped in the sum but still count in the degrees of freedom.

use super::input::{validate_weights, StatsError};
use super::report::{checked, NotEnoughData, Outcome, Srm};
use super::special::chi_square_sf;

/// p-value below which the split is flagged as broken (GrowthBook's default SRM threshold).
pub const SRM_THRESHOLD: f64 = 0.001;

/// Checks observed users per arm against configured weights.
///
/// `NotEnoughData(NoUsers)` when no arm has users (gbstats returns p = 1 there).
///
/// ```
/// use tailor_server::stats::{check_srm, Outcome};
/// let Outcome::Ok(srm) = check_srm(&[5_000, 5_400], &[0.5, 0.5]).unwrap() else { panic!() };
/// assert!(srm.mismatch);
/// ```
pub fn check_srm(users: &[u64], weights: &[f64]) -> Result<Outcome<Srm>, StatsError> {
    if users.len() < 2 {
        return Err(StatsError::TooFewArms { arms: users.len() });
    }
    validate_weights(users.len(), weights)?;
    let total_observed: u64 = users.iter().sum();
    if total_observed == 0 {
        return Ok(Outcome::missing(NotEnoughData::NoUsers));
    }
    let total_observed = total_observed as f64;
    let total_weight: f64 = weights.iter().sum();
    let chi_square: f64 = users
        .iter()
        .zip(weights)
        .filter(|(_, &w)| w > 0.0)
        .map(|(&o, &w)| {
            let expected = w / total_weight * total_observed;
            (o as f64 - expected).powi(2) / expected
        })
        .sum();
    let dof = (users.len() - 1) as u32;
    let p_value = chi_square_sf(chi_square, f64::from(dof));
    Ok(checked(Srm {
        chi_square,
        dof,
        p_value,
        mismatch: p_value < SRM_THRESHOLD,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_split_has_p_one() {
        let Ok(Outcome::Ok(srm)) = check_srm(&[200, 800], &[2000.0, 8000.0]) else {
            panic!("expected a result");
        };
        assert_eq!(srm.chi_square, 0.0);
        assert_eq!(srm.p_value, 1.0);
        assert!(!srm.mismatch);
    }

    #[test]
    fn no_users_and_bad_weights() {
        assert_eq!(
            check_srm(&[0, 0], &[1.0, 1.0]),
            Ok(Outcome::missing(NotEnoughData::NoUsers))
        );
        assert_eq!(
            check_srm(&[1, 2], &[1.0]),
            Err(StatsError::WeightCount {
                arms: 2,
                weights: 1
            })
        );
        assert_eq!(
            check_srm(&[1, 2], &[0.0, 0.0]),
            Err(StatsError::ZeroTotalWeight)
        );
        assert!(matches!(
            check_srm(&[1, 2], &[1.0, f64::NAN]),
            Err(StatsError::InvalidWeight { index: 1, .. })
        ));
    }
}
