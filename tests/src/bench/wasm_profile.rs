//! Where a plugin's own Wasm time goes, by Rust function: the plugin runs
//! under Node's V8 (TurboFan only, as in Envoy) with a stand-in host
//! (`bench/wasm-profile/host.mjs`) replaying the benchmark's request, and
//! V8's sampling profiler attributes each sample to a function. The host's
//! own time is left out: what remains is what the plugin's code costs,
//! which Envoy's CPU figure cannot separate from the host calls.

use crate::paths::workspace_root;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;

/// The proxy-wasm callbacks a request goes through; samples outside them
/// (start-up, configuration) are not the request path.
const REQUEST_CALLBACKS: [&str; 7] = [
    "proxy_on_context_create",
    "proxy_on_request_headers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_log",
    "proxy_on_done",
    "proxy_on_delete",
];

/// Requests replayed before the measured ones; the profiler samples them
/// too, so the time per request is over both.
const WARM_UP_REQUESTS: u32 = 2_000;

pub struct WasmProfile {
    /// Wasm time per request, in µs (the stand-in host's time excluded).
    pub wasm_us_per_request: f64,
    /// Function (demangled) → share of the Wasm time, largest first.
    pub functions: Vec<(String, f64)>,
    /// `host calls per request: ...` as the stand-in host counted them.
    pub host_calls: String,
}

/// Profiles `wasm` (built with symbol names) configured with `config` over
/// `requests` requests carrying `token`.
pub fn profile(
    wasm: &Path,
    config: &str,
    token: &str,
    requests: u32,
) -> Result<WasmProfile, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let config_file = dir.path().join("config.json");
    std::fs::write(&config_file, config).map_err(|e| format!("write config: {e}"))?;
    let mut node = Command::new("node");
    node.args([
        "--no-liftoff",
        "--no-warnings",
        "--cpu-prof",
        "--cpu-prof-interval",
        "25",
    ])
    .arg("--cpu-prof-dir")
    .arg(dir.path());
    let output = run_stand_in_host(node, wasm, &config_file, token, requests, WARM_UP_REQUESTS)?;
    let profile_file = std::fs::read_dir(dir.path())
        .map_err(|e| format!("read profile dir: {e}"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "cpuprofile"))
        .ok_or("node wrote no .cpuprofile")?;
    let raw = std::fs::read(&profile_file).map_err(|e| format!("read profile: {e}"))?;
    let cpu: Value = serde_json::from_slice(&raw).map_err(|e| format!("parse profile: {e}"))?;
    let (total_us, by_function) = wasm_self_time(&cpu);
    let mut functions: Vec<(String, f64)> = by_function
        .into_iter()
        .map(|(name, us)| (demangle(&name), us / total_us.max(f64::MIN_POSITIVE)))
        .collect();
    functions.sort_by(|a, b| b.1.total_cmp(&a.1));
    let host_calls = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Ok(WasmProfile {
        wasm_us_per_request: total_us / f64::from(requests + WARM_UP_REQUESTS),
        functions,
        host_calls,
    })
}

/// Runs the stand-in host: `launcher` (Node with its options, or a tool
/// running Node) followed by the host script and its arguments.
pub(crate) fn run_stand_in_host(
    mut launcher: Command,
    wasm: &Path,
    config_file: &Path,
    token: &str,
    requests: u32,
    warm_up: u32,
) -> Result<std::process::Output, String> {
    let output = launcher
        .arg(workspace_root().join("bench/wasm-profile/host.mjs"))
        .arg(wasm)
        .arg(config_file)
        .arg(token)
        .arg(requests.to_string())
        .arg(warm_up.to_string())
        .output()
        .map_err(|e| format!("run {}: {e}", launcher.get_program().to_string_lossy()))?;
    if !output.status.success() {
        return Err(format!(
            "the stand-in host failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output)
}

struct Node<'a> {
    function: &'a str,
    in_wasm: bool,
    parent: Option<u64>,
}

/// Wasm self time (µs) inside the request callbacks (warm-up requests
/// included): in total and per function.
fn wasm_self_time(cpu: &Value) -> (f64, BTreeMap<String, f64>) {
    let empty = vec![];
    let listed = cpu["nodes"].as_array().unwrap_or(&empty);
    let mut nodes: HashMap<u64, Node> = listed
        .iter()
        .filter_map(|node| {
            let frame = &node["callFrame"];
            let url = frame["url"].as_str().unwrap_or("");
            Some((
                node["id"].as_u64()?,
                Node {
                    function: frame["functionName"].as_str().unwrap_or(""),
                    in_wasm: url.starts_with("wasm://"),
                    parent: None,
                },
            ))
        })
        .collect();
    for node in listed {
        let Some(id) = node["id"].as_u64() else {
            continue;
        };
        for child in node["children"].as_array().unwrap_or(&empty) {
            if let Some(child) = child.as_u64().and_then(|c| nodes.get_mut(&c)) {
                child.parent = Some(id);
            }
        }
    }
    let callbacks: HashSet<&str> = REQUEST_CALLBACKS.into_iter().collect();
    let in_request = |mut id: u64| loop {
        let Some(node) = nodes.get(&id) else {
            return false;
        };
        if callbacks.contains(node.function) {
            return true;
        }
        match node.parent {
            Some(parent) => id = parent,
            None => return false,
        }
    };
    let samples = cpu["samples"].as_array().unwrap_or(&empty);
    let deltas = cpu["timeDeltas"].as_array().unwrap_or(&empty);
    let mut total = 0.0;
    let mut by_function: BTreeMap<String, f64> = BTreeMap::new();
    for (sample, delta) in samples.iter().zip(deltas) {
        let (Some(id), Some(us)) = (sample.as_u64(), delta.as_f64()) else {
            continue;
        };
        let Some(node) = nodes.get(&id) else {
            continue;
        };
        if !node.in_wasm || !in_request(id) {
            continue;
        }
        total += us;
        *by_function.entry(node.function.to_string()).or_default() += us;
    }
    (total, by_function)
}

fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}
