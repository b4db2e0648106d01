//! `u64` products that stay out of 128-bit arithmetic when they can.
//!
//! wasm32 has no instruction for a product's high half: an overflow-checked
//! `u64` multiply, or a `u128` one, is a call to compiler-rt's `__multi3`.
//! The factors on the request path (token costs, emission intervals, weights
//! and 32-bit hashes) are almost always small enough for a plain multiply.

/// `a * b`, or `u64::MAX` when it overflows.
pub fn saturating_mul(a: u64, b: u64) -> u64 {
    if (a | b) >> 32 == 0 {
        a * b
    } else {
        a.saturating_mul(b)
    }
}

/// `(a * b) >> 32` without overflow, saturated to `u64::MAX`.
pub fn mul_shr32(a: u32, b: u64) -> u64 {
    if b >> 32 == 0 {
        (u64::from(a) * b) >> 32
    } else {
        let wide = (u128::from(a) * u128::from(b)) >> 32;
        u64::try_from(wide).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_match_the_wide_ones() {
        let samples = [
            0,
            1,
            2,
            0xffff,
            0xffff_ffff,
            0x1_0000_0000,
            0x1234_5678_9abc,
            u64::MAX / 3,
            u64::MAX,
        ];
        for &a in &samples {
            for &b in &samples {
                assert_eq!(saturating_mul(a, b), a.saturating_mul(b), "{a} * {b}");
                let a32 = a as u32;
                let wide = (u128::from(a32) * u128::from(b)) >> 32;
                let expected = u64::try_from(wide).unwrap_or(u64::MAX);
                assert_eq!(mul_shr32(a32, b), expected, "{a32} * {b} >> 32");
            }
        }
    }
}
