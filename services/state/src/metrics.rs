//! Prometheus metrics: request counts and latency per endpoint, Redis errors,
//! rate-limit decisions and suspicious events.

use axum::response::Response;
use meshguard_service_kit::http_metrics::{self, HttpMetrics};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
    pub redis_errors: IntCounter,
    pub decisions: IntCounterVec,
    pub suspicious: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("meshguard_state".into()), None)?;
        let http = HttpMetrics::register(
            &registry,
            vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ],
        )?;
        let redis_errors =
            IntCounter::new("redis_errors_total", "Failed or timed-out Redis calls")?;
        let decisions = IntCounterVec::new(
            Opts::new("ratelimit_decisions_total", "Rate-limit decisions"),
            &["decision"],
        )?;
        let suspicious = IntCounter::new(
            "suspicious_events_total",
            "Suspicious-activity events (impossible travel)",
        )?;
        registry.register(Box::new(redis_errors.clone()))?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(suspicious.clone()))?;
        Ok(Metrics {
            registry,
            http,
            redis_errors,
            decisions,
            suspicious,
        })
    }

    pub fn render(&self) -> Response {
        http_metrics::render(&self.registry)
    }
}
