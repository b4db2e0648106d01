//! Secrets in plugin configurations, kept out of Envoy's `/config_dump`.
//!
//! A plugin's `configuration` is part of the Envoy config, and the admin
//! endpoint `/config_dump` shows it whole: a secret written there is readable
//! by anyone who reaches the admin port. A secret field therefore names where
//! the value lives instead:
//!
//! - `{"env": "NAME"}`: the environment variable `NAME` of the Wasm VM. Envoy
//!   hands a VM only the variables its `vm_config.environment_variables`
//!   lists (`host_env_keys: [NAME]` copies it from Envoy's own environment),
//!   and the dump shows the key, never the value.
//! - a plain string: the secret itself, inline. Accepted so existing
//!   configurations keep working, but it is visible in `/config_dump`; a
//!   warning is logged.
//!
//! There is no `{"file": ...}` source: Envoy gives Wasm VMs no file system
//! (WASI preopens are empty), so a file can only reach a plugin by way of the
//! environment: the process that starts Envoy reads the file and exports it
//! (what `scripts/up` does with `.run/plugin-secret`). A `file` reference is
//! refused with that explanation rather than silently failing at run time.
//!
//! Values are resolved once, when the configuration is loaded, so a missing
//! variable makes Envoy refuse the filter naming the field.

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;

/// A secret value from a plugin configuration. Its `Debug` never shows the
/// value, so a logged configuration does not leak it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret {
    value: String,
}

impl Secret {
    /// A secret held inline (tests, defaults).
    pub fn inline(value: impl Into<String>) -> Secret {
        Secret {
            value: value.into(),
        }
    }

    /// The secret's value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            f.write_str("Secret(none)")
        } else {
            f.write_str("Secret(redacted)")
        }
    }
}

impl PartialEq<&str> for Secret {
    fn eq(&self, other: &&str) -> bool {
        self.value == *other
    }
}

/// The forms a secret field takes in JSON.
#[derive(Deserialize)]
#[serde(untagged)]
enum SecretSpec {
    Inline(String),
    Reference(Map<String, Value>),
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        match SecretSpec::deserialize(deserializer).map_err(|_| {
            D::Error::custom(
                "a secret is {\"env\": \"NAME\"} or, visible in /config_dump, a string",
            )
        })? {
            SecretSpec::Inline(value) => {
                if !value.is_empty() {
                    log::warn!(
                        "an inline secret is visible in Envoy's /config_dump: \
                         use {{\"env\": \"NAME\"}} with vm_config.environment_variables.host_env_keys"
                    );
                }
                Ok(Secret { value })
            }
            SecretSpec::Reference(reference) => resolve_reference(&reference)
                .map(|value| Secret { value })
                .map_err(D::Error::custom),
        }
    }
}

/// Reads what a `{"env": NAME}` object points at.
fn resolve_reference(reference: &Map<String, Value>) -> Result<String, String> {
    if reference.contains_key("file") {
        return Err(
            "`file` secrets cannot be read: Envoy gives Wasm VMs no file system; \
             export the file's content in Envoy's environment and use {\"env\": \"NAME\"}"
                .into(),
        );
    }
    let name = match (reference.len(), reference.get("env")) {
        (1, Some(Value::String(name))) => name,
        _ => return Err("a secret reference is {\"env\": \"NAME\"}".into()),
    };
    if !is_env_name(name) {
        return Err(format!("{name:?} is not an environment variable name"));
    }
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
        Ok(_) => Err(format!("environment variable {name} is empty")),
        Err(_) => Err(format!(
            "environment variable {name} is not set in the Wasm VM: list it in \
             vm_config.environment_variables.host_env_keys and set it in Envoy's environment"
        )),
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, what a shell can export.
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && name.len() <= 256
}

/// For a JSON document with secret members (a JWKS with HMAC keys): every
/// object of the exact form `{"env": "NAME"}` (or `{"file": ...}`) anywhere
/// in it is replaced by the secret's string value. Use with
/// `#[serde(deserialize_with = "...")]` on an `Option<serde_json::Value>`.
pub fn json_with_secrets<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    let Some(mut doc) = Option::<Value>::deserialize(deserializer)? else {
        return Ok(None);
    };
    resolve_in(&mut doc, "").map_err(D::Error::custom)?;
    Ok(Some(doc))
}

