//! The arms of a report: the control first, then the flag's variants in order, then any variant
//! seen only in the data.

use super::expected::TrackedRule;
use super::QueryError;
use crate::attribution::CellTotals;

/// The experiment's control, else the flag's default (the generic experience), else the first
/// variant with data.
pub(super) fn control_variant(
    configured: Option<&str>,
    flag_default: Option<&str>,
    cells: &[CellTotals],
) -> String {
    configured
        .or(flag_default)
        .or_else(|| cells.first().map(|c| c.variant.as_str()))
        .unwrap_or_default()
        .to_string()
}

/// The variants compared, the control first. A flag variant is an arm when a tracked rule serves
/// it or the data has users in it; a variant only the data knows (since removed from the flag)
/// comes last.
pub(super) fn arm_variants(
    control: &str,
    flag_variants: &[&str],
    tracked: &[TrackedRule],
    cells: &[CellTotals],
) -> Vec<String> {
    let mut variants = vec![control.to_string()];
    for &v in flag_variants {
        let used = cells.iter().any(|c| c.variant == v) || tracked.iter().any(|r| r.serves(v));
        if used && !variants.iter().any(|known| known == v) {
            variants.push(v.to_string());
        }
    }
    for cell in cells {
        if !variants.contains(&cell.variant) {
            variants.push(cell.variant.clone());
        }
    }
    variants
}

/// A single arm leaves nothing to compare.
pub(super) fn require_two_arms(experiment: &str, variants: &[String]) -> Result<(), QueryError> {
    match variants {
        [control] => Err(QueryError::SingleArm {
            experiment: experiment.to_string(),
            control: control.clone(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::results::fixtures::cell;

    fn rule(served: &[&str]) -> TrackedRule {
        TrackedRule {
            index: 0,
            label: "s".into(),
            weights: served
                .iter()
                .map(|v| (v.to_string(), 5000.0))
                .chain([("a".to_string(), 0.0)])
                .collect::<BTreeMap<_, _>>(),
            adaptive: false,
        }
    }

    #[test]
    fn the_control_is_configured_else_the_default_else_the_first_seen() {
        let cells = [cell("z", "s", true, 1, 0)];
        assert_eq!(control_variant(Some("b"), Some("a"), &cells), "b");
        assert_eq!(control_variant(None, Some("a"), &cells), "a");
        assert_eq!(control_variant(None, None, &cells), "z");
        assert_eq!(control_variant(None, None, &[]), "");
    }

    #[test]
    fn arms_are_the_control_then_served_or_seen_flag_variants_then_data_only_variants() {
        let flag = ["a", "b", "c", "d", "e"];
        let cells = [
            cell("old", "s", true, 1, 0),
            cell("d", "s", true, 1, 0),
            cell("b", "s", true, 1, 0),
        ];
        // `c` is served, `b` and `d` seen, `e` neither; `b` is the control.
        assert_eq!(
            arm_variants("b", &flag, &[rule(&["c"])], &cells),
            ["b", "c", "d", "old"]
        );
    }

    #[test]
    fn one_arm_is_not_an_experiment() {
        assert_eq!(
            require_two_arms("x", &["a".to_string()]),
            Err(QueryError::SingleArm {
                experiment: "x".into(),
                control: "a".into(),
            })
        );
        assert_eq!(
            require_two_arms("x", &["a".to_string(), "b".to_string()]),
            Ok(())
        );
    }
}
