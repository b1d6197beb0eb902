//! The bucketing hash (DESIGN §3) four ways, over 1,000,000 distinct ~26-byte keys
//! (`checkout-exp:user-00000042`):
//!
//! - `murmur3_crate_format`: the `murmur3` crate's `Read`-based API over a `format!`ed key, as a
//!   naive implementation of `bucket(salt, unit)` would do it (one allocation per hash);
//! - `murmur3_crate_stack`: the same crate over a stack buffer (no allocation);
//! - `tailor_murmur3_stack`: `tailor_core::bucketing::murmur3_x86_32` over the same buffer;
//! - `salt_bucket`: `Salt::bucket`, the hot path: the salt is pre-hashed, only the unit is hashed.
//!
//! Setup checks that all four agree on every key: the `murmur3` crate is the test oracle.
//!
//! Run: `cargo bench -p tailor-core --bench hashing`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tailor_core::bucketing::{murmur3_x86_32, scale, Salt};

const KEYS: usize = 1_000_000;
const SALT: &str = "checkout-exp";

/// Writes `salt:unit` into `buf`, returning the used prefix.
#[inline(always)]
fn join<'b>(buf: &'b mut [u8; 64], unit: &str) -> &'b [u8] {
    let (s, u) = (SALT.as_bytes(), unit.as_bytes());
    buf[..s.len()].copy_from_slice(s);
    buf[s.len()] = b':';
    buf[s.len() + 1..s.len() + 1 + u.len()].copy_from_slice(u);
    &buf[..s.len() + 1 + u.len()]
}

fn crate_format(unit: &str) -> u32 {
    let key = format!("{SALT}:{unit}");
    murmur3::murmur3_32(&mut key.as_bytes(), 0).expect("reading a slice cannot fail")
}

fn crate_stack(unit: &str) -> u32 {
    let mut buf = [0u8; 64];
    let mut key = join(&mut buf, unit);
    murmur3::murmur3_32(&mut key, 0).expect("reading a slice cannot fail")
}

fn tailor_stack(unit: &str) -> u32 {
    let mut buf = [0u8; 64];
    murmur3_x86_32(join(&mut buf, unit), 0)
}

/// Runs `f` on the next unit of `units` (cycling) each iteration.
fn cycle<T>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    units: &[String],
    f: impl Fn(&str) -> T,
) {
    g.bench_function(name, |b| {
        let mut i = 0;
        b.iter(|| {
            let unit = &units[i];
            i += 1;
            if i == units.len() {
                i = 0;
            }
            f(black_box(unit))
        });
    });
}

fn bench_hashing(c: &mut Criterion) {
    let units: Vec<String> = (0..KEYS).map(|i| format!("user-{i:08}")).collect();
    let salt = Salt::new(SALT);
    for unit in &units {
        let oracle = crate_format(unit);
        assert_eq!(crate_stack(unit), oracle, "{unit}");
        assert_eq!(tailor_stack(unit), oracle, "{unit}");
        assert_eq!(salt.hash(unit.as_bytes()), oracle, "{unit}");
        assert_eq!(salt.bucket(unit), scale(oracle), "{unit}");
    }

    let mut g = c.benchmark_group("hashing");
    g.throughput(Throughput::Elements(1));
    cycle(&mut g, "murmur3_crate_format", &units, crate_format);
    cycle(&mut g, "murmur3_crate_stack", &units, crate_stack);
    cycle(&mut g, "tailor_murmur3_stack", &units, tailor_stack);
    cycle(&mut g, "salt_bucket", &units, |u| salt.bucket(u));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_hashing
}
criterion_main!(benches);
