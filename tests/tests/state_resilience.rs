//! Redis stopped mid-run: fast 503s instead of hangs, recovery without a
//! restart of the service, and nothing acknowledged lost (AOF).

mod state_support;

use serde_json::json;
use state_support::{now_s, As, Stack};
use std::time::{Duration, Instant};

#[test]
fn redis_down_means_fast_503_and_it_recovers_by_itself() {
    let mut stack = Stack::start_with(None, &["--redis-timeout-ms", "300"]);
    let exp = now_s() + 3_600;
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let jti = format!("before-stop-{i}");
        stack
            .api
            .post(
                "/v1/revocations/token",
                stack.admin(),
                &json!({"iss": "i", "jti": jti, "exp": exp}),
            )
            .ok();
        acknowledged.push(jti);
    }
    for _ in 0..4 {
        stack
            .api
            .post(
                "/v1/ratelimit/check",
                stack.plugin(),
                &json!({"key": "durable"}),
            )
            .ok();
    }

    stack.redis.stop();

    let calls: Vec<(&str, &str, Option<serde_json::Value>)> = vec![
        (
            "POST",
            "/v1/ratelimit/check",
            Some(json!({"key": "durable"})),
        ),
        ("GET", "/v1/revocations/feed?since=0", None),
        ("GET", "/v1/flags/snapshot", None),
    ];
    for round in 0..3 {
        for (method, path, body) in &calls {
            let started = Instant::now();
            let body = body.as_ref().map(|b| b.to_string());
            let r = stack.api.send(
                method,
                path,
                stack.plugin(),
                &[],
                body.as_deref().map(str::as_bytes),
            );
            let took = started.elapsed();
            assert_eq!(r.status, 503, "round {round} {method} {path}: {}", r.body);
            assert_eq!(r.code(), "store_unavailable");
            assert_eq!(r.header("retry-after"), Some("1"));
            assert!(took < Duration::from_millis(1_500), "{path} took {took:?}");
        }
    }
    let r = stack.api.get("/readyz", As::Nobody);
    assert_eq!(r.status, 503);
    assert_eq!(stack.api.get("/healthz", As::Nobody).status, 200);

    stack.redis.restart();

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = stack.api.get("/readyz", As::Nobody);
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "not ready again: {}", r.body);
        std::thread::sleep(Duration::from_millis(100));
    }
    let snap = stack
        .api
        .get("/v1/revocations/feed?since=0", stack.plugin())
        .ok();
    let mut jtis: Vec<String> = snap["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["jti"].as_str().unwrap().to_string())
        .collect();
    jtis.sort();
    acknowledged.sort();
    assert_eq!(jtis, acknowledged);
    // The bucket state survived too: 4 of 10 spent before the stop.
    let r = stack
        .api
        .post(
            "/v1/ratelimit/check",
            stack.plugin(),
            &json!({"key": "durable"}),
        )
        .ok();
    assert_eq!(r["buckets"][0]["remaining"], 5, "{r}");
    let metrics = stack.api.get("/metrics", As::Nobody);
    assert!(!metrics
        .body
        .as_str()
        .unwrap()
        .contains("meshguard_state_redis_errors_total 0"));
}
