//! Learned personalization over many seeds (`tailor_examples::learning`, in process with
//! simulated time): the optimizer moves each context's traffic to its best arm, and the policy
//! lift's 95% interval covers the true policy lift as often as it should.

use tailor_examples::learning::{self, CONTEXTS};

/// Seeded runs.
const RUNS: u64 = 200;
/// Update periods per run, and visitors per period.
const PERIODS: u64 = 10;
const VISITORS: u64 = 2_000;

#[test]
fn the_policy_learns_each_contexts_best_arm_and_its_lift_interval_covers_the_truth() {
    let mut covered = vec![0u64; CONTEXTS.len() + 1];
    let mut best_share_last = vec![0.0f64; CONTEXTS.len()];
    let mut switches = 0.0;
    // Both cores: half the seeds each.
    let outcomes: Vec<learning::Outcome> = std::thread::scope(|scope| {
        let halves: Vec<_> = [0, 1]
            .map(|half| {
                scope.spawn(move || {
                    (0..RUNS)
                        .filter(|seed| seed % 2 == half)
                        .map(|seed| learning::run(seed, PERIODS, VISITORS).expect("a run"))
                        .collect::<Vec<_>>()
                })
            })
            .into_iter()
            .collect();
        halves
            .into_iter()
            .flat_map(|h| h.join().expect("a simulation thread"))
            .collect()
    });
    for (seed, outcome) in outcomes.iter().enumerate() {
        for (i, (truth, c)) in CONTEXTS.iter().zip(&outcome.contexts).enumerate() {
            let (_, lower, upper) = learning::measured_lift(&outcome.report, truth.label)
                .unwrap_or_else(|| panic!("seed {seed}: no lift for {}", truth.label));
            covered[i] += u64::from(lower <= c.true_lift && c.true_lift <= upper);
            best_share_last[i] += c.best_share.last().copied().unwrap_or(0.0);
        }
        let (_, lower, upper) =
            learning::measured_lift(&outcome.report, "pooled").expect("a pooled lift");
        covered[CONTEXTS.len()] +=
            u64::from(lower <= outcome.pooled_true_lift && outcome.pooled_true_lift <= upper);
        switches += outcome.switch_share.last().copied().unwrap_or(0.0);
    }
    let rate = |n: u64| n as f64 / RUNS as f64;
    for (i, truth) in CONTEXTS.iter().enumerate() {
        let share = best_share_last[i] / RUNS as f64;
        eprintln!(
            "{}: best arm's share of the last period {:.1}%, lift interval covered the truth in {:.1}%",
            truth.label,
            share * 100.0,
            rate(covered[i]) * 100.0
        );
        assert!(share >= 0.8, "{}: best arm got {share}", truth.label);
    }
    let pooled = rate(covered[CONTEXTS.len()]);
    eprintln!(
        "pooled: covered in {:.1}%; returning users switching at the last update {:.1}%",
        pooled * 100.0,
        switches / RUNS as f64 * 100.0
    );
    assert!((0.93..=0.97).contains(&pooled), "pooled coverage {pooled}");
    for (i, truth) in CONTEXTS.iter().enumerate() {
        // Each context's interval, over 200 runs: within 93–97% too, allowing the binomial
        // noise of 200 runs (±3 points at 95%).
        assert!(
            (0.91..=0.99).contains(&rate(covered[i])),
            "{}: coverage {}",
            truth.label,
            rate(covered[i])
        );
    }
}
