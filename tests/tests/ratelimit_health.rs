//! Health probes through the shipped stack are never rate-limited nor
//! charged (`exempt_paths`, `/healthz` by default): a load balancer probing
//! the proxy many times a minute never sees 429, and a user probing with a
//! token keeps every token of their bucket.

use meshguard_harness::mesh::{Mesh, MeshOptions};
use meshguard_harness::{Request, Response};
use serde_json::json;

/// `r` of the `minute` item of a `RateLimit` header.
fn minute_remaining(response: &Response) -> Option<u64> {
    let header = response.header("ratelimit")?;
    let item = header
        .split(',')
        .map(str::trim)
        .find(|item| item.starts_with("\"minute\""))?;
    item.split(';')
        .find_map(|p| p.trim().strip_prefix("r="))?
        .parse()
        .ok()
}

#[test]
fn fifty_health_probes_are_never_limited_nor_charged() {
    let mesh = Mesh::start(MeshOptions::for_test());
    let token = mesh.mint_token("probe-user", "free", json!({}));
    let authorized = Request::get("/healthz").header("authorization", &format!("Bearer {token}"));
    // A free tier holds 10 requests a minute: 50 probes, anonymous and as
    // the user, are five times that.
    for i in 0..50 {
        let probe = if i % 2 == 0 {
            Request::get("/healthz")
        } else {
            authorized.clone()
        };
        let response = mesh.send(&probe);
        assert_eq!(response.status, 200, "probe {i}: {}", response.text());
        assert_eq!(response.header("ratelimit"), None, "probe {i} was counted");
        assert_eq!(response.header("retry-after"), None, "probe {i}");
    }
    // The exemption ignores the query string, and so does Envoy's health
    // answer (with the cache on, too).
    for _ in 0..12 {
        let with_query = mesh.send(&Request::get("/healthz?from=lb"));
        assert_eq!(with_query.status, 200, "{}", with_query.text());
        assert_eq!(with_query.header("ratelimit"), None);
    }
    // The user's bucket is untouched: their first request finds it full.
    let response = mesh.get_as("/api/data/", &token);
    assert_ne!(response.status, 429, "{}", response.text());
    assert_eq!(
        minute_remaining(&response),
        Some(9),
        "{:?}\n{}",
        response.headers,
        response.text()
    );
}
