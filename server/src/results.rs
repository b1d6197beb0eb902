//! Experiment results: attribution totals + the experiment's config → per-variant and
//! per-segment statistics, personalization lift (personalized vs generic), SRM and data quality.
//!
//! Scopes: `overall` pools every rule the experiment tracks; each segment (or `rule <n>`) is also
//! analysed alone. [`report`] only assembles the pieces, each a function over plain data:
//! - `query`: the metric, the measure (conversion or value) and the analysis settings;
//! - `arms`: the control and the variants compared with it;
//! - `expected`: the split each scope's sample-ratio check expects from the tracked rules;
//! - `sums` and `scope`: one scope's per-arm sums, sample-ratio check and statistics;
//! - `lift`: personalized against generic content, per segment and pooled;
//! - `optimization`: an optimize rule's weights and period-weighted arms per context;
//! - `warnings`: the data-quality warnings;
//! - `output`: the report's serialized shape, and `csv`: the report as CSV.

mod arms;
mod csv;
mod expected;
mod family;
#[cfg(test)]
mod fixtures;
mod lift;
mod optimization;
mod output;
mod query;
mod scope;
mod sums;
mod warnings;

use std::collections::BTreeSet;

use tailor_core::Snapshot;

use crate::attribution::ExperimentTotals;
use crate::stats;

pub use csv::to_csv;
pub(crate) use expected::rule_label;
pub use output::{
    AdjustedLift, ArmReport, CorrectionReport, DataQuality, ExperimentReport, LiftReport,
    OptimizationReport, OptimizedArm, OptimizedContext, Personalization, RatioReport, ScopeReport,
};

/// Which metric and how to analyse it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ResultsQuery {
    /// Conversion event; defaults to the experiment's primary metric.
    pub metric: Option<String>,
    /// `conversion` (share of users who converted, the default) or `value` (value per user).
    pub kind: Option<String>,
    /// Also compute always-valid sequential intervals.
    #[serde(default)]
    pub sequential: bool,
    /// Significance level (default 0.05).
    pub alpha: Option<f64>,
    /// CUPED: adjust every comparison with each user's value of the metric in the
    /// experiment's lookback before their first exposure (`crate::stats` CUPED).
    #[serde(default)]
    pub cuped: bool,
    /// `holm_bonferroni`, `benjamini_hochberg` or `none`; defaults to the experiment's
    /// `correction`.
    pub correction: Option<String>,
    /// `flat`: the improper flat prior, whatever the experiment configures.
    pub prior: Option<String>,
    /// A proper prior's mean (default 0 when `prior_sd` is given).
    pub prior_mean: Option<f64>,
    /// A proper prior's standard deviation; positive.
    pub prior_sd: Option<f64>,
    /// `relative` (default) or `absolute`: which lift the prior is on.
    pub prior_scale: Option<String>,
}

/// Why results cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// No such experiment.
    #[error("experiment `{0}` does not exist")]
    UnknownExperiment(String),
    /// The query cannot be answered as asked.
    #[error(transparent)]
    BadQuery(#[from] QueryError),
    /// The statistics engine refused the input.
    #[error("cannot analyse this experiment: {0}")]
    Stats(#[from] stats::StatsError),
}

/// Why a query cannot be answered as asked (the caller's to fix, not the server's).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// `kind` is neither `conversion` nor `value`.
    #[error("kind: must be `conversion` or `value`, got `{0}`")]
    UnknownKind(String),
    /// No metric was asked for and the experiment has no primary metric.
    #[error("metric: the experiment has no primary_metric; pass ?metric=<event>")]
    NoMetric,
    /// `correction` is not one the engine knows.
    #[error("correction: must be `holm_bonferroni`, `benjamini_hochberg` or `none`, got `{0}`")]
    UnknownCorrection(String),
    /// `prior` is not `flat`.
    #[error("prior: must be `flat` (or give prior_mean and prior_sd), got `{0}`")]
    UnknownPrior(String),
    /// `prior_mean` or `prior_scale` without `prior_sd`.
    #[error("prior_sd: required with prior_mean or prior_scale")]
    PriorWithoutStdDev,
    /// `prior_sd` not positive.
    #[error("prior_sd: must be a positive number, got {0}")]
    PriorStdDev(f64),
    /// `prior_mean` not finite.
    #[error("prior_mean: must be a finite number, got {0}")]
    PriorMean(f64),
    /// `prior_scale` is neither `relative` nor `absolute`.
    #[error("prior_scale: must be `relative` or `absolute`, got `{0}`")]
    UnknownPriorScale(String),
    /// `kind` given for a ratio metric, which is always a ratio.
    #[error("kind: `{0}` is a ratio metric, analysed as a ratio; leave kind out")]
    KindOfRatio(String),
    /// The experiment has only one arm.
    #[error(
        "experiment `{experiment}` has a single arm (`{control}`); there is nothing to compare"
    )]
    SingleArm {
        /// Experiment key.
        experiment: String,
        /// Its only arm.
        control: String,
    },
}

