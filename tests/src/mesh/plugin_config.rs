//! The plugin configuration the mesh loads: `envoy/local/*.json` with the run
//! dir's secrets filled in and a merge patch applied, as one chain module or
//! four filters, and the seed flags meshguard-state starts with.

use super::{secrets::secret, Layout, CHAIN};
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

/// RFC 7386: objects merge member by member, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        if !patch.is_null() {
            *target = patch.clone();
        }
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in members {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let mut config = json!({"auth": {"a": 1, "b": {"c": 2}}, "flags": {"x": 1}});
        merge_patch(
            &mut config,
            &json!({"auth": {"b": {"c": 3, "d": 4}, "a": null}, "trace": null}),
        );
        assert_eq!(
            config,
            json!({"auth": {"b": {"c": 3, "d": 4}}, "flags": {"x": 1}})
        );
        merge_patch(&mut config, &serde_json::Value::Null);
        assert_eq!(config["flags"]["x"], 1);
    }
}
