//! The optimizer: once per update period, each running optimize rule's weights are recomputed
//! per context from the collector's totals (Thompson sampling, `crate::stats::bandit`) and
//! published through the one write path as actor `optimizer`, the old and new weights in the
//! audit entry.
//!
//! Every instance runs it. An update is due when the current period (`unix ms / period`) is
//! past the period of the rule's published weights; the check is repeated inside the write,
//! under the environment's lock and against the revision the commit compares and swaps, so
//! with Redis exactly one instance publishes each period's update and the others find it
//! done. The period and the weights live in the config, so a restart or another instance
//! continues where the last update left off. An update that cannot be published (store down)
//! leaves the last weights in place and is retried at the next tick.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tailor_core::model::{ContextWeights, Flag, Optimize, OptimizeKind, Rule, NO_CONTEXT};

use crate::attribution::ExperimentTotals;
use crate::error::ApiError;
use crate::keys::Actor;
use crate::state::{AppState, Change};
use crate::stats::bandit::{self, Model, PeriodArm};

/// The audit log's actor for the optimizer's changes.
pub const ACTOR: &str = "optimizer";

/// How often each instance looks for due updates.
const TICK: Duration = Duration::from_secs(5);

/// The label the exposures of a rule's users in `context` carry (their cells' segment).
pub fn context_label(rule: &Rule, index: usize, context: &str) -> String {
    if context == NO_CONTEXT {
        crate::results::rule_label(rule, index)
    } else {
        context.to_string()
    }
}

/// The current update period of `optimize` at `now_ms`.
pub fn period_at(optimize: &Optimize, now_ms: i64) -> u64 {
    u64::try_from(now_ms.div_euclid(optimize.period_ms())).unwrap_or(0)
}

/// Whether the rule's weights are older than `period` (none published counts as older).
pub fn is_due(optimize: &Optimize, period: u64) -> bool {
    !optimize.frozen && optimize.weights.iter().all(|w| w.period < period)
}

/// The bandit model of an optimize rule.
pub fn model(optimize: &Optimize) -> Model {
    match optimize.kind {
        OptimizeKind::Conversion => Model::Conversion,
        OptimizeKind::Value => Model::Value,
    }
}

/// Per context of rule `index` (an optimize rule), in [`Optimize::all_contexts`] order, each
/// variant's period-weighted estimate of `metric` over the policy's users (not the holdout).
pub fn context_estimates(
    rule: &Rule,
    index: usize,
    optimize: &Optimize,
    metric: &str,
    totals: &ExperimentTotals,
) -> Vec<Vec<bandit::ArmEstimate>> {
    let model = model(optimize);
    let contexts = optimize.all_contexts();
    let labels: HashMap<String, usize> = contexts
        .iter()
        .enumerate()
        .map(|(i, c)| (context_label(rule, index, c), i))
        .collect();
    let variants: HashMap<&str, usize> = optimize
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| (v.as_str(), i))
        .collect();
    // One pass over the cells: per context, per period, per variant.
    let mut by_context: Vec<BTreeMap<u32, Vec<PeriodArm>>> = vec![BTreeMap::new(); contexts.len()];
    for cell in totals
        .cells
        .iter()
        .filter(|c| c.personalized && c.rule == index)
    {
        let (Some(&context), Some(&arm)) = (
            labels.get(&cell.segment),
            variants.get(cell.variant.as_str()),
        ) else {
            continue;
        };
        let arms = by_context[context]
            .entry(cell.period)
            .or_insert_with(|| vec![PeriodArm::default(); optimize.variants.len()]);
        let m = cell.metrics.get(metric).copied().unwrap_or_default();
        let (sum, sum_squares) = match model {
            Model::Conversion => (m.converted as f64, m.converted as f64),
            Model::Value => (m.sum, m.sum_sq),
        };
        arms[arm].users += cell.users;
        arms[arm].sum += sum;
        arms[arm].sum_squares += sum_squares;
    }
    by_context
        .into_iter()
        .map(|by_period| {
            let periods: Vec<Vec<PeriodArm>> = by_period.into_values().collect();
            let mut estimates = bandit::period_weighted(&periods, model);
            estimates.resize(
                optimize.variants.len(),
                bandit::ArmEstimate {
                    users: 0,
                    mean: 0.0,
                    variance: 0.0,
                },
            );
            estimates
        })
        .collect()
}