/// Computes the report.
pub fn report(
    environment: &str,
    snapshot: &Snapshot,
    experiment_key: &str,
    totals: Option<&ExperimentTotals>,
    query: &ResultsQuery,
    analyzed_at: String,
) -> Result<ExperimentReport, ResultsError> {
    let experiment = snapshot
        .experiment(experiment_key)
        .ok_or_else(|| ResultsError::UnknownExperiment(experiment_key.to_string()))?;
    let analysis = query::Analysis::from_query(query, experiment)?;
    let flag = snapshot
        .experiment_flag(experiment_key)
        .and_then(|f| snapshot.document().flag(f));
    let empty = ExperimentTotals {
        cells: Vec::new(),
        multi_variant_users: 0,
        late_exposures: 0,
    };
    let totals = totals.unwrap_or(&empty);
    let cells = &totals.cells;

    let tracked = flag.map_or_else(Vec::new, |f| expected::tracked_rules(f, experiment_key));
    let control = arms::control_variant(
        experiment.control_variant.as_deref(),
        flag.map(|f| f.default_variant.as_str()),
        cells,
    );
    let flag_variants: Vec<&str> = flag
        .iter()
        .flat_map(|f| f.variants.iter().map(|v| v.key.as_str()))
        .collect();
    let variants = arms::arm_variants(&control, &flag_variants, &tracked, cells);
    arms::require_two_arms(experiment_key, &variants)?;

    let label_weights = expected::label_weights(&tracked, cells);
    let labels = scope::scope_labels(&label_weights, cells);
    let overall_weights = expected::overall_weights(&variants, &labels, &label_weights, cells);
    let all: Vec<_> = cells.iter().collect();
    // Every scope of one analysis: overall, then each label.
    let scopes = |analysis: &query::Analysis| -> Result<_, stats::StatsError> {
        let overall =
            scope::scope_report(scope::OVERALL, analysis, &variants, &all, &overall_weights)?;
        let segments = labels
            .iter()
            .map(|label| {
                let weights = expected::scope_weights(&variants, label_weights.get(label));
                let cells = scope::cells_in(cells, label);
                scope::scope_report(label, analysis, &variants, &cells, &weights)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((overall, segments))
    };
    let (mut overall, mut segments) = scopes(&analysis)?;
    // An optimize rule's arms have no fixed split to check the users against.
    let adaptive: BTreeSet<&str> = tracked
        .iter()
        .filter(|r| r.adaptive)
        .map(|r| r.label.as_str())
        .collect();
    if !adaptive.is_empty() {
        overall.srm = None;
        for scope in segments.iter_mut() {
            if adaptive.contains(scope.scope.as_str()) {
                scope.srm = None;
            }
        }
    }
    let correction = match analysis.correction {
        Some(method) => {
            let family = family::metrics(experiment, &analysis.metric);
            let others = family
                .iter()
                .filter(|m| **m != analysis.metric)
                .map(|m| {
                    let (overall, segments) = scopes(&analysis.for_metric(m, experiment))?;
                    Ok(std::iter::once(overall).chain(segments).collect())
                })
                .collect::<Result<Vec<Vec<ScopeReport>>, stats::StatsError>>()?;
            family::correct(
                std::iter::once(&mut overall).chain(segments.iter_mut()),
                &others,
                method,
                analysis.config.alpha,
            );
            Some(CorrectionReport {
                method: method.as_str(),
                metrics: family,
            })
        }
        None => None,
    };
    let personalization = lift::personalization(&labels, cells, &analysis)?;

    let tracked_labels: BTreeSet<&str> = label_weights.keys().map(String::as_str).collect();
    let warnings = warnings::warnings(
        &overall,
        &segments,
        &tracked_labels,
        totals.multi_variant_users,
        totals.late_exposures,
    );
    Ok(ExperimentReport {
        environment: environment.to_string(),
        experiment: experiment_key.to_string(),
        flag: flag.map(|f| f.key.clone()),
        kind: analysis.measure.as_str(),
        control,
        revision: snapshot.revision(),
        analyzed_at,
        alpha: analysis.config.alpha,
        cuped_lookback_days: analysis.cuped.then(|| experiment.lookback_days()),
        prior: analysis.config.prior,
        correction,
        optimization: flag
            .and_then(|f| optimization::optimization(f, experiment, totals, analysis.config.alpha)),
        metric: analysis.metric,
        overall,
        segments,
        personalization,
        data_quality: DataQuality {
            multi_variant_users: totals.multi_variant_users,
            late_exposures: totals.late_exposures,
            warnings,
        },
        timeline: Vec::new(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::fixtures::{cell, snapshot, TWO_RULES_ONE_SEGMENT};
    use super::*;
    use crate::attribution::CellTotals;

    /// The report on segment `s` of [`TWO_RULES_ONE_SEGMENT`] with `(a, b)` users first exposed
    /// through its 50/50 rule (rule 0) and through its 90/10 rule (rule 1).
    fn two_rules_report(rule_0: (u64, u64), rule_1: (u64, u64)) -> ExperimentReport {
        let in_rule = |variant, rule, users: u64| CellTotals {
            rule,
            ..cell(variant, "s", true, users, users / 10)
        };
        let totals = ExperimentTotals {
            cells: vec![
                in_rule("a", 0, rule_0.0),
                in_rule("a", 1, rule_1.0),
                in_rule("b", 0, rule_0.1),
                in_rule("b", 1, rule_1.1),
            ],
            multi_variant_users: 0,
            late_exposures: 0,
        };
        report(
            "dev",
            &snapshot(TWO_RULES_ONE_SEGMENT),
            "x",
            Some(&totals),
            &ResultsQuery::default(),
            String::new(),
        )
        .unwrap()
    }

    /// Whether the SRM check flags (overall, segment `s`).
    fn srm_flags(rule_0: (u64, u64), rule_1: (u64, u64)) -> (bool, bool) {
        let r = two_rules_report(rule_0, rule_1);
        let flagged = |s: &ScopeReport| s.srm.as_ref().unwrap().value().unwrap().mismatch;
        (flagged(&r.overall), flagged(&r.segments[0]))
    }

    #[test]
    fn rules_sharing_a_segment_are_weighted_by_their_observed_share() {
        // 1,000 users in the 50/50 rule (500/500) and 3,000 in the 90/10 rule (2,700/300):
        // exactly as configured, so no sample-ratio mismatch anywhere. Counting the two rules
        // equally expected 70/30 and flagged it (χ² = 190, p < 1e-40).
        assert_eq!(srm_flags((500, 500), (2_700, 300)), (false, false));
        let r = two_rules_report((500, 500), (2_700, 300));
        assert!(r.data_quality.warnings.is_empty(), "{:?}", r.data_quality);
    }

    #[test]
    fn a_genuine_mismatch_on_a_shared_segment_still_flags() {
        assert_eq!(srm_flags((900, 100), (2_700, 300)), (true, true));
        // 70/30 overall could be a mix of the two rules, but every user came through the
        // 50/50 rule: a broken split, which counting the rules' users catches.
        assert_eq!(srm_flags((700, 300), (0, 0)), (true, true));
        let r = two_rules_report((900, 100), (2_700, 300));
        assert!(r.data_quality.warnings[0].starts_with("sample ratio mismatch in overall"));
    }

    #[test]
    fn the_report_names_its_experiment_metric_and_arms() {
        let r = two_rules_report((500, 500), (2_700, 300));
        assert_eq!(
            (
                r.environment.as_str(),
                r.experiment.as_str(),
                r.flag.as_deref(),
                r.metric.as_str(),
                r.kind,
                r.control.as_str(),
                r.alpha,
            ),
            ("dev", "x", Some("f"), "purchase", "conversion", "a", 0.05)
        );
        let scopes: Vec<&str> = std::iter::once(&r.overall)
            .chain(&r.segments)
            .map(|s| s.scope.as_str())
            .collect();
        assert_eq!(scopes, ["overall", "s"]);
        assert!(r.personalization.is_none(), "no holdout, no generic users");
        let csv = to_csv(&r);
        let rows: Vec<String> = csv
            .lines()
            .map(|l| l.split(',').take(4).collect::<Vec<_>>().join(","))
            .collect();
        assert_eq!(
            rows,
            [
                "scope,variant,users,converted",
                "overall,a,3200,320",
                "overall,b,800,80",
                "s,a,3200,320",
                "s,b,800,80",
            ]
        );
    }

    #[test]
    fn unanswerable_queries_say_why() {
        let snapshot = snapshot(TWO_RULES_ONE_SEGMENT);
        let message = |experiment: &str, query: ResultsQuery| {
            report("dev", &snapshot, experiment, None, &query, String::new())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            message("nope", ResultsQuery::default()),
            "experiment `nope` does not exist"
        );
        let kind = ResultsQuery {
            kind: Some("ratio".into()),
            ..ResultsQuery::default()
        };
        assert_eq!(
            message("x", kind),
            "kind: must be `conversion` or `value`, got `ratio`"
        );
        let alpha = ResultsQuery {
            alpha: Some(2.0),
            ..ResultsQuery::default()
        };
        assert_eq!(
            message("x", alpha),
            "cannot analyse this experiment: alpha must be in (0, 1), got 2"
        );
    }
}
