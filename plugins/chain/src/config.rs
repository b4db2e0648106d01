//! The chain's configuration: one section per policy, each that policy's
//! own configuration. An absent section means that policy's defaults;
//! `null` turns the policy off.

use meshguard_auth::AuthConfig;
use meshguard_flags::FlagsConfig;
use meshguard_plugin_kit::config::{ConfigError, Validate};
use meshguard_ratelimit::RateLimitConfig;
use meshguard_trace::TraceConfig;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    #[serde(default = "defaults")]
    pub trace: Option<TraceConfig>,
    #[serde(default = "defaults")]
    pub auth: Option<AuthConfig>,
    #[serde(default = "defaults")]
    pub ratelimit: Option<RateLimitConfig>,
    #[serde(default = "defaults")]
    pub flags: Option<FlagsConfig>,
}

fn defaults<T: Default>() -> Option<T> {
    Some(T::default())
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            trace: defaults(),
            auth: defaults(),
            ratelimit: defaults(),
            flags: defaults(),
        }
    }
}

/// `err` with its field moved under `section`.
pub fn prefixed(section: &str, err: ConfigError) -> ConfigError {
    ConfigError::new(format!("{section}.{}", err.field), err.message)
}

fn check<T: Validate>(section: &str, config: &Option<T>) -> Result<(), ConfigError> {
    match config {
        Some(c) => c.validate().map_err(|e| prefixed(section, e)),
        None => Ok(()),
    }
}

impl Validate for ChainConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check("trace", &self.trace)?;
        check("auth", &self.auth)?;
        check("ratelimit", &self.ratelimit)?;
        check("flags", &self.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshguard_plugin_kit::config::load;

    fn parse(json: &str) -> Result<ChainConfig, ConfigError> {
        load(Some(json.as_bytes()))
    }

    #[test]
    fn absent_sections_are_defaults_and_null_turns_off() {
        let c = parse(r#"{"trace": null}"#).unwrap();
        assert!(c.trace.is_none());
        assert!(c.auth.is_some() && c.ratelimit.is_some() && c.flags.is_some());
        let c = load::<ChainConfig>(None).unwrap();
        assert!(c.trace.is_some() && c.flags.is_some());
    }

    #[test]
    fn errors_name_the_prefixed_field() {
        let err = parse(r#"{"auth": {"issuers": 3}}"#).err().unwrap();
        assert_eq!(err.field, "auth.issuers");
        let err = parse(r#"{"trace": {"sampling_ratio": 2.0}}"#)
            .err()
            .unwrap();
        assert_eq!(err.field, "trace.sampling_ratio");
        let err = parse(r#"{"tracing": {}}"#).err().unwrap();
        assert_eq!(err.field, "tracing");
    }
}
