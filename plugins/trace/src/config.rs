//! The trace plugin's configuration (the filter's `configuration` JSON).

use meshguard_plugin_kit::config::{ConfigError, Validate};
use meshguard_policy::sampling::SamplingMode;
use meshguard_policy::trace_context::is_valid_key;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    ParentBased,
    AlwaysRatio,
}

impl From<Mode> for SamplingMode {
    fn from(mode: Mode) -> SamplingMode {
        match mode {
            Mode::ParentBased => SamplingMode::ParentBased,
            Mode::AlwaysRatio => SamplingMode::AlwaysRatio,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConfig {
    /// Share of new traces sampled, 0 to 1.
    pub sampling_ratio: f64,
    pub sampling_mode: Mode,
    /// A tracestate key this hop writes (value: its span id), moved to the front.
    pub tracestate_key: Option<String>,
    /// Send a `traceresponse` header downstream.
    pub trace_response: bool,
    /// Set to the trace-id when the request has none; `null` turns it off.
    pub request_id_header: Option<String>,
    /// `service.name` of exported spans.
    pub service_name: String,
    /// OTLP/HTTP JSON span export; off when absent.
    pub export: Option<ExportConfig>,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            sampling_ratio: 0.1,
            sampling_mode: Mode::ParentBased,
            tracestate_key: None,
            trace_response: false,
            request_id_header: Some("x-request-id".into()),
            service_name: "meshguard".into(),
            export: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The Envoy cluster of the OTLP collector (Jaeger, OpenTelemetry Collector).
    pub cluster: String,
    #[serde(default = "default_authority")]
    pub authority: String,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Spans kept per worker while waiting for export; more are dropped.
    #[serde(default = "default_max_buffered")]
    pub max_buffered: usize,
    /// Extra request headers for the collector (e.g. an API key).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_authority() -> String {
    "otel-collector".into()
}
fn default_path() -> String {
    "/v1/traces".into()
}
fn default_interval_ms() -> u64 {
    1000
}
fn default_timeout_ms() -> u64 {
    2000
}
fn default_max_batch() -> usize {
    512
}
fn default_max_buffered() -> usize {
    4096
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

impl Validate for TraceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.sampling_ratio.is_finite() && (0.0..=1.0).contains(&self.sampling_ratio)) {
            return Err(ConfigError::new(
                "sampling_ratio",
                "must be a number from 0 to 1",
            ));
        }
        if let Some(key) = &self.tracestate_key {
            if !is_valid_key(key) {
                return Err(ConfigError::new(
                    "tracestate_key",
                    "not a valid W3C tracestate key (1 to 256 of [a-z0-9_-*/@], starting with a lowercase letter or a digit)",
                ));
            }
        }
        if let Some(name) = &self.request_id_header {
            if !is_header_name(name) {
                return Err(ConfigError::new(
                    "request_id_header",
                    "must be a lowercase header name",
                ));
            }
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::new("service_name", "must not be empty"));
        }
        if let Some(export) = &self.export {
            export.validate()?;
        }
        Ok(())
    }
}

impl ExportConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster.trim().is_empty() {
            return Err(ConfigError::new(
                "export.cluster",
                "must name an Envoy cluster",
            ));
        }
        if !self.path.starts_with('/') {
            return Err(ConfigError::new("export.path", "must start with /"));
        }
        if !(10..=3_600_000).contains(&self.interval_ms) {
            return Err(ConfigError::new(
                "export.interval_ms",
                "must be from 10 to 3600000",
            ));
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err(ConfigError::new(
                "export.timeout_ms",
                "must be from 1 to 60000",
            ));
        }
        if self.max_batch == 0 {
            return Err(ConfigError::new("export.max_batch", "must be at least 1"));
        }
        if self.max_buffered < self.max_batch {
            return Err(ConfigError::new(
                "export.max_buffered",
                "must be at least export.max_batch",
            ));
        }
        if let Some(name) = self.headers.keys().find(|n| !is_header_name(n)) {
            return Err(ConfigError::new(
                format!("export.headers.{name}"),
                "must be a lowercase header name",
            ));
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
        let config: TraceConfig = load(None).unwrap();
        assert_eq!(config.sampling_ratio, 0.1);
        assert_eq!(config.sampling_mode, Mode::ParentBased);
        assert!(config.export.is_none());
    }

    #[test]
    fn full_configuration() {
        let raw = br#"{"sampling_ratio": 0.5, "sampling_mode": "always_ratio",
            "tracestate_key": "meshguard", "trace_response": true,
            "export": {"cluster": "otel", "interval_ms": 200}}"#;
        let config: TraceConfig = load(Some(raw)).unwrap();
        assert_eq!(config.sampling_mode, Mode::AlwaysRatio);
        assert_eq!(config.export.unwrap().max_batch, 512);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: [(&[u8], &str); 7] = [
            (br#"{"sampling_ratio": 1.5}"#, "sampling_ratio"),
            (br#"{"sampling_ratio": "x"}"#, "sampling_ratio"),
            (br#"{"sampling_mode": "sometimes"}"#, "sampling_mode"),
            (br#"{"tracestate_key": "Bad"}"#, "tracestate_key"),
            (br#"{"tracestate_key": "@vendor"}"#, "tracestate_key"),
            (
                br#"{"export": {"cluster": "c", "interval_ms": 0}}"#,
                "export.interval_ms",
            ),
            (br#"{"export": {}}"#, "export"),
        ];
        for (raw, field) in cases {
            let err = load::<TraceConfig>(Some(raw)).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }
}
