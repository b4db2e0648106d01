//! Where the single-module build's own Wasm time and instructions go, by
//! Rust function (V8's sampling profiler and callgrind, stand-in host).

use crate::bench::report::table;
use crate::bench::variants::Fixture;
use crate::bench::{wasm_instructions, wasm_profile};
use crate::envoy::Plugin;
use crate::paths::workspace_root;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The single-module build, unstripped (`scripts/bench profile` builds it).
pub fn profile_wasm() -> PathBuf {
    workspace_root().join("target/wasm-profile/wasm32-wasip1/wasm/meshguard_chain.wasm")
}

/// The profile of the single-module build; with `baseline` (a directory
/// holding an unstripped `meshguard_chain.wasm`), that build's Wasm time too.
/// With `only` (policy names), the module runs those policies alone.
pub fn profile_figure(baseline: Option<&Path>, only: &[String]) -> String {
    const REQUESTS: u32 = 100_000;
    let wasm = profile_wasm();
    if !wasm.exists() {
        return format!(
            "## Wasm profile\n\n{} is not built: run scripts/bench profile.\n\n",
            wasm.display()
        );
    }
    let fixture = Fixture::new();
    let token = fixture.headers[0].trim_start_matches("authorization: Bearer ");
    let config = policies_only(fixture.single_module(), only)
        .config
        .unwrap_or_default();
    let profile = match wasm_profile::profile(&wasm, &config, token, REQUESTS) {
        Ok(p) => p,
        Err(e) => return format!("## Wasm profile\n\nnot measured: {e}\n\n"),
    };
    let before = baseline.map(|dir| {
        let wasm = dir.join("meshguard_chain.wasm");
        match wasm_profile::profile(&wasm, &config, token, REQUESTS) {
            Ok(p) => format!(
                " The baseline build ({}): {:.2} µs per request; {}.",
                wasm.display(),
                p.wasm_us_per_request,
                p.host_calls
            ),
            Err(e) => format!(
                " The baseline build ({}) was not measured: {e}.",
                wasm.display()
            ),
        }
    });
    let rows: Vec<Vec<String>> = profile
        .functions
        .iter()
        .take(25)
        .map(|(name, share)| {
            vec![
                format!("`{name}`"),
                format!("{:.1} %", share * 100.0),
                format!("{:.2}", share * profile.wasm_us_per_request),
            ]
        })
        .collect();
    let sampled = format!(
        "## Wasm profile of the single-module chain\n\nThe benchmark's request replayed {REQUESTS} times \
         under Node's V8 (`--no-liftoff`, as in Envoy) with the stand-in host of \
         `bench/wasm-profile/host.mjs`; V8's sampling profiler, self time of each Rust function \
         inside the request callbacks. Wasm time: **{:.2} µs per request** (the profiler adds some; \
         compare builds, not machines). {}.{}\n\n{}\n",
        profile.wasm_us_per_request,
        profile.host_calls,
        before.unwrap_or_default(),
        table(&["function", "share of Wasm time", "µs/request"], &rows)
    );
    sampled + &instructions_by_function(&wasm, &config, token)
}

/// The single module with every policy not named in `only` turned off
/// (its section null); all of them when `only` is empty.
pub fn policies_only(mut module: Plugin, only: &[String]) -> Plugin {
    if only.is_empty() {
        return module;
    }
    let mut config: Value = module
        .config
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    for policy in ["trace", "auth", "ratelimit", "flags"] {
        if !only.iter().any(|o| o == policy) {
            config[policy] = Value::Null;
        }
    }
    module.config = Some(config.to_string());
    module
}

/// The single module's Wasm instructions per request by function
/// (`wasm_instructions`).
pub fn instructions_by_function(wasm: &Path, config: &str, token: &str) -> String {
    let heading = "## Wasm instructions per request by function";
    let counted = match wasm_instructions::measure(wasm, config, token) {
        Ok(c) => c,
        Err(e) => return format!("{heading}\n\nnot measured: {e}\n\n"),
    };
    let row = |name: String, c: &wasm_instructions::Cost| {
        vec![
            name,
            format!("{:.0}", c.instructions),
            format!("{:.1}", c.i1_misses),
            format!("{:.1}", c.d1_misses),
        ]
    };
    let mut rows = vec![row(
        "**all of the module's functions**".into(),
        &counted.total,
    )];
    rows.extend(
        counted
            .functions
            .iter()
            .take(30)
            .map(|(name, c)| row(format!("`{name}`"), c)),
    );
    format!(
        "{heading}\n\nThe same request under Node's V8 and callgrind, two runs (1,000 and 5,000 \
         requests) differenced; each function's own instructions and cache misses per request, \
         charged through V8's jump table (see `tests/src/bench/wasm_instructions.rs`).\n\n{}\n",
        table(
            &["function", "instructions", "I1 misses", "D1 misses"],
            &rows
        )
    )
}
