//! Calibration by simulation: thousands of seeded A/A experiments (both arms drawn from the same
//! distribution) must reject at about the nominal rate, and a real lift must be detected.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{compare, AnalysisConfig, ArmStats, Comparison, SequentialConfig};

const ALPHA: f64 = 0.05;

/// Converted users among `users`, each converting with probability `rate`.
fn binomial_draw(rng: &mut StdRng, users: u64, rate: f64) -> u64 {
    (0..users).filter(|_| rng.gen_bool(rate)).count() as u64
}

/// A continuous arm of `users` exponential values with the given mean.
fn exponential_arm(rng: &mut StdRng, users: u64, mean: f64) -> ArmStats {
    let (mut sum, mut sum_squares) = (0.0, 0.0);
    for _ in 0..users {
        // 1 − U is in (0, 1], so the log is finite.
        let x = -mean * (1.0 - rng.gen::<f64>()).ln();
        sum += x;
        sum_squares += x * x;
    }
    ArmStats::continuous(users, sum, sum_squares)
}

fn config() -> AnalysisConfig {
    AnalysisConfig {
        sequential: Some(SequentialConfig::default()),
        ..AnalysisConfig::default()
    }
}

/// Rejection counts over a batch of comparisons.
#[derive(Default)]
struct Rejections {
    runs: usize,
    absolute: usize,
    relative: usize,
    sequential: usize,
    bayesian: usize,
}

impl Rejections {
    fn record(&mut self, cmp: &Comparison) {
        let p = |o: Option<f64>| o.unwrap_or_else(|| panic!("A/A arms must be analysable"));
        self.runs += 1;
        self.absolute += usize::from(p(cmp.absolute.value().map(|l| l.p_value)) < ALPHA);
        self.relative += usize::from(p(cmp.relative.value().map(|l| l.p_value)) < ALPHA);
        let seq = cmp
            .sequential
            .and_then(|s| s.absolute.value().map(|l| l.p_value));
        self.sequential += usize::from(p(seq) < ALPHA);
        // A two-sided Bayesian decision at the same level: chance to win beyond 97.5% either way.
        let ctw = p(cmp.bayesian.value().map(|b| b.chance_to_win));
        self.bayesian += usize::from(!(ALPHA / 2.0..=1.0 - ALPHA / 2.0).contains(&ctw));
    }

    fn rate(&self, count: usize) -> f64 {
        count as f64 / self.runs as f64
    }

    fn assert_nominal(&self, label: &str) {
        println!(
            "{label}: {} runs, rejection rates absolute {:.4}, relative {:.4}, bayesian {:.4}, \
             sequential {:.4}",
            self.runs,
            self.rate(self.absolute),
            self.rate(self.relative),
            self.rate(self.bayesian),
            self.rate(self.sequential)
        );
        for (name, count) in [
            ("absolute", self.absolute),
            ("relative", self.relative),
            ("bayesian", self.bayesian),
        ] {
            let rate = self.rate(count);
            assert!(
                (0.035..=0.065).contains(&rate),
                "{label}: {name} false-positive rate {rate} outside [3.5%, 6.5%]"
            );
        }
        // A single look at an always-valid test is conservative.
        let seq = self.rate(self.sequential);
        assert!(
            seq <= ALPHA,
            "{label}: sequential false-positive rate {seq}"
        );
    }
}

#[test]
fn aa_binomial_false_positive_rate_is_nominal() {
    let mut rng = StdRng::seed_from_u64(20_240_601);
    let mut rejections = Rejections::default();
    for _ in 0..2_000 {
        let users = 1_000;
        let a = ArmStats::binomial(users, binomial_draw(&mut rng, users, 0.1));
        let b = ArmStats::binomial(users, binomial_draw(&mut rng, users, 0.1));
        match compare(&a, &b, &config()) {
            Ok(cmp) => rejections.record(&cmp),
            Err(e) => panic!("valid arms rejected: {e}"),
        }
    }
    rejections.assert_nominal("binomial");
}

#[test]
fn aa_continuous_false_positive_rate_is_nominal() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut rejections = Rejections::default();
    for _ in 0..1_500 {
        let a = exponential_arm(&mut rng, 600, 25.0);
        let b = exponential_arm(&mut rng, 600, 25.0);
        match compare(&a, &b, &config()) {
            Ok(cmp) => rejections.record(&cmp),
            Err(e) => panic!("valid arms rejected: {e}"),
        }
    }
    rejections.assert_nominal("continuous");
}

#[test]
fn a_real_lift_is_detected() {
    // 10% → 14% conversion with 2,000 users per arm: power is about 97% at α = 0.05.
    let mut rng = StdRng::seed_from_u64(99);
    let mut rejections = Rejections::default();
    for _ in 0..300 {
        let users = 2_000;
        let a = ArmStats::binomial(users, binomial_draw(&mut rng, users, 0.10));
        let b = ArmStats::binomial(users, binomial_draw(&mut rng, users, 0.14));
        match compare(&a, &b, &config()) {
            Ok(cmp) => rejections.record(&cmp),
            Err(e) => panic!("valid arms rejected: {e}"),
        }
    }
    let power = rejections.rate(rejections.absolute);
    assert!(power > 0.9, "power {power}");
    // The always-valid test pays for optional stopping with less power at a single look.
    assert!(rejections.sequential < rejections.absolute);
}
