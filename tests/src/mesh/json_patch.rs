//! JSON merge patches (RFC 7386), for the plugin configuration and the
//! dev tokens' claims.

use serde_json::Value;

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
