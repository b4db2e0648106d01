//! Calls from a plugin to meshguard-state through an Envoy cluster
//! (`dispatch_http_call`): every call has a timeout, and after repeated
//! failures the client stops calling for a back-off period (fail fast).

use crate::config::ConfigError;
use crate::host;
use crate::secret::Secret;
use proxy_wasm::hostcalls;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateClientConfig {
    /// The Envoy cluster of meshguard-state.
    pub cluster: String,
    pub authority: String,
    /// The plugin shared secret, sent as `x-meshguard-secret` ("" sends none);
    /// `{"env": "NAME"}` keeps it out of `/config_dump` (see `secret`).
    pub secret: Secret,
    pub timeout_ms: u64,
    /// Consecutive failures that start a back-off period.
    pub failures_before_backoff: u32,
    pub backoff_ms: u64,
}

impl Default for StateClientConfig {
    fn default() -> Self {
        StateClientConfig {
            cluster: "meshguard_state".into(),
            authority: "meshguard-state".into(),
            secret: Secret::default(),
            timeout_ms: 20,
            failures_before_backoff: 3,
            backoff_ms: 5_000,
        }
    }
}

impl StateClientConfig {
    /// Validates the fields, naming them `<prefix>.<field>`.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{prefix}.{name}");
        if self.cluster.trim().is_empty() {
            return Err(ConfigError::new(
                field("cluster"),
                "must name an Envoy cluster",
            ));
        }
        if self.authority.trim().is_empty() {
            return Err(ConfigError::new(field("authority"), "must not be empty"));
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err(ConfigError::new(
                field("timeout_ms"),
                "must be from 1 to 60000",
            ));
        }
        if self.failures_before_backoff == 0 {
            return Err(ConfigError::new(
                field("failures_before_backoff"),
                "must be at least 1",
            ));
        }
        if self.backoff_ms > 3_600_000 {
            return Err(ConfigError::new(
                field("backoff_ms"),
                "must be at most 3600000",
            ));
        }
        Ok(())
    }
}

/// Counts consecutive failures and says when calls should pause.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    consecutive_failures: u32,
    paused_until_nanos: u64,
}

impl Backoff {
    pub fn is_paused(&self, now_nanos: u64) -> bool {
        now_nanos < self.paused_until_nanos
    }

    pub fn record_success(&mut self) {
        self.consecutive_failures = 0;
        self.paused_until_nanos = 0;
    }

    /// Records a failure; returns true when it starts a pause.
    pub fn record_failure(&mut self, now_nanos: u64, threshold: u32, pause: Duration) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures < threshold {
            return false;
        }
        self.consecutive_failures = 0;
        let pause = u64::try_from(pause.as_nanos()).unwrap_or(u64::MAX);
        self.paused_until_nanos = now_nanos.saturating_add(pause);
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// Too many recent failures: not calling until the back-off ends.
    BackingOff,
    /// Envoy refused the call (e.g. unknown cluster).
    Dispatch,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallOutcome {
    /// `None`: timeout, reset or no response at all.
    pub status: Option<u16>,
    pub body: Vec<u8>,
    pub etag: Option<String>,
}

impl CallOutcome {
    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

pub struct StateClient {
    config: StateClientConfig,
    backoff: Backoff,
}

impl StateClient {
    pub fn new(config: StateClientConfig) -> StateClient {
        StateClient {
            config,
            backoff: Backoff::default(),
        }
    }

    pub fn config(&self) -> &StateClientConfig {
        &self.config
    }

    pub fn is_backing_off(&self) -> bool {
        self.backoff.is_paused(host::now_unix_nanos())
    }

    /// Dispatches a call; the response arrives in `on_http_call_response`
    /// of the context that called, with the returned token.
    pub fn dispatch(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        extra_headers: &[(&str, &str)],
    ) -> Result<u32, CallError> {
        if self.is_backing_off() {
            return Err(CallError::BackingOff);
        }
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", method),
            (":path", path),
            (":authority", &self.config.authority),
        ];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        if !self.config.secret.is_empty() {
            headers.push(("x-meshguard-secret", self.config.secret.expose()));
        }
        headers.extend_from_slice(extra_headers);
        let timeout = Duration::from_millis(self.config.timeout_ms);
        match hostcalls::dispatch_http_call(&self.config.cluster, headers, body, vec![], timeout) {
            Ok(token) => Ok(token),
            Err(_) => {
                self.record(false);
                Err(CallError::Dispatch)
            }
        }
    }

    /// Reads the response of the call being answered (call it inside
    /// `on_http_call_response`) and feeds the back-off: a 5xx or no
    /// response is a failure.
    pub fn outcome(&mut self, body_size: usize) -> CallOutcome {
        let status = host::call_response_status();
        let body = host::call_response_body(body_size, usize::MAX);
        let etag = host::call_response_header("etag").and_then(|v| String::from_utf8(v).ok());
        self.record(status.is_some_and(|s| s < 500));
        CallOutcome { status, body, etag }
    }

    fn record(&mut self, ok: bool) {
        if ok {
            self.backoff.record_success();
        } else {
            self.backoff.record_failure(
                host::now_unix_nanos(),
                self.config.failures_before_backoff,
                Duration::from_millis(self.config.backoff_ms),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn pauses_after_the_threshold_and_resumes_after_the_pause() {
        let mut backoff = Backoff::default();
        let pause = Duration::from_secs(5);
        assert!(!backoff.record_failure(0, 3, pause));
        assert!(!backoff.record_failure(0, 3, pause));
        assert!(!backoff.is_paused(0));
        assert!(backoff.record_failure(SECOND, 3, pause));
        assert!(backoff.is_paused(5 * SECOND));
        assert!(!backoff.is_paused(6 * SECOND));
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut backoff = Backoff::default();
        let pause = Duration::from_secs(5);
        backoff.record_failure(0, 2, pause);
        backoff.record_success();
        assert!(!backoff.record_failure(0, 2, pause));
        assert!(!backoff.is_paused(0));
    }

    #[test]
    fn config_errors_name_the_prefixed_field() {
        let config = StateClientConfig {
            timeout_ms: 0,
            ..StateClientConfig::default()
        };
        assert_eq!(
            config.validate("state").unwrap_err().field,
            "state.timeout_ms"
        );
        assert!(StateClientConfig::default().validate("state").is_ok());
    }
}
