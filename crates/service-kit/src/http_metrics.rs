//! The HTTP metrics both services export: requests by route, method and
//! status, and latency by route, registered in the service's own registry
//! (so each keeps its name prefix, `meshguard_state_` or `meshguard_gdpr_`).

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::time::Instant;

#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl HttpMetrics {
    /// `http_requests_total` and `http_request_duration_seconds` (with
    /// these bucket bounds, in seconds) registered in `registry`.
    pub fn register(
        registry: &Registry,
        buckets: Vec<f64>,
    ) -> Result<HttpMetrics, prometheus::Error> {
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
            .buckets(buckets),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(HttpMetrics { requests, latency })
    }
}

/// Axum middleware counting every answer under its matched route (the
/// route's pattern, never the raw path: ids stay out of the labels).
pub async fn track(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
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

/// Every metric of `registry` in Prometheus's text format.
pub fn render(registry: &Registry) -> Response {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::error!("encoding metrics: {e}");
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], buf).into_response()
}
