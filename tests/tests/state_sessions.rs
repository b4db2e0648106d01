//! Sessions: the per-user maximum with eviction revoked through the feed,
//! impossible travel, ending sessions, and the per-user key index.

mod state_support;

use serde_json::{json, Value};
use state_support::Stack;

const BERLIN: (f64, f64) = (52.52, 13.405);
const POTSDAM: (f64, f64) = (52.3906, 13.0645);
const NEW_YORK: (f64, f64) = (40.7128, -74.006);

fn login(stack: &Stack, user: &str, sid: &str, geo: Option<(f64, f64)>) -> Value {
    let mut body = json!({
        "user": user,
        "session_id": sid,
        "device_id": format!("dev-{sid}"),
        "user_agent": "test-agent/1.0",
        "ip": "192.0.2.7"
    });
    if let Some((lat, lon)) = geo {
        body["geo"] = json!({"lat": lat, "lon": lon});
    }
    stack.api.post("/v1/sessions", stack.admin(), &body).ok()
}

fn activity(stack: &Stack, user: &str, sid: &str, geo: (f64, f64)) -> Value {
    stack
        .api
        .post(
            "/v1/sessions/activity",
            stack.plugin(),
            &json!({"user": user, "session_id": sid, "geo": {"lat": geo.0, "lon": geo.1}}),
        )
        .ok()
}

fn session_revocations(stack: &Stack) -> Vec<Value> {
    let page = stack
        .api
        .get("/v1/revocations/feed?since=0-0", stack.plugin())
        .ok();
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "session")
        .cloned()
        .collect()
}

#[test]
fn the_sixth_login_evicts_the_oldest_and_revokes_it() {
    let stack = Stack::start();
    for i in 1..=5 {
        let r = login(&stack, "alice", &format!("s{i}"), None);
        assert_eq!(r["evicted"], json!([]), "login {i}");
        assert_eq!(r["session"]["device_id"], format!("dev-s{i}"));
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    let r = login(&stack, "alice", "s6", None);
    assert_eq!(r["evicted"], json!(["s1"]));

    let list = stack.api.get("/v1/sessions/alice", stack.admin()).ok();
    assert_eq!(list["max_sessions"], 5);
    let sids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["s2", "s3", "s4", "s5", "s6"]);

    let revoked = session_revocations(&stack);
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["sub"], "alice");
    assert_eq!(revoked[0]["session_id"], "s1");
    let snapshot = stack
        .api
        .get("/v1/revocations/feed?since=0", stack.plugin())
        .ok();
    assert_eq!(snapshot["sessions"][0]["session_id"], "s1");

    // The evicted session is no longer live for the plugin.
    let r = stack
        .api
        .post(
            "/v1/sessions/activity",
            stack.plugin(),
            &json!({"user": "alice", "session_id": "s1"}),
        )
        .ok();
    assert_eq!(r["active"], false);

    let audit = stack
        .api
        .get("/v1/audit?since=0&limit=1000", stack.admin())
        .ok();
    let evictions: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "session.evicted")
        .collect();
    assert_eq!(evictions.len(), 1);
    assert_eq!(evictions[0]["details"]["session_id"], "s1");
}

#[test]
fn the_maximum_is_configurable() {
    let stack = Stack::start_with(None, &["--max-sessions", "2"]);
    login(&stack, "bob", "a", None);
    login(&stack, "bob", "b", None);
    let r = login(&stack, "bob", "c", None);
    assert_eq!(r["evicted"], json!(["a"]));
}

