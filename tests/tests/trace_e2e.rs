//! Trace Context Level 2 `tracestate` through the shipped stack
//! (`meshguard_harness::mesh`, what `scripts/up` runs: the single module with
//! `envoy/local/*.json`): an authenticated request's Level 2 keys and
//! duplicated keys reach the upstream as the Recommendation says.

use meshguard_harness::mesh::{Mesh, MeshOptions};
use meshguard_harness::Request;
use serde_json::json;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The `tracestate` the ml upstream received (it echoes its headers), and
/// the trace-id of its `traceparent`.
fn upstream_saw(mesh: &Mesh, token: &str, tracestates: &[&str]) -> (String, Option<String>) {
    let mut request = Request::get("/api/ml/")
        .header("authorization", &format!("Bearer {token}"))
        .header("traceparent", TRACEPARENT);
    for value in tracestates {
        request = request.header("tracestate", value);
    }
    let response = mesh.send(&request);
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    let headers = body["meshguard_headers"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .map(String::from)
    };
    let trace_id = find("traceparent")
        .and_then(|tp| tp.split('-').nth(1).map(String::from))
        .unwrap_or_else(|| panic!("the upstream saw no traceparent: {body}"));
    (trace_id, find("tracestate"))
}

/// The members after this hop's own (`meshguard=<span id>`, always first).
fn inherited(tracestate: Option<String>) -> String {
    let state = tracestate.expect("a tracestate reached the upstream");
    let (own, rest) = state.split_once(',').unwrap_or((state.as_str(), ""));
    assert!(own.starts_with("meshguard="), "own member first: {state}");
    rest.to_string()
}

#[test]
fn level_2_tracestate_reaches_the_upstream_through_the_shipped_stack() {
    let mesh = Mesh::start(MeshOptions::for_test());
    let token = mesh.mint_token("tracy", "enterprise", json!({}));
    let long_tenant = format!("{}@v=1", "t".repeat(242));
    let long_system = format!("t@{}=2", "v".repeat(15));
    let key_256 = format!("{}=3", "z".repeat(256));
    let key_257 = format!("{}=1", "z".repeat(257));
    let cases: Vec<(&str, Vec<&str>, Option<String>)> = vec![
        (
            "multi-tenant keys of every Level 2 shape",
            vec!["fw529a3039@dt=1,foo@=2,foo@@bar=3,foo@bar@baz=4"],
            Some("fw529a3039@dt=1,foo@=2,foo@@bar=3,foo@bar@baz=4".into()),
        ),
        (
            "long tenant, long system",
            vec![&long_tenant, &long_system],
            Some(format!("{long_tenant},{long_system}")),
        ),
        ("a 256-character key", vec![&key_256], Some(key_256.clone())),
        (
            "duplicated keys: the list inherited, the first kept",
            vec!["rojo=1,congo=2,rojo=3", "congo=4"],
            Some("rojo=1,congo=2".into()),
        ),
        ("a key starting with @", vec!["@foo=1,bar=2"], None),
        ("a 257-character key", vec![&key_257, "foo=1"], None),
    ];
    for (name, tracestates, expected) in cases {
        let (trace_id, tracestate) = upstream_saw(&mesh, &token, &tracestates);
        assert_eq!(trace_id, TRACE_ID, "{name}: the trace continues");
        let rest = inherited(tracestate);
        match expected {
            Some(members) => assert_eq!(rest, members, "{name}"),
            None => assert_eq!(rest, "", "{name}: the invalid list is dropped"),
        }
    }
}
