//! Unit tests, compiled only under #[cfg(test)].
use super::*;
use crate::sampling::{Sampler, SamplingMode};
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
fn parses_a_valid_traceparent() {
    let tp = TraceParent::parse(VALID).unwrap();
    assert_eq!(tp.trace_id.to_hex(), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(tp.parent_id.to_hex(), "b7ad6b7169203331");
    assert!(tp.is_sampled());
    assert_eq!(tp.to_header(), VALID);
}

#[test]
fn rejects_uppercase_hex() {
    let upper = "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01";
    assert_eq!(
        TraceParent::parse(upper),
        Err(TraceParentError::NotLowerHex)
    );
    let upper_flags = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0A";
    assert!(TraceParent::parse(upper_flags).is_err());
}

#[test]
fn rejects_all_zero_ids() {
    let zero_trace = "00-00000000000000000000000000000000-b7ad6b7169203331-01";
    let zero_parent = "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01";
    assert_eq!(
        TraceParent::parse(zero_trace),
        Err(TraceParentError::ZeroTraceId)
    );
    assert_eq!(
        TraceParent::parse(zero_parent),
        Err(TraceParentError::ZeroParentId)
    );
}

#[test]
fn rejects_version_ff_and_non_hex_versions() {
    let ff = "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    assert_eq!(TraceParent::parse(ff), Err(TraceParentError::Version));
    assert!(TraceParent::parse("0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_err());
}

#[test]
fn version_00_with_trailing_data_is_invalid() {
    assert_eq!(
        TraceParent::parse(&format!("{VALID}-what")),
        Err(TraceParentError::TrailingData)
    );
    assert_eq!(
        TraceParent::parse(&format!("{VALID}x")),
        Err(TraceParentError::TrailingData)
    );
}

#[test]
fn higher_versions_parse_their_first_fields() {
    let v1 = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    assert!(TraceParent::parse(v1).is_ok());
    let v1_more = "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra-fields";
    let tp = TraceParent::parse(v1_more).unwrap();
    assert_eq!(tp.to_header(), VALID, "propagated downgraded to version 00");
    let v1_glued = "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01extra";
    assert_eq!(
        TraceParent::parse(v1_glued),
        Err(TraceParentError::Delimiter)
    );
    let v1_short = "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1";
    assert_eq!(TraceParent::parse(v1_short), Err(TraceParentError::Length));
}

#[test]
fn rejects_wrong_lengths_and_delimiters() {
    for bad in [
        "",
        "00",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "00-0af7651916cd43dd8448eb211c80319-cb7ad6b7169203331-01",
        "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-101",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\u{e9}",
        "00-0af7651916cd43dd8448eb211c8031\u{e9}-b7ad6b7169203331-01",
    ] {
        assert!(TraceParent::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn optional_whitespace_around_the_value_is_allowed() {
    assert!(TraceParent::parse(&format!(" \t{VALID} \t")).is_ok());
    assert!(TraceParent::parse(&format!("{VALID} x")).is_err());
}

#[test]
fn duplicated_traceparent_is_invalid() {
    let got = TraceParent::parse_all([VALID, VALID].into_iter());
    assert_eq!(got, Some(Err(TraceParentError::Duplicated)));
    assert_eq!(TraceParent::parse_all(std::iter::empty()), None);
}

#[test]
fn unknown_flags_are_zeroed_when_propagated() {
    let tp = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff").unwrap();
    assert!(tp.to_header().ends_with("-03"));
}

#[test]
fn tracestate_parses_members_with_ows_and_empty_entries() {
    let ts = TraceState::parse(["rojo=00f067aa0ba902b7 ,, \tcongo=t61rcWkgMzE", "x@y=1"]).unwrap();
    assert_eq!(ts.len(), 3);
    assert_eq!(ts.get("congo"), Some("t61rcWkgMzE"));
    assert_eq!(
        ts.to_header(),
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,x@y=1"
    );
}

#[test]
fn tracestate_key_and_value_grammar() {
    for good in ["a", "a0_-*/", "0tenant@sys", "t@s0-*/_"] {
        assert!(is_valid_key(good), "{good}");
    }
    let long_key = "a".repeat(257);
    let long_system = format!("t@{}", "s".repeat(15));
    for bad in [
        "",
        "A",
        "0a",
        "a b",
        "a.b",
        "@s",
        "t@",
        "t@0s",
        long_key.as_str(),
        long_system.as_str(),
    ] {
        assert!(!is_valid_key(bad), "{bad}");
    }
    assert!(is_valid_value("a b"));
    assert!(!is_valid_value("ab "));
    assert!(!is_valid_value(""));
    assert!(!is_valid_value("a,b"));
    assert!(!is_valid_value("a=b"));
    assert!(!is_valid_value(&"v".repeat(257)));
    assert!(is_valid_value(&"v".repeat(256)));
}

#[test]
fn tracestate_rejects_duplicates_and_more_than_32_members() {
    assert_eq!(
        TraceState::parse(["a=1,a=2"]),
        Err(TraceStateError::DuplicateKey)
    );
    let members = |n: usize| {
        (0..n)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(TraceState::parse([members(32).as_str()]).unwrap().len(), 32);
    assert_eq!(
        TraceState::parse([members(33).as_str()]),
        Err(TraceStateError::TooManyMembers)
    );
    assert_eq!(TraceState::parse(["novalue"]), Err(TraceStateError::Member));
}

#[test]
fn truncation_drops_long_members_first_then_from_the_right() {
    let long = "l".repeat(250);
    let short = "s".repeat(120);
    let header = format!("b={long},s1={short},s2={short},s3={short}");
    let mut ts = TraceState::parse([header.as_str()]).unwrap();
    ts.upsert_front("me", "2222222222222222");
    ts.truncate(MIN_PROPAGATED_TRACESTATE);
    assert_eq!(
        ts.to_header(),
        format!("me=2222222222222222,s1={short},s2={short},s3={short}"),
        "the long member goes before the right-most short ones"
    );

    let mut many = TraceState::parse([(0..32)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",")
        .as_str()])
    .unwrap();
    many.upsert_front("me", "1");
    many.truncate(MIN_PROPAGATED_TRACESTATE);
    assert_eq!(many.len(), 32);
    assert_eq!(many.get("me"), Some("1"));
    assert_eq!(many.get("k31"), None, "the right-most member goes first");
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
    let out = propagate(&[VALID], &["a=1,a=2"], &policy(None), fresh());
    assert_eq!(out.origin, Origin::Continued);
    assert!(out.tracestate.is_none());
    assert!(out.tracestate_dropped);
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