#[test]
fn impossible_travel_is_detected_on_login_and_activity() {
    let stack = Stack::start();
    let r = login(&stack, "carol", "berlin", Some(BERLIN));
    assert!(r.get("suspicious").is_none(), "{r}");
    // A nearby login is fine.
    let r = login(&stack, "carol", "potsdam", Some(POTSDAM));
    assert!(r.get("suspicious").is_none(), "{r}");
    // New York moments later is not.
    let r = login(&stack, "carol", "newyork", Some(NEW_YORK));
    let s = &r["suspicious"];
    assert_eq!(s["kind"], "impossible_travel", "{r}");
    assert_eq!(s["session_id"], "newyork");
    assert_eq!(s["previous_session_id"], "potsdam");
    assert!(s["speed_kmh"].as_f64().unwrap() > 900.0);
    let d = s["distance_km"].as_f64().unwrap();
    assert!((6_300.0..6_450.0).contains(&d), "{d}");
    assert_eq!(s["session_ended"], false);

    // Activity from Berlin on the Berlin session right after New York.
    let r = activity(&stack, "carol", "berlin", BERLIN);
    assert_eq!(r["active"], true);
    assert_eq!(r["suspicious"]["kind"], "impossible_travel");
    assert_eq!(r["suspicious"]["previous_session_id"], "newyork");

    let audit = stack
        .api
        .get("/v1/audit?since=0&limit=1000", stack.admin())
        .ok();
    let suspicious = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "suspicious.impossible_travel")
        .count();
    assert_eq!(suspicious, 2);
    let metrics = stack.api.get("/metrics", state_support::As::Nobody);
    assert!(metrics
        .body
        .as_str()
        .unwrap()
        .contains("meshguard_state_suspicious_events_total 2"));
}

#[test]
fn impossible_travel_can_end_the_session() {
    let stack = Stack::start_with(None, &["--travel-end-session", "--travel-max-kmh", "500"]);
    login(&stack, "dave", "home", Some(BERLIN));
    login(&stack, "dave", "away", Some(POTSDAM));
    let r = activity(&stack, "dave", "away", NEW_YORK);
    assert_eq!(r["active"], false);
    assert_eq!(r["suspicious"]["session_ended"], true);
    let revoked = session_revocations(&stack);
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["session_id"], "away");
    let list = stack.api.get("/v1/sessions/dave", stack.admin()).ok();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
}

#[test]
fn ending_a_session_revokes_it_and_the_index_lists_the_users_keys() {
    let stack = Stack::start();
    login(&stack, "erin", "one", Some(BERLIN));
    login(&stack, "erin", "two", None);
    let r = stack
        .api
        .delete("/v1/sessions/erin/one", stack.admin())
        .ok();
    assert_eq!(r["ended"], true);
    let r = stack
        .api
        .delete("/v1/sessions/erin/one", stack.admin())
        .ok();
    assert_eq!(r["ended"], false);
    let revoked = session_revocations(&stack);
    assert_eq!(revoked[0]["session_id"], "one");
    let r = stack
        .api
        .post(
            "/v1/sessions/activity",
            stack.plugin(),
            &json!({"user": "erin", "session_id": "two", "ip": "198.51.100.1"}),
        )
        .ok();
    assert_eq!(r["active"], true);
    let list = stack.api.get("/v1/sessions/erin", stack.admin()).ok();
    assert_eq!(list["sessions"][0]["ip"], "198.51.100.1");

    stack
        .api
        .post(
            "/v1/ratelimit/check",
            stack.plugin(),
            // The rate limiter's key for the subject (meshguard_api::keys).
            &json!({"key": "sub:erin"}),
        )
        .ok();
    let index = stack.api.get("/v1/users/erin/index", stack.admin()).ok();
    let keys: Vec<&str> = index["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for want in [
        "mg:{u:sub:erin}:sessions",
        "mg:{u:sub:erin}:session-records",
        "mg:{u:sub:erin}:last-location",
        "mg:{u:sub:erin}:rl:minute",
        "mg:{u:sub:erin}:rl:hour",
        "mg:{rev}:sessions#erin\none",
    ] {
        assert!(keys.contains(&want), "{want} missing from {keys:?}");
    }
    // Bad input is refused.
    let r = stack.api.post(
        "/v1/sessions",
        stack.admin(),
        &json!({"user": "erin", "session_id": "x", "geo": {"lat": 91.0, "lon": 0.0}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "invalid_request");
}
