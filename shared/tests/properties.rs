//! Statistical and algebraic properties of bucketing and assignment (DESIGN §3):
//! determinism, uniform splits (chi-square goodness of fit), "raising coverage never moves a user
//! between variants", and independence of holdout and layer membership from the variant bucket
//! (chi-square tests of 2x2 contingency tables).
//!
//! The statistical tests use fixed unit sets, so they are deterministic: they either always pass
//! or always fail. Their threshold is p > 0.001. Floats appear only here, in the statistics,
//! never in bucketing.

// Test code: a failed unwrap/expect is the test failure, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use proptest::prelude::*;
use serde_json::{json, Value};
use tailor_core::bucketing::{bucket, scale, Salt, BUCKETS};
use tailor_core::{assign, compile, ConfigDocument, Reason, Snapshot, User};

// ---------------------------------------------------------------------------------------------
// Statistics helpers
// ---------------------------------------------------------------------------------------------

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; ~15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1-x) = π / sin(πx).
        return std::f64::consts::PI.ln()
            - (std::f64::consts::PI * x).sin().ln()
            - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized upper incomplete gamma Q(a, x) (Numerical Recipes: series or continued fraction).
fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let ln_prefix = -x + a * x.ln() - ln_gamma(a);
    if x < a + 1.0 {
        let mut sum = 1.0 / a;
        let mut term = sum;
        let mut ap = a;
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        1.0 - sum * ln_prefix.exp()
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        ln_prefix.exp() * h
    }
}

/// P(X >= statistic) for X ~ chi-square with `df` degrees of freedom.
fn chi2_p_value(statistic: f64, df: u32) -> f64 {
    gamma_q(f64::from(df) / 2.0, statistic / 2.0)
}

