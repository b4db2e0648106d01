//! The rate-limit plugin in `exact` mode through a real Envoy, a real
//! meshguard-state and a real Redis: decisions are the service's, and when
//! the service is down, slow or back, requests keep flowing without a 5xx.

mod ratelimit_support;
mod state_support;

use meshguard_harness::ports::free_port;
use meshguard_harness::state::{StateOptions, StateService};
use meshguard_harness::Envoy;
use ratelimit_support::{as_user, assert_limited, count, remaining, start, statuses, CostUpstream};
use serde_json::{json, Value};
use state_support::Stack;
use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// The service's limits and the plugin's (its fallback) agree. The `tight`
/// hour bucket is as small as its minute one so it barely refills during a test.
fn limits() -> Value {
    json!({
        "default_tier": "free",
        "tiers": {
            "free": {"per_minute": 10, "per_hour": 100},
            "tight": {"per_minute": 10, "per_hour": 10},
            "premium": {"per_minute": 50, "per_hour": 1000}
        },
        "global": {"tokens": 40, "per_seconds": 60}
    })
}

fn limits_file() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(limits().to_string().as_bytes()).unwrap();
    file
}

fn plugin_config(secret: &str, extra: Value) -> Value {
    let mut config = limits();
    config["mode"] = json!("exact");
    config["costs"] = json!([{"prefix": "/api/ml/", "cost": 4}]);
    config["state"] = json!({"secret": secret, "timeout_ms": 1000});
    for (k, v) in extra.as_object().unwrap() {
        if k == "state" {
            for (sk, sv) in v.as_object().unwrap() {
                config["state"][sk] = sv.clone();
            }
        } else {
            config[k] = v.clone();
        }
    }
    config
}

fn check(stack: &Stack, key: &str, tier: &str) -> Value {
    stack
        .api
        .post(
            "/v1/ratelimit/check",
            stack.plugin(),
            &json!({"key": key, "tier": tier, "cost": 1}),
        )
        .ok()
}

#[test]
fn the_state_service_decides_tiers_costs_and_the_global_limit() {
    let limits = limits_file();
    let path = limits.path().to_string_lossy().into_owned();
    let stack = Stack::start_with(None, &["--limits-file", &path]);
    let upstream = CostUpstream::start();
    let config = plugin_config(&stack.service.plugin_secret, json!({}));
    let envoy = start(config, upstream.port, Some(stack.service.port));

    let alice = as_user("/api/data/rows", "alice", "free");
    let got = statuses(&envoy, &alice, 10);
    assert_eq!(count(&got, 200), 10, "{got:?}");
    let refused = envoy.send(&alice);
    let retry = assert_limited(&refused, "minute");
    assert!((1..=6).contains(&retry), "{retry}");
    // The bucket lives in Redis: the service itself refuses alice now.
    assert_eq!(check(&stack, "sub:alice", "free")["limited"], true);

    let bob = as_user("/api/ml/predict", "bob", "premium");
    let first = envoy.send(&bob);
    assert_eq!(first.status, 200);
    assert_eq!(remaining(&first, "minute"), Some(46), "an ML call costs 4");
    // 10 + 4 of the 40 global tokens are gone; premium's own buckets outlast them.
    let bob = as_user("/api/data/rows", "bob", "premium");
    let got = statuses(&envoy, &bob, 30);
    let limited_at = got
        .iter()
        .position(|s| *s == 429)
        .expect("global limit trips");
    assert!(limited_at >= 20, "{got:?}");
    let refused = envoy.send(&bob);
    assert_limited(&refused, "global");

    assert_eq!(envoy.plugin_stat("ratelimit.free.allowed"), 10);
    assert_eq!(envoy.plugin_stat("ratelimit.free.denied"), 1);
    assert_eq!(envoy.plugin_stat("ratelimit.free.fallbacks"), 0);
    assert_eq!(envoy.plugin_stat("ratelimit.premium.backend_failures"), 0);
}

