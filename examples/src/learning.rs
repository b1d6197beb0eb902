//! Learned personalization, simulated: a shop where the best hero differs by context (guides
//! for beginners, deals for returning users, bestsellers for everyone else), with known true
//! conversion rates. Each update period, visitors are assigned by the one engine with the
//! current weights, their exposures and conversions go through the server's attribution, and
//! the server's optimizer computes the next weights from its totals, exactly as the running
//! server does, only with simulated time. `examples/simulate.rs learned` prints the outcome;
//! the tests check it over many seeds.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tailor_core::events::{Conversion, Event, Exposure};
use tailor_core::model::ConfigDocument;
use tailor_core::{assign, compile, User};
use tailor_server::attribution::{Attribution, ExperimentTerms};
use tailor_server::results::{self, ExperimentReport, ResultsQuery};

/// The flag.
pub const FLAG: &str = "hero";
/// The experiment that measures the policy against the holdout.
pub const EXPERIMENT: &str = "hero-learning";
/// The conversion event.
pub const METRIC: &str = "purchase";
/// The variants the optimizer chooses among.
pub const ARMS: [&str; 3] = ["guide", "deals", "bestsellers"];
/// Share of users held out to the generic hero, basis points.
pub const HOLDOUT_BP: u32 = 1000;
/// Minutes per update period.
pub const UPDATE_MINUTES: u32 = 15;

/// A context and its true conversion rates.
#[derive(Debug, Clone, Copy)]
pub struct ContextTruth {
    /// The context's name in results: its segment, or the rule's label for users in none.
    pub label: &'static str,
    /// Its `lifecycle` attribute value.
    pub lifecycle: &'static str,
    /// Share of visitors.
    pub share: f64,
    /// True rate with the generic hero.
    pub generic: f64,
    /// True rate per arm, in [`ARMS`] order.
    pub arms: [f64; 3],
}

impl ContextTruth {
    /// Index of the best arm.
    pub fn best(&self) -> usize {
        (0..ARMS.len())
            .max_by(|&a, &b| self.arms[a].total_cmp(&self.arms[b]))
            .unwrap_or(0)
    }
}

/// Beginners convert best on guides, returning users on deals, the rest on bestsellers.
pub const CONTEXTS: [ContextTruth; 3] = [
    ContextTruth {
        label: "beginners",
        lifecycle: "new",
        share: 0.35,
        generic: 0.05,
        arms: [0.10, 0.06, 0.07],
    },
    ContextTruth {
        label: "returning",
        lifecycle: "active",
        share: 0.35,
        generic: 0.08,
        arms: [0.08, 0.13, 0.09],
    },
    ContextTruth {
        label: "rule 0",
        lifecycle: "lapsed",
        share: 0.3,
        generic: 0.03,
        arms: [0.03, 0.045, 0.07],
    },
];

/// The config: two context segments and one optimize rule over everyone with a holdout.
pub fn config() -> Result<ConfigDocument, serde_json::Error> {
    let mut variants = vec![json!({"key": "generic", "value": "Welcome"})];
    variants.extend(ARMS.iter().map(|a| json!({"key": a, "value": a})));
    serde_json::from_value(json!({
        "segments": [
            {"key": "beginners", "conditions": {"attribute": "lifecycle", "op": "eq", "values": ["new"]}},
            {"key": "returning", "conditions": {"attribute": "lifecycle", "op": "eq", "values": ["active"]}},
        ],
        "experiments": [{"key": EXPERIMENT, "status": "running", "primary_metric": METRIC}],
        "flags": [{
            "key": FLAG,
            "type": "string",
            "variants": variants,
            "default_variant": "generic",
            "rules": [{
                "optimize": {
                    "variants": ARMS,
                    "contexts": ["beginners", "returning"],
                    "min_weight": 500,
                    "burn_in_users": 200,
                    "update_minutes": UPDATE_MINUTES,
                },
                "holdout": {"basis_points": HOLDOUT_BP},
                "experiment": EXPERIMENT,
            }],
        }],
    }))
}

