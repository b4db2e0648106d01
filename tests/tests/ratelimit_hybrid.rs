//! The rate-limit plugin in `hybrid` mode: quota leased from a real
//! meshguard-state (real Redis), spent in Envoy without a round trip,
//! reported back on the tick; over-admission across two Envoys measured.

mod ratelimit_support;
mod state_support;

use meshguard_harness::ports::free_port;
use meshguard_harness::{Envoy, Request};
use ratelimit_support::{
    as_user, assert_limited, count, remaining, spec, start, statuses, CostUpstream,
};
use serde_json::{json, Value};
use state_support::Stack;
use std::io::Write;
use std::time::{Duration, Instant};

fn limits() -> Value {
    json!({
        "default_tier": "free",
        "tiers": {
            "free": {"per_minute": 10, "per_hour": 100},
            "busy": {"per_minute": 60, "per_hour": 10000}
        },
        "global": {"tokens": 10000, "per_seconds": 1}
    })
}

fn stack() -> (Stack, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(limits().to_string().as_bytes()).unwrap();
    let path = file.path().to_string_lossy().into_owned();
    (Stack::start_with(None, &["--limits-file", &path]), file)
}

fn config(secret: &str, lease_tokens: u64) -> Value {
    let mut config = limits();
    config["mode"] = json!("hybrid");
    config["state"] = json!({"secret": secret, "timeout_ms": 1000});
    config["hybrid"] = json!({"lease_tokens": lease_tokens, "refresh_ms": 100});
    config
}

fn wait_for(envoy: &Envoy, stat: &str, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let value = envoy.plugin_stat(stat);
        if value >= at_least || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn leased_quota_is_spent_locally_and_unused_tokens_go_back() {
    let (stack, _limits) = stack();
    let upstream = CostUpstream::start();
    let envoy = start(
        config(&stack.service.plugin_secret, 4),
        upstream.port,
        Some(stack.service.port),
    );

    // Leases of 4 tokens (a quarter of busy's 60 would allow 15).
    let ivy = as_user("/api/data/rows", "ivy", "busy");
    assert_eq!(count(&statuses(&envoy, &ivy, 20), 200), 20);
    let taken = envoy.plugin_stat("ratelimit.leases_taken");
    assert!(
        taken <= 10,
        "about one lease per 4 requests, not one per request: {taken}"
    );

    // Free holds 10: leases of 2 (a quarter), the 11th in a minute is refused.
    let ivo = as_user("/api/data/rows", "ivo", "free");
    let got = statuses(&envoy, &ivo, 11);
    assert_eq!(count(&got[..10], 200), 10, "{got:?}");
    assert_eq!(got[10], 429, "{got:?}");
    let refused = envoy.send(&ivo);
    assert_limited(&refused, "minute");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=6).contains(&retry), "{retry}");

    // One request of a 2-token lease, then idle: 1 token goes back to Redis.
    let jay = as_user("/api/data/rows", "jay", "free");
    let response = envoy.send(&jay);
    assert_eq!(response.status, 200);
    assert_eq!(
        remaining(&response, "minute"),
        Some(9),
        "6 in Redis + 3 in the lease"
    );
    assert!(wait_for(&envoy, "ratelimit.lease_tokens_refunded", 3) >= 3);
    let peek = stack
        .api
        .post(
            "/v1/ratelimit/check",
            stack.plugin(),
            &json!({"key": "sub:jay", "tier": "free", "cost": 1}),
        )
        .ok();
    assert_eq!(
        peek["buckets"][0]["remaining"], 8,
        "9 back in Redis, one taken by this check"
    );
    assert_eq!(envoy.plugin_stat("ratelimit.free.fallbacks"), 0);
}

/// 8 clients on two Envoys that share one state service hammer one key:
/// what they admit never exceeds what the buckets allow over the run.
#[test]
fn two_envoys_sharing_the_state_service_stay_within_the_limit() {
    let (stack, _limits) = stack();
    let upstream = CostUpstream::start();
    let envoys: Vec<Envoy> = (0..2)
        .map(|_| {
            Envoy::start(spec(
                config(&stack.service.plugin_secret, 5),
                upstream.port,
                Some(stack.service.port),
            ))
        })
        .collect();
    let started = Instant::now();
    let admitted: usize = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..8)
            .map(|i| {
                let envoy = &envoys[i % 2];
                scope.spawn(move || {
                    let request = as_user("/api/data/rows", "kim", "busy");
                    (0..25)
                        .filter(|_| envoy.send(&request).status == 200)
                        .count()
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).sum()
    });
    let elapsed = started.elapsed();
    // busy: 60 at once, one more per second.
    let allowed = 60 + elapsed.as_secs_f64() as usize + 1;
    let over = admitted as f64 / allowed as f64 - 1.0;
    println!(
        "hybrid, 2 envoys x 4 clients, 200 requests in {elapsed:?}: admitted {admitted}, allowed {allowed} ({:+.1}%)",
        over * 100.0
    );
    assert!(admitted <= allowed, "over-admitted: {admitted} > {allowed}");
    assert!(
        admitted >= 40,
        "tokens parked in leases are bounded: {admitted}"
    );
    for envoy in &envoys {
        assert_eq!(envoy.plugin_stat("ratelimit.busy.fallbacks"), 0);
        let got = statuses(envoy, &Request::get("/api/data/anonymous"), 1);
        assert_eq!(got, [200], "anonymous requests have their own bucket");
    }
}

#[test]
fn without_the_state_service_hybrid_falls_back_to_local_buckets() {
    let upstream = CostUpstream::start();
    let mut config = config("unused-secret-0123456789", 5);
    config["state"]["timeout_ms"] = json!(200);
    let envoy = start(config, upstream.port, Some(free_port()));
    let got = statuses(&envoy, &as_user("/api/data/rows", "lou", "free"), 12);
    assert_eq!(count(&got, 200), 10, "{got:?}");
    assert_eq!(count(&got, 429), 2, "{got:?}");
    assert_eq!(envoy.plugin_stat("ratelimit.free.fallbacks"), 12);
    assert_eq!(envoy.plugin_stat("ratelimit.free.backend_failures"), 3);
}
