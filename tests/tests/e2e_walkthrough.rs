//! The README walkthrough and the identity → tier → flags → upstream flow,
//! end to end through the shipped stack (`meshguard_harness::mesh`, what
//! `scripts/up` runs), in the default single-module layout and in the
//! four-filter alternative.

use meshguard_harness::mesh::{Layout, Mesh, MeshOptions};
use meshguard_harness::Request;
use serde_json::json;

/// The upstream's echo of the request it received: header name → value.
fn echoed_headers(body: &serde_json::Value) -> Vec<(String, String)> {
    body["meshguard_headers"]
        .as_object()
        .map(|headers| {
            headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn smoke(layout: Layout) {
    let mut options = MeshOptions::for_test();
    options.layout = layout;
    let mesh = Mesh::start(options);
    let health = mesh.send(&Request::get("/healthz"));
    assert_eq!(health.status, 200, "{}", health.text());
    let anonymous = mesh.send(&Request::get("/api/ml/"));
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let token = mesh.mint_token("alice", "premium", json!({}));
    let response = mesh.send(
        &Request::get("/api/ml/")
            .header("authorization", &format!("Bearer {token}"))
            .header("x-auth-sub", "admin"),
    );
    assert_eq!(response.status, 200, "{}\n{}", response.text(), mesh.logs());
    let echoed = echoed_headers(&response.json());
    let header = |name: &str| {
        echoed
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-auth-sub").as_deref(), Some("alice"), "{echoed:?}");
    assert_eq!(
        header("x-auth-tier").as_deref(),
        Some("premium"),
        "{echoed:?}"
    );
}

#[test]
fn smoke_single_module() {
    smoke(Layout::SingleModule);
}

#[test]
fn smoke_four_filters() {
    smoke(Layout::FourFilters);
}

/// 16 random bytes as 32 hex digits (a trace id with random low bits).
fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("urandom"),
        &mut buffer,
    )
    .expect("random bytes");
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_trace_id_is_the_same_at_the_client_the_upstream_and_in_the_exported_span() {
    let mesh = Mesh::start(MeshOptions::for_test());
    let token = mesh.mint_token("tracy", "enterprise", json!({}));
    let trace_id = random_hex(16);
    // Sampled by the caller: `parent_based` (envoy/local/trace.json) keeps it.
    let traceparent = format!("00-{trace_id}-{}-01", random_hex(8));
    let response = mesh.send(
        &Request::get("/api/ml/")
            .header("authorization", &format!("Bearer {token}"))
            .header("traceparent", &traceparent),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let at_client = response
        .header("traceresponse")
        .unwrap_or_else(|| panic!("no traceresponse: {:?}", response.headers));
    assert_eq!(at_client.split('-').nth(1), Some(trace_id.as_str()));
    let echoed = echoed_headers(&response.json());
    let at_upstream = echoed
        .iter()
        .find(|(n, _)| n == "traceparent")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("the upstream saw no traceparent: {echoed:?}"));
    assert_eq!(at_upstream.split('-').nth(1), Some(trace_id.as_str()));
    let span = mesh
        .wait_for_span(&trace_id, std::time::Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "no span of {trace_id} in {}: {:?}",
                mesh.trace_export,
                mesh.spans()
            )
        });
    assert_eq!(span["service"], "meshguard-local", "{span}");
    // The span is this hop's: the id the upstream got as its parent.
    assert_eq!(
        span["spanId"].as_str(),
        at_upstream.split('-').nth(2),
        "{span}"
    );
}

fn admin_post(mesh: &Mesh, path: &str) {
    let response = Request::post(path, Vec::new())
        .send(mesh.admin_port())
        .expect("envoy admin");
    assert_eq!(response.status, 200, "{path}: {}", response.text());
}

/// Polls `path` on the public listener until it answers `status`.
fn wait_for_status(mesh: &Mesh, path: &str, status: u16, limit: std::time::Duration) -> u16 {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let got = mesh.send(&Request::get(path)).status;
        if got == status || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn health_answers_say_whether_envoy_and_the_upstreams_can_serve() {
    let mut mesh = Mesh::start(MeshOptions::for_test());
    // A load balancer probing every second for a minute: never limited.
    for _ in 0..30 {
        let probe = mesh.send(&Request::get("/healthz"));
        assert_eq!(probe.status, 200, "{}", probe.text());
    }
    assert_eq!(mesh.send(&Request::get("/healthz/upstreams")).status, 200);

    // Told to stop taking traffic (before a shutdown): the probe fails first.
    admin_post(&mesh, "/healthcheck/fail");
    assert_eq!(mesh.send(&Request::get("/healthz")).status, 503);
    admin_post(&mesh, "/healthcheck/ok");
    assert_eq!(mesh.send(&Request::get("/healthz")).status, 200);

    // A service with no healthy host: the upstream answer turns 503, the
    // proxy's own stays 200 (it still serves the other four services).
    mesh.upstreams.instance_mut("ml", 0).kill();
    mesh.upstreams.instance_mut("ml", 1).kill();
    let got = wait_for_status(
        &mesh,
        "/healthz/upstreams",
        503,
        std::time::Duration::from_secs(30),
    );
    assert_eq!(got, 503, "/healthz/upstreams with ml down");
    assert_eq!(mesh.send(&Request::get("/healthz")).status, 200);
    let token = mesh.mint_token("hale", "premium", json!({}));
    assert_eq!(mesh.get_as("/api/nlp/", &token).status, 200);
}