/// What one context saw over a run.
#[derive(Debug, Clone, Default)]
pub struct ContextOutcome {
    /// Per period, the share of the context's policy users served its best arm.
    pub best_share: Vec<f64>,
    /// Policy users.
    pub policy_users: u64,
    /// Σ over policy users of the true rate of what they were served.
    pub policy_expected: f64,
    /// Σ over policy users of the mean true rate of the arms (an equal split's expectation).
    pub equal_expected: f64,
    /// Σ over policy users of the best arm's true rate (an oracle's expectation).
    pub oracle_expected: f64,
    /// The true policy lift on the measured scale (a user converts at least once after their
    /// first exposure): over the context's policy users, the mean of their true chance of
    /// converting on some visit under what they were served, minus their chance had every
    /// visit shown the generic hero.
    pub true_lift: f64,
}

/// A run's outcome.
#[derive(Debug)]
pub struct Outcome {
    /// Per context, in [`CONTEXTS`] order.
    pub contexts: Vec<ContextOutcome>,
    /// The pooled true policy lift: [`ContextOutcome::true_lift`] over every policy user.
    pub pooled_true_lift: f64,
    /// Per update, the share of a sample of earlier users whose variant changed.
    pub switch_share: Vec<f64>,
    /// The results report at the end.
    pub report: ExperimentReport,
    /// The last weights published, per context.
    pub weights: Vec<(String, Vec<u32>)>,
}

