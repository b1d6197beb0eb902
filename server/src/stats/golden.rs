//! Golden tests: every number in `server/fixtures/stats/*.json` (written by gbstats and scipy,
//! see `generate.py` there) must be reproduced to 1e-6 relative (1e-9 absolute near zero), and
//! every case gbstats refuses must come back as the recorded not-enough-data reason.

use serde::Deserialize;

use super::special::{
    beta_inc, chi_square_sf, ln_gamma, normal_cdf, normal_quantile, student_t_isf, student_t_sf,
};
use super::{
    analyze, check_srm, AnalysisConfig, ArmStats, BayesianLift, Covariate, ExperimentResult,
    ExperimentStats, FrequentistLift, Interval, NotEnoughData, Outcome, SequentialConfig,
    SequentialLift,
};

const REL_TOL: f64 = 1e-6;
const ABS_TOL: f64 = 1e-9;

const BINOMIAL: &str = include_str!("../../fixtures/stats/binomial.json");
const CONTINUOUS: &str = include_str!("../../fixtures/stats/continuous.json");
const SEQUENTIAL: &str = include_str!("../../fixtures/stats/sequential.json");
const SRM: &str = include_str!("../../fixtures/stats/srm.json");
const SPECIAL: &str = include_str!("../../fixtures/stats/special.json");
const CUPED: &str = include_str!("../../fixtures/stats/cuped.json");
const RATIO: &str = include_str!("../../fixtures/stats/ratio.json");
const PRIOR: &str = include_str!("../../fixtures/stats/prior.json");
const CORRECTIONS: &str = include_str!("../../fixtures/stats/corrections.json");
/// The ratio, prior and correction fixtures are held to 1e-9 relative, as the issue asks.
const NEW_REL_TOL: f64 = 1e-9;
/// CUPED's fixtures are held to 1e-9 relative: they are gbstats' formulas on the same sums.
const CUPED_REL_TOL: f64 = 1e-9;

#[derive(Deserialize)]
struct Versions {
    gbstats: String,
    scipy: String,
}

#[derive(Deserialize)]
struct ExperimentFile {
    versions: Versions,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    arms: Vec<ArmStats>,
    weights: Vec<f64>,
    control: usize,
    alpha: f64,
    sequential_tuning: f64,
    inverse: bool,
    comparisons: Vec<ExpectedComparison>,
    srm: ExpectedSrm,
    /// CUPED cases: one covariate per arm.
    #[serde(default)]
    covariates: Option<Vec<Covariate>>,
    /// Prior cases: the Bayesian test's proper prior.
    #[serde(default)]
    prior: Option<super::Prior>,
}

#[derive(Deserialize)]
struct ExpectedComparison {
    arm: usize,
    absolute: Expected<ExpectedLift>,
    relative: Expected<ExpectedLift>,
    bayesian: Expected<ExpectedBayesian>,
    sequential_absolute: Expected<ExpectedLift>,
    sequential_relative: Expected<ExpectedLift>,
    /// CUPED cases: gbstats' pooled theta, and the share of the absolute lift's variance removed.
    #[serde(default)]
    theta: Option<f64>,
    #[serde(default)]
    variance_reduction: Option<f64>,
}

/// A gbstats result, or gbstats' refusal with the reason Tailor must give.
#[derive(Deserialize)]
#[serde(untagged)]
enum Expected<T> {
    Refused {
        error: String,
        reason: NotEnoughData,
    },
    Value(T),
}

#[derive(Deserialize)]
struct ExpectedLift {
    estimate: f64,
    std_error: f64,
    ci: [f64; 2],
    p_value: f64,
    dof: Option<f64>,
}

