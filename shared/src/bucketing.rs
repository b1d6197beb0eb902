//! Bucketing contract v1 (DESIGN §3): `murmur3_x86_32(salt + ":" + unit)` scaled to `[0, 10000)`.
//!
//! ```text
//! bucket(salt, unit) = (murmur3_x86_32(UTF-8 bytes of salt + ":" + unit, seed = 0) as u64 * 10_000) >> 32
//! ```
//!
//! This is a wire format other SDKs reproduce bit for bit; `shared/fixtures/golden_buckets.json`
//! pins it. The hash is implemented here rather than through the `murmur3` crate because the
//! crate's `Read`-based API needs the salt and unit concatenated into one buffer; [`Salt`]
//! instead hashes the salt's whole 4-byte blocks once, at compile time, and only the unit per
//! evaluation, with no allocation. The `murmur3` crate stays as the test oracle.

/// Version of this bucketing contract, carried by every exposure.
pub const SPEC_VERSION: u32 = 1;

/// Number of buckets: 10,000, i.e. 0.01% resolution.
pub const BUCKETS: u32 = 10_000;

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline(always)]
fn mix_k(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

#[inline(always)]
fn mix_block(h: u32, k: u32) -> u32 {
    (h ^ mix_k(k))
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline(always)]
fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// MurmurHash3 x86 32-bit of `data` (unsigned result).
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    let state = HashState {
        h: seed,
        carry: 0,
        carry_len: 0,
        len: 0,
    };
    state.update(data).finish()
}

/// Scales a 32-bit hash to a bucket in `[0, 10000)` with an integer multiply-shift.
#[inline(always)]
pub fn scale(hash: u32) -> u32 {
    ((u64::from(hash) * u64::from(BUCKETS)) >> 32) as u32
}

/// The bucket of `unit` under `salt`, in `[0, 10000)`.
///
/// ```
/// use tailor_core::bucketing::bucket;
/// assert!(bucket("homepage", "user-1") < 10_000);
/// assert_eq!(bucket("homepage", "user-1"), bucket("homepage", "user-1"));
/// ```
pub fn bucket(salt: &str, unit: &str) -> u32 {
    Salt::new(salt).bucket(unit)
}

/// Streaming murmur3 state: whole blocks mixed into `h`, up to 3 pending bytes in `carry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HashState {
    h: u32,
    carry: u32,
    carry_len: u32,
    len: u32,
}

impl HashState {
    #[inline(always)]
    fn update(mut self, mut data: &[u8]) -> Self {
        self.len = self.len.wrapping_add(data.len() as u32);
        if self.carry_len > 0 {
            while self.carry_len < 4 {
                let Some((&b, rest)) = data.split_first() else {
                    return self;
                };
                self.carry |= u32::from(b) << (8 * self.carry_len);
                self.carry_len += 1;
                data = rest;
            }
            self.h = mix_block(self.h, self.carry);
            self.carry = 0;
            self.carry_len = 0;
        }
        let mut blocks = data.chunks_exact(4);
        for block in &mut blocks {
            let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
            self.h = mix_block(self.h, k);
        }
        for (i, &b) in blocks.remainder().iter().enumerate() {
            self.carry |= u32::from(b) << (8 * i);
        }
        self.carry_len = blocks.remainder().len() as u32;
        self
    }

    #[inline(always)]
    fn finish(self) -> u32 {
        let mut h = self.h;
        if self.carry_len > 0 {
            h ^= mix_k(self.carry);
        }
        fmix(h ^ self.len)
    }
}

/// A salt prepared for bucketing: `salt + ":"` is pre-hashed, so each evaluation hashes only
/// the unit.
#[derive(Clone, PartialEq, Eq)]
pub struct Salt {
    text: Box<str>,
    prefix: HashState,
}

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Salt").field(&self.text).finish()
    }
}

impl Salt {
    /// Prepares `salt`.
    pub fn new(salt: &str) -> Self {
        let prefix = HashState {
            h: 0,
            carry: 0,
            carry_len: 0,
            len: 0,
        }
        .update(salt.as_bytes())
        .update(b":");
        Salt {
            text: salt.into(),
            prefix,
        }
    }

    /// The salt text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `murmur3_x86_32(salt + ":" + unit, 0)`.
    #[inline]
    pub fn hash(&self, unit: &[u8]) -> u32 {
        self.prefix.update(unit).finish()
    }

    /// The bucket of `unit`, in `[0, 10000)`.
    #[inline]
    pub fn bucket(&self, unit: &str) -> u32 {
        scale(self.hash(unit.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values of MurmurHash3_x86_32 (Austin Appleby's test suite / Python mmh3).
    #[test]
    fn known_murmur3_values() {
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"\0\0\0\0", 0), 0x2362_f9de);
        assert_eq!(murmur3_x86_32(b"aaaa", 0x9747_b28c), 0x5a97_808a);
        assert_eq!(murmur3_x86_32(b"Hello, world!", 0x9747_b28c), 0x2488_4cba);
        assert_eq!(murmur3_x86_32(b"abc", 0), 0xb3dd_93fa);
    }

    #[test]
    fn streaming_equals_one_shot_for_every_split_point() {
        let text = "experiment-salt:üser-ключ-42";
        let bytes = text.as_bytes();
        let whole = murmur3_x86_32(bytes, 0);
        for cut in 0..=bytes.len() {
            let s = HashState {
                h: 0,
                carry: 0,
                carry_len: 0,
                len: 0,
            }
            .update(&bytes[..cut])
            .update(&bytes[cut..])
            .finish();
            assert_eq!(s, whole, "cut at {cut}");
        }
    }

    #[test]
    fn scale_covers_the_range_ends() {
        assert_eq!(scale(0), 0);
        assert_eq!(scale(u32::MAX), BUCKETS - 1);
        assert_eq!(scale(1 << 31), BUCKETS / 2);
    }

    #[test]
    fn salt_bucket_matches_concatenation() {
        for salt in ["", "a", "ab", "abc", "abcd", "homepage", "größe"] {
            for unit in ["", "u", "user-1", "ユーザー"] {
                let joined = format!("{salt}:{unit}");
                assert_eq!(
                    Salt::new(salt).bucket(unit),
                    scale(murmur3_x86_32(joined.as_bytes(), 0)),
                    "{salt:?} {unit:?}"
                );
            }
        }
    }
}
