//! Experiment results: attribution totals + the experiment's config → per-variant and
//! per-segment statistics, personalization lift (personalized vs generic), SRM and data quality.
//!
//! Scopes: `overall` pools every rule the experiment tracks; each segment (or `rule <n>`) is also
//! analysed alone. The expected split for the sample-ratio-mismatch check comes from the rules:
//! a fixed variant with a holdout `h` expects `1 − h` personalized and `h` generic; a split
//! expects its weights scaled by `1 − h`, plus `h` on the default. Overall, each segment's
//! expectation is weighted by its observed size.

use std::collections::BTreeMap;

use serde::Serialize;
use tailor_core::model::{Condition, Flag, FULL_COVERAGE};
use tailor_core::Snapshot;

use crate::attribution::{CellTotals, ExperimentTotals, VariantSeries};
use crate::stats::{
    self, AnalysisConfig, ArmStats, Comparison, ExperimentResult, ExperimentStats, SequentialConfig,
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
}

/// Why results cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// No such experiment.
    #[error("experiment `{0}` does not exist")]
    UnknownExperiment(String),
    /// The query is malformed.
    #[error("{0}")]
    BadQuery(String),
    /// The statistics engine refused the input.
    #[error("cannot analyse this experiment: {0}")]
    Stats(#[from] stats::StatsError),
}

/// One arm in one scope.
#[derive(Debug, Clone, Serialize)]
pub struct ArmReport {
    /// Variant key.
    pub variant: String,
    /// Users counted (first exposure).
    pub users: u64,
    /// Users who converted (at least once, after exposure).
    pub converted: u64,
    /// Sum of attributed values.
    pub value_sum: f64,
    /// The engine's result for this arm (moments and, except for the control, the comparison).
    pub result: stats::ArmResult,
}

/// One scope's analysis.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeReport {
    /// `overall`, a segment key or `rule <n>`.
    pub scope: String,
    /// Arms in the flag's variant order; the control first.
    pub arms: Vec<ArmReport>,
    /// Sample-ratio mismatch against the configured split, over the arms the scope's rules
    /// serve; `None` when fewer than two arms are served (or no rule of the current config
    /// tracks this scope), so there is no split to compare with.
    pub srm: Option<stats::Outcome<stats::Srm>>,
    /// Variants with users that the scope's rules never serve (a data-quality problem).
    pub unexpected_variants: Vec<String>,
}

/// Personalized content against the generic default, in one segment or pooled.
#[derive(Debug, Clone, Serialize)]
pub struct LiftReport {
    /// Segment, or `pooled`.
    pub segment: String,
    /// Users who saw tailored content.
    pub personalized_users: u64,
    /// Their conversions.
    pub personalized_converted: u64,
    /// Users held out to the generic default.
    pub generic_users: u64,
    /// Their conversions.
    pub generic_converted: u64,
    /// Personalized (treatment) vs generic (control).
    pub comparison: Comparison,
}

/// Data-quality findings.
#[derive(Debug, Clone, Serialize)]
pub struct DataQuality {
    /// Users exposed to more than one variant (counted in their first).
    pub multi_variant_users: u64,
    /// Human-readable warnings (SRM, multiple exposures).
    pub warnings: Vec<String>,
}

/// The full results of an experiment for one metric.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentReport {
    /// Environment key.
    pub environment: String,
    /// Experiment key.
    pub experiment: String,
    /// The flag whose rules the experiment tracks.
    pub flag: Option<String>,
    /// Metric (event name).
    pub metric: String,
    /// `conversion` or `value`.
    pub kind: &'static str,
    /// Control variant.
    pub control: String,
    /// Config revision the analysis used.
    pub revision: u64,
    /// When, RFC 3339.
    pub analyzed_at: String,
    /// Significance level.
    pub alpha: f64,
    /// All tracked rules together.
    pub overall: ScopeReport,
    /// Each segment (or rule) alone.
    pub segments: Vec<ScopeReport>,
    /// Personalized vs generic, per segment and pooled; present when any holdout data exists.
    pub personalization: Option<Personalization>,
    /// Warnings about the data.
    pub data_quality: DataQuality,
    /// Cumulative users and converted users per variant over time (filled in by the caller that
    /// holds the attribution state; empty otherwise).
    pub timeline: Vec<VariantSeries>,
}