/// The statistic whose p-value is `alpha` (bisection on the survival function).
fn chi2_critical(alpha: f64, df: u32) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 1_000.0_f64);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if chi2_p_value(mid, df) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// Pearson's goodness-of-fit statistic of observed counts against expected proportions.
fn goodness_of_fit(observed: &[u64], proportions: &[f64]) -> f64 {
    let n: u64 = observed.iter().sum();
    observed
        .iter()
        .zip(proportions)
        .map(|(&o, &p)| {
            let e = n as f64 * p;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

/// Pearson's chi-square statistic of independence for a 2x2 table (no continuity correction).
fn independence_2x2(table: [[u64; 2]; 2]) -> f64 {
    let n: u64 = table.iter().flatten().sum();
    let rows = [table[0][0] + table[0][1], table[1][0] + table[1][1]];
    let cols = [table[0][0] + table[1][0], table[0][1] + table[1][1]];
    let mut stat = 0.0;
    for (r, row) in table.iter().enumerate() {
        for (c, &o) in row.iter().enumerate() {
            let e = rows[r] as f64 * cols[c] as f64 / n as f64;
            stat += (o as f64 - e).powi(2) / e;
        }
    }
    stat
}

const ALPHA: f64 = 0.001;
const UNITS: usize = 100_000;

#[test]
fn chi_square_helpers_match_published_tables() {
    // df = 2 has a closed form: P(X >= x) = exp(-x / 2).
    for x in [0.5, 2.0, 5.991_464_547_107_979, 13.815_510_557_964_274] {
        assert!(
            (chi2_p_value(x, 2) - (-x / 2.0).exp()).abs() < 1e-12,
            "df 2 at {x}"
        );
    }
    // Published critical values.
    let table = [
        (1, 0.05, 3.841_458_820_694_124),
        (1, 0.001, 10.827_566_170_662_733),
        (2, 0.001, 13.815_510_557_964_274),
        (3, 0.05, 7.814_727_903_251_178),
        (10, 0.01, 23.209_251_158_954_36),
    ];
    for (df, alpha, critical) in table {
        assert!(
            (chi2_p_value(critical, df) - alpha).abs() < 1e-9,
            "p-value at the df={df} alpha={alpha} critical value"
        );
        assert!(
            (chi2_critical(alpha, df) - critical).abs() < 1e-6,
            "critical df={df} alpha={alpha}"
        );
    }
    assert!(goodness_of_fit(&[10, 20], &[0.5, 0.5]) > 3.0);
    assert_eq!(independence_2x2([[25, 25], [25, 25]]), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Config helpers
// ---------------------------------------------------------------------------------------------

fn snapshot(config: Value) -> Snapshot {
    let doc = ConfigDocument::from_json(&config.to_string()).expect("test config parses");
    compile(doc).unwrap_or_else(|e| panic!("test config compiles: {e}"))
}

fn variants(keys: &[&str]) -> Value {
    Value::Array(keys.iter().map(|k| json!({"key": k, "value": k})).collect())
}

fn split_arm(assignment: &tailor_core::Assignment<'_>) -> Option<(String, u32)> {
    match assignment.reason {
        Reason::Split { bucket, .. } => Some((assignment.variant_key()?.to_string(), bucket)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Determinism
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn bucket_is_deterministic_in_range_and_matches_the_oracle(
        salt in "\\PC{0,24}",
        unit in "\\PC{0,48}",
    ) {
        let b = bucket(&salt, &unit);
        prop_assert!(b < BUCKETS);
        prop_assert_eq!(b, bucket(&salt, &unit));
        let prepared = Salt::new(&salt);
        prop_assert_eq!(prepared.bucket(&unit), b);
        prop_assert_eq!(prepared.bucket(&unit), b, "a prepared salt is reusable");
        let joined = format!("{salt}:{unit}");
        let oracle = murmur3::murmur3_32(&mut Cursor::new(joined.as_bytes()), 0).expect("in memory");
        prop_assert_eq!(prepared.hash(unit.as_bytes()), oracle);
        prop_assert_eq!(scale(oracle), b);
    }

    #[test]
    fn assign_is_deterministic(key in "\\PC{0,32}", country in "[A-Z]{2}", device in 0i64..1_000_000) {
        let config = json!({
            "experiments": [{"key": "exp", "status": "running"}],
            "layers": [{"key": "l", "slices": [{"experiment": "exp", "start": 0, "end": 7000}]}],
            "flags": [{
                "key": "f", "type": "string", "variants": variants(&["g", "a", "b"]), "default_variant": "g",
                "rules": [
                    {"when": {"attribute": "country", "op": "in", "values": ["US", "CA"]},
                     "split": [{"variant": "a", "weight": 4000}, {"variant": "b", "weight": 6000}],
                     "coverage": 8000, "holdout": {"basis_points": 1500}, "experiment": "exp"},
                    {"bucket_by": "device", "variant": "b", "coverage": 5000}
                ]
            }]
        });
        let first = snapshot(config.clone());
        let second = snapshot(config);
        let user = User::new(key.clone()).with("country", country.as_str()).with("device", device);
        let a = assign(&first, &user, "f");
        prop_assert_eq!(a, assign(&first, &user, "f"));
        prop_assert_eq!(a, assign(&first, &user.clone(), "f"));
        let b = assign(&second, &user, "f");
        prop_assert_eq!(a.variant_key(), b.variant_key());
        prop_assert_eq!(a.reason, b.reason);
        prop_assert_eq!(a.experiment, b.experiment);
    }
}

// ---------------------------------------------------------------------------------------------
// Coverage monotonicity
// ---------------------------------------------------------------------------------------------

/// Weights (basis points summing to 10,000) from sorted cut points: 1 to 5 arms, zeros allowed.
fn weights() -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::vec(0u32..=10_000, 0..5).prop_map(|mut cuts| {
        cuts.sort_unstable();
        let mut out = Vec::with_capacity(cuts.len() + 1);
        let mut last = 0;
        for c in cuts {
            out.push(c - last);
            last = c;
        }
        out.push(10_000 - last);
        out
    })
}

fn coverages() -> impl Strategy<Value = (u32, u32)> {
    (0u32..=10_000, 0u32..=10_000).prop_map(|(a, b)| (a.min(b), a.max(b)))
}

fn split_flag(weights: &[u32], coverage: u32) -> Snapshot {
    let arms: Vec<Value> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"variant": format!("v{i}"), "weight": w}))
        .collect();
    let mut keys: Vec<String> = (0..weights.len()).map(|i| format!("v{i}")).collect();
    keys.push("default".into());
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    snapshot(json!({
        "flags": [
            {"key": "split", "type": "string", "variants": variants(&keys), "default_variant": "default",
             "rules": [{"salt": "monotone", "split": arms, "coverage": coverage}]},
            {"key": "fixed", "type": "string", "variants": variants(&keys), "default_variant": "default",
             "rules": [{"salt": "monotone", "variant": "v0", "coverage": coverage}]}
        ]
    }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn raising_coverage_never_moves_a_user_between_variants(
        weights in weights(),
        (low, high) in coverages(),
        units in proptest::collection::vec("[a-z0-9-]{1,12}|\\PC{1,6}", 1..40),
    ) {
        let at_high = split_flag(&weights, high);
        let at_low = split_flag(&weights, low);
        let back_high = split_flag(&weights, high);
        for unit in &units {
            let user = User::new(unit.as_str());
            let b = bucket("monotone", unit);
            let before = assign(&at_high, &user, "split");
            let lowered = assign(&at_low, &user, "split");
            let raised = assign(&back_high, &user, "split");

            if let Some((variant, bucket_low)) = split_arm(&lowered) {
                let high_arm = split_arm(&before);
                prop_assert_eq!(
                    high_arm.as_ref().map(|(v, _)| v.as_str()), Some(variant.as_str()),
                    "unit {:?} moved from {} at coverage {} to {:?} at {} (weights {:?})",
                    unit, variant, low, high_arm, high, weights
                );
                prop_assert_eq!(bucket_low, b, "the split bucket does not depend on coverage");
            } else {
                prop_assert_eq!(lowered.reason, Reason::Fallthrough);
            }
            // Lowering then raising brings exactly the same users back to the same variants.
            prop_assert_eq!(before, raised);

            // Fixed-variant rollout: in at the lower coverage => in at the higher one.
            let fixed_low = assign(&at_low, &user, "fixed");
            let fixed_high = assign(&at_high, &user, "fixed");
            prop_assert_eq!(fixed_low.variant_key() == Some("v0"), b < low);
            prop_assert_eq!(fixed_high.variant_key() == Some("v0"), b < high);
            if fixed_low.variant_key() == Some("v0") {
                prop_assert_eq!(fixed_high.variant_key(), Some("v0"));
            }
        }
    }

    /// At full coverage every bucket belongs to exactly one arm, chosen by the weights.
    #[test]
    fn full_coverage_splits_tile_the_bucket_space(weights in weights(), unit in "\\PC{0,16}") {
        let snap = split_flag(&weights, 10_000);
        let a = assign(&snap, &User::new(unit.as_str()), "split");
        let (variant, b) = split_arm(&a).expect("full coverage includes everyone");
        let mut start = 0;
        let mut owner = None;
        for (i, w) in weights.iter().enumerate() {
            if b >= start && b < start + w {
                owner = Some(format!("v{i}"));
            }
            start += w;
        }
        prop_assert_eq!(Some(variant), owner);
    }
}

// ---------------------------------------------------------------------------------------------
// Uniformity of splits
// ---------------------------------------------------------------------------------------------

fn three_arm_split(bucket_by: Option<&str>) -> Snapshot {
    let mut flag = json!({
        "key": "split-3", "type": "string", "variants": variants(&["control", "a", "b"]),
        "default_variant": "control",
        "rules": [{"split": [
            {"variant": "control", "weight": 2000},
            {"variant": "a", "weight": 3000},
            {"variant": "b", "weight": 5000}
        ]}]
    });
    if let Some(attribute) = bucket_by {
        flag["bucket_by"] = attribute.into();
    }
    snapshot(json!({"flags": [flag]}))
}

fn assert_split_fits(counts: [u64; 3], what: &str) {
    let statistic = goodness_of_fit(&counts, &[0.2, 0.3, 0.5]);
    let p = chi2_p_value(statistic, 2);
    let critical = chi2_critical(ALPHA, 2);
    eprintln!("{what}: counts {counts:?}, chi-square {statistic:.3}, p = {p:.4}");
    assert!(
        p > ALPHA && statistic < critical,
        "{what}: counts {counts:?} for weights 20/30/50 give chi-square {statistic:.3} \
         (critical {critical:.3} at p = {ALPHA}), p = {p:.2e}"
    );
}

fn arm_index(key: Option<&str>) -> usize {
    match key {
        Some("control") => 0,
        Some("a") => 1,
        Some("b") => 2,
        other => panic!("unexpected variant {other:?}"),
    }
}

#[test]
fn three_arm_split_is_uniform_over_string_keys() {
    let snap = three_arm_split(None);
    let mut counts = [0u64; 3];
    for i in 0..UNITS {
        let a = assign(&snap, &User::new(format!("user-{i}")), "split-3");
        assert!(matches!(a.reason, Reason::Split { .. }));
        counts[arm_index(a.variant_key())] += 1;
    }
    assert_eq!(counts.iter().sum::<u64>(), UNITS as u64);
    assert_split_fits(counts, "string user keys");
}

#[test]
fn three_arm_split_is_uniform_over_numeric_units() {
    let snap = three_arm_split(Some("account_id"));
    let mut counts = [0u64; 3];
    for i in 0..UNITS {
        let user = User::new("same-key-for-everyone").with("account_id", 1_000_000 + i as i64);
        counts[arm_index(assign(&snap, &user, "split-3").variant_key())] += 1;
    }
    assert_split_fits(counts, "sequential integer account ids");
}

/// The test has power: a visibly biased assignment is rejected.
#[test]
fn goodness_of_fit_rejects_a_biased_split() {
    let biased = [21_000, 30_000, 49_000];
    let p = chi2_p_value(goodness_of_fit(&biased, &[0.2, 0.3, 0.5]), 2);
    assert!(
        p < ALPHA,
        "a 1% shift over 100k units should be detected, p = {p}"
    );
}

// ---------------------------------------------------------------------------------------------
// Independence of holdout and layer membership from the variant bucket
// ---------------------------------------------------------------------------------------------

fn independence_snapshot() -> Snapshot {
    let split = json!([{"variant": "a", "weight": 5000}, {"variant": "b", "weight": 5000}]);
    snapshot(json!({
        "experiments": [
            {"key": "exp-holdout", "status": "running"},
            {"key": "exp-layer", "status": "running"}
        ],
        "layers": [{"key": "indep", "slices": [{"experiment": "exp-layer", "start": 0, "end": 5000}]}],
        "flags": [
            {"key": "plain", "type": "string", "variants": variants(&["g", "a", "b"]), "default_variant": "g",
             "rules": [{"salt": "indep", "split": split}]},
            {"key": "with-holdout", "type": "string", "variants": variants(&["g", "a", "b"]), "default_variant": "g",
             "rules": [{"salt": "indep", "split": split, "holdout": {"basis_points": 2000},
                        "experiment": "exp-holdout"}]},
            {"key": "in-layer", "type": "string", "variants": variants(&["g", "a", "b"]), "default_variant": "g",
             "rules": [{"salt": "indep", "split": split, "experiment": "exp-layer"}]}
        ]
    }))
}

fn assert_independent(table: [[u64; 2]; 2], what: &str) {
    let statistic = independence_2x2(table);
    let p = chi2_p_value(statistic, 1);
    eprintln!("{what}: table {table:?}, chi-square {statistic:.3}, p = {p:.4}");
    assert!(
        p > ALPHA,
        "{what} depends on the variant bucket: table {table:?}, chi-square {statistic:.3}, p = {p:.2e}"
    );
}

#[test]
fn holdout_membership_is_independent_of_the_variant_bucket() {
    let snap = independence_snapshot();
    // Rows: arm a / arm b (from the flag without holdout, same salt); columns: held out or not.
    let mut table = [[0u64; 2]; 2];
    for i in 0..UNITS {
        let user = User::new(format!("unit-{i}"));
        let plain = assign(&snap, &user, "plain");
        let row = usize::from(plain.variant_key() == Some("b"));
        let with = assign(&snap, &user, "with-holdout");
        let held = match with.reason {
            Reason::Holdout { bucket, .. } => {
                assert_eq!(
                    bucket,
                    tailor_core::bucketing::bucket("indep:holdout", user.key())
                );
                assert_eq!(with.variant_key(), Some("g"));
                true
            }
            Reason::Split { .. } => {
                assert_eq!(
                    with.variant_key(),
                    plain.variant_key(),
                    "holdout moved a user"
                );
                false
            }
            other => panic!("unexpected reason {other:?}"),
        };
        assert_eq!(with.experiment, Some("exp-holdout"));
        table[row][usize::from(held)] += 1;
    }
    let held: u64 = table[0][1] + table[1][1];
    let rate = held as f64 / UNITS as f64;
    assert!((rate - 0.2).abs() < 0.01, "holdout rate {rate} for 20%");
    assert_independent(table, "holdout membership");
}

#[test]
fn layer_membership_is_independent_of_the_variant_bucket() {
    let snap = independence_snapshot();
    let mut table = [[0u64; 2]; 2];
    for i in 0..UNITS {
        let user = User::new(format!("unit-{i}"));
        let row = usize::from(assign(&snap, &user, "plain").variant_key() == Some("b"));
        let layered = assign(&snap, &user, "in-layer");
        let inside = tailor_core::bucketing::bucket("layer:indep", user.key()) < 5000;
        match layered.reason {
            Reason::Split { .. } => assert!(inside, "admitted outside the layer slice"),
            Reason::Fallthrough => assert!(!inside, "turned away inside the layer slice"),
            other => panic!("unexpected reason {other:?}"),
        }
        table[row][usize::from(inside)] += 1;
    }
    let inside = table[0][1] + table[1][1];
    let rate = inside as f64 / UNITS as f64;
    assert!(
        (rate - 0.5).abs() < 0.01,
        "layer share {rate} for a [0, 5000) slice"
    );
    assert_independent(table, "layer membership");
}

/// The independence test has power: membership computed from the variant's own salt (the bug
/// the separate holdout and layer salts prevent) is rejected.
#[test]
fn independence_test_rejects_a_shared_salt() {
    let mut table = [[0u64; 2]; 2];
    for i in 0..UNITS {
        let unit = format!("unit-{i}");
        let b = bucket("indep", &unit);
        table[usize::from(b >= 5000)][usize::from(bucket("indep", &unit) < 2000)] += 1;
    }
    let p = chi2_p_value(independence_2x2(table), 1);
    assert!(p < ALPHA, "p = {p}");
}

// ---------------------------------------------------------------------------------------------
// Semantic-version operators agree with the `semver` crate
// ---------------------------------------------------------------------------------------------

fn semver_flags() -> Snapshot {
    let ops = [
        "semver_eq",
        "semver_lt",
        "semver_lte",
        "semver_gt",
        "semver_gte",
    ];
    let flags: Vec<Value> = ops
        .iter()
        .map(|op| {
            json!({"key": op, "type": "bool", "default_variant": "off",
                   "variants": [{"key": "off", "value": false}, {"key": "on", "value": true}],
                   "rules": [{"when": {"attribute": "v", "op": op, "values": ["1.1.1-beta.2"]},
                              "variant": "on"}]})
        })
        .collect();
    snapshot(json!({ "flags": flags }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn semver_operators_follow_semver_precedence(
        // Mostly the operand's own core, so that pre-release precedence decides.
        text in "v?(1\\.1\\.1|1\\.1\\.1|1\\.1\\.1|1\\.1\\.1|0\\.1\\.1|1\\.1\\.2|2\\.0\\.0|01\\.1\\.1|1\\.1)\
                 (-(beta|beta|beta|alpha|rc|0|11|01|x-y|[a-z0-9]{1,3}|)(\\.(2|2|11|10|1|01|beta|[a-z0-9-]{0,3})){0,3})?\
                 (\\+[a-z0-9.]{0,12})?"
    ) {
        let snap = semver_flags();
        let operand = semver::Version::parse("1.1.1-beta.2").expect("valid");
        let parsed = semver::Version::parse(text.strip_prefix('v').unwrap_or(&text)).ok();
        let order = parsed.map(|v| v.cmp_precedence(&operand));
        let user = User::new("u").with("v", text.as_str());
        for (flag, want) in [
            ("semver_eq", order.is_some_and(|o| o.is_eq())),
            ("semver_lt", order.is_some_and(|o| o.is_lt())),
            ("semver_lte", order.is_some_and(|o| o.is_le())),
            ("semver_gt", order.is_some_and(|o| o.is_gt())),
            ("semver_gte", order.is_some_and(|o| o.is_ge())),
        ] {
            let got = assign(&snap, &user, flag).variant_key() == Some("on");
            prop_assert_eq!(got, want, "{} {:?} vs 1.1.1-beta.2 (semver crate: {:?})", flag, text, order);
        }
    }
}
