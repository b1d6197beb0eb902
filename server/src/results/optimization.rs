//! An optimize rule in the report (README, "Learned personalization"): per context, the weights
//! the optimizer published and each variant's estimate, weighted by update period, with its
//! interval and its probability of being best. The policy against the holdout is the report's
//! personalization lift (per context and pooled), a randomized comparison.

use tailor_core::model::{Experiment, Flag};

use super::output::{OptimizationReport, OptimizedArm, OptimizedContext};
use crate::attribution::ExperimentTotals;
use crate::optimizer;
use crate::stats::bandit;
use crate::stats::special::normal_quantile;
use crate::stats::Interval;

/// What the report says about the per-arm numbers.
const NOTE: &str = "Each variant's estimate averages its per-period means, weighting each update \
    period by its share of all users: traffic moved between periods, so pooling a variant's \
    users would weight its periods differently. The policy against generic content is the \
    personalization lift.";

/// The optimize rule of `flag` that `experiment` measures, if there is one.
pub(super) fn optimization(
    flag: &Flag,
    experiment: &Experiment,
    totals: &ExperimentTotals,
    alpha: f64,
) -> Option<OptimizationReport> {
    let (index, rule, optimize) = flag.rules.iter().enumerate().find_map(|(i, r)| {
        let o = r.optimize.as_ref()?;
        (r.experiment.as_deref() == Some(experiment.key.as_str())).then_some((i, r, o))
    })?;
    let metric = optimize
        .metric
        .clone()
        .or_else(|| experiment.primary_metric.clone())?;
    let model = optimizer::model(optimize);
    let z = normal_quantile(1.0 - alpha / 2.0);
    let contexts = optimize
        .all_contexts()
        .into_iter()
        .zip(optimizer::context_estimates(
            rule, index, optimize, &metric, totals,
        ))
        .map(|(context, estimates)| {
            let best = bandit::probability_best(&estimates, model);
            OptimizedContext {
                context: context.to_string(),
                label: optimizer::context_label(rule, index, context),
                weights: optimize.weights_of(context),
                period: optimize
                    .weights
                    .iter()
                    .find(|w| w.context == context)
                    .map(|w| w.period),
                arms: optimize
                    .variants
                    .iter()
                    .zip(&estimates)
                    .zip(best)
                    .map(|((variant, e), probability_best)| {
                        let half = z * e.variance.max(0.0).sqrt();
                        OptimizedArm {
                            variant: variant.clone(),
                            users: e.users,
                            mean: e.mean,
                            ci: Interval {
                                lower: e.mean - half,
                                upper: e.mean + half,
                            },
                            probability_best,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    Some(OptimizationReport {
        rule: index,
        metric,
        kind: match model {
            bandit::Model::Conversion => "conversion",
            bandit::Model::Value => "value",
        },
        update_minutes: optimize.update_minutes,
        frozen: optimize.frozen,
        note: NOTE,
        contexts,
    })
}