#[derive(Deserialize)]
struct ExpectedBayesian {
    chance_to_win: f64,
    expected: f64,
    std_dev: f64,
    ci: [f64; 2],
    risk: [f64; 2],
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ExpectedSrm {
    NoUsers {
        p_value: f64,
        reason: NotEnoughData,
    },
    Value {
        chi_square: f64,
        dof: u32,
        p_value: f64,
        mismatch: bool,
    },
}

#[derive(Deserialize)]
struct SrmFile {
    cases: Vec<SrmCase>,
}

#[derive(Deserialize)]
struct SrmCase {
    name: String,
    users: Vec<u64>,
    weights: Vec<f64>,
    #[serde(flatten)]
    expected: ExpectedSrm,
}

#[derive(Deserialize)]
struct SpecialFile {
    t_sf: Vec<[f64; 3]>,
    t_isf: Vec<[f64; 3]>,
    normal_cdf: Vec<[f64; 2]>,
    normal_ppf: Vec<[f64; 2]>,
    chi2_sf: Vec<[f64; 3]>,
    ln_gamma: Vec<[f64; 2]>,
    beta_inc: Vec<[f64; 4]>,
}

/// Collects every disagreement so one run reports all of them, and the worst relative error.
struct Checker {
    failures: Vec<String>,
    numbers: usize,
    worst_relative: f64,
    /// Relative tolerance of [`Checker::number`].
    rel_tol: f64,
}

impl Default for Checker {
    fn default() -> Self {
        Checker {
            failures: Vec::new(),
            numbers: 0,
            worst_relative: 0.0,
            rel_tol: REL_TOL,
        }
    }
}

impl Checker {
    fn number(&mut self, what: &str, actual: f64, expected: f64) {
        self.number_tol(what, actual, expected, self.rel_tol, ABS_TOL);
    }

    fn number_tol(&mut self, what: &str, actual: f64, expected: f64, rel: f64, abs: f64) {
        self.numbers += 1;
        let diff = (actual - expected).abs();
        if expected.abs() >= abs.max(f64::MIN_POSITIVE) {
            self.worst_relative = self.worst_relative.max(diff / expected.abs());
        }
        if !actual.is_finite() || (diff > rel * expected.abs() && diff > abs) {
            self.failures
                .push(format!("{what}: got {actual:e}, expected {expected:e}"));
        }
    }

    fn interval(&mut self, what: &str, actual: &Interval, expected: [f64; 2]) {
        self.number(&format!("{what}.lower"), actual.lower, expected[0]);
        self.number(&format!("{what}.upper"), actual.upper, expected[1]);
    }

    fn fail(&mut self, message: String) {
        self.failures.push(message);
    }

