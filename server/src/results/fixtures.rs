//! Test data shared by the results module's tests: cells and a two-rules-one-segment config.

use std::collections::BTreeMap;

use tailor_core::{compile, ConfigDocument, Snapshot};

use super::query::{Analysis, Measure};
use super::sums::Target;
use crate::attribution::{CellTotals, MetricTotals};
use crate::stats::AnalysisConfig;

/// The conversion analysis of `purchase` with the default settings.
pub(super) fn analysis() -> Analysis {
    Analysis {
        metric: "purchase".into(),
        target: Target::Event("purchase".into()),
        measure: Measure::Conversion,
        config: AnalysisConfig::default(),
        cuped: false,
        correction: None,
    }
}

/// A cell with `converted` users converting on `purchase`, each for a value of 2.
pub(super) fn cell(
    variant: &str,
    segment: &str,
    personalized: bool,
    users: u64,
    converted: u64,
) -> CellTotals {
    CellTotals {
        variant: variant.into(),
        segment: segment.into(),
        rule: 0,
        personalized,
        period: 0,
        users,
        metrics: BTreeMap::from([(
            "purchase".to_string(),
            MetricTotals {
                converted,
                sum: 2.0 * converted as f64,
                sum_sq: 4.0 * converted as f64,
                ..MetricTotals::default()
            },
        )]),
        pairs: Vec::new(),
    }
}

/// A personalized cell of `users` first exposed through rule `rule`, none converting.
pub(super) fn cell_in_rule(variant: &str, segment: &str, rule: usize, users: u64) -> CellTotals {
    CellTotals {
        rule,
        ..cell(variant, segment, true, users, 0)
    }
}

/// Experiment `x` on flag `f` (variants `a`, the default, and `b`), whose users in segment `s`
/// are served by two rules: a 50/50 split on 25% coverage, then a 90/10 split for the rest.
pub(super) const TWO_RULES_ONE_SEGMENT: &str = r#"
segments:
  - key: s
    conditions: {attribute: plan, op: eq, values: [pro]}
experiments:
  - {key: x, status: running, primary_metric: purchase}
flags:
  - key: f
    type: string
    variants:
      - {key: a, value: "a"}
      - {key: b, value: "b"}
    default_variant: a
    rules:
      - when: {segment: s}
        split: [{variant: a, weight: 5000}, {variant: b, weight: 5000}]
        coverage: 2500
        experiment: x
      - when: {segment: s}
        split: [{variant: a, weight: 9000}, {variant: b, weight: 1000}]
        experiment: x
"#;

/// A compiled config.
pub(super) fn snapshot(yaml: &str) -> Snapshot {
    let document = ConfigDocument::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"));
    compile(document).unwrap_or_else(|e| panic!("{e}"))
}
