//! The rate-limit plugin in `local` mode through a real Envoy: tiers, IETF
//! headers, route costs, the global limit, shadow mode, identity, and costs
//! known only after the response.

mod ratelimit_support;

use meshguard_harness::envoy::assert_configs_refused;
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request};
use ratelimit_support::{as_user, assert_limited, count, remaining, start, statuses, CostUpstream};
use serde_json::json;

#[test]
fn free_users_eleventh_request_in_a_minute_is_refused_and_premium_differs() {
    let upstream = CostUpstream::start();
    let envoy = start(json!({}), upstream.port, None);

    let alice = as_user("/api/data/rows", "alice", "free");
    for i in 0..10 {
        let response = envoy.send(&alice);
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
        assert_eq!(
            response.header("ratelimit-policy"),
            Some(r#""minute";q=10;w=60, "hour";q=100;w=3600, "global";q=10000;w=1"#)
        );
        assert_eq!(remaining(&response, "minute"), Some(9 - i));
        assert_eq!(remaining(&response, "hour"), Some(99 - i));
    }
    let refused = envoy.send(&alice);
    let retry = assert_limited(&refused, "minute");
    // One token comes back every 6 s.
    assert!((1..=6).contains(&retry), "Retry-After {retry}");
    assert_eq!(refused.json()["tier"], "free");
    assert_eq!(
        refused.header("ratelimit").map(|h| h.split(", ").count()),
        Some(1),
        "only the refusing bucket is listed"
    );

    let bob = as_user("/api/data/rows", "bob", "premium");
    let got = statuses(&envoy, &bob, 51);
    assert_eq!(count(&got[..50], 200), 50, "{got:?}");
    assert_eq!(got[50], 429);
    // A tier the plugin does not know counts as the default tier.
    let carol = as_user("/api/data/rows", "carol", "platinum");
    assert_eq!(count(&statuses(&envoy, &carol, 11), 429), 1);

    assert_eq!(envoy.plugin_stat("ratelimit.free.allowed"), 20);
    assert_eq!(envoy.plugin_stat("ratelimit.free.denied"), 2);
    assert_eq!(envoy.plugin_stat("ratelimit.premium.allowed"), 50);
    assert_eq!(envoy.plugin_stat("ratelimit.premium.denied"), 1);
}

#[test]
fn route_cost_spends_several_tokens_and_the_global_limit_trips_across_users() {
    let upstream = CostUpstream::start();
    let config = json!({
        "costs": [{"prefix": "/api/ml/", "cost": 4}],
        "global": {"tokens": 12, "per_seconds": 60},
    });
    let envoy = start(config, upstream.port, None);

    let ml = as_user("/api/ml/predict", "dana", "free");
    let first = envoy.send(&ml);
    assert_eq!(first.status, 200);
    assert_eq!(remaining(&first, "minute"), Some(6));
    assert_eq!(envoy.send(&ml).status, 200);
    // 2 tokens left; the next ML call costs 4.
    let refused = envoy.send(&ml);
    assert_limited(&refused, "minute");
    assert_eq!(refused.json()["cost"], 4);
    // A cheap route still fits in the 2 left... until the global bucket (12 tokens) runs dry.
    let cheap = as_user("/api/data/x", "dana", "free");
    assert_eq!(envoy.send(&cheap).status, 200);

    // 9 of 12 global tokens are spent: three users get one each, the fourth trips it.
    for user in ["u1", "u2", "u3"] {
        assert_eq!(
            envoy.send(&as_user("/api/data/x", user, "premium")).status,
            200
        );
    }
    let refused = envoy.send(&as_user("/api/data/x", "u4", "premium"));
    assert_limited(&refused, "global");
    assert_eq!(refused.json()["limited_by"], json!(["global"]));
}

#[test]
fn shadow_mode_never_denies_but_counts() {
    let upstream = CostUpstream::start();
    let envoy = start(json!({"shadow": true}), upstream.port, None);
    let erin = as_user("/api/data/rows", "erin", "free");
    let got = statuses(&envoy, &erin, 15);
    assert_eq!(count(&got, 200), 15, "{got:?}");
    assert_eq!(envoy.plugin_stat("ratelimit.free.allowed"), 10);
    assert_eq!(envoy.plugin_stat("ratelimit.free.shadow_denied"), 5);
    assert_eq!(envoy.plugin_stat("ratelimit.free.denied"), 0);
}

#[test]
fn anonymous_requests_are_keyed_on_the_client_address() {
    let upstream = CostUpstream::start();
    let config = json!({
        "identity": {"trust_auth_headers": false, "trusted_hops": 1},
        "tiers": {"free": {"per_minute": 10, "per_hour": 100}, "anon": {"per_minute": 3, "per_hour": 10}},
        "anonymous_tier": "anon",
    });
    let envoy = start(config, upstream.port, None);
    // Identity headers a client sends itself are not trusted here: it stays anonymous.
    let spoofed = as_user("/api/x", "admin", "admin");
    let got = statuses(&envoy, &spoofed, 4);
    assert_eq!(got, [200, 200, 200, 429]);
    assert_eq!(envoy.send(&spoofed).json()["tier"], "anon");
    // The trusted proxy's x-forwarded-for entry is the client: another bucket.
    let forwarded = Request::get("/api/x").header("x-forwarded-for", "6.6.6.6, 198.51.100.7");
    assert_eq!(statuses(&envoy, &forwarded, 3), [200, 200, 200]);
    assert_eq!(envoy.send(&forwarded).status, 429);
    // The client's own entry in front of it changes nothing.
    let other = Request::get("/api/x").header("x-forwarded-for", "1.2.3.4, 198.51.100.7");
    assert_eq!(envoy.send(&other).status, 429);
    assert_eq!(envoy.plugin_stat("ratelimit.anon.denied"), 4);
}

#[test]
fn a_limiter_keyed_on_the_peer_alone_ignores_every_client_header() {
    let upstream = CostUpstream::start();
    // No identity headers, costs or proxies: the plugin reads no request
    // header, only the peer address.
    let config = json!({
        "identity": {"trust_auth_headers": false},
        "tiers": {"anon": {"per_minute": 3, "per_hour": 10}},
        "default_tier": "anon",
    });
    let envoy = start(config, upstream.port, None);
    let requests = [
        as_user("/api/x", "admin", "admin"),
        Request::get("/api/y").header("x-forwarded-for", "6.6.6.6"),
        Request::get("/api/ml/z"),
    ];
    for request in &requests {
        assert_eq!(envoy.send(request).status, 200);
    }
    // Every request came from the same peer: one bucket, now empty.
    for request in &requests {
        let refused = envoy.send(request);
        assert_limited(&refused, "minute");
        assert_eq!(refused.json()["tier"], "anon");
        assert_eq!(refused.json()["cost"], 1);
    }
    assert_eq!(envoy.plugin_stat("ratelimit.anon.allowed"), 3);
    assert_eq!(envoy.plugin_stat("ratelimit.anon.denied"), 3);
}

#[test]
fn real_cost_from_the_response_is_charged_after_it() {
    let upstream = CostUpstream::start();
    let config = json!({"response_cost_header": "x-meshguard-cost"});
    let envoy = start(config, upstream.port, None);
    // Charged 1 up front, 7 in truth: 6 more after the response.
    let expensive = as_user("/api/ml/generate", "fay", "free").header("x-test-cost", "7");
    let response = envoy.send(&expensive);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("x-meshguard-cost"),
        None,
        "the cost header stays internal"
    );
    let cheap = as_user("/api/ml/generate", "fay", "free");
    let response = envoy.send(&cheap);
    assert_eq!(remaining(&response, "minute"), Some(2));
    assert_eq!(statuses(&envoy, &cheap, 2), [200, 200]);
    assert_limited(&envoy.send(&cheap), "minute");
    assert_eq!(envoy.plugin_stat("ratelimit.cost_charged"), 6);
}

