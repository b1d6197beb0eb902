//! The split each scope's sample-ratio check expects, from the rules the experiment tracks.
//!
//! A fixed variant with a holdout `h` expects `1 − h` personalized and `h` generic; a split
//! expects its weights scaled by `1 − h`, plus `h` on the default. A segment served by several
//! rules expects each rule's split weighted by the users that rule served (each exposure names
//! its rule, so that share is counted, not assumed: rules on one segment receive different
//! traffic whenever their coverage or position differs); overall, each segment's expectation is
//! weighted by its observed size.

use std::collections::BTreeMap;

use tailor_core::model::{Condition, Flag, Rule, FULL_COVERAGE};

use crate::attribution::CellTotals;

/// Expected weight per variant (any positive scale).
pub(super) type Weights = BTreeMap<String, f64>;

/// Expected weights per scope label of the tracked rules.
pub(super) type LabelWeights = BTreeMap<String, Weights>;

/// A rule the experiment tracks, as the sample-ratio check sees it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TrackedRule {
    /// Its index in the flag's rules, which its exposures carry.
    pub index: usize,
    /// The label its exposures carry: its segment when the audience is one segment, else
    /// `rule <n>`.
    pub label: String,
    /// Expected share of each variant among its exposed users, in basis points.
    pub weights: Weights,
    /// An optimize rule: its variants' shares move by design, so no split is expected of them
    /// (its scopes get no sample-ratio check; every variant counts as served).
    pub adaptive: bool,
}

impl TrackedRule {
    /// Whether the rule serves `variant` to anyone.
    pub(super) fn serves(&self, variant: &str) -> bool {
        self.weights.get(variant).is_some_and(|w| *w > 0.0)
    }
}

/// The flag's rules that `experiment` tracks, in rule order.
pub(super) fn tracked_rules(flag: &Flag, experiment: &str) -> Vec<TrackedRule> {
    flag.rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.experiment.as_deref() == Some(experiment))
        .flat_map(|(index, rule)| {
            let weights = rule_weights(rule, &flag.default_variant);
            // An optimize rule's exposures carry their context, or the rule's own label.
            let contexts = rule
                .optimize
                .iter()
                .flat_map(|o| o.contexts.iter().cloned());
            std::iter::once(rule_label(rule, index))
                .chain(contexts)
                .map(move |label| TrackedRule {
                    index,
                    label,
                    weights: weights.clone(),
                    adaptive: rule.optimize.is_some(),
                })
        })
        .collect()
}

/// The label an exposure carries for a rule: its segment when the audience is one segment.
pub(crate) fn rule_label(rule: &Rule, index: usize) -> String {
    match &rule.when {
        Some(Condition::Segment { segment }) => segment.clone(),
        _ => format!("rule {index}"),
    }
}

/// Expected share of each variant among a rule's exposed users, in basis points.
fn rule_weights(rule: &Rule, default_variant: &str) -> Weights {
    let holdout = rule
        .holdout
        .as_ref()
        .map_or(0, |h| h.basis_points.min(FULL_COVERAGE));
    let treated = f64::from(FULL_COVERAGE - holdout) / f64::from(FULL_COVERAGE);
    let mut weights = Weights::new();
    if let Some(v) = &rule.variant {
        *weights.entry(v.clone()).or_insert(0.0) += f64::from(FULL_COVERAGE) * treated;
    }
    for arm in rule.split.iter().flatten() {
        *weights.entry(arm.variant.clone()).or_insert(0.0) += f64::from(arm.weight) * treated;
    }
    // An optimize rule: equal shares stand for "served"; its scopes skip the ratio check.
    for (variant, w) in rule.optimize.iter().flat_map(|o| {
        let weights = tailor_core::model::equal_weights(o.variants.len());
        o.variants.iter().cloned().zip(weights).collect::<Vec<_>>()
    }) {
        *weights.entry(variant).or_insert(0.0) += f64::from(w) * treated;
    }
    *weights.entry(default_variant.to_string()).or_insert(0.0) += f64::from(holdout);
    weights
}

