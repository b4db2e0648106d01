//! What a built `.wasm` asks of its host, checked against what Envoy gives,
//! and the callbacks it offers.

use std::path::Path;

/// proxy-wasm ABI 0.2.1 host functions (module `env`, prefixed `proxy_`),
/// as registered by proxy-wasm-cpp-host, which Envoy embeds.
const PROXY_WASM_HOST_FUNCTIONS: &[&str] = &[
    "log",
    "get_status",
    "set_property",
    "get_property",
    "send_local_response",
    "get_shared_data",
    "set_shared_data",
    "register_shared_queue",
    "resolve_shared_queue",
    "dequeue_shared_queue",
    "enqueue_shared_queue",
    "get_header_map_value",
    "add_header_map_value",
    "replace_header_map_value",
    "remove_header_map_value",
    "get_header_map_pairs",
    "set_header_map_pairs",
    "get_header_map_size",
    "get_buffer_status",
    "get_buffer_bytes",
    "set_buffer_bytes",
    "http_call",
    "grpc_call",
    "grpc_stream",
    "grpc_close",
    "grpc_cancel",
    "grpc_send",
    "set_tick_period_milliseconds",
    "get_current_time_nanoseconds",
    "define_metric",
    "increment_metric",
    "record_metric",
    "get_metric",
    "set_effective_context",
    "done",
    "call_foreign_function",
    "continue_stream",
    "close_stream",
    "get_log_level",
];

/// The WASI preview1 functions Envoy's Wasm host implements.
const WASI_FUNCTIONS: &[&str] = &[
    "fd_write",
    "fd_read",
    "fd_seek",
    "fd_close",
    "fd_fdstat_get",
    "environ_get",
    "environ_sizes_get",
    "args_get",
    "args_sizes_get",
    "clock_time_get",
    "random_get",
    "proc_exit",
    "path_open",
    "fd_prestat_get",
    "fd_prestat_dir_name",
];

/// Every `(module, name)` the module imports.
pub fn imports(path: &Path) -> Result<Vec<(String, String)>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut found = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        let payload = payload.map_err(|e| format!("parse {}: {e}", path.display()))?;
        if let wasmparser::Payload::ImportSection(reader) = payload {
            for import in reader.into_imports() {
                let import = import.map_err(|e| format!("import in {}: {e}", path.display()))?;
                found.push((import.module.to_string(), import.name.to_string()));
            }
        }
    }
    Ok(found)
}

/// Every name the module exports.
pub fn exports(path: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut found = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        let payload = payload.map_err(|e| format!("parse {}: {e}", path.display()))?;
        if let wasmparser::Payload::ExportSection(reader) = payload {
            for export in reader {
                let export = export.map_err(|e| format!("export in {}: {e}", path.display()))?;
                found.push(export.name.to_string());
            }
        }
    }
    Ok(found)
}

/// Whether Envoy provides this import.
pub fn envoy_provides(module: &str, name: &str) -> bool {
    match module {
        "env" => name
            .strip_prefix("proxy_")
            .is_some_and(|f| PROXY_WASM_HOST_FUNCTIONS.contains(&f)),
        "wasi_snapshot_preview1" | "wasi_unstable" => WASI_FUNCTIONS.contains(&name),
        _ => false,
    }
}