#[test]
fn a_response_cheaper_than_charged_gives_the_difference_back() {
    let upstream = CostUpstream::start();
    let config = json!({"response_cost_header": "x-meshguard-cost", "costs": [{"prefix": "/api/ml/", "cost": 5}]});
    let envoy = start(config, upstream.port, None);
    let refunded = as_user("/api/ml/generate", "gus", "free").header("x-test-cost", "1");
    for _ in 0..3 {
        assert_eq!(envoy.send(&refunded).status, 200);
    }
    let response = envoy.send(&as_user("/api/data/x", "gus", "free"));
    assert_eq!(remaining(&response, "minute"), Some(6));
    assert_eq!(envoy.plugin_stat("ratelimit.cost_refunded"), 12);
    let bogus = as_user("/api/data/x", "gus", "free").header("x-test-cost", "lots");
    assert_eq!(envoy.send(&bogus).status, 200);
    assert_eq!(envoy.plugin_stat("ratelimit.cost_header_invalid"), 1);
}

#[test]
fn headers_can_be_turned_off() {
    let upstream = CostUpstream::start();
    let envoy = start(json!({"ratelimit_headers": false}), upstream.port, None);
    let response = envoy.send(&as_user("/api/x", "hal", "free"));
    assert_eq!(response.status, 200);
    assert_eq!(response.header("ratelimit"), None);
    assert_eq!(response.header("ratelimit-policy"), None);
}