/// The next weights of every context of rule `index` (an optimize rule), from its
/// experiment's totals for `metric` ([`context_estimates`]), stamped with `period`.
pub fn next_weights(
    rule: &Rule,
    index: usize,
    optimize: &Optimize,
    metric: &str,
    totals: &ExperimentTotals,
    period: u64,
) -> Vec<ContextWeights> {
    let model = model(optimize);
    optimize
        .all_contexts()
        .into_iter()
        .zip(context_estimates(rule, index, optimize, metric, totals))
        .map(|(context, estimates)| ContextWeights {
            context: context.to_string(),
            weights: bandit::weights(
                &estimates,
                model,
                optimize.min_weight,
                optimize.burn_in_users,
            ),
            period,
        })
        .collect()
}

/// Runs the optimizer on this instance until the process ends.
pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(TICK).await;
            let mut failed = false;
            for environment in state.environment_keys() {
                if let Err(e) = update_environment(&state, &environment).await {
                    failed = true;
                    if !failing {
                        tracing::warn!(environment, error = %e, "optimizer update failed; the last weights stay");
                    }
                }
            }
            if failing && !failed {
                tracing::info!("optimizer updates succeed again");
            }
            failing = failed;
        }
    });
}

/// Publishes every due update of one environment.
pub async fn update_environment(state: &AppState, environment: &str) -> Result<(), ApiError> {
    let now = now_ms();
    let document = state
        .environment(environment)?
        .current()
        .snapshot
        .document()
        .clone();
    if state.collector.loading(environment).is_some() {
        return Ok(());
    }
    for flag in &document.flags {
        for (index, rule) in flag.rules.iter().enumerate() {
            let (Some(optimize), Some(experiment)) = (&rule.optimize, &rule.experiment) else {
                continue;
            };
            let Some(exp) = document.experiments.iter().find(|e| &e.key == experiment) else {
                continue;
            };
            let period = period_at(optimize, now);
            if exp.status != tailor_core::model::ExperimentStatus::Running
                || !is_due(optimize, period)
            {
                continue;
            }
            let Some(metric) = optimize.metric.as_ref().or(exp.primary_metric.as_ref()) else {
                continue;
            };
            // Reading the totals and sampling are synchronous CPU work: off the async runtime.
            let collector = Arc::clone(&state.collector);
            let (env, exp_key, rule_owned, optimize_owned, metric_owned) = (
                environment.to_string(),
                experiment.clone(),
                rule.clone(),
                optimize.clone(),
                metric.clone(),
            );
            let computed = tokio::task::spawn_blocking(move || {
                let totals = collector
                    .totals(&env, &exp_key)
                    .unwrap_or(ExperimentTotals {
                        cells: Vec::new(),
                        multi_variant_users: 0,
                        late_exposures: 0,
                    });
                next_weights(
                    &rule_owned,
                    index,
                    &optimize_owned,
                    &metric_owned,
                    &totals,
                    period,
                )
            })
            .await;
            let Ok(next) = computed else {
                tracing::warn!(
                    environment,
                    experiment,
                    "optimizer computation failed; the last weights stay"
                );
                continue;
            };
            let unchanged = next
                .iter()
                .all(|w| optimize.weights_of(&w.context) == w.weights);
            if unchanged {
                continue;
            }
            publish(state, environment, flag, index, next, period).await?;
        }
    }
    Ok(())
}

