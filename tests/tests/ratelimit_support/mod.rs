//! Shared by the `ratelimit_*` integration tests: an upstream that reports a
//! request's real cost, Envoy with the rate-limit plugin, request helpers.

#![allow(dead_code)]

use meshguard_harness::ports::free_port;
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request, Response};
use serde_json::Value;
use std::sync::Arc;

/// Answers 200 `{}`; echoes the request's `x-test-cost` header back as
/// `x-meshguard-cost`, as an ML upstream reporting tokens used would.
pub struct CostUpstream {
    pub port: u16,
    server: Arc<tiny_http::Server>,
}

impl CostUpstream {
    pub fn start() -> CostUpstream {
        let port = free_port();
        let server = Arc::new(
            tiny_http::Server::http(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("upstream on {port}: {e}")),
        );
        let serving = server.clone();
        std::thread::spawn(move || {
            for request in serving.incoming_requests() {
                let cost = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("x-test-cost"))
                    .map(|h| h.value.to_string());
                let mut response = tiny_http::Response::from_data(b"{}".to_vec()).with_header(
                    tiny_http::Header::from_bytes("content-type", "application/json").unwrap(),
                );
                if let Some(cost) = cost {
                    response = response.with_header(
                        tiny_http::Header::from_bytes("x-meshguard-cost", cost.as_bytes()).unwrap(),
                    );
                }
                let _ = request.respond(response);
            }
        });
        CostUpstream { port, server }
    }
}

impl Drop for CostUpstream {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// Envoy with the rate-limit plugin in front of `upstream` on `/api/`, and
/// the `meshguard_state` cluster when a state port is given.
pub fn spec(config: Value, upstream: u16, state: Option<u16>) -> EnvoySpec {
    let mut spec = EnvoySpec::new()
        .plugin(Plugin::new("ratelimit", Some(config)))
        .cluster("upstream", upstream)
        .route("/api/", "upstream");
    if let Some(port) = state {
        spec = spec.cluster("meshguard_state", port);
    }
    spec
}

pub fn start(config: Value, upstream: u16, state: Option<u16>) -> Envoy {
    Envoy::start(spec(config, upstream, state))
}

/// A request as the auth plugin would pass it on for `sub` in `tier`.
pub fn as_user(path: &str, sub: &str, tier: &str) -> Request {
    Request::get(path)
        .header("x-auth-sub", sub)
        .header("x-auth-tier", tier)
}

/// Sends `n` requests and returns their statuses.
pub fn statuses(envoy: &Envoy, request: &Request, n: usize) -> Vec<u16> {
    (0..n).map(|_| envoy.send(request).status).collect()
}

/// How many of the statuses are `status`.
pub fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// Checks a 429: problem+json body, Retry-After in whole seconds, and the
/// IETF headers naming the refusing bucket. Returns Retry-After.
#[track_caller]
pub fn assert_limited(response: &Response, bucket: &str) -> u64 {
    assert_eq!(response.status, 429, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    let retry: u64 = response
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .expect("retry-after in seconds");
    let body = response.json();
    assert_eq!(body["status"], 429);
    assert_eq!(body["title"], "Too Many Requests");
    assert_eq!(body["retry_after"], retry);
    assert!(
        body["limited_by"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b == bucket),
        "{body}"
    );
    let ratelimit = response.header("ratelimit").expect("ratelimit header");
    assert!(
        ratelimit
            .split(", ")
            .any(|item| item.starts_with(&format!("\"{bucket}\";r="))),
        "{ratelimit}"
    );
    // Retry-After is never earlier than any refusing bucket's `t`.
    for item in ratelimit.split(", ") {
        let t: u64 = item
            .rsplit(";t=")
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("t in {item}"));
        assert!(t <= retry, "{ratelimit} vs Retry-After {retry}");
    }
    assert!(response.header("ratelimit-policy").is_some());
    retry
}

/// The `r` of a bucket in a `RateLimit` header.
pub fn remaining(response: &Response, bucket: &str) -> Option<u64> {
    let header = response.header("ratelimit")?;
    header.split(", ").find_map(|item| {
        let rest = item.strip_prefix(&format!("\"{bucket}\";r="))?;
        rest.split(';').next()?.parse().ok()
    })
}
