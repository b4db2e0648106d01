//! Prometheus metrics: request counts and latency per endpoint, Redis errors,
//! rate-limit decisions and suspicious events.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::time::Instant;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub redis_errors: IntCounter,
    pub decisions: IntCounterVec,
    pub suspicious: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("meshguard_state".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route"],
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
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(redis_errors.clone()))?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(suspicious.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            redis_errors,
            decisions,
            suspicious,
        })
    }

    pub fn render(&self) -> Response {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!("encoding metrics: {e}");
        }
        ([(CONTENT_TYPE, "text/plain; version=0.0.4")], buf).into_response()
    }
}

pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = req.method().to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    metrics
        .latency
        .with_label_values(&[route.as_str()])
        .observe(start.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()])
        .inc();
    response
}