/// Personalization lift.
#[derive(Debug, Clone, Serialize)]
pub struct Personalization {
    /// Per segment.
    pub segments: Vec<LiftReport>,
    /// Pooled over segments (sums of users and conversions).
    pub pooled: LiftReport,
}

/// The label an exposure carries for a rule: its segment when the audience is one segment.
fn rule_label(flag: &Flag, index: usize) -> String {
    match &flag.rules[index].when {
        Some(Condition::Segment { segment }) => segment.clone(),
        _ => format!("rule {index}"),
    }
}

/// Expected share of each variant among a rule's exposed users, in basis points.
fn rule_weights(flag: &Flag, index: usize) -> BTreeMap<String, f64> {
    let rule = &flag.rules[index];
    let holdout = rule
        .holdout
        .as_ref()
        .map_or(0, |h| h.basis_points.min(FULL_COVERAGE));
    let treated = f64::from(FULL_COVERAGE - holdout) / f64::from(FULL_COVERAGE);
    let mut weights = BTreeMap::new();
    if let Some(v) = &rule.variant {
        *weights.entry(v.clone()).or_insert(0.0) += f64::from(FULL_COVERAGE) * treated;
    }
    for arm in rule.split.iter().flatten() {
        *weights.entry(arm.variant.clone()).or_insert(0.0) += f64::from(arm.weight) * treated;
    }
    *weights.entry(flag.default_variant.clone()).or_insert(0.0) += f64::from(holdout);
    weights
}

#[derive(Default, Clone, Copy)]
struct Sums {
    users: u64,
    converted: u64,
    sum: f64,
    sum_sq: f64,
}

impl Sums {
    fn add(&mut self, cell: &CellTotals, metric: &str) {
        self.users += cell.users;
        if let Some(m) = cell.metrics.get(metric) {
            self.converted += m.converted;
            self.sum += m.sum;
            self.sum_sq += m.sum_sq;
        }
    }

    fn arm(&self, value: bool) -> ArmStats {
        if value {
            ArmStats::continuous(self.users, self.sum, self.sum_sq)
        } else {
            ArmStats::binomial(self.users, self.converted)
        }
    }
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
    let value = match query.kind.as_deref() {
        None | Some("conversion") => false,
        Some("value") => true,
        Some(other) => {
            return Err(ResultsError::BadQuery(format!(
                "kind: must be `conversion` or `value`, got `{other}`"
            )))
        }
    };
    let metric = query
        .metric
        .clone()
        .or_else(|| experiment.primary_metric.clone())
        .ok_or_else(|| {
            ResultsError::BadQuery(
                "metric: the experiment has no primary_metric; pass ?metric=<event>".into(),
            )
        })?;
    let config = AnalysisConfig {
        alpha: query.alpha.unwrap_or(0.05),
        inverse: false,
        sequential: query.sequential.then(SequentialConfig::default),
    };
    config.validate()?;

    let flag = snapshot
        .experiment_flag(experiment_key)
        .and_then(|f| snapshot.document().flag(f));
    let empty = ExperimentTotals {
        cells: Vec::new(),
        multi_variant_users: 0,
    };
    let totals = totals.unwrap_or(&empty);

