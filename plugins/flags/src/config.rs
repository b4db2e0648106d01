//! The flags plugin's configuration (the filter's `configuration` JSON).

use meshguard_api::flags::FlagDefinition;
use meshguard_plugin_kit::config::{ConfigError, Validate};
use meshguard_plugin_kit::state_client::StateClientConfig;
use meshguard_policy::flags::FlagSet;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlagsConfig {
    /// Evaluated until the first snapshot from meshguard-state arrives, and
    /// always when `sync` is off.
    pub flags: Vec<FlagDefinition>,
    /// A flag's header is this prefix plus its key, lowercased, `_` and `.`
    /// turned into `-` (`FEATURE_ML_V2` → `x-flag-feature-ml-v2`).
    pub header_prefix: String,
    /// Header names for particular flags, overriding the prefix rule.
    pub headers: BTreeMap<String, String>,
    /// Client-sent headers starting with any of these are removed before
    /// the plugin sets its own. Default: `[header_prefix]`.
    pub strip_prefixes: Option<Vec<String>>,
    /// `key=variant,key=variant` of every flag; `null` turns it off.
    pub summary_header: Option<String>,
    /// The targeting key: the authenticated user id set by the auth plugin.
    pub targeting_key_header: String,
    pub tier_header: String,
    /// Comma-separated groups (the `group` rule attribute); `null`: none.
    pub groups_header: Option<String>,
    /// Comma-separated purposes the user consents to (the `consent` rule
    /// attribute), set by the auth plugin; `null`: none.
    pub consents_header: Option<String>,
    /// Snapshot polling; `null` evaluates `flags` only.
    pub sync: Option<SyncConfig>,
    pub metrics: MetricsConfig,
}

impl Default for FlagsConfig {
    fn default() -> Self {
        FlagsConfig {
            flags: Vec::new(),
            header_prefix: "x-flag-".into(),
            headers: BTreeMap::new(),
            strip_prefixes: None,
            summary_header: Some("x-meshguard-flags".into()),
            targeting_key_header: "x-auth-sub".into(),
            tier_header: "x-auth-tier".into(),
            groups_header: Some("x-auth-groups".into()),
            consents_header: Some("x-auth-consents".into()),
            sync: Some(SyncConfig::default()),
            metrics: MetricsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    pub interval_ms: u64,
    pub path: String,
    pub state: StateClientConfig,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            interval_ms: 1000,
            path: "/v1/flags/snapshot".into(),
            state: StateClientConfig {
                // Off the request path: a slow answer costs nothing but staleness.
                timeout_ms: 1000,
                ..StateClientConfig::default()
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A counter per flag and variant.
    pub exposures: bool,
    /// A histogram of upstream response time (ms) per flag and variant.
    pub response_time: bool,
    /// Most per-variant stats this plugin defines (flags churn; stats stay).
    pub max_series: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            exposures: true,
            response_time: true,
            max_series: 2000,
        }
    }
}

pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

impl FlagsConfig {
    /// The request header carrying a flag's variant.
    pub fn header_for(&self, key: &str) -> String {
        match self.headers.get(key) {
            Some(name) => name.clone(),
            None => {
                let key: String = key
                    .chars()
                    .map(|c| match c {
                        '_' | '.' => '-',
                        c => c.to_ascii_lowercase(),
                    })
                    .collect();
                format!("{}{key}", self.header_prefix)
            }
        }
    }

    pub fn strip_prefixes(&self) -> Vec<String> {
        self.strip_prefixes
            .clone()
            .unwrap_or_else(|| vec![self.header_prefix.clone()])
    }

