//! Consistent sampling across hops, OTLP span export, and coexistence with
//! Envoy's own tracer, through real Envoys.

use meshguard_harness::ports::free_port;
use meshguard_harness::upstream::RecordingServer;
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request};
use meshguard_policy::sampling::Sampler;
use meshguard_policy::trace_context::TraceParent;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Deterministic pseudo-random trace ids (splitmix64), so a failure repeats.
fn trace_ids(n: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|_| format!("{:016x}{:016x}", next(), next()))
        .collect()
}

fn sampled_flag(envoy: &Envoy, trace_id: &str) -> bool {
    let incoming = format!("00-{trace_id}-b7ad6b7169203331-00");
    let response = envoy.send(&Request::get("/healthz").header("traceparent", &incoming));
    let tp = response.header("traceresponse").expect("traceresponse");
    let parsed = TraceParent::parse(tp).expect("valid traceresponse");
    assert_eq!(parsed.trace_id.to_hex(), trace_id);
    parsed.is_sampled()
}

#[test]
fn sampling_is_consistent_across_hops_for_ten_thousand_trace_ids() {
    let ratio = 0.3;
    let config =
        json!({"sampling_ratio": ratio, "sampling_mode": "always_ratio", "trace_response": true});
    let hop_a = Envoy::start(EnvoySpec::new().plugin(Plugin::new("trace", Some(config.clone()))));
    let hop_b = Envoy::start(EnvoySpec::new().plugin(Plugin::new("trace", Some(config))));
    let ids = trace_ids(10_000, 7);
    let reference = Sampler::new(ratio);

    let halves: Vec<&[String]> = ids.chunks(ids.len() / 2).collect();
    let sampled: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = halves
            .iter()
            .map(|chunk| {
                let (a, b) = (&hop_a, &hop_b);
                scope.spawn(move || {
                    let mut count = 0;
                    for id in chunk.iter() {
                        let (at_a, at_b) = (sampled_flag(a, id), sampled_flag(b, id));
                        assert_eq!(at_a, at_b, "both hops agree on {id}");
                        let parsed =
                            TraceParent::parse(&format!("00-{id}-b7ad6b7169203331-00")).unwrap();
                        assert_eq!(at_a, reference.samples(&parsed.trace_id), "{id}");
                        count += usize::from(at_a);
                    }
                    count
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let share = sampled as f64 / ids.len() as f64;
    assert!(
        (share - ratio).abs() <= 0.01,
        "sampled share {share} vs ratio {ratio}"
    );
}

fn unix_nanos_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[test]
fn sampled_requests_are_exported_as_otlp_spans() {
    let collector = RecordingServer::otlp_collector();
    let echo = RecordingServer::echo();
    let config = json!({
        "sampling_ratio": 1.0,
        "service_name": "edge",
        "export": {"cluster": "otel", "interval_ms": 100}
    });
    let envoy = Envoy::start(
        EnvoySpec::new()
            .plugin(Plugin::new("trace", Some(config)))
            .cluster("otel", collector.port)
            .cluster("echo", echo.port)
            .route("/echo", "echo"),
    );
    let before = unix_nanos_now();
    let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let response = envoy.send(&Request::get("/echo/items?id=7").header("traceparent", incoming));
    assert_eq!(response.status, 200);
    let unsampled = "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    envoy.send(&Request::get("/echo/quiet").header("traceparent", unsampled));
    let missing = envoy.get("/nowhere");
    assert_eq!(missing.status, 404);
    let after = unix_nanos_now();

    let spans = collector.wait_for_spans(Duration::from_secs(10), |s| s.len() >= 2);
    assert_eq!(
        spans.len(),
        2,
        "the unsampled request has no span: {spans:#?}"
    );
    let upstream_tp = echo.requests()[0].headers_named("traceparent")[0].to_string();
    let span = spans
        .iter()
        .find(|s| s["traceId"] == "0af7651916cd43dd8448eb211c80319c")
        .expect("span of the sampled request");
    assert_eq!(span["parentSpanId"], "b7ad6b7169203331");
    assert_eq!(
        upstream_tp.split('-').nth(2),
        span["spanId"].as_str(),
        "span id = forwarded parent-id"
    );
    assert_eq!(span["name"], "GET /echo/items");
    assert_eq!(
        attr(span, "http.request.method").unwrap()["stringValue"],
        "GET"
    );
    assert_eq!(
        attr(span, "url.path").unwrap()["stringValue"],
        "/echo/items"
    );
    assert_eq!(
        attr(span, "http.response.status_code").unwrap()["intValue"],
        "200"
    );
    assert_eq!(
        attr(span, "envoy.upstream_cluster").unwrap()["stringValue"],
        "echo"
    );
    let start: u128 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u128 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(
        before <= start && start <= end && end <= after,
        "{before} <= {start} <= {end} <= {after}"
    );

    let local = spans
        .iter()
        .find(|s| s["name"] == "GET /nowhere")
        .expect("local reply span");
    assert_eq!(
        attr(local, "http.response.status_code").unwrap()["intValue"],
        "404"
    );
    assert_eq!(local["parentSpanId"], "", "a new trace has no parent");

    let export = &collector.requests()[0];
    assert_eq!(export.method, "POST");
    assert_eq!(export.path, "/v1/traces");
    assert_eq!(
        export.headers_named("content-type"),
        vec!["application/json"]
    );
    let body: Value = serde_json::from_slice(&export.body).unwrap();
    assert_eq!(
        body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
        "edge"
    );
    assert_eq!(envoy.plugin_stat("trace.spans_exported"), 2);
}

#[test]
fn a_dead_collector_costs_requests_nothing_and_drops_are_counted() {
    let dead_port = free_port();
    let config = json!({
        "sampling_ratio": 1.0,
        "trace_response": true,
        "export": {"cluster": "otel", "interval_ms": 50, "timeout_ms": 200}
    });
    let envoy = Envoy::start(
        EnvoySpec::new()
            .plugin(Plugin::new("trace", Some(config)))
            .cluster("otel", dead_port),
    );
    for _ in 0..20 {
        let response = envoy.get("/healthz");
        assert_eq!(response.status, 200);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while envoy.plugin_stat("trace.spans_dropped") < 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(envoy.plugin_stat("trace.spans_dropped"), 20);
    assert_eq!(envoy.plugin_stat("trace.spans_exported"), 0);
}

#[test]
fn a_full_buffer_drops_new_spans_instead_of_blocking() {
    let collector = RecordingServer::otlp_collector();
    let config = json!({
        "sampling_ratio": 1.0,
        "export": {"cluster": "otel", "interval_ms": 3_600_000, "max_batch": 2, "max_buffered": 5}
    });
    let envoy = Envoy::start(
        EnvoySpec::new()
            .plugin(Plugin::new("trace", Some(config)))
            .cluster("otel", collector.port),
    );
    for _ in 0..12 {
        assert_eq!(envoy.get("/healthz").status, 200);
    }
    assert_eq!(envoy.plugin_stat("trace.spans_dropped"), 7);
}

#[test]
fn never_two_traceparents_beside_envoys_own_tracer() {
    let collector = RecordingServer::otlp_collector();
    let echo = RecordingServer::echo();
    let envoy = Envoy::start(
        EnvoySpec::new()
            .plugin(Plugin::new("trace", Some(json!({"sampling_ratio": 1.0}))))
            .cluster("otel", collector.port)
            .cluster("echo", echo.port)
            .route("/echo", "echo")
            .envoy_tracing("otel"),
    );
    let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for request in [
        Request::get("/echo"),
        Request::get("/echo").header("traceparent", incoming),
    ] {
        assert_eq!(envoy.send(&request).status, 200);
        let seen = echo.requests();
        let values = seen.last().unwrap().headers_named("traceparent");
        assert_eq!(values.len(), 1, "one traceparent: {values:?}");
        assert!(TraceParent::parse(values[0]).is_ok(), "{values:?}");
    }
    let seen = echo.requests();
    let continued = seen[1].headers_named("traceparent")[0];
    assert!(
        continued.contains("0af7651916cd43dd8448eb211c80319c"),
        "{continued}"
    );
}
