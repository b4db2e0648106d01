//! Fresh ids and the outgoing `traceparent`, made without a host call or a
//! formatting call per request.

use meshguard_plugin_kit::host;
use meshguard_policy::propagation::FreshIds;
use meshguard_policy::trace_context::{TraceParent, FLAG_RANDOM, FLAG_SAMPLED};

/// Requests served per `random_get` host call.
const IDS_PER_REFILL: usize = 64;
const ID_BYTES: usize = 24;
const POOL_BYTES: usize = IDS_PER_REFILL * ID_BYTES;

/// WASI randomness fetched in blocks: every id is still fresh OS
/// randomness, used once.
pub struct RandomPool {
    bytes: [u8; POOL_BYTES],
    used: usize,
}

impl Default for RandomPool {
    fn default() -> Self {
        RandomPool {
            bytes: [0; POOL_BYTES],
            used: POOL_BYTES,
        }
    }
}

impl RandomPool {
    pub fn fresh_ids(&mut self) -> FreshIds {
        if self.used + ID_BYTES > POOL_BYTES {
            match host::random_bytes::<POOL_BYTES>() {
                Some(bytes) => {
                    self.bytes = bytes;
                    self.used = 0;
                }
                None => return FreshIds::from_random(clock_seed()),
            }
        }
        let mut id = [0u8; ID_BYTES];
        if let Some(chunk) = self.bytes.get(self.used..self.used + ID_BYTES) {
            id.copy_from_slice(chunk);
        }
        self.used += ID_BYTES;
        FreshIds::from_random(id)
    }
}

/// Only when the host has no randomness: unique enough to keep tracing.
fn clock_seed() -> [u8; ID_BYTES] {
    let mut seed = [0u8; ID_BYTES];
    let now = host::now_unix_nanos().to_le_bytes();
    seed.iter_mut().zip(now).for_each(|(s, n)| *s = n);
    seed
}

const HEX: &[u8; 16] = b"0123456789abcdef";

// A nibble (0..=15) indexes the 16 entries of HEX.
#[allow(clippy::indexing_slicing)]
fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]); // panic-ok: a nibble indexes 16 entries
        out.push(HEX[usize::from(b & 0x0f)]); // panic-ok: a nibble indexes 16 entries
    }
}

/// `TraceParent::to_header`, with a table instead of `write!` per byte.
pub fn traceparent_header(tp: &TraceParent) -> String {
    let mut out = Vec::with_capacity(55);
    out.extend_from_slice(b"00-");
    push_hex(&mut out, &tp.trace_id.0);
    out.push(b'-');
    push_hex(&mut out, &tp.parent_id.0);
    out.push(b'-');
    push_hex(&mut out, &[tp.flags & (FLAG_SAMPLED | FLAG_RANDOM)]);
    String::from_utf8(out).unwrap_or_default()
}

/// `TraceId::to_hex` the same way.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshguard_policy::trace_context::{SpanId, TraceId};

    #[test]
    fn header_matches_the_policy_crate_for_every_flag_byte() {
        for flags in 0..=255u8 {
            let tp = TraceParent {
                trace_id: TraceId([0xa7; 16]),
                parent_id: SpanId([0x0f, 1, 2, 3, 4, 5, 6, 0xf0]),
                flags,
            };
            assert_eq!(traceparent_header(&tp), tp.to_header());
            assert_eq!(hex(&tp.trace_id.0), tp.trace_id.to_hex());
        }
    }
}