    fn identity_headers(&self) -> Vec<&str> {
        let mut names = vec![
            self.targeting_key_header.as_str(),
            self.tier_header.as_str(),
        ];
        names.extend(self.groups_header.as_deref());
        names.extend(self.consents_header.as_deref());
        names
    }
}

fn header_field(field: &str, name: &str) -> Result<(), ConfigError> {
    if is_header_name(name) {
        Ok(())
    } else {
        Err(ConfigError::new(field, "must be a lowercase header name"))
    }
}

impl Validate for FlagsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        header_field("header_prefix", &self.header_prefix)?;
        header_field("targeting_key_header", &self.targeting_key_header)?;
        header_field("tier_header", &self.tier_header)?;
        if let Some(name) = &self.groups_header {
            header_field("groups_header", name)?;
        }
        if let Some(name) = &self.consents_header {
            header_field("consents_header", name)?;
        }
        if let Some(name) = &self.summary_header {
            header_field("summary_header", name)?;
        }
        for (key, name) in &self.headers {
            header_field(&format!("headers.{key}"), name)?;
        }
        let identity = self.identity_headers();
        for (i, prefix) in self.strip_prefixes().iter().enumerate() {
            let field = match self.strip_prefixes {
                Some(_) => format!("strip_prefixes[{i}]"),
                None => "header_prefix".into(),
            };
            header_field(&field, prefix)?;
            if prefix.len() < 4 {
                return Err(ConfigError::new(
                    field,
                    "a prefix to strip must be at least 4 characters (\"x-\" would strip every x- header)",
                ));
            }
            if let Some(name) = identity.iter().find(|n| n.starts_with(prefix.as_str())) {
                return Err(ConfigError::new(
                    field,
                    format!("would strip the identity header {name:?}"),
                ));
            }
        }
        let (_, rejected) = FlagSet::compile(&self.flags);
        if let Some(bad) = rejected.first() {
            let i = self
                .flags
                .iter()
                .rposition(|f| f.key == bad.key)
                .unwrap_or_default();
            return Err(ConfigError::new(
                format!("flags[{i}].{}", bad.error.field),
                bad.error.message.clone(),
            ));
        }
        for flag in &self.flags {
            let name = self.header_for(&flag.key);
            if identity.contains(&name.as_str()) || self.summary_header.as_deref() == Some(&name) {
                return Err(ConfigError::new(
                    format!("headers.{}", flag.key),
                    format!("{name:?} is taken by another header"),
                ));
            }
        }
        if let Some(sync) = &self.sync {
            if !(100..=3_600_000).contains(&sync.interval_ms) {
                return Err(ConfigError::new(
                    "sync.interval_ms",
                    "must be from 100 to 3600000",
                ));
            }
            if !sync.path.starts_with('/') {
                return Err(ConfigError::new("sync.path", "must start with /"));
            }
            sync.state.validate("sync.state")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshguard_plugin_kit::config::load;

    #[test]
    fn defaults_without_configuration() {
        let config: FlagsConfig = load(None).unwrap();
        assert!(config.flags.is_empty());
        assert_eq!(config.targeting_key_header, "x-auth-sub");
        assert_eq!(
            config.sync.as_ref().unwrap().state.cluster,
            "meshguard_state"
        );
        assert_eq!(config.header_for("FEATURE_ML_V2"), "x-flag-feature-ml-v2");
    }

    #[test]
    fn header_names_follow_the_prefix_or_the_override() {
        let raw = br#"{"header_prefix": "x-", "strip_prefixes": ["x-feature-", "x-variant-"],
            "headers": {"checkout": "x-variant-checkout"}, "sync": null}"#;
        let config: FlagsConfig = load(Some(raw)).unwrap();
        assert_eq!(config.header_for("FEATURE_ML_V2"), "x-feature-ml-v2");
        assert_eq!(config.header_for("checkout"), "x-variant-checkout");
        assert!(config.sync.is_none());
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: [(&[u8], &str); 9] = [
            (br#"{"header_prefix": "X-Flag-"}"#, "header_prefix"),
            (br#"{"header_prefix": "x-"}"#, "header_prefix"),
            (br#"{"strip_prefixes": ["x-auth-"]}"#, "strip_prefixes[0]"),
            (br#"{"headers": {"a": "bad name"}}"#, "headers.a"),
            (br#"{"sync": {"interval_ms": 5}}"#, "sync.interval_ms"),
            (br#"{"sync": {"state": {"timeout_ms": 0}}}"#, "sync.state.timeout_ms"),
            (
                br#"{"flags": [{"key": "a", "variants": {"on": 1}, "default_variant": "off"}]}"#,
                "flags[0].default_variant",
            ),
            (
                br#"{"flags": [{"key": "a", "variants": {"on": 1}, "default_variant": "on", "rules": [{"attribute": "country", "op": "in", "values": ["fr"], "variant": "on"}]}]}"#,
                "flags[0].rules[0].attribute",
            ),
            (br#"{"metrics": {"exposure": true}}"#, "metrics.exposure"),
        ];
        for (raw, field) in cases {
            let err = load::<FlagsConfig>(Some(raw)).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }
}