#[test]
fn malformed_configuration_is_refused_naming_the_field() {
    let cases = [
        (
            r#"{"mode": "fast"}"#,
            "field `mode`: unknown variant `fast`",
        ),
        (
            r#"{"default_tier": "gold"}"#,
            "field `default_tier`: is not one of `tiers`",
        ),
        (
            r#"{"tiers": {"free": {"per_minute": 0, "per_hour": 5}}}"#,
            "field `tiers.free`",
        ),
        (
            r#"{"costs": [{"prefix": "/api/ml/", "cost": 0}]}"#,
            "field `costs[0].cost`: must be from 1 to 1000000",
        ),
        (
            r#"{"state": {"timeout_ms": 0}}"#,
            "field `state.timeout_ms`",
        ),
        (r#"{"shadwo": true}"#, "unknown field `shadwo`"),
        (r#"{"mode": "local""#, "invalid configuration"),
    ];
    assert_configs_refused("ratelimit", &cases);
}

#[test]
fn starts_with_defaults_without_configuration() {
    let envoy = Envoy::start(EnvoySpec::new().plugin(Plugin::new("ratelimit", None)));
    // No route but /healthz: the ten the plugin lets through get Envoy's 404.
    let got = statuses(&envoy, &Request::get("/elsewhere"), 11);
    assert_eq!(
        count(&got, 404),
        10,
        "anonymous: the free tier by peer address"
    );
    assert_eq!(got[10], 429);
    // Health probes are exempt by default, however limited the prober is.
    assert_eq!(statuses(&envoy, &Request::get("/healthz"), 20), [200; 20]);
    assert_eq!(envoy.plugin_stat("ratelimit.free.denied"), 1);
}

/// Header values of the kinds an HTTP/1 parser lets through: visible ASCII,
/// spaces, tabs, obs-text; some very long.
fn odd_values(n: usize) -> Vec<Vec<u8>> {
    let mut state: u64 = 0x9e37_79b9;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<u8> = (0x20..0x7f).chain(0x80..=0xff).chain([b'\t']).collect();
    (0..n)
        .map(|i| {
            let len = if i % 7 == 0 {
                3000
            } else {
                (next() % 80) as usize
            };
            (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        })
        .collect()
}

#[test]
fn odd_identity_bytes_get_valid_responses_and_never_kill_the_vm() {
    let upstream = CostUpstream::start();
    // Envoy answers /healthz itself: only the plugin sees these bytes (with
    // no exempt path, so that it reads them).
    let config = json!({"identity": {"trusted_hops": 2}, "response_cost_header": "x-meshguard-cost",
        "exempt_paths": []});
    let envoy = start(config, upstream.port, None);
    for (i, value) in odd_values(300).iter().enumerate() {
        let name = ["x-auth-sub", "x-auth-tier", "x-forwarded-for"][i % 3];
        let request = Request::get("/healthz")
            .header_bytes(name, value)
            .header_bytes("x-forwarded-for", value);
        let response = envoy.send(&request);
        assert!(
            [200, 400, 429].contains(&response.status),
            "status {} for {name}: {value:?}",
            response.status
        );
    }
    // Cost headers from the upstream that are not a token count.
    for cost in ["-5", "1e9", "99999999999999999999", "1000001", "x", " "] {
        let request = as_user("/api/data/x", "odd-costs", "premium").header("x-test-cost", cost);
        assert_eq!(envoy.send(&request).status, 200, "cost {cost:?}");
    }
    assert_eq!(envoy.plugin_stat("ratelimit.cost_header_invalid"), 6);
    let response = envoy.send(&as_user("/api/data/x", "still-alive", "free"));
    assert_eq!(response.status, 200);
    assert!(response.header("ratelimit").is_some(), "the VM is alive");
    let reloads: u64 = envoy
        .stats()
        .iter()
        .filter(|(k, _)| k.starts_with("wasm.") && k.contains("vm_reload"))
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(reloads, 0);
    assert!(!envoy.log().contains("panicked"), "{}", envoy.log());
}

/// With two workers, shared buckets hold one limit per Envoy; per-worker
/// buckets (`local_buckets: worker`) one per worker.
#[test]
fn shared_buckets_limit_per_envoy_across_workers() {
    let upstream = CostUpstream::start();
    let mut spec = ratelimit_support::spec(json!({}), upstream.port, None);
    spec.concurrency = 2;
    let envoy = Envoy::start(spec);
    let users: Vec<Request> = (0..4)
        .map(|i| as_user("/api/data/x", &format!("w{i}"), "free"))
        .collect();
    // Many fresh connections: the kernel spreads them over both workers.
    let seen: Vec<Vec<u16>> = std::thread::scope(|scope| {
        let clients: Vec<_> = users
            .iter()
            .map(|user| {
                let envoy = &envoy;
                scope.spawn(move || statuses(envoy, user, 15))
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    // Admitted is anything but a 429: on a loaded machine the test upstream
    // has been seen to let an admitted request time out (504).
    let admitted: usize = seen.iter().map(|s| s.len() - count(s, 429)).sum();
    assert_eq!(admitted, 40, "10 per user per Envoy: {seen:?}");
    assert_eq!(envoy.plugin_stat("ratelimit.free.allowed"), 40);
    assert_eq!(envoy.plugin_stat("ratelimit.free.denied"), 20);
}

/// A tier whose hour bucket (64 tokens, one more every 56 s) is the binding
/// one: a worker takes up to 4 tokens ahead (a sixteenth of the burst).
fn batched_tier() -> serde_json::Value {
    json!({
        "tiers": {"free": {"per_minute": 100_000, "per_hour": 64}},
        "global": null,
    })
}

/// Shared buckets are taken in batches: one shared-data write serves
/// several requests, and the headers read as if every request had been
/// taken alone.
#[test]
fn shared_buckets_are_taken_in_batches_with_exact_headers() {
    let upstream = CostUpstream::start();
    let envoy = start(batched_tier(), upstream.port, None);
    let user = as_user("/api/data/x", "batched", "free");
    for i in 0..64u64 {
        let response = envoy.send(&user);
        assert_eq!(response.status, 200, "request {i}");
        assert_eq!(remaining(&response, "hour"), Some(63 - i), "request {i}");
    }
    assert_limited(&envoy.send(&user), "hour");
    // The slot's first take is the request's alone; then 1 + 4 tokens per
    // take: 12 takes serve 60 requests, a 14th the last 3.
    assert_eq!(envoy.plugin_stat("ratelimit.shared_takes"), 14);
}

/// The global bucket is taken in batches too (one reserve per worker, for
/// every key): its `r` counts down one by one across users, exactly as
/// without batches.
#[test]
fn the_global_bucket_is_taken_in_batches_across_users() {
    let upstream = CostUpstream::start();
    let config = json!({
        "tiers": {"free": {"per_minute": 100_000, "per_hour": 100_000}},
        "global": {"tokens": 64, "per_seconds": 3600},
    });
    let envoy = start(config, upstream.port, None);
    let users: Vec<Request> = (0..3)
        .map(|i| as_user("/api/data/x", &format!("g{i}"), "free"))
        .collect();
    for i in 0..64u64 {
        let response = envoy.send(&users[i as usize % 3]);
        assert_eq!(response.status, 200, "request {i}");
        assert_eq!(remaining(&response, "global"), Some(63 - i), "request {i}");
    }
    let refused = envoy.send(&users[0]);
    assert_limited(&refused, "global");
    assert_eq!(refused.json()["limited_by"], json!(["global"]));
    assert_eq!(envoy.plugin_stat("ratelimit.free.allowed"), 64);
    assert_eq!(envoy.plugin_stat("ratelimit.free.denied"), 1);
}

/// A cost settled after the response reaches a key whose tokens a worker
/// took ahead: the next request's headers include it, in both directions.
#[test]
fn charges_after_the_response_settle_with_batched_buckets() {
    let upstream = CostUpstream::start();
    let mut config = batched_tier();
    config["response_cost_header"] = json!("x-meshguard-cost");
    let envoy = start(config, upstream.port, None);
    let user = as_user("/api/data/x", "batched-cost", "free");
    assert_eq!(remaining(&envoy.send(&user), "hour"), Some(63));
    // Charged 1 up front, 6 in truth: 5 more after the response.
    let response = envoy.send(&user.clone().header("x-test-cost", "6"));
    assert_eq!(remaining(&response, "hour"), Some(62));
    assert_eq!(remaining(&envoy.send(&user), "hour"), Some(56));
    // Charged 1, used 0: one back.
    envoy.send(&user.clone().header("x-test-cost", "0"));
    assert_eq!(remaining(&envoy.send(&user), "hour"), Some(55));
}

/// With two workers, a worker's unspent batch goes back to the shared
/// buckets once it expires: the Envoy never admits more than the limit, and
/// no token is lost.
#[test]
fn batches_never_exceed_the_limit_and_unspent_tokens_go_back() {
    let upstream = CostUpstream::start();
    let mut spec = ratelimit_support::spec(batched_tier(), upstream.port, None);
    spec.concurrency = 2;
    let envoy = Envoy::start(spec);
    let user = as_user("/api/data/x", "two-workers", "free");
    let send = |n: usize| -> Vec<u16> {
        std::thread::scope(|scope| {
            let clients: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| statuses(&envoy, &user, n)))
                .collect();
            clients
                .into_iter()
                .flat_map(|c| c.join().unwrap())
                .collect()
        })
    };
    // What the rate limiter admitted (an upstream hiccup must not count as a
    // refusal), once both workers have flushed their counters: on a loaded
    // machine a worker's tick can come later than one flush period.
    let admitted = || {
        let mut last = envoy.plugin_stat("ratelimit.free.allowed");
        for _ in 0..20 {
            let now = envoy.plugin_stat("ratelimit.free.allowed");
            if now == last {
                break;
            }
            last = now;
        }
        last
    };
    let got = send(25);
    let first = admitted();
    // Every request on a fresh connection; a worker may still hold up to 4
    // tokens it took ahead when the other one runs dry.
    assert!(
        (60..=64).contains(&first),
        "admitted {first} of 64: {got:?}"
    );
    let takes = envoy.plugin_stat("ratelimit.shared_takes");
    assert!(takes < 32, "{takes} shared takes for {first} requests");
    let stats = envoy.stats();
    for worker in ["worker_0", "worker_1"] {
        let connections: u64 = stats
            .iter()
            .filter(|(k, _)| k.contains(worker) && k.ends_with("downstream_cx_total"))
            .map(|(_, v)| *v)
            .sum();
        assert!(connections > 0, "{worker} served no connection");
    }

    // Reserves last 1 s and are checked every 250 ms. Every token unspent
    // at the end comes back (and more, if a slow moment let a reserve
    // expire mid-way and its tokens were taken again).
    let expire = || std::thread::sleep(std::time::Duration::from_millis(1600));
    expire();
    let returned = envoy.plugin_stat("ratelimit.reserve_tokens_returned");
    assert!(returned >= 64 - first, "{returned} returned: {got:?}");
    send(3);
    let second = admitted();
    assert!(second <= 64, "{second} admitted in all");
    // Once every reserve is back, one request sees what is left: nothing
    // taken ahead was lost.
    expire();
    let last = envoy.send(&user);
    let spent = admitted();
    assert_eq!(
        remaining(&last, "hour"),
        Some(64 - spent),
        "{first}, {second}"
    );
}
