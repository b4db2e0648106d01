//! The plugin configuration the mesh loads: `envoy/local/*.json` with the run
//! dir's secrets filled in and a merge patch applied, as one chain module or
//! four filters, and the seed flags meshguard-state starts with.

use super::{json_patch::merge_patch, secrets::secret, Layout, CHAIN};
use crate::envoy::Plugin;
use crate::http::Request;
use crate::paths::{self, workspace_root};
use crate::state::StateService;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use std::path::Path;

/// `{"trace": …, "auth": …, "ratelimit": …, "flags": …}` from
/// `envoy/local/<name>.json` with the run dir's secrets filled in and the
/// patch merged.
pub(super) fn assembled_config(
    run_dir: &Path,
    state: &StateService,
    patch: &Value,
) -> Result<Value, String> {
    let dev_key = secret(run_dir, "dev-jwt-key");
    let substitutions = [
        ("${PLUGIN_SECRET}", state.plugin_secret.clone()),
        (
            "${DEV_JWT_KEY_B64URL}",
            URL_SAFE_NO_PAD.encode(dev_key.as_bytes()),
        ),
    ];
    let mut assembled = serde_json::Map::new();
    for name in CHAIN {
        let path = workspace_root()
            .join("envoy/local")
            .join(format!("{name}.json"));
        let mut text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (placeholder, value) in &substitutions {
            text = text.replace(placeholder, value);
        }
        let config: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        assembled.insert(name.to_string(), config);
    }
    let mut assembled = Value::Object(assembled);
    merge_patch(&mut assembled, patch);
    Ok(assembled)
}

/// The Envoy filters of a layout.
pub(super) fn plugins(layout: Layout, config: &Value) -> Vec<Plugin> {
    match layout {
        Layout::SingleModule => vec![Plugin {
            name: "chain".into(),
            path: paths::plugin_wasm("chain"),
            config: Some(config.to_string()),
        }],
        Layout::FourFilters => CHAIN
            .iter()
            .map(|name| Plugin {
                name: name.to_string(),
                path: paths::plugin_wasm(name),
                config: config.get(name).map(Value::to_string),
            })
            .collect(),
    }
}

/// Imports `flags/default.json` (the seed's eight flags) into meshguard-state,
/// so the flags plugin picks them up on its first snapshot.
pub(super) fn load_seed_flags(state: &StateService) -> Result<(), String> {
    let path = workspace_root().join("flags/default.json");
    let body = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let response = Request::post("/v1/flags/import", body)
        .header("authorization", &format!("Bearer {}", state.admin_token))
        .header("content-type", "application/json")
        .send(state.port)
        .map_err(|e| format!("loading flags/default.json: {e}"))?;
    if response.status != 200 {
        return Err(format!(
            "loading flags/default.json: {} {}",
            response.status,
            response.text()
        ));
    }
    Ok(())
}
