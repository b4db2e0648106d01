//! meshguard-state rate limiting against a real Redis: multi-bucket GCRA
//! decisions, exact under concurrency, with cost, burst, a shared global
//! limit, shadow mode and quota leases.

mod state_support;

use serde_json::{json, Value};
use state_support::{As, Stack};
use std::sync::Arc;
use std::time::Instant;

fn limits(global: Value) -> Value {
    json!({
        "default_tier": "free",
        "tiers": {
            "free": {"per_minute": 10, "per_hour": 100},
            "premium": {"per_minute": 50, "per_hour": 1000},
            "hourly": {"per_minute": 60, "per_hour": 7},
            "bursty": {"per_minute": 10, "per_hour": 1000, "burst": 4},
            "roomy": {"per_minute": 1000, "per_hour": 100000}
        },
        "global": global,
        "costs": [{"prefix": "/api/ml/", "cost": 3}]
    })
}

fn check(stack: &Stack, body: Value) -> Value {
    stack
        .api
        .post("/v1/ratelimit/check", stack.plugin(), &body)
        .ok()
}

fn bucket<'a>(reply: &'a Value, name: &str) -> &'a Value {
    reply["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no bucket {name} in {reply}"))
}

#[test]
fn decisions_are_exact_under_64_concurrent_callers() {
    let stack = Arc::new(Stack::start_with(
        Some(limits(json!({"tokens": 100000, "per_seconds": 1}))),
        &[],
    ));
    let started = Instant::now();
    let cases = [
        ("hot-free", "free"),
        ("hot-premium", "premium"),
        ("hot-hourly", "hourly"),
    ];
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let stack = Arc::clone(&stack);
            std::thread::spawn(move || {
                let mut admitted = [0u64; 3];
                for _ in 0..3 {
                    for (i, (key, tier)) in cases.iter().enumerate() {
                        let r = check(&stack, json!({"key": key, "tier": tier}));
                        if r["allowed"] == true {
                            admitted[i] += 1;
                        }
                    }
                }
                admitted
            })
        })
        .collect();
    let mut totals = [0u64; 3];
    for h in handles {
        let a = h.join().unwrap();
        for i in 0..3 {
            totals[i] += a[i];
        }
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    // Never more than the burst plus what refilled while the test ran.
    assert!(
        totals[0] >= 10 && totals[0] <= 10 + elapsed_ms / 6_000,
        "free admitted {}",
        totals[0]
    );
    assert!(
        totals[1] >= 50 && totals[1] <= 50 + elapsed_ms / 1_200,
        "premium admitted {}",
        totals[1]
    );
    // The hour bucket (7/h) binds long before the minute bucket (60/min).
    assert_eq!(totals[2], 7, "hourly admitted");
    // All-or-nothing: the refusals by the hour bucket took nothing from the minute bucket.
    let r = check(&stack, json!({"key": "hot-hourly", "tier": "hourly"}));
    assert_eq!(r["allowed"], false);
    assert_eq!(bucket(&r, "hour")["allowed"], false);
    assert_eq!(bucket(&r, "minute")["allowed"], true);
    assert!(
        bucket(&r, "minute")["remaining"].as_u64().unwrap() >= 53,
        "{r}"
    );
}

#[test]
fn buckets_report_what_the_ratelimit_headers_need() {
    let stack = Stack::start_with(
        Some(limits(json!({"tokens": 100000, "per_seconds": 1}))),
        &[],
    );
    let r = check(&stack, json!({"key": "alice"}));
    assert_eq!(r["allowed"], true);
    assert_eq!(r["limited"], false);
    assert_eq!(r["tier"], "free");
    assert_eq!(r["cost"], 1);
    assert_eq!(r["retry_after_ms"], 0);
    let minute = bucket(&r, "minute");
    assert_eq!(minute["limit"], 10);
    assert_eq!(minute["window_ms"], 60_000);
    assert_eq!(minute["remaining"], 9);
    let reset = minute["reset_ms"].as_u64().unwrap();
    assert!((5_900..=6_000).contains(&reset), "reset {reset}");
    let hour = bucket(&r, "hour");
    assert_eq!(hour["limit"], 100);
    assert_eq!(hour["remaining"], 99);
    assert_eq!(bucket(&r, "global")["limit"], 100000);
    for _ in 0..9 {
        assert_eq!(check(&stack, json!({"key": "alice"}))["allowed"], true);
    }
    let r = check(&stack, json!({"key": "alice"}));
    assert_eq!(r["allowed"], false);
    assert_eq!(r["limited"], true);
    let retry = r["retry_after_ms"].as_u64().unwrap();
    assert!((5_000..=6_000).contains(&retry), "retry {retry}");
    assert_eq!(bucket(&r, "minute")["retry_after_ms"], retry);
    assert_eq!(bucket(&r, "hour")["allowed"], true);
    // Another key is untouched.
    assert_eq!(
        bucket(&check(&stack, json!({"key": "bob"})), "minute")["remaining"],
        9
    );
}