/// Resolves references in place; `path` names where, for the error.
fn resolve_in(value: &mut Value, path: &str) -> Result<(), String> {
    match value {
        Value::Object(map) if is_reference(map) => {
            let resolved = resolve_reference(map).map_err(|e| at(path, &e))?;
            *value = Value::String(resolved);
        }
        Value::Object(map) => {
            for (key, member) in map.iter_mut() {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                resolve_in(member, &path)?;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve_in(item, &format!("{path}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_reference(map: &Map<String, Value>) -> bool {
    map.len() == 1 && (map.contains_key("env") || map.contains_key("file"))
}

fn at(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_string()
    } else {
        format!("{path}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, ConfigError, Validate};

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        secret: Secret,
        #[serde(deserialize_with = "json_with_secrets")]
        jwks: Option<Value>,
    }

    impl Validate for Sample {
        fn validate(&self) -> Result<(), ConfigError> {
            Ok(())
        }
    }

    // Each test uses its own variable: tests run in parallel threads of one process.

    #[test]
    fn env_reference_reads_the_variable() {
        std::env::set_var("MG_TEST_SECRET_A", "s3cret-value\n");
        let sample: Sample = load(Some(br#"{"secret": {"env": "MG_TEST_SECRET_A"}}"#)).unwrap();
        assert_eq!(sample.secret.expose(), "s3cret-value");
    }

    #[test]
    fn inline_string_still_works() {
        let sample: Sample = load(Some(br#"{"secret": "inline"}"#)).unwrap();
        assert_eq!(sample.secret, "inline");
    }

    #[test]
    fn missing_variable_names_the_field_and_the_fix() {
        let err =
            load::<Sample>(Some(br#"{"secret": {"env": "MG_TEST_SECRET_UNSET"}}"#)).unwrap_err();
        assert_eq!(err.field, "secret");
        assert!(err.message.contains("host_env_keys"), "{err}");
        assert!(err.message.contains("MG_TEST_SECRET_UNSET"), "{err}");
    }

    #[test]
    fn empty_variable_is_refused() {
        std::env::set_var("MG_TEST_SECRET_EMPTY", " ");
        let err =
            load::<Sample>(Some(br#"{"secret": {"env": "MG_TEST_SECRET_EMPTY"}}"#)).unwrap_err();
        assert!(err.message.contains("is empty"), "{err}");
    }

    #[test]
    fn file_and_malformed_references_are_refused() {
        let err = load::<Sample>(Some(br#"{"secret": {"file": "/etc/secret"}}"#)).unwrap_err();
        assert!(err.message.contains("no file system"), "{err}");
        for bad in [
            &br#"{"secret": {"env": "A", "x": 1}}"#[..],
            br#"{"secret": {"env": 7}}"#,
            br#"{"secret": {"env": "NOT-A-NAME"}}"#,
            br#"{"secret": 42}"#,
        ] {
            let err = load::<Sample>(Some(bad)).unwrap_err();
            assert_eq!(err.field, "secret", "{err}");
        }
    }

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::inline("do-not-print-me");
        assert!(!format!("{secret:?}").contains("do-not-print-me"));
        let sample: Sample = load(Some(br#"{"secret": "do-not-print-me"}"#)).unwrap();
        assert!(!format!("{sample:?}").contains("do-not-print-me"));
    }

    #[test]
    fn references_inside_a_document_are_replaced() {
        std::env::set_var("MG_TEST_SECRET_K", "a2V5");
        let sample: Sample = load(Some(
            br#"{"jwks": {"keys": [{"kty": "oct", "k": {"env": "MG_TEST_SECRET_K"}},
                                   {"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}}"#,
        ))
        .unwrap();
        let jwks = sample.jwks.unwrap();
        assert_eq!(jwks["keys"][0]["k"], "a2V5");
        assert_eq!(jwks["keys"][1]["n"], "AQAB");
    }

    #[test]
    fn a_missing_variable_in_a_document_names_the_member() {
        let err = load::<Sample>(Some(
            br#"{"jwks": {"keys": [{"kty": "oct", "k": {"env": "MG_TEST_SECRET_UNSET_K"}}]}}"#,
        ))
        .unwrap_err();
        assert_eq!(err.field, "jwks");
        assert!(err.message.starts_with("keys[0].k: "), "{err}");
    }
}
