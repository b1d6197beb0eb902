//! Multiple comparisons: the family a correction spans and its adjusted p-values and intervals
//! (README, "Multiple comparisons").
//!
//! The family of one scope (overall, or one segment) is the relative lift of every non-control
//! arm on every metric the experiment names (primary, secondary, guardrails) plus the metric
//! asked for: events measured as conversions, ratio metrics as ratios, the asked-for metric as
//! asked. A lift that is not defined (`not_enough_data`) is not a test and is left out. Each
//! scope is its own family; the personalization lift is not corrected.

use tailor_core::model::Experiment;

use super::output::{AdjustedLift, ScopeReport};
use crate::stats::{self, Correction, FrequentistLift};

/// The metrics of the family: the experiment's, then `asked` if it is not one of them.
pub(super) fn metrics(experiment: &Experiment, asked: &str) -> Vec<String> {
    let mut metrics: Vec<String> = experiment
        .metrics()
        .into_iter()
        .map(str::to_string)
        .collect();
    if !metrics.iter().any(|m| m == asked) {
        metrics.push(asked.to_string());
    }
    metrics
}

/// The relative lift of arm `arm` of `scope`, when it is defined.
fn relative(scope: &ScopeReport, arm: usize) -> Option<FrequentistLift> {
    scope.arms[arm]
        .result
        .comparison
        .as_ref()?
        .relative
        .value()
        .copied()
}

/// Sets `adjusted` on the arms of `asked` (one report per scope, in scope order), correcting
/// each scope's family: its own lifts and those of the same scope in every report of `others`.
pub(super) fn correct<'a>(
    asked: impl IntoIterator<Item = &'a mut ScopeReport>,
    others: &[Vec<ScopeReport>],
    method: Correction,
    alpha: f64,
) {
    for (k, scope) in asked.into_iter().enumerate() {
        // The scope's own defined lifts first, in arm order, then the other metrics'.
        let own: Vec<(usize, FrequentistLift)> = (0..scope.arms.len())
            .filter_map(|i| Some((i, relative(scope, i)?)))
            .collect();
        let mut p_values: Vec<f64> = own.iter().map(|(_, l)| l.p_value).collect();
        for other in others.iter().filter_map(|o| o.get(k)) {
            p_values.extend(
                (0..other.arms.len())
                    .filter_map(|i| relative(other, i))
                    .map(|l| l.p_value),
            );
        }
        let adjusted = stats::adjust_p_values(&p_values, method);
        for (&(i, lift), &p_value) in own.iter().zip(&adjusted) {
            scope.arms[i].adjusted = Some(AdjustedLift {
                p_value,
                ci: stats::adjusted_interval(lift.estimate, lift.ci, p_value, alpha),
            });
        }
    }
}
