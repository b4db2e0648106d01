//! The report: its heading (when, on what, with which Envoy and build)
//! and where it is written (`bench/results/latest.md`, and `latest.json`
//! for the chart when the plugin figure ran).

use super::options::Options;
use super::variants::{ENVOY_CORE, LOAD_CORE};
use crate::paths::workspace_root;
use serde_json::{json, Value};
use std::path::Path;

/// The report's title and the conditions every figure shares.
pub fn heading(options: &Options) -> String {
    let profile = std::env::var("MESHGUARD_PROFILE").unwrap_or_else(|_| "debug".into());
    let mut report = format!(
        "# Meshguard benchmarks\n\n{} on {}; Envoy {} with one worker pinned to core {ENVOY_CORE}, \
         load on core {LOAD_CORE}; {} rounds of {} s, medians (min–max); services built with the \
         `{profile}` profile.\n\n",
        now_utc(),
        machine(),
        envoy_version(),
        options.rounds,
        options.seconds
    );
    if profile != "release" {
        report.push_str("**Not a release build of the services: run scripts/bench.**\n\n");
    }
    report
}

/// The chart's data, before the figures add theirs.
pub fn figures_json() -> Value {
    json!({"date": now_utc(), "machine": machine()})
}

/// Prints the report and writes it (and the chart's data, when a figure
/// added some) under `bench/results`.
pub fn save(report: &str, figures: &Value) {
    println!("{report}");
    let dir = workspace_root().join("bench/results");
    let _ = std::fs::create_dir_all(&dir);
    write(&dir.join("latest.md"), report.as_bytes());
    if figures.get("plugins").is_some() {
        write(&dir.join("latest.json"), figures.to_string().as_bytes());
    }
}

pub fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn envoy_version() -> String {
    std::process::Command::new(crate::paths::envoy_binary())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let (_, version) = text.split_once("version: ")?;
            version.split('/').nth(1).map(str::to_string)
        })
        .unwrap_or_else(|| "(unknown version)".into())
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu})")
}

fn write(path: &Path, bytes: &[u8]) {
    match std::fs::write(path, bytes) {
        Ok(()) => eprintln!("bench: written to {}", path.display()),
        Err(e) => eprintln!("bench: cannot write {}: {e}", path.display()),
    }
}