    // Arms: the flag's variants in order (the control first), plus any variant seen in data.
    let control = experiment
        .control_variant
        .clone()
        .or_else(|| flag.map(|f| f.default_variant.clone()))
        .or_else(|| totals.cells.first().map(|c| c.variant.clone()))
        .unwrap_or_default();
    let mut variants: Vec<String> = vec![control.clone()];
    for v in flag
        .iter()
        .flat_map(|f| f.variants.iter().map(|v| v.key.clone()))
    {
        let used = totals.cells.iter().any(|c| c.variant == v)
            || flag.is_some_and(|f| {
                f.rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.experiment.as_deref() == Some(experiment_key))
                    .any(|(i, _)| rule_weights(f, i).get(&v).is_some_and(|w| *w > 0.0))
            });
        if used && !variants.contains(&v) {
            variants.push(v);
        }
    }
    for c in &totals.cells {
        if !variants.contains(&c.variant) {
            variants.push(c.variant.clone());
        }
    }
    if variants.len() < 2 {
        return Err(ResultsError::BadQuery(format!(
            "experiment `{experiment_key}` has a single arm (`{control}`); there is nothing to compare"
        )));
    }

    // Expected weights per segment label.
    let mut label_weights: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    if let Some(f) = flag {
        for (i, r) in f.rules.iter().enumerate() {
            if r.experiment.as_deref() == Some(experiment_key) {
                let w = rule_weights(f, i);
                let entry = label_weights.entry(rule_label(f, i)).or_default();
                for (k, v) in w {
                    *entry.entry(k).or_insert(0.0) += v;
                }
            }
        }
    }
    let mut labels: Vec<String> = label_weights.keys().cloned().collect();
    for c in &totals.cells {
        if !labels.contains(&c.segment) {
            labels.push(c.segment.clone());
        }
    }

    let scope = |name: &str,
                 cells: &[&CellTotals],
                 weights: Vec<f64>|
     -> Result<ScopeReport, ResultsError> {
        let sums: Vec<Sums> = variants
            .iter()
            .map(|v| {
                let mut s = Sums::default();
                for c in cells.iter().filter(|c| &c.variant == v) {
                    s.add(c, &metric);
                }
                s
            })
            .collect();
        // The SRM check runs over the arms this scope's rules serve. (gbstats counts arms with
        // zero expected weight in the degrees of freedom, which makes a segment's check too
        // lenient when most variants are never served there; users in such arms are reported
        // separately as unexpected.)
        let served: Vec<usize> = (0..variants.len()).filter(|&i| weights[i] > 0.0).collect();
        let unexpected: Vec<String> = (0..variants.len())
            .filter(|&i| weights[i] <= 0.0 && sums[i].users > 0 && !served.is_empty())
            .map(|i| variants[i].clone())
            .collect();
        let srm = if served.len() >= 2 {
            let users: Vec<u64> = served.iter().map(|&i| sums[i].users).collect();
            let served_weights: Vec<f64> = served.iter().map(|&i| weights[i]).collect();
            Some(stats::check_srm(&users, &served_weights)?)
        } else {
            None
        };
        let stats_input = ExperimentStats {
            arms: sums.iter().map(|s| s.arm(value)).collect(),
            // Only the SRM check reads weights, and it is computed above.
            weights: vec![1.0; variants.len()],
            control: 0,
        };
        let ExperimentResult { arms, .. } = stats::analyze(&stats_input, &config)?;
        Ok(ScopeReport {
            scope: name.to_string(),
            arms: variants
                .iter()
                .zip(sums)
                .zip(arms)
                .map(|((v, s), result)| ArmReport {
                    variant: v.clone(),
                    users: s.users,
                    converted: s.converted,
                    value_sum: s.sum,
                    result,
                })
                .collect(),
            srm,
            unexpected_variants: unexpected,
        })
    };
    let weights_for = |label: &str| -> Vec<f64> {
        let w = label_weights.get(label);
        variants
            .iter()
            .map(|v| w.and_then(|w| w.get(v)).copied().unwrap_or(0.0))
            .collect()
    };

    let mut segments = Vec::new();
    let mut overall_weights = vec![0.0; variants.len()];
    let mut untracked_data = false;
    for label in &labels {
        let cells: Vec<&CellTotals> = totals
            .cells
            .iter()
            .filter(|c| &c.segment == label)
            .collect();
        let weights = weights_for(label);
        let n: u64 = cells.iter().map(|c| c.users).sum();
        let total: f64 = weights.iter().sum();
        if total > 0.0 {
            for (o, w) in overall_weights.iter_mut().zip(&weights) {
                *o += n as f64 * w / total;
            }
        } else if n > 0 {
            untracked_data = true;
        }
        segments.push(scope(label, &cells, weights)?);
    }
    let all: Vec<&CellTotals> = totals.cells.iter().collect();
    if untracked_data {
        // Users from rules no longer configured have no expected split: no overall SRM either.
        overall_weights.iter_mut().for_each(|w| *w = 0.0);
    }
    let overall = scope("overall", &all, overall_weights)?;

    // Personalization: personalized cells vs generic cells per segment, and pooled.
    let lift = |name: &str, cells: &[&CellTotals]| -> Result<LiftReport, ResultsError> {
        let mut p = Sums::default();
        let mut g = Sums::default();
        for c in cells {
            if c.personalized {
                p.add(c, &metric);
            } else {
                g.add(c, &metric);
            }
        }
        Ok(LiftReport {
            segment: name.to_string(),
            personalized_users: p.users,
            personalized_converted: p.converted,
            generic_users: g.users,
            generic_converted: g.converted,
            comparison: stats::compare(&g.arm(value), &p.arm(value), &config)?,
        })
    };
    let has_holdout_data =
        totals.cells.iter().any(|c| !c.personalized) && totals.cells.iter().any(|c| c.personalized);
    let personalization = if has_holdout_data {
        let mut per = Vec::new();
        for label in &labels {
            let cells: Vec<&CellTotals> = totals
                .cells
                .iter()
                .filter(|c| &c.segment == label)
                .collect();
            per.push(lift(label, &cells)?);
        }
        Some(Personalization {
            segments: per,
            pooled: lift("pooled", &all)?,
        })
    } else {
        None
    };

    let mut warnings = Vec::new();
    for s in std::iter::once(&overall).chain(&segments) {
        if !s.unexpected_variants.is_empty() {
            warnings.push(format!(
                "{} has users in {} although its rules never serve {}: check for stale caches or manual exposure logging",
                s.scope,
                s.unexpected_variants.join(", "),
                if s.unexpected_variants.len() == 1 { "it" } else { "them" }
            ));
        }
        let tracked = label_weights.contains_key(&s.scope) || s.scope == "overall";
        if !tracked && s.arms.iter().any(|a| a.users > 0) {
            warnings.push(format!(
                "{} has data from rules that are no longer in the config; its numbers mix old and new allocations",
                s.scope
            ));
        }
        if let Some(srm) = s.srm.as_ref().and_then(|o| o.value()) {
            if srm.mismatch {
                warnings.push(format!(
                    "sample ratio mismatch in {} (p = {:.2e}): users are not split as configured; check targeting, caching or exposure logging before trusting these results",
                    s.scope, srm.p_value
                ));
            }
        }
    }
    if totals.multi_variant_users > 0 {
        warnings.push(format!(
            "{} users were exposed to more than one variant; each is counted in the variant of their first exposure",
            totals.multi_variant_users
        ));
    }
    Ok(ExperimentReport {
        environment: environment.to_string(),
        experiment: experiment_key.to_string(),
        flag: flag.map(|f| f.key.clone()),
        metric,
        kind: if value { "value" } else { "conversion" },
        control,
        revision: snapshot.revision(),
        analyzed_at,
        alpha: config.alpha,
        overall,
        segments,
        personalization,
        data_quality: DataQuality {
            multi_variant_users: totals.multi_variant_users,
            warnings,
        },
        timeline: Vec::new(),
    })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num<T>(o: &stats::Outcome<T>, f: impl Fn(&T) -> f64) -> String {
    o.value().map(|v| format!("{}", f(v))).unwrap_or_default()
}

