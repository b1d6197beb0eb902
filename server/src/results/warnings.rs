//! Data-quality warnings: human-readable, in the order the report lists them (overall first,
//! then each segment; multiple exposures last).

use std::collections::BTreeSet;

use super::output::ScopeReport;
use super::scope::OVERALL;

/// Every warning about the data behind `overall` and `segments`; `tracked_labels` are the
/// labels of the rules the current config tracks.
pub(super) fn warnings(
    overall: &ScopeReport,
    segments: &[ScopeReport],
    tracked_labels: &BTreeSet<&str>,
    multi_variant_users: u64,
    late_exposures: u64,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for scope in std::iter::once(overall).chain(segments) {
        warnings.extend(unexpected_variants_warning(scope));
        warnings.extend(stale_rules_warning(scope, tracked_labels));
        warnings.extend(srm_warning(scope));
    }
    warnings.extend(multi_variant_warning(multi_variant_users));
    warnings.extend(late_exposures_warning(late_exposures));
    warnings
}

/// Users in variants the scope's rules never serve.
fn unexpected_variants_warning(scope: &ScopeReport) -> Option<String> {
    let unexpected = &scope.unexpected_variants;
    (!unexpected.is_empty()).then(|| {
        format!(
            "{} has users in {} although its rules never serve {}: check for stale caches or manual exposure logging",
            scope.scope,
            unexpected.join(", "),
            if unexpected.len() == 1 { "it" } else { "them" }
        )
    })
}

/// Users in a scope whose rules are no longer in the config.
fn stale_rules_warning(scope: &ScopeReport, tracked_labels: &BTreeSet<&str>) -> Option<String> {
    let tracked = scope.scope == OVERALL || tracked_labels.contains(scope.scope.as_str());
    let has_users = scope.arms.iter().any(|a| a.users > 0);
    (!tracked && has_users).then(|| {
        format!(
            "{} has data from rules that are no longer in the config; its numbers mix old and new allocations",
            scope.scope
        )
    })
}

/// A sample-ratio mismatch.
fn srm_warning(scope: &ScopeReport) -> Option<String> {
    let srm = scope.srm.as_ref()?.value()?;
    srm.mismatch.then(|| {
        format!(
            "sample ratio mismatch in {} (p = {:.2e}): users are not split as configured; check targeting, caching or exposure logging before trusting these results",
            scope.scope, srm.p_value
        )
    })
}

/// Users exposed to more than one variant.
fn multi_variant_warning(users: u64) -> Option<String> {
    (users > 0).then(|| {
        format!(
            "{users} users were exposed to more than one variant; each is counted in the variant of their first exposure"
        )
    })
}

/// Exposures that counted from their user's settle point (`crate::attribution`, "Settling").
fn late_exposures_warning(exposures: u64) -> Option<String> {
    (exposures > 0).then(|| {
        format!(
            "{exposures} exposures arrived more than 15 minutes behind the same user's later events; each counts from 15 minutes before that user's latest event, so conversions between its own time and then are not attributed to it"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::output::ArmReport;
    use crate::stats::{ArmResult, NotEnoughData, Outcome, Srm};

    fn scope(name: &str, users: u64, srm_p: Option<f64>, unexpected: &[&str]) -> ScopeReport {
        ScopeReport {
            scope: name.into(),
            arms: vec![ArmReport {
                variant: "a".into(),
                users,
                converted: 0,
                value_sum: 0.0,
                result: ArmResult {
                    users,
                    moments: Outcome::NotEnoughData {
                        reason: NotEnoughData::EmptyArm,
                    },
                    comparison: None,
                },
                ratio: None,
                adjusted: None,
            }],
            srm: srm_p.map(|p_value| {
                Outcome::Ok(Srm {
                    chi_square: 1.0,
                    dof: 1,
                    p_value,
                    mismatch: p_value < crate::stats::SRM_THRESHOLD,
                })
            }),
            unexpected_variants: unexpected.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn a_clean_report_has_no_warnings() {
        let tracked = BTreeSet::from(["s"]);
        let segments = [scope("s", 10, Some(0.5), &[])];
        assert!(warnings(
            &scope(OVERALL, 10, Some(0.5), &[]),
            &segments,
            &tracked,
            0,
            0
        )
        .is_empty());
    }

    #[test]
    fn warnings_name_the_scope_and_come_overall_first() {
        let tracked = BTreeSet::from(["s"]);
        let segments = [
            scope("s", 10, Some(3.08e-5), &["c"]),
            scope("old", 4, None, &[]),
            scope("gone", 0, None, &[]),
        ];
        assert_eq!(
            warnings(&scope(OVERALL, 14, None, &["c", "d"]), &segments, &tracked, 3, 0),
            [
                "overall has users in c, d although its rules never serve them: check for stale caches or manual exposure logging",
                "s has users in c although its rules never serve it: check for stale caches or manual exposure logging",
                "sample ratio mismatch in s (p = 3.08e-5): users are not split as configured; check targeting, caching or exposure logging before trusting these results",
                "old has data from rules that are no longer in the config; its numbers mix old and new allocations",
                "3 users were exposed to more than one variant; each is counted in the variant of their first exposure",
            ]
        );
    }
}