/// The expected split of each label the tracked rules carry: each rule's split (as shares
/// summing to 1) weighted by the users it served. While none of a label's rules has served
/// anyone, its rules count equally.
pub(super) fn label_weights(tracked: &[TrackedRule], cells: &[CellTotals]) -> LabelWeights {
    let mut by_label: BTreeMap<&str, Vec<&TrackedRule>> = BTreeMap::new();
    for rule in tracked {
        by_label.entry(&rule.label).or_default().push(rule);
    }
    by_label
        .into_iter()
        .map(|(label, rules)| {
            let served: Vec<u64> = rules
                .iter()
                .map(|rule| users_served(cells, label, rule.index))
                .collect();
            let total: u64 = served.iter().sum();
            let mut mixed = Weights::new();
            for (rule, users) in rules.iter().zip(&served) {
                let share = if total == 0 {
                    1.0 / rules.len() as f64
                } else {
                    *users as f64 / total as f64
                };
                let rule_total: f64 = rule.weights.values().sum();
                for (variant, w) in &rule.weights {
                    let part = if rule_total > 0.0 {
                        w / rule_total
                    } else {
                        0.0
                    };
                    *mixed.entry(variant.clone()).or_insert(0.0) +=
                        share * part * f64::from(FULL_COVERAGE);
                }
            }
            (label.to_string(), mixed)
        })
        .collect()
}

/// Users whose first exposure came from rule `index` under `label`.
fn users_served(cells: &[CellTotals], label: &str, index: usize) -> u64 {
    cells
        .iter()
        .filter(|c| c.segment == label && c.rule == index)
        .map(|c| c.users)
        .sum()
}

/// A scope's expected weights in `variants` order; 0 for variants its rules never serve.
pub(super) fn scope_weights(variants: &[String], weights: Option<&Weights>) -> Vec<f64> {
    variants
        .iter()
        .map(|v| weights.and_then(|w| w.get(v)).copied().unwrap_or(0.0))
        .collect()
}

