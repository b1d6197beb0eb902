//! Time to validate and compile one config revision of 1,000 flags and 200 segments
//! (target: < 50 ms), the work an SDK or the server does once per published revision.
//!
//! The generated document is meant to look like a real one: segments with in-lists, regexes,
//! semver and datetime tests, numeric thresholds, include lists and references to other
//! segments; flags with 2–4 variants, 1–4 rules mixing fixed variants, coverage rollouts, 50/50
//! and three-way splits, holdouts, experiments (some in layers) and individual overrides.
//!
//! Two measurements: `compile` (a parsed `ConfigDocument` → `Snapshot`) and `parse_and_compile`
//! (JSON text → `Snapshot`, what a client does with a downloaded revision).
//!
//! Run: `cargo bench -p tailor-core --bench compile`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::{json, Value};
use tailor_core::{compile, ConfigDocument};

const FLAGS: usize = 1_000;
const SEGMENTS: usize = 200;
const COUNTRIES: [&str; 12] = [
    "US", "CA", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "JP", "BR", "AU",
];
const CITIES: [&str; 8] = [
    "Paris", "Lyon", "Berlin", "Munich", "London", "Leeds", "Madrid", "Rome",
];

fn countries(i: usize, n: usize) -> Vec<&'static str> {
    (0..n)
        .map(|k| COUNTRIES[(i + k) % COUNTRIES.len()])
        .collect()
}

/// Segment `i`: one of seven shapes; later segments sometimes build on earlier ones.
fn segment(i: usize) -> Value {
    let conditions = match i % 7 {
        0 => json!({"attribute": "country", "op": "in", "values": countries(i, 6)}),
        1 => json!({"attribute": "email", "op": "regex",
                    "values": [format!(r"^[a-z0-9._%+-]+@(corp|team{i})\.example\.com$")]}),
        2 => json!({"all": [
            {"attribute": "device", "op": "in", "values": ["ios", "android"]},
            {"attribute": "app_version", "op": "semver_gte", "values": [format!("{}.{}.0", 3 + i % 4, i % 10)]},
        ]}),
        3 => {
            let lifecycle = ["new", "active", "lapsed"][i % 3];
            json!({"any": [
                {"attribute": "lifecycle", "op": "eq", "values": [lifecycle]},
                {"attribute": "orders_count", "op": "gte", "values": [i % 20]},
            ]})
        }
        4 => json!({"all": [
            {"attribute": "signup_date", "op": "after", "values": [format!("2025-{:02}-01T00:00:00Z", 1 + i % 12)]},
            {"attribute": "city", "op": "in", "values": [CITIES[i % 8], CITIES[(i + 3) % 8]], "ignore_case": true},
        ]}),
        5 => json!({"all": [
            {"segment": format!("segment-{}", i - 5)},
            {"not": {"attribute": "plan", "op": "eq", "values": ["free"]}},
        ]}),
        _ => json!({"all": [
            {"attribute": "interests", "op": "contains_any", "values": ["yoga", "running", "cycling"]},
            {"attribute": "age", "op": "lt", "values": [25 + i % 40]},
            {"attribute": "referrer", "op": "starts_with", "values": ["https://partner", "https://ads"]},
        ]}),
    };
    let include: Vec<String> = (0..(i % 3) * 10).map(|k| format!("vip-{i}-{k}")).collect();
    json!({
        "key": format!("segment-{i}"),
        "name": format!("Segment {i}"),
        "include": include,
        "conditions": conditions,
    })
}

/// Flag `j`'s audience for rule `r`.
fn audience(j: usize, r: usize) -> Value {
    let s = |k: usize| format!("segment-{}", (j * 7 + r * 13 + k) % SEGMENTS);
    match (j + r) % 6 {
        0 => json!({"segment": s(0)}),
        1 => json!({"all": [
            {"attribute": "country", "op": "in", "values": countries(j + r, 3)},
            {"attribute": "plan", "op": "eq", "values": ["pro"]},
        ]}),
        2 => json!({"any": [{"segment": s(0)}, {"segment": s(1)}]}),
        3 => json!({"all": [
            {"segment": s(0)},
            {"attribute": "app_version", "op": "semver_lt", "values": [format!("6.{}.0", j % 10)]},
        ]}),
        4 => {
            json!({"attribute": "email", "op": "regex", "values": [format!(r"@customer{}\.com$", j % 50)]})
        }
        _ => json!({"not": {"segment": s(2)}}),
    }
}