/// The report as CSV: one row per scope and arm.
pub fn to_csv(report: &ExperimentReport) -> String {
    let mut out = String::from(
        "scope,variant,users,converted,mean,abs_lift,abs_ci_lower,abs_ci_upper,rel_lift,rel_ci_lower,rel_ci_upper,p_value,chance_to_win,status\n",
    );
    for scope in std::iter::once(&report.overall).chain(&report.segments) {
        for arm in &scope.arms {
            let mean = num(&arm.result.moments, |m| m.mean);
            let (abs, rel, bayes) = match &arm.result.comparison {
                Some(c) => (Some(&c.absolute), Some(&c.relative), Some(&c.bayesian)),
                None => (None, None, None),
            };
            let status = match rel.and_then(|r| r.reason()) {
                Some(reason) => reason.message().to_string(),
                None if arm.result.comparison.is_none() => "control".to_string(),
                None => "ok".to_string(),
            };
            let cells = [
                csv_field(&scope.scope),
                csv_field(&arm.variant),
                arm.users.to_string(),
                arm.converted.to_string(),
                mean,
                abs.map(|a| num(a, |l| l.estimate)).unwrap_or_default(),
                abs.map(|a| num(a, |l| l.ci.lower)).unwrap_or_default(),
                abs.map(|a| num(a, |l| l.ci.upper)).unwrap_or_default(),
                rel.map(|a| num(a, |l| l.estimate)).unwrap_or_default(),
                rel.map(|a| num(a, |l| l.ci.lower)).unwrap_or_default(),
                rel.map(|a| num(a, |l| l.ci.upper)).unwrap_or_default(),
                rel.map(|a| num(a, |l| l.p_value)).unwrap_or_default(),
                bayes
                    .map(|b| num(b, |l| l.chance_to_win))
                    .unwrap_or_default(),
                csv_field(&status),
            ];
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    out
}