#[test]
fn cost_and_burst_are_honoured() {
    let stack = Stack::start_with(
        Some(limits(json!({"tokens": 100000, "per_seconds": 1}))),
        &[],
    );
    let r = check(&stack, json!({"key": "c", "tier": "bursty", "cost": 3}));
    assert_eq!(r["allowed"], true);
    assert_eq!(bucket(&r, "minute")["remaining"], 1, "burst 4 - cost 3");
    let r = check(&stack, json!({"key": "c", "tier": "bursty", "cost": 2}));
    assert_eq!(r["allowed"], false);
    assert_eq!(
        bucket(&r, "minute")["remaining"],
        1,
        "a refusal takes nothing"
    );
    let r = check(&stack, json!({"key": "c", "tier": "bursty", "cost": 1}));
    assert_eq!(r["allowed"], true);
    // A cost above the burst can never pass.
    let r = check(&stack, json!({"key": "c2", "tier": "bursty", "cost": 5}));
    assert_eq!(r["allowed"], false);
    assert_eq!(r["retry_after_ms"], u64::MAX);
    // Route-prefix cost when the request names none.
    let r = check(&stack, json!({"key": "c3", "path": "/api/ml/predict"}));
    assert_eq!(r["cost"], 3);
    assert_eq!(bucket(&r, "minute")["remaining"], 7);
    let r = check(&stack, json!({"key": "c3", "path": "/api/nlp/x"}));
    assert_eq!(r["cost"], 1);
    assert_eq!(bucket(&r, "minute")["remaining"], 6);
}

#[test]
fn the_global_limit_is_shared_across_keys() {
    let stack = Stack::start_with(Some(limits(json!({"tokens": 20, "per_seconds": 60}))), &[]);
    let mut admitted = 0;
    for i in 0..30 {
        let r = check(&stack, json!({"key": format!("k{i}"), "tier": "roomy"}));
        if r["allowed"] == true {
            admitted += 1;
        } else {
            assert_eq!(bucket(&r, "global")["allowed"], false);
            assert_eq!(bucket(&r, "minute")["allowed"], true);
            assert_eq!(
                bucket(&r, "minute")["remaining"],
                1000,
                "refused keys keep their tokens"
            );
        }
    }
    assert_eq!(admitted, 20);
}

#[test]
fn shadow_mode_decides_and_counts_but_never_denies() {
    let stack = Stack::start_with(
        Some(limits(json!({"tokens": 100000, "per_seconds": 1}))),
        &[],
    );
    for i in 0..12 {
        let r = check(&stack, json!({"key": "shady", "shadow": true}));
        assert_eq!(r["allowed"], true, "shadow request {i}");
        assert_eq!(r["shadow"], true);
        assert_eq!(r["limited"], i >= 10, "request {i}: {r}");
    }
    // The shadow requests were counted: the bucket is empty for enforcement too.
    let r = check(&stack, json!({"key": "shady"}));
    assert_eq!(r["allowed"], false);
    let metrics = stack.api.get("/metrics", As::Nobody);
    let text = metrics.body.as_str().unwrap().to_string();
    assert!(
        text.contains("meshguard_state_ratelimit_decisions_total{decision=\"shadow_limited\"} 2"),
        "{text}"
    );
}

#[test]
fn leases_take_a_slice_and_give_back_what_was_not_used() {
    let stack = Stack::start_with(
        Some(limits(json!({"tokens": 100000, "per_seconds": 1}))),
        &[],
    );
    let lease = stack
        .api
        .post(
            "/v1/ratelimit/lease",
            stack.plugin(),
            &json!({"key": "l", "tokens": 8}),
        )
        .ok();
    assert_eq!(lease["granted"], 8);
    assert_eq!(bucket(&lease, "minute")["remaining"], 2);
    // Only what is left can be leased next.
    let second = stack
        .api
        .post(
            "/v1/ratelimit/lease",
            stack.plugin(),
            &json!({"key": "l", "tokens": 8}),
        )
        .ok();
    assert_eq!(second["granted"], 2);
    let usage = stack
        .api
        .post(
            "/v1/ratelimit/usage",
            stack.plugin(),
            &json!({"key": "l", "lease_id": lease["lease_id"], "used": 3}),
        )
        .ok();
    assert_eq!(usage, json!({"refunded": 5, "settled": true}));
    let r = check(&stack, json!({"key": "l"}));
    assert_eq!(bucket(&r, "minute")["remaining"], 4);
    // A lease settles once.
    let again = stack
        .api
        .post(
            "/v1/ratelimit/usage",
            stack.plugin(),
            &json!({"key": "l", "lease_id": lease["lease_id"], "used": 0}),
        )
        .ok();
    assert_eq!(again, json!({"refunded": 0, "settled": false}));
}

#[test]
fn bad_requests_get_json_errors_with_stable_codes() {
    let stack = Stack::start();
    let api = &stack.api;
    let cases: Vec<(Option<&str>, &[u8], u16, &str)> = vec![
        (
            None,
            br#"{"key": "a", "tier": "gold"}"#,
            400,
            "unknown_tier",
        ),
        (
            None,
            br#"{"key": "a", "colour": "red"}"#,
            400,
            "invalid_request",
        ),
        (None, br#"{"tier": "free"}"#, 400, "invalid_request"),
        (None, br#"{"key": "a{b}"}"#, 400, "invalid_request"),
        (None, br#"{"key": "a", "cost": 0}"#, 400, "invalid_request"),
        (None, br#"{"key": "#, 400, "invalid_json"),
        (
            Some("text/plain"),
            br#"{"key": "a"}"#,
            415,
            "unsupported_media_type",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        let r = api.send(
            "POST",
            "/v1/ratelimit/check",
            stack.plugin(),
            &headers,
            Some(body),
        );
        assert_eq!(
            r.status,
            status,
            "{}: {}",
            String::from_utf8_lossy(body),
            r.body
        );
        assert_eq!(r.code(), code, "{}", r.body);
        assert!(r.body["error"]["message"].is_string());
    }
    let big = format!(r#"{{"key": "{}"}}"#, "x".repeat(100 * 1024));
    let r = api.send(
        "POST",
        "/v1/ratelimit/check",
        stack.plugin(),
        &[],
        Some(big.as_bytes()),
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.code(), "body_too_large");
}
