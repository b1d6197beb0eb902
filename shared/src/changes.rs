//! Rules about *changing* a config, as opposed to what one config may contain: checked by
//! comparing the document before and after a change, on the one write path.
//!
//! - **An experiment's attribution window is fixed once it has started.** While an experiment is
//!   `running` or `stopped`, its `attribution_window_hours` cannot change. The collector folds
//!   each user's conversions older than 15 minutes into running sums, attributed under the
//!   window in force (server `attribution`, "Settling"), so a new window could not be applied to
//!   them. A draft's window may change freely (drafts record no exposures). To analyse with
//!   another window, create a new experiment.
//! - **So is its CUPED lookback** (`cuped_lookback_days`): each user's covariate is taken when
//!   they are first exposed, under the lookback in force.
//! - **So is the update period of an optimize rule it measures** (`update_minutes`): each
//!   period is a stratum of its results, keyed by the first exposure's time.
//! - **A started experiment does not go back to `draft`** (it may stop and run again), so that
//!   the rule above cannot be stepped around by two writes.

use crate::error::Problems;
use crate::model::Optimize;
use crate::model::{ConfigDocument, ExperimentStatus};
use crate::ConfigError;

/// Checks the change from `before` to `after` against the rules above; every problem names its
/// path in `after`.
pub fn check_change(before: &ConfigDocument, after: &ConfigDocument) -> Result<(), ConfigError> {
    let mut problems = Problems::default();
    check_update_minutes(before, after, &mut problems);
    for experiment in &after.experiments {
        let Some(old) = before.experiments.iter().find(|e| e.key == experiment.key) else {
            continue;
        };
        if old.status != ExperimentStatus::Draft && experiment.status == ExperimentStatus::Draft {
            problems.push(
                format!("experiments.{}.status", experiment.key),
                format!(
                    "experiment `{}` has started and cannot go back to draft; it can be stopped \
                     (`stopped`) and run again",
                    experiment.key
                ),
            );
        }
        if old.status != ExperimentStatus::Draft
            && old.attribution_window_hours != experiment.attribution_window_hours
        {
            let hours = |h: Option<u32>| {
                h.map_or_else(|| "unlimited".to_string(), |h| format!("{h} hours"))
            };
            problems.push(
                format!("experiments.{}.attribution_window_hours", experiment.key),
                format!(
                    "the attribution window of experiment `{}` cannot change once it has started \
                     (it is {}, the change asks for {}): conversions already folded into its sums \
                     were attributed under it; create a new experiment to use another window",
                    experiment.key,
                    hours(old.attribution_window_hours),
                    hours(experiment.attribution_window_hours)
                ),
            );
        }
        if old.status != ExperimentStatus::Draft
            && old.lookback_days() != experiment.lookback_days()
        {
            problems.push(
                format!("experiments.{}.cuped_lookback_days", experiment.key),
                format!(
                    "the CUPED lookback of experiment `{}` cannot change once it has started (it \
                     is {} days, the change asks for {}): each user's covariate was taken under \
                     it at their first exposure",
                    experiment.key,
                    old.lookback_days(),
                    experiment.lookback_days()
                ),
            );
        }
    }
    problems.into_result()
}

/// The optimize rule measured by `experiment`, with its path, in `doc`.
fn optimize_of<'a>(doc: &'a ConfigDocument, experiment: &str) -> Option<(String, &'a Optimize)> {
    doc.flags.iter().find_map(|flag| {
        flag.rules.iter().enumerate().find_map(|(i, rule)| {
            let optimize = rule.optimize.as_ref()?;
            (rule.experiment.as_deref() == Some(experiment)).then(|| {
                (
                    format!("flags.{}.rules[{i}].optimize.update_minutes", flag.key),
                    optimize,
                )
            })
        })
    })
}

/// An optimize rule's `update_minutes` stays while its experiment has started.
fn check_update_minutes(before: &ConfigDocument, after: &ConfigDocument, problems: &mut Problems) {
    for experiment in &before.experiments {
        if experiment.status == ExperimentStatus::Draft {
            continue;
        }
        let (Some((_, old)), Some((path, new))) = (
            optimize_of(before, &experiment.key),
            optimize_of(after, &experiment.key),
        ) else {
            continue;
        };
        if old.update_minutes != new.update_minutes {
            problems.push(
                path,
                format!(
                    "the update period of the optimize rule measured by experiment `{}` cannot \
                     change once it has started (it is {} minutes): its results are stratified \
                     by it; create a new experiment to use another period",
                    experiment.key, old.update_minutes
                ),
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn doc(status: &str, window: &str) -> ConfigDocument {
        ConfigDocument::from_yaml(&format!(
            "experiments:\n  - {{key: exp, status: {status}{window}}}\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_started_experiment_keeps_its_window() {
        let running = doc("running", ", attribution_window_hours: 24");
        let wider = doc("running", ", attribution_window_hours: 48");
        let err = check_change(&running, &wider).unwrap_err().to_string();
        assert!(
            err.contains("experiments.exp.attribution_window_hours"),
            "{err}"
        );
        assert!(
            err.contains("24 hours") && err.contains("48 hours"),
            "{err}"
        );
        assert!(
            check_change(&running, &doc("stopped", "")).is_err(),
            "removing it"
        );
        assert!(check_change(
            &doc("stopped", ""),
            &doc("running", ", attribution_window_hours: 1")
        )
        .is_err());
        // Unchanged, a draft, a new experiment and a removed one are fine.
        assert!(check_change(&running, &doc("stopped", ", attribution_window_hours: 24")).is_ok());
        assert!(check_change(&doc("draft", ""), &wider).is_ok());
        let lookback = check_change(
            &running,
            &doc(
                "running",
                ", attribution_window_hours: 24, cuped_lookback_days: 7",
            ),
        );
        assert!(lookback
            .unwrap_err()
            .to_string()
            .contains("cuped_lookback_days"));
        let back = check_change(&running, &doc("draft", ", attribution_window_hours: 24"));
        assert!(back
            .unwrap_err()
            .to_string()
            .contains("experiments.exp.status"));
        assert!(check_change(&ConfigDocument::default(), &wider).is_ok());
        assert!(check_change(&wider, &ConfigDocument::default()).is_ok());
    }
}