/// Writes `next` into rule `index` of `flag` if its update for `period` is still due.
async fn publish(
    state: &AppState,
    environment: &str,
    flag: &Flag,
    index: usize,
    next: Vec<ContextWeights>,
    period: u64,
) -> Result<(), ApiError> {
    let result = state
        .write(environment, &Actor(ACTOR.to_string()), |doc| {
            let rule = doc
                .flags
                .iter_mut()
                .find(|f| f.key == flag.key)
                .and_then(|f| f.rules.get_mut(index))
                .filter(|r| r.experiment == flag.rules[index].experiment);
            let Some(optimize) = rule.and_then(|r| r.optimize.as_mut()) else {
                return Err(ApiError::Conflict("the rule changed".into()));
            };
            if !is_due(optimize, period) {
                return Err(ApiError::Conflict("already updated".into()));
            }
            let expected = flag.rules[index].optimize.as_ref();
            if expected.map(|o| (&o.variants, &o.contexts))
                != Some((&optimize.variants, &optimize.contexts))
            {
                return Err(ApiError::Conflict("the rule changed".into()));
            }
            let before = serde_json::to_value(&optimize.weights).ok();
            optimize.weights = next;
            Ok(Change {
                action: "optimize",
                kind: "flag",
                key: flag.key.clone(),
                before,
                after: serde_json::to_value(&optimize.weights).ok(),
            })
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        // Another instance (or a person) got there first: nothing to do this period.
        Err(ApiError::Conflict(_) | ApiError::PreconditionFailed(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::attribution::{CellTotals, MetricTotals};

    fn rule() -> Rule {
        serde_json::from_value(serde_json::json!({
            "when": {"segment": "shoppers"},
            "optimize": {"variants": ["a", "b", "c"], "contexts": ["new"], "burn_in_users": 10},
            "holdout": {"basis_points": 1000},
            "experiment": "x",
        }))
        .unwrap()
    }

    fn cell(
        variant: &str,
        segment: &str,
        period: u32,
        users: u64,
        converted: u64,
        sum: f64,
    ) -> CellTotals {
        CellTotals {
            variant: variant.into(),
            segment: segment.into(),
            rule: 0,
            personalized: true,
            period,
            users,
            metrics: [(
                "purchase".to_string(),
                MetricTotals {
                    converted,
                    sum,
                    sum_sq: sum * sum,
                    ..MetricTotals::default()
                },
            )]
            .into(),
            pairs: Vec::new(),
        }
    }

    fn totals(cells: Vec<CellTotals>) -> ExperimentTotals {
        ExperimentTotals {
            cells,
            multi_variant_users: 0,
            late_exposures: 0,
        }
    }

    #[test]
    fn each_context_learns_from_its_own_cells() {
        let rule = rule();
        let optimize = rule.optimize.clone().unwrap();
        let t = totals(vec![
            // Context `new`: b converts best. Everyone else (label `shoppers`): c does.
            cell("a", "new", 5, 1_000, 50, 0.0),
            cell("b", "new", 5, 1_000, 150, 0.0),
            cell("c", "new", 5, 1_000, 60, 0.0),
            cell("a", "shoppers", 5, 1_000, 40, 0.0),
            cell("b", "shoppers", 5, 1_000, 40, 0.0),
            cell("c", "shoppers", 5, 1_000, 120, 0.0),
            // The holdout's users and other variants are not the policy's.
            CellTotals {
                personalized: false,
                ..cell("a", "new", 5, 5_000, 4_000, 0.0)
            },
        ]);
        let next = next_weights(&rule, 0, &optimize, "purchase", &t, 6);
        assert_eq!(next.len(), 2);
        assert_eq!((next[0].context.as_str(), next[0].period), ("new", 6));
        assert!(next[0].weights[1] > 8_000, "{next:?}");
        assert_eq!(next[1].context, NO_CONTEXT);
        assert!(next[1].weights[2] > 8_000, "{next:?}");
    }

    #[test]
    fn degenerate_totals_never_give_nan_or_a_bad_sum() {
        let rule = rule();
        let mut optimize = rule.optimize.clone().unwrap();
        for kind in [OptimizeKind::Conversion, OptimizeKind::Value] {
            optimize.kind = kind;
            for cells in [
                vec![],
                vec![
                    cell("a", "new", 1, 50, 0, 0.0),
                    cell("b", "new", 1, 50, 0, 0.0),
                    cell("c", "new", 1, 50, 0, 0.0),
                ],
                vec![
                    cell("a", "new", 1, 50, 50, 1e300),
                    cell("b", "new", 1, 50, 50, f64::MAX),
                    cell("c", "new", 1, 50, 50, -1e300),
                ],
                vec![
                    cell("a", "new", 1, 1, 1, 5.0),
                    cell("b", "new", 1, 1, 0, 0.0),
                    cell("c", "new", 2, 1, 1, f64::NAN),
                ],
            ] {
                for w in next_weights(&rule, 0, &optimize, "purchase", &totals(cells.clone()), 3) {
                    assert_eq!(w.weights.iter().sum::<u32>(), 10_000, "{kind:?} {cells:?}");
                    assert!(
                        w.weights
                            .iter()
                            .all(|&x| x >= optimize.min_weight.min(3_333)),
                        "{w:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_update_is_due_once_per_period() {
        let mut optimize = rule().optimize.unwrap();
        assert!(is_due(&optimize, 10), "nothing published yet");
        optimize.weights = vec![ContextWeights {
            context: NO_CONTEXT.into(),
            weights: vec![5_000, 2_500, 2_500],
            period: 10,
        }];
        assert!(!is_due(&optimize, 10) && is_due(&optimize, 11));
        optimize.frozen = true;
        assert!(!is_due(&optimize, 11), "a frozen rule learns no more");
        assert_eq!(period_at(&optimize, 15 * 60_000 * 7 + 5), 7);
    }
}
