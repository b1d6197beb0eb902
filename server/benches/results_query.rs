//! Results query cost with 10 million events: reading results never rescans events.
//!
//! ```text
//! cargo bench -p tailor-server --bench results_query
//! ```
//! Builds the attribution state of one experiment from 10,000,000 events (2.5M users, each
//! exposed once and converting with some probability, across 3 segments with a 10% holdout and
//! repeated exposures), then times a full results query: totals, per-variant and per-segment
//! statistics, personalization lift, SRM, and the cumulative time series.

// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use tailor_core::events::{Conversion, Event, Exposure};
use tailor_core::{compile, Snapshot};
use tailor_server::attribution::Attribution;
use tailor_server::results::{self, ResultsQuery};

const EVENTS: u64 = 10_000_000;
const SEGMENTS: [(&str, &str); 3] = [
    ("beginners", "onboarding"),
    ("active", "recs"),
    ("lapsed", "win-back"),
];

fn snapshot() -> Snapshot {
    let rules: Vec<_> = SEGMENTS
        .iter()
        .map(|(s, v)| json!({"when": {"segment": s}, "variant": v, "holdout": {"basis_points": 1000}, "experiment": "exp"}))
        .collect();
    let mut variants = vec![json!({"key": "generic", "value": 0})];
    variants.extend(SEGMENTS.iter().map(|(_, v)| json!({"key": v, "value": 1})));
    let doc = json!({
        "segments": SEGMENTS.iter().map(|(s, _)| json!({"key": s, "conditions": {"attribute": "seg", "op": "eq", "values": [s]}})).collect::<Vec<_>>(),
        "experiments": [{"key": "exp", "status": "running", "primary_metric": "purchase"}],
        "flags": [{"key": "homepage", "type": "number", "variants": variants, "default_variant": "generic", "rules": rules}],
    });
    compile(serde_json::from_value(doc).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"))
}

/// A deterministic stream of 10M events: exposures, repeat exposures and conversions.
fn build() -> Attribution {
    let mut a = Attribution::default();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut n = 0u64;
    let mut user = 0u64;
    let t0 = 1_790_000_000_000i64;
    while n < EVENTS {
        user += 1;
        let seg = (user % 3) as usize;
        let held_out = next() % 10 == 0;
        let variant = if held_out { "generic" } else { SEGMENTS[seg].1 };
        let key = format!("user-{user}");
        let ts = t0 + (n as i64) * 50;
        for repeat in 0..2 {
            a.apply(&Event::Exposure(Exposure {
                id: format!("e{n}-{repeat}"),
                timestamp: ts + repeat,
                user_key: key.clone(),
                flag: "homepage".into(),
                variant: variant.into(),
                experiment: "exp".into(),
                rule: seg,
                segment: Some(SEGMENTS[seg].0.into()),
                personalized: !held_out,
                revision: 1,
                spec_version: 1,
            }));
            n += 1;
        }
        for c in 0..2 {
            if next() % 100 < 30 {
                a.apply(&Event::Conversion(Conversion {
                    id: format!("c{n}-{c}"),
                    timestamp: ts + 1000 + c,
                    user_key: key.clone(),
                    event: "purchase".into(),
                    value: Some((next() % 10_000) as f64 / 100.0),
                }));
                n += 1;
            }
        }
    }
    a
}

fn bench(c: &mut Criterion) {
    let started = Instant::now();
    let attribution = build();
    eprintln!(
        "built attribution from {} events in {:.1?}",
        attribution.events_applied(),
        started.elapsed()
    );
    let snapshot = snapshot();
    let query = ResultsQuery::default();
    let mut group = c.benchmark_group("results_query_10M_events");
    group
        .measurement_time(Duration::from_secs(5))
        .sample_size(30);
    group.bench_function("totals_stats_timeline", |b| {
        b.iter(|| {
            let totals = attribution.totals("exp");
            let mut report = results::report(
                "bench",
                &snapshot,
                "exp",
                totals.as_ref(),
                &query,
                String::new(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            report.timeline = attribution.timeline("exp", &report.metric);
            report
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