/// The overall expected weights: each label's split weighted by its observed users. All zero
/// (no check) when some label has users but no tracked rule, since those users, from rules no
/// longer configured, have no expected split.
pub(super) fn overall_weights(
    variants: &[String],
    labels: &[String],
    label_weights: &LabelWeights,
    cells: &[CellTotals],
) -> Vec<f64> {
    let mut overall = vec![0.0; variants.len()];
    for label in labels {
        let weights = scope_weights(variants, label_weights.get(label));
        let users: u64 = cells
            .iter()
            .filter(|c| &c.segment == label)
            .map(|c| c.users)
            .sum();
        let total: f64 = weights.iter().sum();
        if total > 0.0 {
            for (o, w) in overall.iter_mut().zip(&weights) {
                *o += users as f64 * w / total;
            }
        } else if users > 0 {
            return vec![0.0; variants.len()];
        }
    }
    overall
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::results::fixtures::{cell, cell_in_rule, snapshot, TWO_RULES_ONE_SEGMENT};

    fn weights(pairs: &[(&str, f64)]) -> Weights {
        pairs.iter().map(|(v, w)| (v.to_string(), *w)).collect()
    }

    /// `weights` scaled to sum to 1, for comparing splits of different scales.
    fn shares(weights: &Weights) -> Vec<(String, f64)> {
        let total: f64 = weights.values().sum();
        weights
            .iter()
            .map(|(v, w)| (v.clone(), w / total))
            .collect()
    }

    fn assert_close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-9, "{actual:?} != {expected:?}");
        }
    }

    fn tracked_two_rules() -> Vec<TrackedRule> {
        let snapshot = snapshot(TWO_RULES_ONE_SEGMENT);
        tracked_rules(snapshot.document().flag("f").unwrap(), "x")
    }

    #[test]
    fn tracked_rules_carry_their_label_and_holdout_scaled_weights() {
        let snapshot = snapshot(
            r#"
segments:
  - key: s
    conditions: {attribute: plan, op: eq, values: [pro]}
experiments:
  - {key: x, status: running}
  - {key: y, status: running}
flags:
  - key: f
    type: string
    variants:
      - {key: a, value: "a"}
      - {key: b, value: "b"}
    default_variant: a
    rules:
      - when: {segment: s}
        variant: b
        holdout: {basis_points: 1000}
        experiment: x
      - when: {attribute: plan, op: eq, values: [free]}
        split: [{variant: a, weight: 5000}, {variant: b, weight: 5000}]
        holdout: {basis_points: 2000}
        experiment: x
      - variant: b
        experiment: y
"#,
        );
        let tracked = tracked_rules(snapshot.document().flag("f").unwrap(), "x");
        assert_eq!(
            tracked,
            [
                TrackedRule {
                    index: 0,
                    label: "s".into(),
                    weights: weights(&[("a", 1000.0), ("b", 9000.0)]),
                    adaptive: false,
                },
                TrackedRule {
                    index: 1,
                    label: "rule 1".into(),
                    weights: weights(&[("a", 6000.0), ("b", 4000.0)]),
                    adaptive: false,
                },
            ]
        );
        assert!(tracked[0].serves("b") && tracked[0].serves("a"));
        assert!(!tracked[0].serves("c"));
    }

    #[test]
    fn rules_sharing_a_label_are_weighted_by_the_users_each_served() {
        // 1,000 users through the 50/50 rule (rule 0), 3,000 through the 90/10 rule (rule 1).
        let cells = [
            cell_in_rule("a", "s", 0, 500),
            cell_in_rule("b", "s", 0, 500),
            cell_in_rule("a", "s", 1, 2_700),
            cell_in_rule("b", "s", 1, 300),
            cell("a", "t", true, 10, 0),
        ];
        let by_label = label_weights(&tracked_two_rules(), &cells);
        assert_eq!(by_label.keys().collect::<Vec<_>>(), ["s"]);
        let (variants, expected): (Vec<String>, Vec<f64>) =
            shares(&by_label["s"]).into_iter().unzip();
        assert_eq!(variants, ["a", "b"]);
        assert_close(
            &expected,
            &[0.25 * 0.5 + 0.75 * 0.9, 0.25 * 0.5 + 0.75 * 0.1],
        );
        // Whatever the variants: the share is the rule's users, not a fit to the variants.
        let skewed = [
            cell_in_rule("a", "s", 0, 700),
            cell_in_rule("b", "s", 0, 300),
        ];
        let expected: Vec<f64> = shares(&label_weights(&tracked_two_rules(), &skewed)["s"])
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        assert_close(&expected, &[0.5, 0.5]);
    }

    #[test]
    fn rules_that_served_nobody_yet_count_equally() {
        let expected: Vec<f64> = shares(&label_weights(&tracked_two_rules(), &[])["s"])
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        assert_close(&expected, &[0.7, 0.3]);
    }

    #[test]
    fn one_rule_keeps_its_split_whatever_the_users() {
        let snapshot = snapshot(
            r#"
experiments:
  - {key: x, status: running}
flags:
  - key: f
    type: string
    variants:
      - {key: a, value: "a"}
      - {key: b, value: "b"}
    default_variant: a
    rules:
      - split: [{variant: a, weight: 2000}, {variant: b, weight: 8000}]
        experiment: x
"#,
        );
        let tracked = tracked_rules(snapshot.document().flag("f").unwrap(), "x");
        let cells = [
            cell_in_rule("a", "rule 0", 0, 900),
            cell_in_rule("b", "rule 0", 0, 100),
        ];
        assert_eq!(
            label_weights(&tracked, &cells)["rule 0"],
            weights(&[("a", 2000.0), ("b", 8000.0)])
        );
    }

    #[test]
    fn scope_weights_follow_the_arm_order_with_zero_for_unserved_variants() {
        let variants = ["b".to_string(), "a".to_string(), "c".to_string()];
        let w = weights(&[("a", 1000.0), ("b", 9000.0)]);
        assert_eq!(scope_weights(&variants, Some(&w)), [9000.0, 1000.0, 0.0]);
        assert_eq!(scope_weights(&variants, None), [0.0, 0.0, 0.0]);
    }

    #[test]
    fn overall_weights_weigh_each_label_by_its_users() {
        let variants = ["a".to_string(), "b".to_string()];
        let by_label = LabelWeights::from([
            ("s".to_string(), weights(&[("a", 5000.0), ("b", 5000.0)])),
            ("t".to_string(), weights(&[("a", 1000.0), ("b", 9000.0)])),
        ]);
        let labels = ["s".to_string(), "t".to_string()];
        let cells = [
            cell("a", "s", true, 100, 0),
            cell("b", "s", true, 100, 0),
            cell("b", "t", true, 100, 0),
        ];
        assert_close(
            &overall_weights(&variants, &labels, &by_label, &cells),
            &[100.0 + 10.0, 100.0 + 90.0],
        );
        // Users under a label no rule tracks any more: no overall expectation at all.
        let labels = ["s".to_string(), "t".to_string(), "old".to_string()];
        let cells = [cell("a", "s", true, 100, 0), cell("a", "old", true, 1, 0)];
        assert_eq!(
            overall_weights(&variants, &labels, &by_label, &cells),
            [0.0, 0.0]
        );
    }
}
