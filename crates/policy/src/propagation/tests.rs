//! Unit tests, compiled only under #[cfg(test)].
use super::*;
use crate::sampling::{Sampler, SamplingMode};
use crate::trace_context::SpanId;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn fresh() -> FreshIds {
    FreshIds {
        trace_id: [0x11; 16],
        span_id: [0x22; 8],
    }
}

fn policy(own_key: Option<&str>) -> PropagationPolicy<'_> {
    PropagationPolicy {
        sampler: Sampler::new(1.0),
        mode: SamplingMode::ParentBased,
        own_key,
    }
}

#[test]
fn continuing_keeps_trace_id_and_sets_a_new_parent() {
    let out = propagate(&[VALID], &["rojo=1"], &policy(None), fresh());
    assert_eq!(out.origin, Origin::Continued);
    assert_eq!(
        out.traceparent.to_header(),
        "00-0af7651916cd43dd8448eb211c80319c-2222222222222222-01"
    );
    assert_eq!(out.caller_span.unwrap().to_hex(), "b7ad6b7169203331");
    assert_eq!(out.tracestate.unwrap().to_header(), "rojo=1");
}

#[test]
fn own_member_moves_to_the_front() {
    let out = propagate(&[VALID], &["rojo=1,mg=old"], &policy(Some("mg")), fresh());
    assert_eq!(
        out.tracestate.unwrap().to_header(),
        "mg=2222222222222222,rojo=1"
    );
}

#[test]
fn invalid_or_missing_context_starts_a_random_trace() {
    let missing = propagate(&[], &["rojo=1"], &policy(None), fresh());
    assert_eq!(missing.origin, Origin::Started);
    assert_eq!(missing.traceparent.flags & FLAG_RANDOM, FLAG_RANDOM);
    assert_eq!(missing.traceparent.trace_id, TraceId([0x11; 16]));
    assert!(
        missing.tracestate.is_none(),
        "tracestate without traceparent is discarded"
    );

    let bad = propagate(&["00-xyz"], &["rojo=1"], &policy(Some("mg")), fresh());
    assert_eq!(bad.origin, Origin::Rejected(TraceParentError::Length));
    assert_eq!(bad.tracestate.unwrap().to_header(), "mg=2222222222222222");
}

#[test]
fn invalid_tracestate_is_dropped_but_the_trace_continues() {
    let out = propagate(&[VALID], &["A=1,b=2"], &policy(None), fresh());
    assert_eq!(out.origin, Origin::Continued);
    assert!(out.tracestate.is_none());
    assert!(out.tracestate_dropped);
}

#[test]
fn duplicated_keys_are_inherited_with_the_own_member_first() {
    let out = propagate(
        &[VALID],
        &["foo=1", "foo=2,mg=x,mg=y"],
        &policy(Some("mg")),
        fresh(),
    );
    assert_eq!(out.origin, Origin::Continued);
    assert!(!out.tracestate_dropped);
    assert_eq!(
        out.tracestate.unwrap().to_header(),
        "mg=2222222222222222,foo=1"
    );
}

#[test]
fn always_ratio_overrides_the_incoming_flag() {
    let never = PropagationPolicy {
        sampler: Sampler::new(0.0),
        mode: SamplingMode::AlwaysRatio,
        own_key: None,
    };
    let out = propagate(&[VALID], &[], &never, fresh());
    assert!(!out.traceparent.is_sampled());
}

#[test]
fn fresh_ids_are_never_zero() {
    let ids = FreshIds::from_random([0; 24]);
    assert!(TraceId(ids.trace_id).is_valid());
    assert!(SpanId(ids.span_id).is_valid());
}
