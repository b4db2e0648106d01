//! Every built plugin imports only what Envoy's Wasm host provides: the
//! proxy-wasm ABI and the WASI functions Envoy implements.

use meshguard_harness::paths::built_plugins;
use meshguard_harness::wasm_imports::{envoy_provides, imports};

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
