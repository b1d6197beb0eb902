//! One scope's analysis: per-arm sums, the sample-ratio check over the arms its rules serve and
//! the engine's statistics.

use super::expected::LabelWeights;
use super::output::{ArmReport, RatioReport, ScopeReport};
use super::query::{Analysis, Measure};
use super::sums::{arm_sums, Sums};
use crate::attribution::CellTotals;
use crate::stats::{self, ArmResult, ExperimentResult, ExperimentStats, Outcome, Srm, StatsError};

/// The scope that pools every tracked rule.
pub(super) const OVERALL: &str = "overall";

/// The scopes analysed alone: the tracked rules' labels in order, then any other label seen in
/// the data (rules no longer configured).
pub(super) fn scope_labels(label_weights: &LabelWeights, cells: &[CellTotals]) -> Vec<String> {
    let mut labels: Vec<String> = label_weights.keys().cloned().collect();
    for cell in cells {
        if !labels.contains(&cell.segment) {
            labels.push(cell.segment.clone());
        }
    }
    labels
}

/// The cells of one label.
pub(super) fn cells_in<'a>(cells: &'a [CellTotals], label: &str) -> Vec<&'a CellTotals> {
    cells.iter().filter(|c| c.segment == label).collect()
}

/// Analyses `cells` as one scope; `weights` is the expected split in `variants` order.
pub(super) fn scope_report(
    name: &str,
    analysis: &Analysis,
    variants: &[String],
    cells: &[&CellTotals],
    weights: &[f64],
) -> Result<ScopeReport, StatsError> {
    let sums = arm_sums(variants, cells, &analysis.target);
    let srm = srm_check(&sums, weights)?;
    let unexpected_variants = unexpected_variants(variants, &sums, weights);
    let results = arm_results(&sums, analysis)?;
    Ok(ScopeReport {
        scope: name.to_string(),
        arms: variants
            .iter()
            .zip(sums)
            .zip(results)
            .map(|((v, s), result)| ArmReport {
                variant: v.clone(),
                users: s.users,
                converted: s.metric.converted,
                value_sum: s.metric.sum,
                ratio: (analysis.measure == Measure::Ratio).then_some(RatioReport {
                    numerator: s.ratio.numerator,
                    denominator: s.ratio.denominator,
                }),
                result,
                adjusted: None,
            })
            .collect(),
        srm,
        unexpected_variants,
    })
}

/// Indices of the arms the scope's rules serve.
fn served_arms(weights: &[f64]) -> Vec<usize> {
    (0..weights.len()).filter(|&i| weights[i] > 0.0).collect()
}

/// The sample-ratio check over the served arms; `None` when fewer than two are served.
///
/// gbstats counts arms with zero expected weight in the degrees of freedom, which makes a
/// segment's check too lenient when most variants are never served there; users in such arms
/// are reported as unexpected instead.
fn srm_check(sums: &[Sums], weights: &[f64]) -> Result<Option<Outcome<Srm>>, StatsError> {
    let served = served_arms(weights);
    if served.len() < 2 {
        return Ok(None);
    }
    let users: Vec<u64> = served.iter().map(|&i| sums[i].users).collect();
    let served_weights: Vec<f64> = served.iter().map(|&i| weights[i]).collect();
    stats::check_srm(&users, &served_weights).map(Some)
}

/// Variants with users that the scope's rules never serve. Empty when the scope has no
/// expected split at all (rules no longer configured): nothing is expected, so nothing is
/// unexpected either.
fn unexpected_variants(variants: &[String], sums: &[Sums], weights: &[f64]) -> Vec<String> {
    if served_arms(weights).is_empty() {
        return Vec::new();
    }
    (0..variants.len())
        .filter(|&i| weights[i] <= 0.0 && sums[i].users > 0)
        .map(|i| variants[i].clone())
        .collect()
}

