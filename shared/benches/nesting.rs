//! What a deeply nested config costs before it is refused (issue: `x: [[[…` took 13 s of
//! request time for 40,000 levels), against what the same bytes cost libyaml without the
//! nesting pre-check, and against the pre-check's price on a real config.
//!
//! - `refuse/yaml_40k` and `refuse/yaml_100k`: `ConfigDocument::from_yaml` on `x: ` followed by
//!   40,000 / 100,000 `[` (the 100k body is 200 KB, under the server's YAML cap): the pre-check
//!   refuses it.
//! - `libyaml_unchecked/<levels>`: serde_yaml_ng on the same shape without the pre-check, at
//!   depths small enough to finish (the cost grows with the square of the depth).
//! - `check/real_config_yaml`: the pre-check alone on a realistic 75 KB YAML config, and
//!   `check/parse_real_config_yaml`: the whole parse of it, pre-check included.
//!
//! Run: `cargo bench -p tailor-core --bench nesting`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tailor_core::{nesting, ConfigDocument};

fn deep(levels: usize) -> String {
    format!("x: {}", "[".repeat(levels))
}

fn real_config() -> String {
    let mut text = String::from("segments:\n");
    for i in 0..300 {
        text.push_str(&format!(
            "  - key: segment-{i}\n    conditions:\n      all:\n        - {{attribute: country, op: in, values: [US, CA, GB]}}\n        - any:\n            - not: {{attribute: plan, op: eq, values: ['free']}}\n            - {{attribute: email, op: regex, values: [\"^[a-z]+@corp{i}\\\\.example$\"]}}\n"
        ));
    }
    text
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("refuse");
    group.measurement_time(Duration::from_secs(3));
    for (name, levels) in [("yaml_40k", 40_000), ("yaml_100k", 100_000)] {
        let text = deep(levels);
        group.bench_function(name, |b| {
            b.iter(|| ConfigDocument::from_yaml(&text).unwrap_err())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("libyaml_unchecked");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for levels in [1_000, 2_000, 4_000] {
        let text = deep(levels);
        group.bench_with_input(BenchmarkId::from_parameter(levels), &text, |b, text| {
            b.iter(|| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text).unwrap_err())
        });
    }
    group.finish();

    let config = real_config();
    assert!(ConfigDocument::from_yaml(&config).is_ok());
    let mut group = c.benchmark_group("check");
    group.bench_function("real_config_yaml", |b| {
        b.iter(|| nesting::check_yaml(&config).unwrap())
    });
    // The whole parse (pre-check included), for the pre-check's share of it.
    group.bench_function("parse_real_config_yaml", |b| {
        b.iter(|| ConfigDocument::from_yaml(&config).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
