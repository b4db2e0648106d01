//! Unit tests, compiled only under #[cfg(test)].
use super::*;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

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
    let longest = "z".repeat(256);
    let tenant_at_limits = format!("{}@{}", "t".repeat(241), "v".repeat(14));
    let long_tenant = format!("{}@v", "t".repeat(242));
    let long_system = format!("t@{}", "v".repeat(15));
    for good in [
        "a",
        "0",
        "a0_-*/",
        "0tenant@sys",
        "t@s0-*/_",
        "foo@",
        "foo@@bar",
        "foo@bar@baz",
        "t@0s",
        "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/",
        longest.as_str(),
        tenant_at_limits.as_str(),
        long_tenant.as_str(),
        long_system.as_str(),
    ] {
        assert!(is_valid_key(good), "{good}");
    }
    let too_long = "z".repeat(257);
    let too_long_tenant = format!("{}@v", "t".repeat(255));
    for bad in [
        "",
        "A",
        "FOO",
        "_a",
        "a b",
        "foo ",
        "a.b",
        "@s",
        "@foo",
        "a=b",
        "caf\u{e9}",
        too_long.as_str(),
        too_long_tenant.as_str(),
    ] {
        assert!(!is_valid_key(bad), "{bad}");
    }
    assert!(is_valid_value("a b"));
    assert!(
        is_valid_value(" leading"),
        "leading spaces belong to the value"
    );
    assert!(!is_valid_value("ab "));
    assert!(!is_valid_value(""));
    assert!(!is_valid_value("a,b"));
    assert!(!is_valid_value("a=b"));
    assert!(!is_valid_value("a\tb"));
    assert!(!is_valid_value(&"v".repeat(257)));
    assert!(is_valid_value(&"v".repeat(256)));
}

#[test]
fn tracestate_level_2_keys_are_inherited() {
    for header in ["foo@=1,bar=2", "foo@@bar=1,bar=2", "foo@bar@baz=1,bar=2"] {
        let ts = TraceState::parse([header]).unwrap();
        assert_eq!(ts.to_header(), header);
    }
    let key = format!("{}@v", "t".repeat(242));
    let second = format!("{key}=1");
    let ts = TraceState::parse(["foo=1", second.as_str()]).unwrap();
    assert_eq!(ts.get(&key), Some("1"));
    assert_eq!(ts.get("foo"), Some("1"));
    assert_eq!(
        TraceState::parse(["@foo=1,bar=2"]),
        Err(TraceStateError::Key),
        "a key starting with @ invalidates the list"
    );
    let too_long = format!("{}=1", "z".repeat(257));
    assert_eq!(
        TraceState::parse(["foo=1", too_long.as_str()]),
        Err(TraceStateError::Key)
    );
}

#[test]
fn tracestate_duplicated_keys_keep_the_list_and_the_first_member() {
    for (headers, expected) in [
        (vec!["foo=1,foo=1"], "foo=1"),
        (vec!["foo=1,foo=2"], "foo=1"),
        (vec!["foo=1", "foo=1"], "foo=1"),
        (vec!["foo=1", "foo=2"], "foo=1"),
        (vec!["rojo=1,congo=2,rojo=3,x@y=4"], "rojo=1,congo=2,x@y=4"),
    ] {
        let ts = TraceState::parse(headers.iter().copied()).unwrap();
        assert_eq!(ts.to_header(), expected, "{headers:?}");
    }
}

#[test]
fn tracestate_rejects_more_than_32_members() {
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
    let split = [members(30), "bar=1,bar=2".to_string(), "baz=3".to_string()];
    assert_eq!(
        TraceState::parse(split.iter().map(String::as_str)),
        Err(TraceStateError::TooManyMembers),
        "a duplicate is still a list member"
    );
    assert_eq!(TraceState::parse(["novalue"]), Err(TraceStateError::Member));
    assert_eq!(TraceState::parse(["foo="]), Err(TraceStateError::Value));
    assert_eq!(
        TraceState::parse(["foo=,bar=3"]),
        Err(TraceStateError::Value)
    );
    assert_eq!(
        TraceState::parse(["foo=bar=baz"]),
        Err(TraceStateError::Value)
    );
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
