//! Flag definitions: validation, CRUD, versions and the snapshot's 304.

mod state_support;

use serde_json::{json, Value};
use state_support::Stack;

fn good() -> Value {
    json!({
        "description": "the new checkout",
        "variants": {"on": true, "off": false},
        "default_variant": "off",
        "percentage": 12.5,
        "weights": [{"variant": "on", "weight": 1}, {"variant": "off", "weight": 3}],
        "rules": [{"attribute": "tier", "op": "in", "values": ["premium"], "variant": "on"}]
    })
}

#[test]
fn bad_definitions_are_refused_with_400() {
    let stack = Stack::start();
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut with = |field: &str, value: Value, code: &'static str| {
        let mut v = good();
        v[field] = value;
        cases.push((v, code));
    };
    with("default_variant", json!("maybe"), "invalid_flag");
    with("percentage", json!(101), "invalid_flag");
    with("percentage", json!(-0.5), "invalid_flag");
    with(
        "weights",
        json!([{"variant": "nope", "weight": 1}]),
        "invalid_flag",
    );
    with(
        "weights",
        json!([{"variant": "on", "weight": 0}]),
        "invalid_flag",
    );
    with(
        "weights",
        json!([{"variant": "on", "weight": -1}]),
        "invalid_request",
    );
    with("variants", json!({}), "invalid_flag");
    with(
        "rules",
        json!([{"attribute": "tier", "op": "in", "values": ["x"]}]),
        "invalid_flag",
    );
    with(
        "rules",
        json!([{"attribute": "tier", "op": "like", "values": ["x"], "variant": "on"}]),
        "invalid_request",
    );
    with("colour", json!("red"), "invalid_request");
    with("key", json!("other-key"), "invalid_flag");
    for (body, code) in cases {
        let r = stack.api.put("/v1/flags/checkout", stack.admin(), &body);
        assert_eq!(r.status, 400, "{body} -> {}", r.body);
        assert_eq!(r.code(), code, "{body} -> {}", r.body);
    }
    let r = stack.api.put("/v1/flags/bad%20key", stack.admin(), &good());
    assert_eq!(r.status, 400);
    // Nothing was written.
    let all = stack.api.get("/v1/flags", stack.admin()).ok();
    assert_eq!(all, json!({"version": 0, "flags": []}));
}

#[test]
fn changes_bump_the_version_and_the_snapshot_answers_304_when_current() {
    let stack = Stack::start();
    let snap = stack.api.get("/v1/flags/snapshot", stack.plugin());
    assert_eq!(snap.status, 200);
    assert_eq!(snap.body["version"], 0);

    let r = stack
        .api
        .put("/v1/flags/checkout", stack.admin(), &good())
        .ok();
    assert_eq!(r, json!({"key": "checkout", "version": 1, "changed": true}));
    let flag = stack.api.get("/v1/flags/checkout", stack.admin()).ok();
    assert_eq!(flag["key"], "checkout");
    assert_eq!(flag["enabled"], true);
    assert_eq!(flag["percentage"], 12.5);

    let snap = stack.api.get("/v1/flags/snapshot", stack.plugin());
    assert_eq!(snap.status, 200);
    assert_eq!(snap.body["version"], 1);
    assert_eq!(snap.header("etag"), Some("\"1\""));
    assert_eq!(snap.body["flags"][0]["key"], "checkout");

    let not_modified = stack.api.send(
        "GET",
        "/v1/flags/snapshot",
        stack.plugin(),
        &[("if-none-match", "\"1\"")],
        None,
    );
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some("\"1\""));
    let not_modified = stack
        .api
        .get("/v1/flags/snapshot?version=1", stack.plugin());
    assert_eq!(not_modified.status, 304);

    let mut v2 = good();
    v2["enabled"] = json!(false);
    let r = stack.api.put("/v1/flags/checkout", stack.admin(), &v2).ok();
    assert_eq!(r["version"], 2);
    let stale = stack.api.send(
        "GET",
        "/v1/flags/snapshot",
        stack.plugin(),
        &[("if-none-match", "\"1\"")],
        None,
    );
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body["flags"][0]["enabled"], false);

    let r = stack.api.delete("/v1/flags/checkout", stack.admin()).ok();
    assert_eq!(r["version"], 3);
    let r = stack.api.delete("/v1/flags/checkout", stack.admin());
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");
    let r = stack.api.get("/v1/flags/checkout", stack.admin());
    assert_eq!(r.status, 404);

    // Import several at once; replace drops the rest.
    stack
        .api
        .put("/v1/flags/keep-me-not", stack.admin(), &good())
        .ok();
    let mut a = good();
    a["key"] = json!("a");
    let mut b = good();
    b["key"] = json!("b");
    let snap = stack
        .api
        .post(
            "/v1/flags/import",
            stack.admin(),
            &json!({"flags": [a, b], "replace": true}),
        )
        .ok();
    let keys: Vec<&str> = snap["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(snap["version"], 5);
    let mut dup = good();
    dup["key"] = json!("a");
    let r = stack.api.post(
        "/v1/flags/import",
        stack.admin(),
        &json!({"flags": [dup.clone(), dup]}),
    );
    assert_eq!(r.status, 400);

    let audit = stack.api.get("/v1/audit?since=0", stack.admin()).ok();
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "flag.updated",
            "flag.updated",
            "flag.deleted",
            "flag.updated",
            "flag.imported"
        ]
    );
}
