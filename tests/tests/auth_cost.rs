//! Envoy CPU per request with meshguard_auth.wasm, against bare Envoy:
//! a cached token and full verification per algorithm (cache off). A
//! measurement, not a check: `cargo test -p meshguard-harness --test
//! auth_cost -- --ignored --nocapture` (numbers from a shared machine are
//! indicative; `scripts/bench` is the controlled figure).

mod auth_support;

use auth_support::*;
use meshguard_harness::upstream::RecordingServer;
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request};
use serde_json::json;

const REQUESTS: u32 = 2000;

/// utime + stime of a process, in microseconds.
fn cpu_us(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks * 10_000
}

fn per_request_us(envoy: &Envoy, request: &Request) -> f64 {
    for _ in 0..100 {
        assert_eq!(envoy.send(request).status, 200);
    }
    let before = cpu_us(envoy.pid());
    for _ in 0..REQUESTS {
        envoy.send(request);
    }
    (cpu_us(envoy.pid()) - before) as f64 / f64::from(REQUESTS)
}

fn envoy(plugin: Option<Plugin>, echo: &RecordingServer) -> Envoy {
    let mut spec = EnvoySpec::new()
        .cluster("echo", echo.port)
        .route("/api/", "echo");
    if let Some(p) = plugin {
        spec = spec.plugin(p);
    }
    Envoy::start(spec)
}

#[test]
#[ignore]
fn envoy_cpu_per_request() {
    let echo = RecordingServer::start(|_| (200, b"{}".to_vec()));
    let bare = per_request_us(&envoy(None, &echo), &Request::get("/api/x"));
    println!("bare Envoy: {bare:.0} µs/request");
    let cached = envoy(Some(Plugin::new("auth", Some(config(json!({}))))), &echo);
    for alg in ALGORITHMS {
        let token = mint(alg, Some(kid_for(alg)), &claims("bench"));
        let request = Request::get("/api/x").header("authorization", &format!("Bearer {token}"));
        let us = per_request_us(&cached, &request);
        println!("{alg:?} cached: {us:.0} µs/request (+{:.0})", us - bare);
    }
    let uncached = envoy(
        Some(Plugin::new(
            "auth",
            Some(config(json!({"cache_max_entries": 0}))),
        )),
        &echo,
    );
    for alg in ALGORITHMS {
        let token = mint(alg, Some(kid_for(alg)), &claims("bench"));
        let request = Request::get("/api/x").header("authorization", &format!("Bearer {token}"));
        let us = per_request_us(&uncached, &request);
        println!(
            "{alg:?} verified every time: {us:.0} µs/request (+{:.0})",
            us - bare
        );
    }
}
