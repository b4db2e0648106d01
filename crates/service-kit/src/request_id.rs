//! Every request gets an id that its log lines carry and its response
//! returns in `x-request-id`. The id is the W3C trace id when the caller
//! sent a valid `traceparent` (so a service's log lines, Envoy's access log,
//! the upstreams and the exported spans of one request share one id), else
//! the caller's `x-request-id` when it is a plausible id, else a new random
//! one.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use meshguard_policy::trace_context::TraceParent;
use tracing::Instrument;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// An `x-request-id` a caller may choose: short, and nothing that could
/// forge a log line or a JSON field.
const MAX_CALLER_ID: usize = 64;

/// The id of a request with these headers.
pub fn for_headers(traceparent: Option<&str>, request_id: Option<&str>) -> String {
    if let Some(parent) = traceparent.and_then(|v| TraceParent::parse(v).ok()) {
        return parent.trace_id.to_hex();
    }
    if let Some(id) = request_id.filter(|id| is_plausible(id)) {
        return id.to_string();
    }
    random_id()
}

fn is_plausible(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CALLER_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// 128 random bits as 32 hex digits, the shape of a trace id.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // No randomness means no id worth having; fall back to the time.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Axum middleware: runs the request inside a `request` span with its id,
/// method and route, logs its status and duration at debug level, and sets
/// `x-request-id` on the response.
pub async fn middleware(request: Request, next: Next) -> Response {
    let id = {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        for_headers(header("traceparent"), header("x-request-id"))
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), route = %route);
    let start = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            duration_ms = start.elapsed().as_secs_f64() * 1e3,
            "answered"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_trace_id_names_a_traced_request() {
        assert_eq!(
            for_headers(Some(PARENT), Some("other")),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn a_plausible_caller_id_is_kept_and_anything_else_replaced() {
        assert_eq!(for_headers(None, Some("req-42.a_b")), "req-42.a_b");
        assert_eq!(for_headers(Some("garbage"), Some("req-1")), "req-1");
        for forged in ["a\"b", "line\nbreak", "", &"x".repeat(65)] {
            let id = for_headers(None, Some(forged));
            assert_eq!(id.len(), 32, "{forged:?} gave {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(for_headers(None, None), for_headers(None, None));
    }

    #[tokio::test]
    async fn responses_carry_the_id() {
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route("/x", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(middleware));
        let response = app
            .oneshot(
                axum::http::Request::get("/x")
                    .header("traceparent", PARENT)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            response.headers()[HEADER],
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
