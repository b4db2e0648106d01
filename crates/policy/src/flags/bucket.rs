//! Bucketing: where a subject falls in a weighted split or a rollout.
//!
//! The split is OpenFeature flagd's `fractional` (v2): murmur3 x86_32 with
//! seed 0 over the bucketing input, `bucket = (hash * total_weight) >> 32`,
//! then a walk over the cumulative integer weights. A flag defined in flagd
//! therefore buckets a user the same way here. The rollout uses the same input
//! with another seed, so being inside the rollout says nothing about the
//! variant (a reused hash would give the rolled-out users the low buckets).

use crate::mul::mul_shr32;
use std::hash::Hasher;

/// flagd's `fractional` seed.
pub const SPLIT_SEED: u32 = 0;
/// The rollout's seed: anything but [`SPLIT_SEED`].
pub const ROLLOUT_SEED: u32 = 0x6d67_726c;
/// Rollout resolution: parts per million (0.0001 percentage points).
pub const ROLLOUT_SCALE: u32 = 1_000_000;

/// MurmurHash3 x86_32 of a byte slice (`mur3`: the `murmur3` crate's
/// `Read`-based API cost 85 ns per 36-byte key under V8, five times this).
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    mur3::murmurhash3_x86_32(data, seed)
}

/// `(hash * total) >> 32`: a bucket in `0..total`.
pub fn scale(hash: u32, total: u64) -> u64 {
    mul_shr32(hash, total)
}

/// The bucketing input: `salt` then the subject's key, with no separator
/// (flagd's default `cat(flagKey, targetingKey)` when `salt` is the flag key).
/// Hashed in two writes, never concatenated into a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub salt: &'a str,
    pub key: &'a str,
}

impl Input<'_> {
    fn hash(&self, seed: u32) -> u32 {
        let mut hasher = mur3::Hasher32::with_seed(seed);
        hasher.write(self.salt.as_bytes());
        hasher.write(self.key.as_bytes());
        hasher.finish32()
    }
}

/// The entry of `weights` (name, weight) that `input` falls in, flagd's way.
/// `None` when every weight is 0.
pub fn pick<'a, T>(input: Input, weights: &'a [(T, u32)]) -> Option<&'a T> {
    let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let bucket = scale(input.hash(SPLIT_SEED), total);
    let mut upper = 0u64;
    for (item, weight) in weights {
        upper += u64::from(*weight);
        if bucket < upper {
            return Some(item);
        }
    }
    None
}

/// A percentage (0..=100, fractions allowed) as parts per million.
pub fn rollout_ppm(percentage: f64) -> u32 {
    let ppm = (percentage * 10_000.0).round();
    if ppm.is_nan() || ppm <= 0.0 {
        0
    } else if ppm >= f64::from(ROLLOUT_SCALE) {
        ROLLOUT_SCALE
    } else {
        ppm as u32
    }
}

/// Whether `input` is inside a rollout of `ppm` parts per million.
pub fn in_rollout(input: Input, ppm: u32) -> bool {
    if ppm >= ROLLOUT_SCALE {
        return true;
    }
    scale(input.hash(ROLLOUT_SEED), u64::from(ROLLOUT_SCALE)) < u64::from(ppm)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn murmur3_matches_the_reference_values() {
        // SMHasher's MurmurHash3_x86_32 verification values.
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    #[test]
    fn scale_spans_the_whole_range() {
        assert_eq!(scale(0, 100), 0);
        assert_eq!(scale(u32::MAX, 100), 99);
        assert_eq!(scale(1 << 31, 100), 50);
        assert_eq!(scale(u32::MAX, 1 << 40), u64::from(u32::MAX) << 8);
    }

    #[test]
    fn input_hashes_as_its_concatenation() {
        let input = Input {
            salt: "fractional-flag",
            key: "jack",
        };
        let whole = murmur3_32(b"fractional-flagjack", SPLIT_SEED);
        assert_eq!(input.hash(SPLIT_SEED), whole);
        let odd = Input {
            salt: "abc",
            key: "defgh",
        };
        assert_eq!(odd.hash(7), murmur3_32(b"abcdefgh", 7));
    }

    #[test]
    fn pick_walks_cumulative_weights_and_skips_zero_weights() {
        let weights = [("a", 0), ("b", 1)];
        for key in ["x", "y", "z"] {
            assert_eq!(pick(Input { salt: "", key }, &weights), Some(&"b"));
        }
        let x = Input { salt: "", key: "x" };
        assert_eq!(pick(x, &[("a", 0)]), None);
        assert_eq!(pick::<&str>(x, &[]), None);
    }

    #[test]
    fn rollout_edges_and_sub_percent_precision() {
        assert_eq!(rollout_ppm(0.0), 0);
        assert_eq!(rollout_ppm(100.0), ROLLOUT_SCALE);
        assert_eq!(rollout_ppm(0.0125), 125);
        assert_eq!(rollout_ppm(f64::NAN), 0);
        let anyone = Input {
            salt: "f",
            key: "anyone",
        };
        assert!(in_rollout(anyone, ROLLOUT_SCALE));
        assert!(!in_rollout(anyone, 0));
        let inside = (0..100_000)
            .filter(|i| {
                let key = format!("user-{i}");
                in_rollout(
                    Input {
                        salt: "f",
                        key: &key,
                    },
                    rollout_ppm(0.5),
                )
            })
            .count();
        assert!((400..=600).contains(&inside), "{inside} of 100000 at 0.5%");
    }
}
