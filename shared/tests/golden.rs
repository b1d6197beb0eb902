//! Bucketing contract v1 against the golden vectors in `shared/fixtures/golden_buckets.json`
//! (generated with Python's `mmh3` by `shared/fixtures/generate.py`).
//!
//! Each vector is checked three ways: the engine's `bucket`, the engine's pre-hashed `Salt`, and
//! the `murmur3` crate as an independent oracle, so a bug shared by the engine and one fixture
//! generator cannot hide.

// Test code: a failed unwrap/expect is the test failure, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::path::PathBuf;

use serde::Deserialize;
use tailor_core::bucketing::{bucket, murmur3_x86_32, scale, Salt, BUCKETS, SPEC_VERSION};

#[derive(Deserialize)]
struct Golden {
    spec_version: u32,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    salt: String,
    unit: String,
    hash: u32,
    bucket: u32,
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden_buckets.json")
}

fn load() -> Golden {
    let path = fixture_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad {}: {e}", path.display()))
}

fn oracle(bytes: &[u8]) -> u32 {
    murmur3::murmur3_32(&mut Cursor::new(bytes), 0).expect("reading from memory cannot fail")
}

#[test]
fn every_golden_vector_matches_engine_and_oracle() {
    let golden = load();
    assert_eq!(
        golden.spec_version, SPEC_VERSION,
        "fixture is for another spec version"
    );
    let mut failures = Vec::new();
    for (i, v) in golden.vectors.iter().enumerate() {
        let joined = format!("{}:{}", v.salt, v.unit);
        let bytes = joined.as_bytes();
        let expected_bucket = ((u64::from(v.hash) * 10_000) >> 32) as u32;
        let mut check = |what: &str, got: u32, want: u32| {
            if got != want {
                failures.push(format!(
                    "vector {i} salt={:?} unit={:?}: {what} = {got}, expected {want}",
                    v.salt,
                    truncate(&v.unit)
                ));
            }
        };
        check(
            "fixture bucket vs (hash*10000)>>32",
            v.bucket,
            expected_bucket,
        );
        check("murmur3 crate (oracle)", oracle(bytes), v.hash);
        check("murmur3_x86_32", murmur3_x86_32(bytes, 0), v.hash);
        check(
            "Salt::hash",
            Salt::new(&v.salt).hash(v.unit.as_bytes()),
            v.hash,
        );
        check("scale", scale(v.hash), v.bucket);
        check("bucket", bucket(&v.salt, &v.unit), v.bucket);
        check("Salt::bucket", Salt::new(&v.salt).bucket(&v.unit), v.bucket);
    }
    assert!(
        failures.is_empty(),
        "{} golden mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The vectors must keep covering the hazards named in DESIGN §3, so the file cannot silently
/// shrink to something that proves little.
#[test]
fn golden_vectors_cover_the_hazards() {
    let vectors = load().vectors;
    assert!(vectors.len() >= 300, "only {} vectors", vectors.len());

    let signed_negative = vectors.iter().filter(|v| (v.hash as i32) < 0).count();
    assert!(
        signed_negative >= 50,
        "only {signed_negative} vectors with a negative signed hash"
    );

    for residue in 0..4 {
        assert!(
            vectors
                .iter()
                .any(|v| (v.salt.len() + 1 + v.unit.len()) % 4 == residue),
            "no vector whose input length is {residue} mod 4"
        );
    }
    for len in 0..=9 {
        assert!(
            vectors.iter().any(|v| v.unit.len() == len),
            "no unit of {len} bytes"
        );
    }
    let has = |f: &dyn Fn(&Vector) -> bool, what: &str| {
        assert!(vectors.iter().any(f), "no vector with {what}");
    };
    has(&|v| v.unit.is_empty(), "an empty unit");
    has(&|v| v.salt.is_empty(), "an empty salt");
    has(&|v| v.unit.len() >= 1000, "a long unit");
    has(&|v| !v.salt.is_ascii(), "a non-ASCII salt");
    has(
        &|v| v.unit.contains('é') || v.unit.contains('ë'),
        "an accented unit",
    );
    has(
        &|v| {
            v.unit
                .chars()
                .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
        },
        "a CJK unit",
    );
    has(
        &|v| v.unit.chars().any(|c| c >= '\u{1f300}'),
        "an emoji unit",
    );
    has(
        &|v| {
            v.unit
                .chars()
                .any(|c| ('\u{0400}'..='\u{04ff}').contains(&c))
        },
        "a Cyrillic unit",
    );

    // Buckets spread over the whole range (a bucket function stuck in one half would fail).
    assert!(vectors.iter().any(|v| v.bucket < 1000));
    assert!(vectors.iter().any(|v| v.bucket >= 9000));
    assert!(vectors.iter().all(|v| v.bucket < BUCKETS));
}

/// Hashing a vector's bytes with a signed interpretation or through 32-bit floats gives other
/// answers for some vectors: the fixture distinguishes the correct contract from those mistakes.
#[test]
fn golden_vectors_reject_common_mistakes() {
    let vectors = load().vectors;
    let mut signed_differs = 0;
    let mut float_differs = 0;
    let mut modulo_differs = 0;
    for v in &vectors {
        let signed = v.hash as i32;
        // A port that reads the hash as signed gets a negative bucket, or, taking `abs`, the
        // wrong one.
        let signed_bucket = (i64::from(signed) * 10_000) >> 32;
        let abs_bucket = (i64::from(signed).abs() * 10_000) >> 32;
        if signed_bucket != i64::from(v.bucket) && abs_bucket != i64::from(v.bucket) {
            signed_differs += 1;
        }
        let float_bucket = ((v.hash as f32 / 4_294_967_296.0_f32) * 10_000.0_f32) as u32;
        if float_bucket != v.bucket {
            float_differs += 1;
        }
        if v.hash % 10_000 != v.bucket {
            modulo_differs += 1;
        }
    }
    assert!(signed_differs > 0, "no vector catches a signed hash");
    assert!(float_differs > 0, "no vector catches f32 rounding");
    assert!(modulo_differs > 0, "no vector catches modulo bucketing");
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!(
            "{}… ({} bytes)",
            s.chars().take(40).collect::<String>(),
            s.len()
        )
    } else {
        s.to_string()
    }
}

/// Event partitions (`tailor_core::partition`) against `shared/fixtures/golden_partitions.json`
/// (Python's `mmh3`, `shared/fixtures/partitions.py`), with the `murmur3` crate as a second
/// oracle for the hash.
#[test]
fn every_partition_vector_matches() {
    #[derive(Deserialize)]
    struct PartitionVector {
        user_key: String,
        partitions: u32,
        hash: u32,
        partition: u32,
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden_partitions.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let vectors: Vec<PartitionVector> = serde_json::from_str(&text).unwrap();
    assert!(vectors.len() > 200);
    for v in &vectors {
        let seed = tailor_core::partition::PARTITION_SEED;
        let bytes = v.user_key.as_bytes();
        assert_eq!(murmur3_x86_32(bytes, seed), v.hash, "{:?}", v.user_key);
        let oracle = murmur3::murmur3_32(&mut Cursor::new(bytes), seed).unwrap();
        assert_eq!(oracle, v.hash, "{:?}", v.user_key);
        assert_eq!(
            tailor_core::partition::partition(&v.user_key, v.partitions),
            v.partition,
            "{:?} in {} partitions",
            v.user_key,
            v.partitions
        );
    }
}
