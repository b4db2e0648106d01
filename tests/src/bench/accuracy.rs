//! Rate-limit accuracy per mode: 64 connections hammer one key for a few
//! seconds; requests admitted vs what the bucket allows (burst + rate ×
//! elapsed). `exact` and `hybrid` share one meshguard-state; `hybrid` runs
//! two Envoys against it, `local` one Envoy with one worker.

use crate::bench::load::wrk;
use crate::envoy::{Envoy, EnvoySpec, Plugin};
use crate::redis::Redis;
use crate::state::{StateOptions, StateService};
use serde_json::{json, Value};
use std::time::Instant;

pub const PER_MINUTE: u64 = 3_000;
pub const BURST: u64 = 100;
const CONNECTIONS: u32 = 64;

pub struct Accuracy {
    pub mode: &'static str,
    pub envoys: usize,
    pub requests: u64,
    pub admitted: u64,
    pub allowed: f64,
    /// Mode-specific health: fallbacks to local buckets (state unreachable or slow).
    pub fallbacks: u64,
}

fn limits() -> Value {
    json!({
        "default_tier": "bench",
        "tiers": {"bench": {"per_minute": PER_MINUTE, "per_hour": 100_000_000u64, "burst": BURST}},
    })
}

fn config(mode: &str, secret: &str) -> Value {
    let mut config = limits();
    config["mode"] = json!(mode);
    config["global"] = Value::Null;
    config["state"] = json!({"secret": secret, "timeout_ms": 1000});
    config["hybrid"] = json!({"lease_tokens": 25, "refresh_ms": 200});
    // The load requests /healthz, exempt by default: here it is limited.
    config["exempt_paths"] = json!([]);
    config
}

/// One run per mode; `core` is where `wrk` runs.
pub fn measure(seconds: u64, core: usize) -> Vec<Accuracy> {
    let dir = tempfile::tempdir().expect("temp dir for the limits file");
    let limits_file = dir.path().join("limits.json");
    std::fs::write(&limits_file, limits().to_string()).expect("write limits");
    let headers = vec![
        "x-auth-sub: bench-accuracy".to_string(),
        "x-auth-tier: bench".to_string(),
    ];
    let mut rows = vec![];
    for (mode, replicas) in [("local", 1usize), ("exact", 1), ("hybrid", 2)] {
        eprintln!("bench accuracy: {mode} × {replicas}");
        let redis = Redis::start();
        let state = StateService::start_with(
            &redis.url(),
            StateOptions {
                args: vec![
                    "--limits-file".into(),
                    limits_file.to_string_lossy().into_owned(),
                ],
                ..StateOptions::default()
            },
        );
        let envoys: Vec<Envoy> = (0..replicas)
            .map(|_| {
                Envoy::start(
                    EnvoySpec::new()
                        .plugin(Plugin::new(
                            "ratelimit",
                            Some(config(mode, &state.plugin_secret)),
                        ))
                        .cluster("meshguard_state", state.port),
                )
            })
            .collect();
        let started = Instant::now();
        let runs: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = envoys
                .iter()
                .map(|e| {
                    let url = format!("http://127.0.0.1:{}/healthz", e.port);
                    let headers = &headers;
                    let per = CONNECTIONS / replicas as u32;
                    scope.spawn(move || wrk(core, &url, per, seconds, headers))
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let elapsed = started.elapsed().as_secs_f64();
        let requests: u64 = runs.iter().map(|r| r.requests).sum();
        let refused: u64 = runs.iter().map(|r| r.errors).sum();
        rows.push(Accuracy {
            mode,
            envoys: replicas,
            requests,
            admitted: requests - refused.min(requests),
            allowed: BURST as f64 + elapsed * PER_MINUTE as f64 / 60.0,
            fallbacks: envoys
                .iter()
                .map(|e| e.plugin_stat("ratelimit.bench.fallbacks"))
                .sum(),
        });
    }
    rows
}