/// Flag `j`, plus the experiments its rules reference.
fn flag(j: usize, experiments: &mut Vec<Value>) -> Value {
    let n_variants = 2 + j % 3;
    let variants: Vec<Value> = (0..n_variants)
        .map(|v| json!({"key": format!("v{v}"), "value": {"headline": format!("Headline {j}/{v}"), "rank": v}}))
        .collect();
    let mut rules = Vec::new();
    for r in 0..1 + j % 4 {
        let mut rule = json!({"id": format!("rule-{r}"), "when": audience(j, r)});
        match (j + r) % 4 {
            0 => {
                rule["variant"] = json!(format!("v{}", 1 + r % (n_variants - 1)));
            }
            1 => {
                rule["variant"] = json!("v1");
                rule["coverage"] = json!(2_500 * (1 + r % 4));
            }
            2 => {
                rule["split"] = if n_variants >= 3 {
                    json!([{"variant": "v0", "weight": 3334}, {"variant": "v1", "weight": 3333}, {"variant": "v2", "weight": 3333}])
                } else {
                    json!([{"variant": "v0", "weight": 5000}, {"variant": "v1", "weight": 5000}])
                };
                rule["coverage"] = json!(if j % 2 == 0 { 10_000 } else { 5_000 });
            }
            _ => {
                rule["variant"] = json!("v1");
                rule["holdout"] = json!({"basis_points": 1000});
            }
        }
        if (j + r) % 4 >= 2 {
            let key = format!("exp-{j}-{r}");
            let status = ["running", "draft", "stopped"][(j + r) % 3];
            experiments.push(json!({"key": key, "status": status, "primary_metric": "purchase"}));
            rule["experiment"] = json!(key);
        }
        rules.push(rule);
    }
    let overrides = if j % 10 == 0 {
        json!([{"variant": "v1", "keys": (0..5).map(|k| format!("qa-{k}")).collect::<Vec<_>>()}])
    } else {
        json!([])
    };
    json!({
        "key": format!("flag-{j}"),
        "description": format!("Generated flag {j}"),
        "type": "json",
        "variants": variants,
        "default_variant": "v0",
        "enabled": j % 20 != 0,
        "overrides": overrides,
        "rules": rules,
    })
}

fn document() -> Value {
    let segments: Vec<Value> = (0..SEGMENTS).map(segment).collect();
    let mut experiments = Vec::new();
    let flags: Vec<Value> = (0..FLAGS).map(|j| flag(j, &mut experiments)).collect();
    // Five layers, each splitting its bucket space among the first ten split experiments.
    let split_experiments: Vec<String> = experiments
        .iter()
        .filter_map(|e| e["key"].as_str().map(str::to_string))
        .collect();
    let layers: Vec<Value> = (0..5)
        .map(|l| {
            let slices: Vec<Value> = (0..10)
                .map(|s| json!({"experiment": split_experiments[l * 10 + s], "start": s * 1000, "end": (s + 1) * 1000}))
                .collect();
            json!({"key": format!("layer-{l}"), "slices": slices})
        })
        .collect();
    json!({
        "environment": "production",
        "revision": 42,
        "segments": segments,
        "flags": flags,
        "experiments": experiments,
        "layers": layers,
    })
}

fn bench_compile(c: &mut Criterion) {
    let text = serde_json::to_string(&document()).expect("a JSON value serializes");
    let doc = ConfigDocument::from_json(&text).expect("generated document parses");
    assert_eq!((doc.flags.len(), doc.segments.len()), (FLAGS, SEGMENTS));
    if let Err(e) = compile(doc.clone()) {
        panic!("generated document must compile: {e}");
    }
    eprintln!(
        "compile: document of {} flags, {} segments, {} experiments, {} layers, {} KiB of JSON",
        doc.flags.len(),
        doc.segments.len(),
        doc.experiments.len(),
        doc.layers.len(),
        text.len() / 1024
    );

    let mut g = c.benchmark_group("compile");
    g.bench_function("compile_1000_flags_200_segments", |b| {
        b.iter_batched(
            || doc.clone(),
            |d| compile(d).expect("compiles"),
            BatchSize::LargeInput,
        );
    });
    g.bench_function("parse_and_compile_1000_flags_200_segments", |b| {
        b.iter(|| compile(ConfigDocument::from_json(&text).expect("parses")).expect("compiles"));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = bench_compile
}
criterion_main!(benches);