#[test]
fn state_service_killed_mid_test_falls_back_and_exact_decisions_resume() {
    let limits = limits_file();
    let path = limits.path().to_string_lossy().into_owned();
    let mut stack = Stack::start_with(None, &["--limits-file", &path]);
    let upstream = CostUpstream::start();
    let extra =
        json!({"state": {"timeout_ms": 300, "failures_before_backoff": 3, "backoff_ms": 1000}});
    let config = plugin_config(&stack.service.plugin_secret, extra);
    let envoy = start(config, upstream.port, Some(stack.service.port));

    let carol = as_user("/api/data/rows", "carol", "tight");
    assert_eq!(count(&statuses(&envoy, &carol, 11), 429), 1);

    stack.service.stop();
    // Requests keep flowing on the local bucket at the configured limits.
    let got = statuses(&envoy, &carol, 14);
    assert!(got.iter().all(|s| *s == 200 || *s == 429), "{got:?}");
    assert_eq!(count(&got, 200), 10, "a fresh local bucket: {got:?}");
    let failures = envoy.plugin_stat("ratelimit.tight.backend_failures");
    assert!(
        (3..14).contains(&failures),
        "back-off stops calling: {failures}"
    );
    assert_eq!(envoy.plugin_stat("ratelimit.tight.fallbacks"), 14);

    stack.service = StateService::start_with(
        &stack.redis.url(),
        StateOptions {
            port: Some(stack.service.port),
            admin_token: Some(stack.service.admin_token.clone()),
            plugin_secret: Some(stack.service.plugin_secret.clone()),
            args: vec!["--limits-file".into(), path.clone()],
            ..StateOptions::default()
        },
    );
    // Past the back-off, the service decides again: Redis still holds
    // carol's empty hour bucket, and a new user is admitted by the service.
    let deadline = Instant::now() + Duration::from_secs(20);
    let fallbacks_before = loop {
        std::thread::sleep(Duration::from_millis(300));
        let before = envoy.plugin_stat("ratelimit.tight.fallbacks");
        let response = envoy.send(&as_user("/api/data/rows", "dan", "tight"));
        assert_eq!(response.status, 200);
        if envoy.plugin_stat("ratelimit.tight.fallbacks") == before {
            break before;
        }
        assert!(Instant::now() < deadline, "exact decisions never resumed");
    };
    let refused = envoy.send(&carol);
    assert_limited(&refused, "hour");
    assert_eq!(
        envoy.plugin_stat("ratelimit.tight.fallbacks"),
        fallbacks_before
    );
    assert_eq!(check(&stack, "sub:dan", "tight")["allowed"], true);
}

#[test]
fn a_hanging_state_service_costs_at_most_the_timeout_then_backs_off() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind(("127.0.0.1", free_port())).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let upstream = CostUpstream::start();
    let extra =
        json!({"state": {"timeout_ms": 50, "failures_before_backoff": 3, "backoff_ms": 60000}});
    let envoy = start(
        plugin_config("unused-secret-0123456789", extra),
        upstream.port,
        Some(port),
    );
    let erin = as_user("/api/data/rows", "erin", "free");
    let started = Instant::now();
    let got = statuses(&envoy, &erin, 12);
    let elapsed = started.elapsed();
    assert_eq!(count(&got, 200), 10, "{got:?}");
    assert_eq!(count(&got, 429), 2, "{got:?}");
    assert_eq!(envoy.plugin_stat("ratelimit.free.backend_failures"), 3);
    assert_eq!(envoy.plugin_stat("ratelimit.free.fallbacks"), 12);
    // Three timed-out calls, then none: far below one second per request.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn fail_closed_refuses_with_503_problem_when_the_service_is_down() {
    let upstream = CostUpstream::start();
    let closed_port = free_port();
    let extra = json!({"fail_closed": true, "state": {"timeout_ms": 200, "backoff_ms": 2000}});
    let envoy = start(
        plugin_config("unused-secret-0123456789", extra),
        upstream.port,
        Some(closed_port),
    );
    for _ in 0..5 {
        let response = envoy.send(&as_user("/api/data/rows", "gil", "free"));
        assert_eq!(response.status, 503, "{}", response.text());
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(response.header("retry-after"), Some("2"));
        assert_eq!(response.json()["status"], 503);
    }
    assert_eq!(envoy.plugin_stat("ratelimit.free.unavailable"), 5);
    assert_eq!(envoy.plugin_stat("ratelimit.free.allowed"), 0);
}

