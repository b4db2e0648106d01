//! `memcmp` for the plugins' Wasm, eight bytes at a time.
//!
//! Every byte-slice and string comparison in Rust ends in `memcmp`, and
//! wasi-libc's compares one byte per loop turn: a cached token compared
//! with the request's (about 250 bytes) cost some 2,000 instructions per
//! request under V8. Linked before wasi-libc, the definition below replaces
//! it in every plugin. The export is the crate feature `fast-memcmp` (on by
//! default); `compare_bytes` is always there and tested natively.

/// C's `memcmp` over two slices of the same length: the difference of the
/// first bytes that differ, else 0. Written without slice comparisons,
/// which would call `memcmp` again.
pub fn compare_bytes(a: &[u8], b: &[u8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (
        a.get(..n).unwrap_or_default(),
        b.get(..n).unwrap_or_default(),
    );
    let mut at = 0;
    // Short names (most comparisons) go straight to the byte loop.
    if n >= 8 {
        while let (Some(x), Some(y)) = (a.get(at..at + 8), b.get(at..at + 8)) {
            let (x, y) = (word(x), word(y));
            if x != y {
                // Little-endian: the first differing byte is the lowest.
                let shift = (x ^ y).trailing_zeros() / 8 * 8;
                return ((x >> shift) & 0xff) as i32 - ((y >> shift) & 0xff) as i32;
            }
            at += 8;
        }
    }
    let (a, b) = (
        a.get(at..).unwrap_or_default(),
        b.get(at..).unwrap_or_default(),
    );
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return i32::from(*x) - i32::from(*y);
        }
    }
    0
}

fn word(bytes: &[u8]) -> u64 {
    bytes.try_into().map_or(0, u64::from_le_bytes)
}

/// # Safety
/// `a` and `b` must be readable for `n` bytes, as for C's `memcmp`.
#[cfg(all(target_arch = "wasm32", feature = "fast-memcmp"))]
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller guarantees both are readable for `n` bytes.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(a, n),
            std::slice::from_raw_parts(b, n),
        )
    };
    compare_bytes(a, b)
}

#[cfg(test)]
mod tests {
    use super::compare_bytes;
    use std::cmp::Ordering;

    fn sign(n: i32) -> Ordering {
        n.cmp(&0)
    }

    #[test]
    fn agrees_with_slice_ordering_at_every_length_and_position() {
        for len in 0..40 {
            let base: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(compare_bytes(&base, &base), 0);
            for at in 0..len {
                for delta in [1u8, 0x80, 0xff] {
                    let mut other = base.clone();
                    other[at] = other[at].wrapping_add(delta);
                    let got = compare_bytes(&base, &other);
                    assert_eq!(sign(got), base.cmp(&other), "len {len} at {at}");
                    assert_eq!(got, i32::from(base[at]) - i32::from(other[at]));
                    assert_eq!(sign(compare_bytes(&other, &base)), other.cmp(&base));
                }
            }
        }
    }
}