/// The engine's result per arm, the first arm the control.
fn arm_results(sums: &[Sums], analysis: &Analysis) -> Result<Vec<ArmResult>, StatsError> {
    let input = ExperimentStats {
        arms: sums.iter().map(|s| s.arm(analysis.measure)).collect(),
        // Only the engine's own SRM check reads weights, and the report uses `srm_check`.
        weights: vec![1.0; sums.len()],
        control: 0,
        covariates: if analysis.cuped {
            sums.iter().map(|s| s.covariate(analysis.measure)).collect()
        } else {
            None
        },
    };
    let ExperimentResult { arms, .. } = stats::analyze(&input, &analysis.config)?;
    Ok(arms)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::results::expected::Weights;
    use crate::results::fixtures::{analysis, cell};

    fn variants(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    fn users(list: &[u64]) -> Vec<Sums> {
        list.iter()
            .map(|&users| Sums {
                users,
                ..Sums::default()
            })
            .collect()
    }

    #[test]
    fn tracked_labels_come_first_then_labels_only_the_data_has() {
        let by_label = LabelWeights::from([
            ("t".to_string(), Weights::new()),
            ("s".to_string(), Weights::new()),
        ]);
        let cells = [
            cell("a", "old", true, 1, 0),
            cell("a", "t", true, 1, 0),
            cell("b", "rule 4", true, 1, 0),
            cell("b", "old", true, 1, 0),
        ];
        assert_eq!(scope_labels(&by_label, &cells), ["s", "t", "old", "rule 4"]);
        assert_eq!(cells_in(&cells, "old"), [&cells[0], &cells[3]]);
    }

    #[test]
    fn the_srm_check_only_sees_served_arms() {
        // The unserved arm's 5,000 users would make any check fail; they are left out of it.
        let outcome = srm_check(&users(&[500, 500, 5_000]), &[5000.0, 5000.0, 0.0])
            .unwrap()
            .unwrap();
        let srm = outcome.value().unwrap();
        assert_eq!((srm.chi_square, srm.dof, srm.mismatch), (0.0, 1, false));
        assert!(srm_check(&users(&[500, 500, 5_000]), &[1.0, 0.0, 0.0])
            .unwrap()
            .is_none());
        let broken = srm_check(&users(&[5_000, 5_400]), &[1.0, 1.0])
            .unwrap()
            .unwrap();
        assert!(broken.value().unwrap().mismatch);
    }

    #[test]
    fn users_in_unserved_variants_are_unexpected_unless_nothing_is_served() {
        let keys = variants(&["a", "b", "c"]);
        let sums = users(&[10, 0, 3]);
        assert_eq!(unexpected_variants(&keys, &sums, &[1.0, 0.0, 0.0]), ["c"]);
        assert!(unexpected_variants(&keys, &sums, &[0.0, 0.0, 0.0]).is_empty());
    }

    #[test]
    fn a_scope_reports_every_arm_in_order_with_its_srm() {
        let cells = [
            cell("b", "s", true, 480, 60),
            cell("a", "s", false, 500, 50),
            cell("a", "s", true, 20, 2),
        ];
        let refs: Vec<&CellTotals> = cells.iter().collect();
        let report = scope_report(
            "s",
            &analysis(),
            &variants(&["a", "b", "c"]),
            &refs,
            &[5000.0, 5000.0, 0.0],
        )
        .unwrap();
        assert_eq!(report.scope, "s");
        let arms: Vec<(&str, u64, u64, f64)> = report
            .arms
            .iter()
            .map(|a| (a.variant.as_str(), a.users, a.converted, a.value_sum))
            .collect();
        assert_eq!(
            arms,
            [
                ("a", 520, 52, 104.0),
                ("b", 480, 60, 120.0),
                ("c", 0, 0, 0.0)
            ]
        );
        assert!(report.arms[0].result.comparison.is_none(), "the control");
        assert!(report.arms[1].result.comparison.is_some());
        assert!(!report.srm.unwrap().value().unwrap().mismatch);
        assert!(report.unexpected_variants.is_empty());
    }
}