/// The minute bucket's remaining tokens at the service, spending none: a
/// one-token lease, settled unused at once.
fn peek_minute(stack: &Stack, key: &str, tier: &str) -> u64 {
    let peek = stack
        .api
        .post(
            "/v1/ratelimit/lease",
            stack.plugin(),
            &json!({"key": key, "tier": tier, "tokens": 1}),
        )
        .ok();
    stack.api.post(
        "/v1/ratelimit/usage",
        stack.plugin(),
        &json!({"key": key, "tier": tier, "lease_id": peek["lease_id"], "used": 0}),
    );
    peek["buckets"][0]["remaining"].as_u64().unwrap_or(0) + peek["granted"].as_u64().unwrap_or(0)
}

/// meshguard-state with the test limits, and Envoy with the plugin in
/// `exact` mode settling `x-meshguard-cost` in front of a cost-reporting
/// upstream; the third item keeps the limits file and upstream alive.
fn settling_costs() -> (Stack, Envoy, (tempfile::NamedTempFile, CostUpstream)) {
    let limits = limits_file();
    let path = limits.path().to_string_lossy().into_owned();
    let stack = Stack::start_with(None, &["--limits-file", &path]);
    let upstream = CostUpstream::start();
    let extra = json!({"response_cost_header": "x-meshguard-cost"});
    let config = plugin_config(&stack.service.plugin_secret, extra);
    let envoy = start(config, upstream.port, Some(stack.service.port));
    (stack, envoy, (limits, upstream))
}

/// Polls the free-tier minute bucket of `key` at the service until `done`
/// holds for its remaining tokens; fails after 10 s naming `what`.
fn wait_for_minute(stack: &Stack, key: &str, done: impl Fn(u64) -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(peek_minute(stack, key, "free")) {
        assert!(Instant::now() < deadline, "{what} never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn real_cost_from_the_response_is_charged_to_the_shared_buckets() {
    let (stack, envoy, _kept) = settling_costs();

    let expensive = as_user("/api/data/gen", "hana", "free").header("x-test-cost", "8");
    assert_eq!(envoy.send(&expensive).status, 200);
    assert_eq!(envoy.plugin_stat("ratelimit.cost_charged"), 7);
    // The extra 7 tokens reach the service on the next tick.
    wait_for_minute(&stack, "sub:hana", |left| left <= 2, "charge");
    let cheap = as_user("/api/data/x", "hana", "free");
    let got = statuses(&envoy, &cheap, 3);
    assert_eq!(got, [200, 200, 429]);
    assert_eq!(envoy.plugin_stat("ratelimit.charges_failed"), 0);
}

#[test]
fn a_response_cheaper_than_its_route_cost_gives_tokens_back_at_the_service() {
    let (stack, envoy, _kept) = settling_costs();

    // /api/ml/ costs 4 up front; the upstream reports it used 1.
    let ml = as_user("/api/ml/predict", "ivy", "free").header("x-test-cost", "1");
    assert_eq!(envoy.send(&ml).status, 200);
    assert_eq!(envoy.plugin_stat("ratelimit.cost_refunded"), 3);
    // The service took 4 of the 10; the 3 unused reach it on the next tick
    // (a refill alone would need over 10 s to bring the bucket back to 9).
    wait_for_minute(&stack, "sub:ivy", |left| left >= 9, "refund");
    // Free is 10 a minute: 9 left, where 6 would be without the refund.
    let got = statuses(&envoy, &as_user("/api/data/x", "ivy", "free"), 11);
    assert!(count(&got, 200) >= 9 && count(&got, 429) >= 1, "{got:?}");
    assert_eq!(envoy.plugin_stat("ratelimit.charges_failed"), 0);
}