/// Runs `periods` update periods of `visitors` visitors each (30% of them returning users).
pub fn run(seed: u64, periods: u64, visitors: u64) -> anyhow::Result<Outcome> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut doc = config()?;
    let mut snapshot = compile(doc.clone())?;
    let mut attribution = Attribution::default();
    attribution.set_terms(&ExperimentTerms::of(&doc));
    let period_ms = i64::from(UPDATE_MINUTES) * 60_000;
    let first_period: u64 = 1_900_000;
    let mut users: Vec<(String, usize)> = Vec::new();
    let mut contexts = vec![ContextOutcome::default(); CONTEXTS.len()];
    // Per user: in the policy (first exposure not held out), visits, and the chance of never
    // converting under what they were served.
    let mut per_user: HashMap<String, (bool, u32, f64)> = HashMap::new();
    let mut switch_share = Vec::new();
    let mut event = 0u64;
    let user_of =
        |key: &str, context: usize| User::new(key).with("lifecycle", CONTEXTS[context].lifecycle);
    for p in 0..periods {
        let period = first_period + p;
        let start = i64::try_from(period).unwrap_or(i64::MAX) * period_ms;
        let mut served_best = vec![(0u64, 0u64); CONTEXTS.len()];
        for v in 0..visitors {
            let (key, context) = if !users.is_empty() && rng.gen_bool(0.3) {
                users[rng.gen_range(0..users.len())].clone()
            } else {
                let x: f64 = rng.gen();
                let mut acc = 0.0;
                let mut context = CONTEXTS.len() - 1;
                for (i, c) in CONTEXTS.iter().enumerate() {
                    acc += c.share;
                    if x < acc {
                        context = i;
                        break;
                    }
                }
                let key = format!("u{seed}-{}", users.len());
                users.push((key.clone(), context));
                (key, context)
            };
            let at = start + (v as i64 * (period_ms - 2_000)) / visitors as i64;
            let a = assign(&snapshot, &user_of(&key, context), FLAG);
            let variant = a.variant_key().unwrap_or("generic").to_string();
            let truth = CONTEXTS[context];
            let arm = ARMS.iter().position(|x| *x == variant);
            let rate = arm.map_or(truth.generic, |i| truth.arms[i]);
            if let (Some(experiment), Some(rule)) = (a.experiment, a.rule_index()) {
                event += 1;
                attribution.apply(&Event::Exposure(Exposure {
                    id: format!("e{event}"),
                    timestamp: at,
                    user_key: key.clone(),
                    flag: FLAG.into(),
                    variant: variant.clone(),
                    experiment: experiment.into(),
                    rule,
                    segment: a.segment.map(str::to_string),
                    personalized: a.personalized(),
                    revision: snapshot.revision(),
                    spec_version: tailor_core::bucketing::SPEC_VERSION,
                }));
            }
            if let Some(i) = arm {
                let c = &mut contexts[context];
                c.policy_users += 1;
                c.policy_expected += rate;
                c.equal_expected += truth.arms.iter().sum::<f64>() / ARMS.len() as f64;
                c.oracle_expected += truth.arms[truth.best()];
                served_best[context].0 += 1;
                served_best[context].1 += u64::from(i == truth.best());
            }
            if a.experiment.is_some() {
                let entry = per_user
                    .entry(key.clone())
                    .or_insert((arm.is_some(), 0, 1.0));
                entry.1 += 1;
                entry.2 *= 1.0 - rate;
            }
            if rng.gen_bool(rate) {
                event += 1;
                attribution.apply(&Event::Conversion(Conversion {
                    id: format!("c{event}"),
                    timestamp: at + 1_000,
                    user_key: key,
                    event: METRIC.into(),
                    value: Some(25.0),
                }));
            }
        }
        for (c, (all, best)) in served_best.iter().enumerate() {
            contexts[c].best_share.push(if *all == 0 {
                0.0
            } else {
                *best as f64 / *all as f64
            });
        }
        // The update at the end of the period, as the server's optimizer makes it.
        let totals = attribution.totals(EXPERIMENT);
        let rule = doc.flags[0].rules[0].clone();
        let Some(optimize) = rule.optimize.clone() else {
            anyhow::bail!("the config has no optimize rule");
        };
        let next = match &totals {
            Some(t) => {
                tailor_server::optimizer::next_weights(&rule, 0, &optimize, METRIC, t, period + 1)
            }
            None => continue,
        };
        let sample: Vec<&(String, usize)> = users.iter().take(2_000).collect();
        let before: Vec<Option<String>> = sample
            .iter()
            .map(|(k, c)| {
                assign(&snapshot, &user_of(k, *c), FLAG)
                    .variant_key()
                    .map(str::to_string)
            })
            .collect();
        if let Some(o) = doc.flags[0].rules[0].optimize.as_mut() {
            o.weights = next;
        }
        doc.revision += 1;
        snapshot = compile(doc.clone())?;
        let changed = sample
            .iter()
            .zip(&before)
            .filter(|((k, c), b)| {
                assign(&snapshot, &user_of(k, *c), FLAG)
                    .variant_key()
                    .map(str::to_string)
                    != **b
            })
            .count();
        switch_share.push(changed as f64 / sample.len().max(1) as f64);
    }
    let context_of: HashMap<&str, usize> = users.iter().map(|(k, c)| (k.as_str(), *c)).collect();
    let mut lifts = vec![(0u64, 0.0f64); CONTEXTS.len()];
    for (key, (policy, visits, never)) in &per_user {
        let Some(&c) = context_of.get(key.as_str()).filter(|_| *policy) else {
            continue;
        };
        let generic_never =
            (1.0 - CONTEXTS[c].generic).powi(i32::try_from(*visits).unwrap_or(i32::MAX));
        lifts[c].0 += 1;
        lifts[c].1 += generic_never - never;
    }
    for (c, (n, sum)) in contexts.iter_mut().zip(&lifts) {
        c.true_lift = sum / (*n).max(1) as f64;
    }
    let pooled = lifts
        .iter()
        .fold((0u64, 0.0), |acc, (n, s)| (acc.0 + n, acc.1 + s));
    let report = results::report(
        "simulation",
        &snapshot,
        EXPERIMENT,
        attribution.totals(EXPERIMENT).as_ref(),
        &ResultsQuery::default(),
        String::new(),
    )?;
    let optimize = doc.flags[0].rules[0].optimize.clone();
    let weights = optimize
        .map(|o| {
            o.all_contexts()
                .into_iter()
                .map(|c| (c.to_string(), o.weights_of(c)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Outcome {
        contexts,
        pooled_true_lift: pooled.1 / pooled.0.max(1) as f64,
        switch_share,
        report,
        weights,
    })
}

/// The measured policy lift (absolute, with its 95% interval) of `label` (`pooled` for all).
pub fn measured_lift(report: &ExperimentReport, label: &str) -> Option<(f64, f64, f64)> {
    let personalization = report.personalization.as_ref()?;
    let lift = if label == "pooled" {
        &personalization.pooled
    } else {
        personalization
            .segments
            .iter()
            .find(|s| s.segment == label)?
    };
    let abs = lift.comparison.absolute.value()?;
    Some((abs.estimate, abs.ci.lower, abs.ci.upper))
}
