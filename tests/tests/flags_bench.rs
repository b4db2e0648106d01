//! Envoy CPU per request with the eight seed flags evaluated vs bare Envoy,
//! in one run (alternating). Ignored by default: `cargo test -p
//! meshguard-harness --test flags_bench -- --ignored --nocapture` (needs `hey`).

use meshguard_harness::bench::measure::cpu_nanos;
use meshguard_harness::paths::workspace_root;
use meshguard_harness::{Envoy, EnvoySpec, Plugin};
use std::process::Command;

fn envoy(flags: bool) -> Envoy {
    let mut spec = EnvoySpec::new();
    if flags {
        let text =
            std::fs::read_to_string(workspace_root().join("envoy/local/flags.json")).unwrap();
        let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
        config["sync"] = serde_json::Value::Null;
        spec = spec.plugin(Plugin::new("flags", Some(config)));
    }
    Envoy::start(spec)
}

/// Envoy CPU µs per request over `n` requests to `/healthz`.
fn cpu_us_per_request(envoy: &Envoy, n: u32) -> f64 {
    let before = cpu_nanos(envoy.pid());
    let url = format!("http://127.0.0.1:{}/healthz", envoy.port);
    let status = Command::new("hey")
        .args(["-n", &n.to_string(), "-c", "8"])
        .args([
            "-H",
            "x-auth-sub: bench-user",
            "-H",
            "x-auth-tier: enterprise",
        ])
        .arg(&url)
        .output()
        .expect("hey");
    assert!(status.status.success());
    (cpu_nanos(envoy.pid()) - before) as f64 / 1000.0 / f64::from(n)
}

#[test]
#[ignore]
fn envoy_cpu_per_request_with_eight_flags_vs_bare() {
    let (bare, flags) = (envoy(false), envoy(true));
    let n = 20_000;
    cpu_us_per_request(&bare, 2000);
    cpu_us_per_request(&flags, 2000);
    let (mut b, mut f) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        b.push(cpu_us_per_request(&bare, n));
        f.push(cpu_us_per_request(&flags, n));
    }
    b.sort_by(f64::total_cmp);
    f.sort_by(f64::total_cmp);
    println!(
        "Envoy CPU µs/request (median of 3 × {n}): bare {:.1} ({:.1}–{:.1}), 8 flags {:.1} ({:.1}–{:.1}), +{:.1} µs",
        b[1], b[0], b[2], f[1], f[0], f[2], f[1] - b[1]
    );
    assert!(flags.plugin_stat("flags.requests") >= u64::from(3 * n));
}
