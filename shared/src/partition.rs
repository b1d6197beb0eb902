//! Event partitions: which of an environment's partitions holds a user's events (a contract,
//! like bucketing).
//!
//! An environment's events are split into `P` partitions by user, so that the per-user state
//! built from them (attribution today) can be held by different server instances, each for its
//! own partitions, and merged exactly. Every event of one user lands in one partition:
//!
//! ```text
//! partition(user_key, P) = murmur3_x86_32(UTF-8 bytes of user_key, seed = 0x70617274) mod P
//! ```
//!
//! - The seed (`"part"` in ASCII) differs from bucketing's seed 0 and hashes the bare user key,
//!   so a user's partition tells nothing about their bucket in any flag.
//! - `P` is fixed when the environment is created ([`MIN_PARTITIONS`]..=[`MAX_PARTITIONS`],
//!   default [`DEFAULT_PARTITIONS`]); `P = 1` puts everything in partition 0.
//! - The empty user key is a key like any other (partition of the hash of no bytes).
//! - `shared/fixtures/golden_partitions.json` pins the function with vectors computed by
//!   Python's `mmh3` (`shared/fixtures/partitions.py`).

use crate::bucketing::murmur3_x86_32;

/// The partition hash's seed: `"part"` as a big-endian u32.
pub const PARTITION_SEED: u32 = 0x7061_7274;
/// Fewest partitions an environment may have.
pub const MIN_PARTITIONS: u32 = 1;
/// Most partitions an environment may have.
pub const MAX_PARTITIONS: u32 = 1024;
/// Partitions of an environment created without saying how many.
pub const DEFAULT_PARTITIONS: u32 = 16;

/// The partition (`0..partitions`) of a user's events. `partitions` of 0 is treated as 1.
pub fn partition(user_key: &str, partitions: u32) -> u32 {
    murmur3_x86_32(user_key.as_bytes(), PARTITION_SEED) % partitions.max(1)
}

/// Checks a partition count given by a user; the error names the allowed range.
pub fn check_partitions(partitions: u32) -> Result<u32, String> {
    if (MIN_PARTITIONS..=MAX_PARTITIONS).contains(&partitions) {
        Ok(partitions)
    } else {
        Err(format!(
            "partitions must be between {MIN_PARTITIONS} and {MAX_PARTITIONS}, not {partitions}"
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_partition_holds_everyone() {
        for key in ["", "u1", "üser", "a-very-long-user-key-0123456789"] {
            assert_eq!(partition(key, 1), 0);
            assert_eq!(partition(key, 0), 0);
        }
    }

    #[test]
    fn users_spread_evenly() {
        let mut counts = [0u32; 16];
        for u in 0..160_000 {
            counts[partition(&format!("user-{u}"), 16) as usize] += 1;
        }
        // 10,000 expected each; 5 standard deviations is ±(5 · 97).
        for (p, n) in counts.iter().enumerate() {
            assert!((9_515..=10_485).contains(n), "partition {p}: {n}");
        }
    }

    #[test]
    fn counts_outside_the_range_are_refused() {
        assert!(check_partitions(0).is_err());
        assert!(check_partitions(1025)
            .unwrap_err()
            .contains("between 1 and 1024"));
        assert_eq!(check_partitions(16), Ok(16));
    }
}
