//! Benchmarks of the rate-limit plugin, not timed tests (ignored by default):
//!
//! ```text
//! scripts/build && cargo test -p meshguard-harness --test ratelimit_bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! `accuracy`: 64 concurrent clients (`wrk`) for `MESHGUARD_BENCH_SECS`
//! (default 30) against one key: admitted vs what the buckets allow, for
//! `exact`, `hybrid` (two Envoys sharing one state service) and `local`.
//! `overhead`: Envoy CPU µs per request with the plugin in `local` and
//! `hybrid` mode vs bare Envoy, same run, Envoy and `wrk` on separate cores.

mod ratelimit_support;
mod state_support;

use meshguard_harness::bench::load::wrk;
use meshguard_harness::bench::measure::{cpu_nanos, pin};
use meshguard_harness::paths;
use meshguard_harness::{Envoy, EnvoySpec, Plugin};
use ratelimit_support::{spec, CostUpstream};
use serde_json::{json, Value};
use state_support::Stack;
use std::io::Write;
use std::time::Instant;

const PER_MINUTE: u64 = 3_000;
const BURST: u64 = 100;

fn seconds() -> u64 {
    std::env::var("MESHGUARD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

fn limits() -> Value {
    json!({
        "default_tier": "bench",
        "tiers": {
            "bench": {"per_minute": PER_MINUTE, "per_hour": 10_000_000, "burst": BURST},
            "unlimited": {"per_minute": 60_000_000, "per_hour": 3_600_000_000u64}
        }
    })
}

fn stack() -> (Stack, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(limits().to_string().as_bytes()).unwrap();
    let path = file.path().to_string_lossy().into_owned();
    (Stack::start_with(None, &["--limits-file", &path]), file)
}

fn config(mode: &str, secret: &str) -> Value {
    let mut config = limits();
    config["mode"] = json!(mode);
    config["state"] = json!({"secret": secret, "timeout_ms": 1000});
    config["hybrid"] = json!({"lease_tokens": 25, "refresh_ms": 200});
    config
}

fn headers(tier: &str) -> Vec<String> {
    vec![
        format!("x-auth-sub: bench-{tier}"),
        format!("x-auth-tier: {tier}"),
    ]
}

/// Runs `wrk` against every Envoy at once, splitting 64 connections.
fn hammer(envoys: &[Envoy], secs: u64) -> (u64, u64, f64) {
    let started = Instant::now();
    let per = 64 / envoys.len() as u32;
    let runs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = envoys
            .iter()
            .map(|e| {
                let url = format!("http://127.0.0.1:{}/api/data/x", e.port);
                scope.spawn(move || wrk(1, &url, per, secs, &headers("bench")))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let requests: u64 = runs.iter().map(|r| r.requests).sum();
    let refused: u64 = runs.iter().map(|r| r.errors).sum();
    (requests - refused, requests, elapsed)
}

#[test]
#[ignore]
fn accuracy() {
    let secs = seconds();
    let upstream = CostUpstream::start();
    let mut rows = Vec::new();
    for (mode, replicas) in [("exact", 1), ("hybrid", 2), ("local", 1)] {
        let (stack, _limits) = stack();
        let envoys: Vec<Envoy> = (0..replicas)
            .map(|_| {
                Envoy::start(spec(
                    config(mode, &stack.service.plugin_secret),
                    upstream.port,
                    Some(stack.service.port),
                ))
            })
            .collect();
        let (admitted, requests, elapsed) = hammer(&envoys, secs);
        let allowed = BURST as f64 + elapsed * PER_MINUTE as f64 / 60.0;
        let fallbacks: u64 = envoys
            .iter()
            .map(|e| e.plugin_stat("ratelimit.bench.fallbacks"))
            .sum();
        rows.push(format!(
            "{mode:>6} x{replicas}: {requests:>7} requests, admitted {admitted:>6}, allowed {allowed:>8.0} ({:+.2}%), fallbacks {fallbacks}",
            (admitted as f64 / allowed - 1.0) * 100.0
        ));
    }
    println!("\nrate-limit accuracy, 64 clients, {secs} s, {PER_MINUTE}/min burst {BURST}:");
    for row in rows {
        println!("  {row}");
    }
}

#[test]
#[ignore]
fn overhead() {
    let secs = seconds().min(15);
    let upstream = CostUpstream::start();
    let (stack, _limits) = stack();
    let mut rows = Vec::new();
    let mut bare_us = 0.0;
    let bare = || {
        EnvoySpec::new()
            .cluster("upstream", upstream.port)
            .route("/api/", "upstream")
    };
    let noop_built = paths::built_plugins()
        .iter()
        .any(|p| p.ends_with("meshguard_noop.wasm"));
    let secret = stack.service.plugin_secret.clone();
    let variant = |mode: &str, extra: Value| {
        let mut config = config(mode, &secret);
        for (k, v) in extra.as_object().into_iter().flatten() {
            config[k] = v.clone();
        }
        Some(config)
    };
    let modes = [
        ("bare", None),
        ("noop", None),
        ("local (shared)", variant("local", json!({}))),
        (
            "local (worker)",
            variant("local", json!({"local_buckets": "worker"})),
        ),
        (
            "local, no headers",
            variant("local", json!({"ratelimit_headers": false})),
        ),
        ("hybrid", variant("hybrid", json!({}))),
    ];
    for (mode, plugin_config) in modes {
        let envoy = match (mode, plugin_config) {
            ("bare", _) => Envoy::start(bare()),
            // A filter that does nothing: the fixed cost of any Wasm filter.
            ("noop", _) if noop_built => Envoy::start(bare().plugin(Plugin::new("noop", None))),
            (_, None) => continue,
            (_, Some(config)) => {
                Envoy::start(spec(config, upstream.port, Some(stack.service.port)))
            }
        };
        pin(envoy.pid(), 0);
        let url = format!("http://127.0.0.1:{}/api/data/x", envoy.port);
        wrk(1, &url, 8, 2, &headers("unlimited"));
        let before = cpu_nanos(envoy.pid());
        let run = wrk(1, &url, 8, secs, &headers("unlimited"));
        let used = cpu_nanos(envoy.pid()) - before;
        let us = used as f64 / 1_000.0 / run.requests.max(1) as f64;
        if mode == "bare" {
            bare_us = us;
        }
        rows.push(format!(
            "{mode:>18}: {:>8.0} req/s, {us:>6.1} µs Envoy CPU per request ({:+.1} µs), {} non-2xx",
            run.per_second,
            us - bare_us,
            run.errors
        ));
    }
    println!("\nrate-limit overhead ({secs} s per mode):");
    for row in rows {
        println!("  {row}");
    }
}
