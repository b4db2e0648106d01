//! Plugin configuration: JSON from the filter's `configuration` field,
//! deserialized strictly and validated before the filter is accepted.

use serde::de::DeserializeOwned;
use std::fmt;

/// Why a configuration was refused, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: field `{}`: {}",
            self.field, self.message
        )
    }
}

/// Checks a deserialized configuration beyond what its types say.
pub trait Validate {
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Parses and validates a plugin configuration. No configuration (or an
/// empty one) means the defaults.
pub fn load<T>(raw: Option<&[u8]>) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Default + Validate,
{
    let raw = raw.unwrap_or_default();
    let config = if raw.iter().all(u8::is_ascii_whitespace) {
        T::default()
    } else {
        let mut de = serde_json::Deserializer::from_slice(raw);
        let config: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { "(root)".into() } else { field };
            ConfigError::new(field, strip_position(&e.into_inner().to_string()))
        })?;
        de.end()
            .map_err(|e| ConfigError::new("(root)", e.to_string()))?;
        config
    };
    config.validate()?;
    Ok(config)
}

/// serde_json appends "at line 1 column 20"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        ratio: f64,
        nested: Nested,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Nested {
        interval_ms: u32,
    }

    impl Validate for Sample {
        fn validate(&self) -> Result<(), ConfigError> {
            if !(0.0..=1.0).contains(&self.ratio) {
                return Err(ConfigError::new("ratio", "must be between 0 and 1"));
            }
            Ok(())
        }
    }

    #[test]
    fn missing_or_blank_configuration_means_defaults() {
        assert_eq!(load::<Sample>(None).unwrap().ratio, 0.0);
        assert_eq!(load::<Sample>(Some(b"  \n")).unwrap().ratio, 0.0);
    }

    #[test]
    fn type_errors_name_the_nested_field() {
        let err = load::<Sample>(Some(br#"{"nested": {"interval_ms": "soon"}}"#)).unwrap_err();
        assert_eq!(err.field, "nested.interval_ms");
        assert!(err.message.contains("invalid type"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = load::<Sample>(Some(br#"{"ratoi": 0.5}"#)).unwrap_err();
        assert!(err.message.contains("unknown field `ratoi`"), "{err}");
    }

    #[test]
    fn validation_runs_after_parsing() {
        let err = load::<Sample>(Some(br#"{"ratio": 2}"#)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: field `ratio`: must be between 0 and 1"
        );
    }

    #[test]
    fn malformed_json_is_an_error_not_a_panic() {
        assert!(load::<Sample>(Some(b"{")).is_err());
        assert!(load::<Sample>(Some(b"{} trailing")).is_err());
        assert!(load::<Sample>(Some(&[0xff, 0xfe])).is_err());
    }
}
