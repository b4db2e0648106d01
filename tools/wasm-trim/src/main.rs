//! `cargo metadata --no-deps --format-version 1 | meshguard-wasm-trim DIR`
//!
//! Envoy skips a proxy-wasm callback the module does not export, but the
//! Rust SDK exports them all: a filter that leaves `on_log` to the SDK's
//! default still costs Envoy a call into the VM for every request, and
//! `on_response_body` one per body chunk. Each plugin lists those callbacks
//! in its Cargo.toml (`[package.metadata.meshguard] sdk-default-callbacks`);
//! this tool removes their exports from `DIR/<lib name>.wasm`.

mod exports;

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The callbacks that may be listed: those Envoy skips when absent and the
/// SDK answers with a default. Context creation and deletion, configuration,
/// ticks and call responses are never removed.
const REMOVABLE: &[&str] = &[
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_log",
    "proxy_on_done",
];

struct Plugin {
    wasm: PathBuf,
    callbacks: Vec<String>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshguard-wasm-trim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: cargo metadata --no-deps --format-version 1 | meshguard-wasm-trim DIR")?;
    let mut metadata = String::new();
    std::io::stdin()
        .read_to_string(&mut metadata)
        .map_err(|e| format!("reading cargo metadata from stdin: {e}"))?;
    let metadata: Value =
        serde_json::from_str(&metadata).map_err(|e| format!("cargo metadata: {e}"))?;
    for plugin in plugins(&metadata, Path::new(&dir))? {
        if !plugin.wasm.exists() {
            continue; // not built in this target dir
        }
        let names: Vec<&str> = plugin.callbacks.iter().map(String::as_str).collect();
        trim(&plugin.wasm, &names)?;
    }
    Ok(())
}

/// The packages that list SDK-default callbacks, with their `.wasm` in `dir`.
fn plugins(metadata: &Value, dir: &Path) -> Result<Vec<Plugin>, String> {
    let packages = metadata["packages"]
        .as_array()
        .ok_or("cargo metadata has no packages")?;
    let mut found = Vec::new();
    for package in packages {
        let listed = package
            .pointer("/metadata/meshguard/sdk-default-callbacks")
            .unwrap_or(&serde_json::Value::Null);
        if listed.is_null() {
            continue;
        }
        let name = package["name"].as_str().unwrap_or("?");
        let field = format!("{name}: package.metadata.meshguard.sdk-default-callbacks");
        let callbacks = listed
            .as_array()
            .ok_or(format!("{field} must be a list"))?
            .iter()
            .map(|c| match c.as_str() {
                Some(c) if REMOVABLE.contains(&c) => Ok(c.to_string()),
                _ => Err(format!("{field}: {c} is not one of {REMOVABLE:?}")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let lib = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
            })
            .and_then(|t| t["name"].as_str())
            .ok_or(format!("{name} lists callbacks but builds no cdylib"))?;
        found.push(Plugin {
            wasm: dir.join(format!("{}.wasm", lib.replace('-', "_"))),
            callbacks,
        });
    }
    Ok(found)
}

fn trim(wasm: &Path, callbacks: &[&str]) -> Result<(), String> {
    let shown = wasm.display();
    let bytes = std::fs::read(wasm).map_err(|e| format!("{shown}: {e}"))?;
    let (trimmed, removed) =
        exports::without_exports(&bytes, callbacks).map_err(|e| format!("{shown}: {e}"))?;
    if removed.is_empty() {
        return Ok(());
    }
    // Written aside and renamed: cargo may have hard-linked the file.
    let staged = wasm.with_extension("wasm.trimmed");
    std::fs::write(&staged, trimmed).map_err(|e| format!("{}: {e}", staged.display()))?;
    if let Ok(meta) = std::fs::metadata(wasm) {
        let _ = std::fs::set_permissions(&staged, meta.permissions());
    }
    std::fs::rename(&staged, wasm).map_err(|e| format!("{shown}: {e}"))?;
    println!("{shown}: removed {}", removed.join(", "));
    Ok(())
}
