//! Consistent probability sampling decided from the trace-id, so every hop
//! that sees the same trace-id and ratio reaches the same decision.
//!
//! The rule is OpenTelemetry's consistent-probability one: the 56 random bits
//! of the trace-id (W3C Level 2) are compared with a rejection threshold
//! `(1 - ratio) * 2^56`.

use crate::trace_context::{TraceId, TraceParent, FLAG_SAMPLED};

const RANDOMNESS_SPACE: f64 = (1u64 << 56) as f64;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    threshold: u64,
}

impl Sampler {
    /// `ratio` is clamped to 0..=1 (configuration validates it before).
    pub fn new(ratio: f64) -> Sampler {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        let threshold = ((1.0 - ratio) * RANDOMNESS_SPACE).round() as u64;
        Sampler { threshold }
    }

    pub fn samples(&self, trace_id: &TraceId) -> bool {
        trace_id.randomness() >= self.threshold
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplingMode {
    /// Honour the incoming sampled flag; decide by ratio only for new traces.
    ParentBased,
    /// Decide by ratio for every request, whatever the caller said.
    AlwaysRatio,
}

/// The sampled flag this hop propagates.
pub fn decide(
    sampler: &Sampler,
    mode: SamplingMode,
    trace_id: &TraceId,
    parent: Option<&TraceParent>,
) -> bool {
    match (mode, parent) {
        (SamplingMode::ParentBased, Some(parent)) => parent.flags & FLAG_SAMPLED != 0,
        _ => sampler.samples(trace_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn id_with_randomness(r: u64) -> TraceId {
        let mut id = [0xabu8; 16];
        id[8..].copy_from_slice(&r.to_be_bytes());
        id[8] = 0xab;
        TraceId(id)
    }

    #[test]
    fn ratio_bounds_are_all_or_nothing() {
        let low = id_with_randomness(0);
        let high = id_with_randomness((1 << 56) - 1);
        assert!(Sampler::new(1.0).samples(&low));
        assert!(!Sampler::new(0.0).samples(&high));
    }

    #[test]
    fn decision_depends_only_on_the_random_bits() {
        let sampler = Sampler::new(0.5);
        assert!(!sampler.samples(&id_with_randomness((1 << 55) - 1)));
        assert!(sampler.samples(&id_with_randomness(1 << 55)));
    }

    #[test]
    fn a_lower_ratio_samples_a_subset_of_a_higher_one() {
        let (low, high) = (Sampler::new(0.1), Sampler::new(0.3));
        for step in 0..(1u64 << 16) {
            let id = id_with_randomness(step << 40);
            if low.samples(&id) {
                assert!(high.samples(&id));
            }
        }
    }

    #[test]
    fn parent_based_honours_the_incoming_flag() {
        let id = id_with_randomness(0);
        let parent = TraceParent {
            trace_id: id,
            parent_id: crate::trace_context::SpanId([1; 8]),
            flags: FLAG_SAMPLED,
        };
        let never = Sampler::new(0.0);
        assert!(decide(
            &never,
            SamplingMode::ParentBased,
            &id,
            Some(&parent)
        ));
        assert!(!decide(
            &never,
            SamplingMode::AlwaysRatio,
            &id,
            Some(&parent)
        ));
    }
}
