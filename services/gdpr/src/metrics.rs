//! Prometheus metrics of `serve`: HTTP requests by route and status, and the
//! state of the request register that an operator must watch — open requests
//! by kind, overdue ones, and the earliest deadline (the
//! MeshguardGdprRequestNearDeadline alert reads it).
//!
//! The register gauges are computed from the database when scraped, so they
//! are right after a restart and need no bookkeeping on every change.

use crate::config::Settings;
use crate::core::Core;
use crate::requests::{self, Kind};
use axum::response::Response;
use chrono::NaiveDate;
use meshguard_service_kit::http_metrics::{self, HttpMetrics};
use prometheus::{Gauge, IntGauge, IntGaugeVec, Opts, Registry};
use std::collections::BTreeMap;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
    open: IntGaugeVec,
    overdue: IntGauge,
    next_deadline: Gauge,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("meshguard_gdpr".into()), None)?;
        let http = HttpMetrics::register(
            &registry,
            vec![0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0],
        )?;
        let open = IntGaugeVec::new(
            Opts::new(
                "requests_open",
                "Data-subject requests not yet completed or rejected, by kind",
            ),
            &["kind"],
        )?;
        let overdue = IntGauge::new(
            "requests_overdue",
            "Open data-subject requests past their deadline",
        )?;
        let next_deadline = Gauge::new(
            "next_deadline_timestamp_seconds",
            "End of the day the earliest open request is due (Unix seconds, UTC); +Inf when none is open",
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(overdue.clone()))?;
        registry.register(Box::new(next_deadline.clone()))?;
        Ok(Metrics {
            registry,
            http,
            open,
            overdue,
            next_deadline,
        })
    }

    /// Reads the register and renders every metric in the text format.
    pub fn render(&self, settings: &Settings) -> Response {
        match Core::open(settings).and_then(|core| requests::list(&core, false, None)) {
            Ok(all) => self.record_register(&all),
            Err(e) => tracing::warn!("metrics: reading the request register: {e}"),
        }
        http_metrics::render(&self.registry)
    }

    fn record_register(&self, all: &[requests::Request]) {
        let mut open: BTreeMap<&str, i64> = BTreeMap::new();
        for kind in [Kind::Access, Kind::Portability, Kind::Erasure] {
            open.insert(kind.as_str(), 0);
        }
        let mut overdue = 0;
        let mut next_deadline = f64::INFINITY;
        for request in all.iter().filter(|r| r.is_open()) {
            *open.entry(request.kind.as_str()).or_default() += 1;
            overdue += i64::from(request.overdue);
            if let Some(end) = end_of_day(&request.due_date) {
                next_deadline = next_deadline.min(end);
            }
        }
        for (kind, count) in open {
            self.open.with_label_values(&[kind]).set(count);
        }
        self.overdue.set(overdue);
        self.next_deadline.set(next_deadline);
    }
}

/// A request is due by the end of its due date (UTC).
fn end_of_day(date: &str) -> Option<f64> {
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let end = day.succ_opt()?.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    Some(end as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_due_at_the_end_of_its_date() {
        assert_eq!(end_of_day("2026-12-07"), Some(1_796_688_000.0));
        assert_eq!(end_of_day("not a date"), None);
    }
}
