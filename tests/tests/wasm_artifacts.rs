//! Every built plugin imports only what Envoy's Wasm host provides: the
//! proxy-wasm ABI and the WASI functions Envoy implements; and exports only
//! the callbacks it implements, so Envoy skips the others.

use meshguard_harness::paths::{built_plugins, plugin_wasm};
use meshguard_harness::wasm_imports::{envoy_provides, exports, imports};

#[test]
fn plugins_import_only_what_envoy_provides() {
    let plugins = built_plugins();
    let names: Vec<String> = plugins
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert!(
        names.contains(&"meshguard_trace.wasm".to_string()),
        "built: {names:?}"
    );
    for plugin in &plugins {
        let imports = imports(plugin).unwrap();
        assert!(
            imports.iter().any(|(m, n)| m == "env" && n == "proxy_log"),
            "{} does not look like a proxy-wasm module",
            plugin.display()
        );
        let foreign: Vec<_> = imports
            .iter()
            .filter(|(module, name)| !envoy_provides(module, name))
            .collect();
        assert!(
            foreign.is_empty(),
            "{} imports {foreign:?}",
            plugin.display()
        );
    }
}

#[test]
fn plugins_export_only_the_callbacks_they_implement() {
    let always = [
        "proxy_on_context_create",
        "proxy_on_vm_start",
        "proxy_on_configure",
        "proxy_on_tick",
        "proxy_on_http_call_response",
        "proxy_on_request_headers",
        "proxy_on_response_headers",
        "proxy_on_delete",
    ];
    let never = [
        "proxy_on_request_body",
        "proxy_on_request_trailers",
        "proxy_on_response_body",
        "proxy_on_response_trailers",
        "proxy_on_done",
    ];
    // Only trace (span export) and the chain that holds it act at the end of a stream.
    for (plugin, logs) in [
        ("trace", true),
        ("auth", false),
        ("ratelimit", false),
        ("flags", false),
        ("chain", true),
    ] {
        let exported = exports(&plugin_wasm(plugin)).unwrap();
        let has = |name: &str| exported.iter().any(|e| e == name);
        for name in always {
            assert!(has(name), "meshguard_{plugin}.wasm lacks {name}");
        }
        for name in never {
            assert!(!has(name), "meshguard_{plugin}.wasm still exports {name}");
        }
        assert_eq!(
            has("proxy_on_log"),
            logs,
            "meshguard_{plugin}.wasm: proxy_on_log"
        );
    }
}

#[test]
fn the_check_rejects_what_envoy_lacks() {
    assert!(envoy_provides("env", "proxy_get_header_map_value"));
    assert!(envoy_provides("wasi_snapshot_preview1", "random_get"));
    assert!(!envoy_provides(
        "__wbindgen_placeholder__",
        "__wbindgen_describe"
    ));
    assert!(!envoy_provides("env", "proxy_made_up"));
    assert!(!envoy_provides("wasi_snapshot_preview1", "sock_accept"));
}
