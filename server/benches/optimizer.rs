//! The optimizer's CPU per update: `optimizer::next_weights` for one optimize rule with 100
//! contexts × 10 variants (issue 12's target: at most 50 ms), from totals holding a day of
//! 15-minute periods (96) for each context and variant: 96,000 cells, as the collector would
//! hand them over.
//!
//! ```text
//! cargo bench -p tailor-server --bench optimizer
//! ```
//! Criterion timing, with the load average printed.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tailor_core::model::Rule;
use tailor_server::attribution::{CellTotals, ExperimentTotals, MetricTotals};
use tailor_server::optimizer::next_weights;

const CONTEXTS: usize = 100;
const VARIANTS: usize = 10;
const PERIODS: u32 = 96;

fn rule() -> Rule {
    let variants: Vec<String> = (0..VARIANTS).map(|v| format!("v{v}")).collect();
    // 99 segments and `*`: 100 contexts.
    let contexts: Vec<String> = (0..CONTEXTS - 1).map(|c| format!("c{c}")).collect();
    serde_json::from_value(serde_json::json!({
        "optimize": {"variants": variants, "contexts": contexts, "burn_in_users": 200},
        "holdout": {"basis_points": 1000},
        "experiment": "x",
    }))
    .unwrap()
}

fn totals() -> ExperimentTotals {
    let mut cells = Vec::new();
    for c in 0..CONTEXTS {
        let segment = if c == CONTEXTS - 1 {
            "rule 0".to_string()
        } else {
            format!("c{c}")
        };
        for v in 0..VARIANTS {
            for period in 0..PERIODS {
                let users = 40 + ((c * 7 + v * 13 + period as usize) % 30) as u64;
                let rate = 0.05 + 0.01 * ((c + v) % VARIANTS) as f64;
                let converted = (users as f64 * rate).round() as u64;
                cells.push(CellTotals {
                    variant: format!("v{v}"),
                    segment: segment.clone(),
                    rule: 0,
                    personalized: true,
                    period: 1_900_000 + period,
                    users,
                    metrics: [(
                        "purchase".to_string(),
                        MetricTotals {
                            converted,
                            sum: converted as f64,
                            sum_sq: converted as f64,
                            ..MetricTotals::default()
                        },
                    )]
                    .into(),
                    pairs: Vec::new(),
                });
            }
        }
    }
    ExperimentTotals {
        cells,
        multi_variant_users: 0,
        late_exposures: 0,
    }
}

fn bench(c: &mut Criterion) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("load average: {}", load.trim());
    let rule = rule();
    let optimize = rule.optimize.clone().unwrap();
    let totals = totals();
    let weights = next_weights(&rule, 0, &optimize, "purchase", &totals, 1_900_096);
    assert_eq!(weights.len(), CONTEXTS);
    assert!(weights
        .iter()
        .all(|w| w.weights.iter().sum::<u32>() == 10_000));
    let mut value = optimize.clone();
    value.kind = tailor_core::model::OptimizeKind::Value;
    c.bench_function("optimizer/update_100_contexts_x_10_variants_value", |b| {
        b.iter(|| {
            next_weights(
                black_box(&rule),
                0,
                black_box(&value),
                "purchase",
                black_box(&totals),
                1_900_096,
            )
        })
    });
    c.bench_function("optimizer/update_100_contexts_x_10_variants", |b| {
        b.iter(|| {
            next_weights(
                black_box(&rule),
                0,
                black_box(&optimize),
                "purchase",
                black_box(&totals),
                1_900_096,
            )
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    targets = bench
}
criterion_main!(benches);