    fn finish(self, label: &str) {
        println!(
            "{label}: {} numbers, worst relative error (|expected| above the absolute floor): {:e}",
            self.numbers, self.worst_relative
        );
        assert!(
            self.failures.is_empty(),
            "{label}: {} disagreements:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }

    /// Matches an outcome against an expectation: same reason, or `check` on the value.
    fn outcome<T, E>(
        &mut self,
        what: &str,
        actual: &Outcome<T>,
        expected: &Expected<E>,
        check: impl FnOnce(&mut Self, &T, &E),
    ) {
        match (actual, expected) {
            (Outcome::Ok(value), Expected::Value(e)) => check(self, value, e),
            (Outcome::NotEnoughData { reason }, Expected::Refused { reason: want, .. }) => {
                if reason != want {
                    self.fail(format!("{what}: reason {reason:?}, expected {want:?}"));
                }
            }
            (Outcome::Ok(_), Expected::Refused { error, reason }) => self.fail(format!(
                "{what}: computed a value where gbstats refuses ({error}, expected {reason:?})"
            )),
            (Outcome::NotEnoughData { reason }, Expected::Value(_)) => self.fail(format!(
                "{what}: not enough data ({reason:?}) but gbstats computes"
            )),
        }
    }

    fn lift(&mut self, what: &str, actual: &FrequentistLift, expected: &ExpectedLift) {
        self.number(
            &format!("{what}.estimate"),
            actual.estimate,
            expected.estimate,
        );
        self.number(
            &format!("{what}.std_error"),
            actual.std_error,
            expected.std_error,
        );
        self.interval(&format!("{what}.ci"), &actual.ci, expected.ci);
        self.number(&format!("{what}.p_value"), actual.p_value, expected.p_value);
        match expected.dof {
            Some(dof) => self.number(&format!("{what}.dof"), actual.dof, dof),
            None => self.fail(format!("{what}: fixture lacks dof")),
        }
    }

    fn sequential(&mut self, what: &str, actual: &SequentialLift, expected: &ExpectedLift) {
        self.number(
            &format!("{what}.estimate"),
            actual.estimate,
            expected.estimate,
        );
        self.number(
            &format!("{what}.std_error"),
            actual.std_error,
            expected.std_error,
        );
        self.interval(&format!("{what}.ci"), &actual.ci, expected.ci);
        self.number(&format!("{what}.p_value"), actual.p_value, expected.p_value);
    }

    fn bayesian(&mut self, what: &str, actual: &BayesianLift, expected: &ExpectedBayesian) {
        self.number(
            &format!("{what}.chance_to_win"),
            actual.chance_to_win,
            expected.chance_to_win,
        );
        self.number(
            &format!("{what}.expected"),
            actual.expected,
            expected.expected,
        );
        self.number(&format!("{what}.std_dev"), actual.std_dev, expected.std_dev);
        self.interval(
            &format!("{what}.ci"),
            &actual.credible_interval,
            expected.ci,
        );
        self.number(
            &format!("{what}.risk[0]"),
            actual.risk.control,
            expected.risk[0],
        );
        self.number(
            &format!("{what}.risk[1]"),
            actual.risk.treatment,
            expected.risk[1],
        );
    }

    fn srm(&mut self, what: &str, actual: &Outcome<super::Srm>, expected: &ExpectedSrm) {
        match (actual, expected) {
            (
                Outcome::Ok(srm),
                ExpectedSrm::Value {
                    chi_square,
                    dof,
                    p_value,
                    mismatch,
                },
            ) => {
                self.number(&format!("{what}.chi_square"), srm.chi_square, *chi_square);
                self.number(&format!("{what}.p_value"), srm.p_value, *p_value);
                if srm.dof != *dof || srm.mismatch != *mismatch {
                    self.fail(format!(
                        "{what}: dof/mismatch {}/{} expected {dof}/{mismatch}",
                        srm.dof, srm.mismatch
                    ));
                }
            }
            (
                Outcome::NotEnoughData { reason },
                ExpectedSrm::NoUsers {
                    reason: want,
                    p_value,
                },
            ) => {
                // gbstats answers p = 1 here; Tailor says there is nothing to check.
                if reason != want || *p_value != 1.0 {
                    self.fail(format!("{what}: {reason:?}, expected {want:?}"));
                }
            }
            _ => self.fail(format!("{what}: outcome kind differs from the fixture")),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("fixture {name} does not parse: {e}"))
}

/// No `null` anywhere: serde_json writes NaN and infinities as `null`, so this proves the
/// serialized result has none (sequential results are always requested in these tests).
fn assert_no_nulls(what: &str, value: &serde_json::Value) {
    match value {
        serde_json::Value::Null => panic!("{what}: null (NaN or infinity) in serialized output"),
        serde_json::Value::Array(items) => {
            for item in items {
                assert_no_nulls(what, item);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                // Absent options (the control's comparison, sequential and CUPED when off, a
                // variance reduction that is undefined) are `null`.
                let optional = matches!(
                    key.as_str(),
                    "comparison" | "sequential" | "cuped" | "variance_reduction"
                );
                if !(optional && item.is_null()) {
                    assert_no_nulls(&format!("{what}.{key}"), item);
                }
            }
        }
        _ => {}
    }
}

fn run_experiment_file(label: &str, text: &str) {
    run_experiment_file_tol(label, text, REL_TOL);
}

fn run_experiment_file_tol(label: &str, text: &str, rel_tol: f64) {
    let file: ExperimentFile = parse(label, text);
    assert!(!file.versions.gbstats.is_empty() && !file.versions.scipy.is_empty());
    assert!(!file.cases.is_empty());
    let mut checker = Checker {
        rel_tol,
        ..Checker::default()
    };
    for case in &file.cases {
        let experiment = ExperimentStats {
            arms: case.arms.clone(),
            weights: case.weights.clone(),
            control: case.control,
            covariates: case.covariates.clone(),
        };
        let config = AnalysisConfig {
            alpha: case.alpha,
            inverse: case.inverse,
            sequential: Some(SequentialConfig {
                tuning_parameter: case.sequential_tuning,
            }),
            prior: case.prior,
        };
        let result: ExperimentResult = analyze(&experiment, &config)
            .unwrap_or_else(|e| panic!("{}: analyze failed: {e}", case.name));
        let json = serde_json::to_value(&result)
            .unwrap_or_else(|e| panic!("{}: serialize failed: {e}", case.name));
        assert_no_nulls(&case.name, &json);

        let compared = result
            .arms
            .iter()
            .filter(|a| a.comparison.is_some())
            .count();
        if compared != case.comparisons.len() {
            checker.fail(format!("{}: {compared} comparisons", case.name));
        }
        for expected in &case.comparisons {
            let what = format!("{} / arm {}", case.name, expected.arm);
            let Some(cmp) = result.arms.get(expected.arm).and_then(|a| a.comparison) else {
                checker.fail(format!("{what}: no comparison"));
                continue;
            };
            let Some(seq) = cmp.sequential else {
                checker.fail(format!("{what}: no sequential result"));
                continue;
            };
            checker.outcome(
                &format!("{what} absolute"),
                &cmp.absolute,
                &expected.absolute,
                |c, a, e| c.lift(&format!("{what} absolute"), a, e),
            );
            checker.outcome(
                &format!("{what} relative"),
                &cmp.relative,
                &expected.relative,
                |c, a, e| c.lift(&format!("{what} relative"), a, e),
            );
            checker.outcome(
                &format!("{what} bayesian"),
                &cmp.bayesian,
                &expected.bayesian,
                |c, a, e| c.bayesian(&format!("{what} bayesian"), a, e),
            );
            checker.outcome(
                &format!("{what} sequential absolute"),
                &seq.absolute,
                &expected.sequential_absolute,
                |c, a, e| c.sequential(&format!("{what} sequential absolute"), a, e),
            );
            checker.outcome(
                &format!("{what} sequential relative"),
                &seq.relative,
                &expected.sequential_relative,
                |c, a, e| c.sequential(&format!("{what} sequential relative"), a, e),
            );
            match (expected.theta, cmp.cuped) {
                (None, None) => {}
                (Some(theta), Some(cuped)) => {
                    checker.number(&format!("{what} theta"), cuped.theta, theta);
                    match (expected.variance_reduction, cuped.variance_reduction) {
                        (Some(want), Some(got)) => {
                            checker.number(&format!("{what} variance reduction"), got, want);
                        }
                        (want, got) => checker.fail(format!(
                            "{what}: variance reduction {got:?}, expected {want:?}"
                        )),
                    }
                }
                (want, got) => {
                    checker.fail(format!("{what}: CUPED {got:?}, expected theta {want:?}"))
                }
            }
        }
        checker.srm(&format!("{} srm", case.name), &result.srm, &case.srm);
    }
    checker.finish(label);
}

#[test]
fn golden_cuped() {
    run_experiment_file_tol("cuped.json", CUPED, CUPED_REL_TOL);
}

#[test]
fn golden_ratio() {
    run_experiment_file_tol("ratio.json", RATIO, NEW_REL_TOL);
}

#[test]
fn golden_prior() {
    run_experiment_file_tol("prior.json", PRIOR, NEW_REL_TOL);
}

#[derive(Deserialize)]
struct CorrectionFile {
    cases: Vec<CorrectionCase>,
}

#[derive(Deserialize)]
struct CorrectionCase {
    name: String,
    p_values: Vec<f64>,
    alpha: f64,
    holm_bonferroni: Vec<f64>,
    benjamini_hochberg: Vec<f64>,
    estimates: Vec<f64>,
    intervals: Vec<[f64; 2]>,
    holm_bonferroni_intervals: Vec<Option<[f64; 2]>>,
    benjamini_hochberg_intervals: Vec<Option<[f64; 2]>>,
}

#[test]
fn golden_corrections() {
    use super::{adjust_p_values, adjusted_interval, Correction};
    let file: CorrectionFile = parse("corrections.json", CORRECTIONS);
    assert!(!file.cases.is_empty());
    let mut checker = Checker {
        rel_tol: NEW_REL_TOL,
        ..Checker::default()
    };
    for case in &file.cases {
        for (method, expected, intervals) in [
            (
                Correction::HolmBonferroni,
                &case.holm_bonferroni,
                &case.holm_bonferroni_intervals,
            ),
            (
                Correction::BenjaminiHochberg,
                &case.benjamini_hochberg,
                &case.benjamini_hochberg_intervals,
            ),
        ] {
            let what = format!("{} {method:?}", case.name);
            let adjusted = adjust_p_values(&case.p_values, method);
            for (i, (got, want)) in adjusted.iter().zip(expected).enumerate() {
                checker.number(&format!("{what} p[{i}]"), *got, *want);
            }
            for (i, want) in intervals.iter().enumerate() {
                let ci = Interval {
                    lower: case.intervals[i][0],
                    upper: case.intervals[i][1],
                };
                match (
                    adjusted_interval(case.estimates[i], ci, adjusted[i], case.alpha),
                    want,
                ) {
                    (None, None) => {}
                    (Some(got), Some([lower, upper])) => {
                        checker.number(&format!("{what} ci[{i}].lower"), got.lower, *lower);
                        checker.number(&format!("{what} ci[{i}].upper"), got.upper, *upper);
                    }
                    (got, want) => {
                        checker.fail(format!("{what} ci[{i}]: {got:?}, expected {want:?}"))
                    }
                }
            }
        }
    }
    checker.finish("corrections.json");
}

#[test]
fn golden_binomial() {
    run_experiment_file("binomial.json", BINOMIAL);
}

#[test]
fn golden_continuous() {
    run_experiment_file("continuous.json", CONTINUOUS);
}

#[test]
fn golden_sequential() {
    run_experiment_file("sequential.json", SEQUENTIAL);
}

#[test]
fn golden_srm() {
    let file: SrmFile = parse("srm.json", SRM);
    let mut checker = Checker::default();
    let mut flagged = 0;
    for case in &file.cases {
        let result =
            check_srm(&case.users, &case.weights).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        flagged += usize::from(result.value().is_some_and(|s| s.mismatch));
        checker.srm(&case.name, &result, &case.expected);
    }
    // The fixture must exercise both sides of the threshold.
    assert!(flagged > 0 && flagged < file.cases.len());
    checker.finish("srm.json");
}

/// The special functions agree with scipy far more tightly than the results need.
#[test]
fn golden_special_functions() {
    const REL: f64 = 1e-12;
    let file: SpecialFile = parse("special.json", SPECIAL);
    let mut c = Checker::default();
    for [t, df, want] in file.t_sf {
        c.number_tol(
            &format!("t_sf({t}, {df})"),
            student_t_sf(t, df),
            want,
            REL,
            1e-300,
        );
    }
    for [q, df, want] in file.t_isf {
        c.number_tol(
            &format!("t_isf({q}, {df})"),
            student_t_isf(q, df),
            want,
            REL,
            0.0,
        );
    }
    for [z, want] in file.normal_cdf {
        c.number_tol(
            &format!("normal_cdf({z})"),
            normal_cdf(z),
            want,
            REL,
            1e-300,
        );
    }
    for [p, want] in file.normal_ppf {
        c.number_tol(
            &format!("normal_ppf({p})"),
            normal_quantile(p),
            want,
            REL,
            0.0,
        );
    }
    for [x, k, want] in file.chi2_sf {
        c.number_tol(
            &format!("chi2_sf({x}, {k})"),
            chi_square_sf(x, k),
            want,
            REL,
            1e-300,
        );
    }
    for [x, want] in file.ln_gamma {
        c.number_tol(&format!("ln_gamma({x})"), ln_gamma(x), want, REL, 1e-15);
    }
    for [a, b, x, want] in file.beta_inc {
        c.number_tol(
            &format!("beta_inc({a}, {b}, {x})"),
            beta_inc(a, b, x),
            want,
            REL,
            1e-300,
        );
    }
    c.finish("special.json");
}

/// The engine's own statuses for the undefined cases, independent of the fixtures.
#[test]
fn undefined_cases_report_not_enough_data() {
    let config = AnalysisConfig::default();
    let reasons = |control: ArmStats, treatment: ArmStats| {
        let cmp = super::compare(&control, &treatment, &config)
            .unwrap_or_else(|e| panic!("valid input rejected: {e}"));
        (
            cmp.absolute.reason(),
            cmp.relative.reason(),
            cmp.bayesian.reason(),
        )
    };
    let some = Some;
    use NotEnoughData::*;
    let b = ArmStats::binomial;
    let c = ArmStats::continuous;
    assert_eq!(
        reasons(b(0, 0), b(10, 3)),
        (some(EmptyArm), some(EmptyArm), some(EmptyArm))
    );
    assert_eq!(
        reasons(b(10, 3), b(1, 0)),
        (some(TooFewUsers), some(TooFewUsers), some(TooFewUsers))
    );
    assert_eq!(
        reasons(b(10, 0), b(10, 3)),
        (some(ZeroVariance), some(ZeroVariance), some(ZeroVariance))
    );
    assert_eq!(
        reasons(b(10, 3), b(10, 10)),
        (some(ZeroVariance), some(ZeroVariance), some(ZeroVariance))
    );
    assert_eq!(
        reasons(c(4, 0.0, 8.0), c(4, 2.0, 6.0)),
        (None, some(ZeroBaseline), some(ZeroBaseline))
    );
    assert_eq!(
        reasons(c(3, 6.0, 12.0), c(4, 2.0, 6.0)),
        (some(ZeroVariance), some(ZeroVariance), some(ZeroVariance))
    );
    // An empty arm's own moments are undefined too; the SRM check still runs.
    let experiment = ExperimentStats {
        arms: vec![b(100, 10), b(0, 0)],
        weights: vec![1.0, 1.0],
        control: 0,
        covariates: None,
    };
    let result = analyze(&experiment, &config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.arms[1].moments.reason(), Some(EmptyArm));
    assert!(result.srm.value().is_some_and(|s| s.mismatch));
}

#[test]
fn invalid_input_is_a_typed_error() {
    use super::StatsError;
    let config = AnalysisConfig::default();
    let with = |arms: Vec<ArmStats>, weights: Vec<f64>, control| {
        analyze(
            &ExperimentStats {
                arms,
                weights,
                control,
                covariates: None,
            },
            &config,
        )
        .err()
    };
    let b = ArmStats::binomial;
    assert_eq!(
        with(vec![b(10, 1)], vec![1.0], 0),
        Some(StatsError::TooFewArms { arms: 1 })
    );
    assert_eq!(
        with(vec![b(10, 1), b(10, 2)], vec![1.0, 1.0], 2),
        Some(StatsError::ControlOutOfRange {
            control: 2,
            arms: 2
        })
    );
    assert_eq!(
        with(vec![b(10, 11), b(10, 2)], vec![1.0, 1.0], 0),
        Some(StatsError::ConversionsExceedUsers {
            arm: 0,
            users: 10,
            conversions: 11
        })
    );
    assert_eq!(
        with(
            vec![b(10, 1), ArmStats::continuous(10, 3.0, 9.0)],
            vec![1.0, 1.0],
            0
        ),
        Some(StatsError::MixedMetricKinds { arm: 1 })
    );
    assert_eq!(
        with(
            vec![
                ArmStats::continuous(10, f64::NAN, 1.0),
                ArmStats::continuous(10, 1.0, 1.0)
            ],
            vec![1.0, 1.0],
            0
        ),
        Some(StatsError::NonFiniteInput {
            arm: 0,
            field: "sum"
        })
    );
    assert_eq!(
        with(
            vec![
                ArmStats::continuous(0, 1.0, 1.0),
                ArmStats::continuous(10, 1.0, 1.0)
            ],
            vec![1.0, 1.0],
            0
        ),
        Some(StatsError::ValuesWithoutUsers { arm: 0 })
    );
    let bad_alpha = AnalysisConfig {
        alpha: 1.0,
        ..AnalysisConfig::default()
    };
    assert_eq!(
        super::compare(&b(10, 1), &b(10, 2), &bad_alpha).err(),
        Some(StatsError::InvalidAlpha { alpha: 1.0 })
    );
}

#[test]
fn overflowing_inputs_are_not_enough_data_not_infinity() {
    // Sums near f64::MAX: the variance overflows, which must surface as a status.
    let huge = ArmStats::continuous(10, 1e300, 1.7e308);
    let normal = ArmStats::continuous(10, 10.0, 30.0);
    let cmp = super::compare(&normal, &huge, &AnalysisConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::to_value(cmp).unwrap_or_else(|e| panic!("{e}"));
    assert_no_nulls("overflow", &json);
    assert_eq!(cmp.absolute.reason(), Some(NotEnoughData::NonFinite));
    assert_eq!(cmp.bayesian.reason(), Some(NotEnoughData::NonFinite));
}
