//! Finished spans waiting for export, and their OTLP/HTTP JSON encoding.

use meshguard_policy::trace_context::{hex, SpanId, TraceId};
use serde_json::{json, Value};
use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub method: String,
    pub path: String,
    pub status: Option<i64>,
    pub upstream_cluster: Option<String>,
}

/// A bounded queue: when full, new spans are refused (and counted) so
/// requests never wait on export.
pub struct SpanBuffer {
    spans: VecDeque<SpanRecord>,
    capacity: usize,
}

impl SpanBuffer {
    pub fn new(capacity: usize) -> SpanBuffer {
        SpanBuffer {
            spans: VecDeque::new(),
            capacity,
        }
    }

    /// False when the buffer is full and the span was dropped.
    pub fn push(&mut self, span: SpanRecord) -> bool {
        if self.spans.len() >= self.capacity {
            return false;
        }
        self.spans.push_back(span);
        true
    }

    pub fn take(&mut self, max: usize) -> Vec<SpanRecord> {
        let n = max.min(self.spans.len());
        self.spans.drain(..n).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

const SPAN_KIND_SERVER: u8 = 2;
const STATUS_UNSET: u8 = 0;
const STATUS_ERROR: u8 = 2;

/// An OTLP `ExportTraceServiceRequest` in the JSON encoding (hex ids,
/// 64-bit integers as strings).
pub fn otlp_json(service_name: &str, spans: &[SpanRecord]) -> Vec<u8> {
    let spans: Vec<Value> = spans.iter().map(span_json).collect();
    let body = json!({
        "resourceSpans": [{
            "resource": { "attributes": [string_attr("service.name", service_name)] },
            "scopeSpans": [{
                "scope": { "name": "meshguard_trace", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn span_json(span: &SpanRecord) -> Value {
    let mut attributes = vec![
        string_attr("http.request.method", &span.method),
        string_attr("url.path", &span.path),
    ];
    if let Some(status) = span.status {
        attributes.push(json!({
            "key": "http.response.status_code",
            "value": { "intValue": status.to_string() },
        }));
    }
    if let Some(cluster) = &span.upstream_cluster {
        attributes.push(string_attr("envoy.upstream_cluster", cluster));
    }
    let failed = span.status.is_some_and(|s| s >= 500);
    json!({
        "traceId": span.trace_id.to_hex(),
        "spanId": span.span_id.to_hex(),
        "parentSpanId": span.parent_span_id.map(|p| hex(&p.0)).unwrap_or_default(),
        "name": format!("{} {}", span.method, span.path),
        "kind": SPAN_KIND_SERVER,
        "startTimeUnixNano": span.start_unix_nanos.to_string(),
        "endTimeUnixNano": span.end_unix_nanos.to_string(),
        "attributes": attributes,
        "status": { "code": if failed { STATUS_ERROR } else { STATUS_UNSET } },
    })
}

fn string_attr(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(n: u8) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId([n; 16]),
            span_id: SpanId([n; 8]),
            parent_span_id: None,
            start_unix_nanos: 1_700_000_000_000_000_000,
            end_unix_nanos: 1_700_000_000_000_500_000,
            method: "GET".into(),
            path: "/api/ml/predict".into(),
            status: Some(503),
            upstream_cluster: Some("ml".into()),
        }
    }

    #[test]
    fn buffer_refuses_when_full_and_drains_in_order() {
        let mut buffer = SpanBuffer::new(2);
        assert!(buffer.push(span(1)));
        assert!(buffer.push(span(2)));
        assert!(!buffer.push(span(3)));
        let taken = buffer.take(1);
        assert_eq!(taken[0].span_id, SpanId([1; 8]));
        assert_eq!(buffer.take(10).len(), 1);
        assert!(buffer.is_empty());
    }

    #[test]
    fn otlp_json_has_hex_ids_and_string_times() {
        let body: Value = serde_json::from_slice(&otlp_json("svc", &[span(0xab)])).unwrap();
        let s = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "abababababababababababababababab");
        assert_eq!(s["spanId"], "abababababababab");
        assert_eq!(s["parentSpanId"], "");
        assert_eq!(s["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(
            body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "svc"
        );
    }
}
