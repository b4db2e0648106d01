//! The README walkthrough and the identity → tier → flags → upstream flow,
//! end to end through the shipped stack (`meshguard_harness::mesh`, what
//! `scripts/up` runs), in the default single-module layout and in the
//! four-filter alternative.

use meshguard_harness::mesh::{Layout, Mesh, MeshOptions};
use meshguard_harness::upstream::RecordingServer;
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

/// Runs `scripts/demo` (the README walkthrough) against `mesh`, as the
/// README tells a user to against `scripts/up`; panics with its output when
/// a step differs.
fn run_demo(mesh: &Mesh) {
    let root = meshguard_harness::paths::workspace_root();
    let state_binary = meshguard_harness::paths::service_binary("meshguard-state");
    let mut demo = std::process::Command::new(root.join("scripts/demo"));
    // With a collector set, the demo names it instead of reading the span log.
    match &mesh.span_log {
        Some(_) => demo.env_remove("MESHGUARD_OTLP_ENDPOINT"),
        None => demo.env("MESHGUARD_OTLP_ENDPOINT", &mesh.trace_export),
    };
    let output = demo
        .env(
            "MESHGUARD_URL",
            format!("http://127.0.0.1:{}", mesh.listener_port()),
        )
        .env(
            "MESHGUARD_ADMIN_URL",
            format!("http://127.0.0.1:{}", mesh.admin_port()),
        )
        .env("MESHGUARD_STATE_URL", mesh.state.url())
        .env("MESHGUARD_RUN_DIR", mesh.run_dir())
        .env(
            "MESHGUARD_BIN",
            state_binary.parent().expect("the binary's directory"),
        )
        .env_remove("MESHGUARD_ADMIN_TOKEN")
        .env_remove("MESHGUARD_ADMIN_TOKEN_FILE")
        .output()
        .expect("run scripts/demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scripts/demo failed ({}):\n{stdout}\n{stderr}\n{}",
        output.status,
        mesh.logs()
    );
    assert!(stdout.contains("All "), "{stdout}");
    assert!(!stdout.contains("MISMATCH"), "{stdout}");
}

/// Identity → rate-limit tier → flag targeting → what the upstream
/// receives, for a user of each tier; the seed flags' tier rules
/// (flags/default.json) decide some flags for every user of a tier.
fn four_tiers(mesh: &Mesh) {
    // (tier, per-minute limit, fraud v3 may be on, advanced analytics may be on)
    let tiers = [
        ("free", 10, false, false),
        ("premium", 50, true, false),
        ("enterprise", 500, true, true),
        ("admin", 5000, false, false),
    ];
    for (tier, per_minute, fraud_v3, analytics) in tiers {
        let user = format!("tiered-{tier}");
        let token = mesh.mint_token(&user, tier, json!({}));
        let first = mesh.get_as("/api/nlp/", &token);
        assert_eq!(first.status, 200, "{tier}: {}", first.text());
        let policy = first.header("ratelimit-policy").unwrap_or_default();
        assert!(
            policy.contains(&format!("\"minute\";q={per_minute};w=60")),
            "{tier}: RateLimit-Policy {policy}"
        );
        let seen = echoed_headers(&first.json());
        let header = |name: &str| {
            seen.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(header("x-auth-sub"), user, "{tier}: {seen:?}");
        assert_eq!(header("x-auth-tier"), tier, "{tier}: {seen:?}");
        assert_eq!(
            header("x-feature-nlp-batch-processing"),
            "on",
            "{tier}: {seen:?}"
        );
        assert_eq!(
            header("x-feature-gdpr-strict-mode"),
            "on",
            "{tier}: {seen:?}"
        );
        if !fraud_v3 {
            assert_eq!(
                header("x-feature-fraud-detection-v3"),
                "off",
                "{tier}: {seen:?}"
            );
        }
        if !analytics {
            assert_eq!(
                header("x-feature-advanced-analytics"),
                "off",
                "{tier}: {seen:?}"
            );
            assert_eq!(
                header("x-feature-distributed-tracing"),
                "off",
                "{tier}: {seen:?}"
            );
        }
        // Percentage rollouts hash the user: the same user, the same variant.
        let again = echoed_headers(&mesh.get_as("/api/nlp/", &token).json());
        for flag in ["x-feature-ml-v2", "x-feature-rate-limiting-v2"] {
            let variant = |headers: &[(String, String)]| {
                headers
                    .iter()
                    .find(|(n, _)| n == flag)
                    .map(|(_, v)| v.clone())
            };
            assert!(variant(&seen).is_some(), "{tier}: no {flag} in {seen:?}");
            assert_eq!(variant(&seen), variant(&again), "{tier}: {flag} changed");
        }
    }
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

/// A request's trace id at the client (traceresponse), at the upstream
/// (traceparent) and in the exported span (the mesh's span log).
fn one_trace_id_everywhere(mesh: &Mesh) {
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

/// `/healthz` and `/healthz/upstreams`; takes the ml service down (last).
fn health_answers(mesh: &mut Mesh) {
    // A load balancer probing every second for a minute: never limited.
    for _ in 0..30 {
        let probe = mesh.send(&Request::get("/healthz"));
        assert_eq!(probe.status, 200, "{}", probe.text());
    }
    assert_eq!(mesh.send(&Request::get("/healthz/upstreams")).status, 200);

    // Told to stop taking traffic (before a shutdown): the probe fails first.
    admin_post(mesh, "/healthcheck/fail");
    assert_eq!(mesh.send(&Request::get("/healthz")).status, 503);
    admin_post(mesh, "/healthcheck/ok");
    assert_eq!(mesh.send(&Request::get("/healthz")).status, 200);

    // A service with no healthy host: the upstream answer turns 503, the
    // proxy's own stays 200 (it still serves the other four services).
    mesh.upstreams.instance_mut("ml", 0).kill();
    mesh.upstreams.instance_mut("ml", 1).kill();
    let got = wait_for_status(
        mesh,
        "/healthz/upstreams",
        503,
        std::time::Duration::from_secs(30),
    );
    assert_eq!(got, 503, "/healthz/upstreams with ml down");
    assert_eq!(mesh.send(&Request::get("/healthz")).status, 200);
    let token = mesh.mint_token("hale", "premium", json!({}));
    assert_eq!(mesh.get_as("/api/nlp/", &token).status, 200);
}

#[test]
fn the_single_module_mesh_walks_the_readme_and_every_flow() {
    let mut mesh = Mesh::start(MeshOptions::for_test());
    assert_eq!(mesh.layout, Layout::SingleModule);
    run_demo(&mesh);
    four_tiers(&mesh);
    one_trace_id_everywhere(&mesh);
    health_answers(&mut mesh);
}

#[test]
fn the_four_filter_mesh_walks_the_readme_and_exports_to_a_collector() {
    // What MESHGUARD_OTLP_ENDPOINT gives scripts/up: spans to this collector.
    let collector = RecordingServer::otlp_collector();
    let mut options = MeshOptions::for_test();
    options.layout = Layout::FourFilters;
    options.otlp_endpoint = Some(format!("http://127.0.0.1:{}", collector.port));
    let mesh = Mesh::start(options);
    assert!(mesh.span_log.is_none());
    run_demo(&mesh);
    four_tiers(&mesh);

    let token = mesh.mint_token("collected", "premium", json!({}));
    let trace_id = random_hex(16);
    let response = mesh.send(
        &Request::get("/api/nlp/")
            .header("authorization", &format!("Bearer {token}"))
            .header(
                "traceparent",
                &format!("00-{trace_id}-{}-01", random_hex(8)),
            ),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let spans = collector.wait_for_spans(std::time::Duration::from_secs(5), |spans| {
        spans.iter().any(|s| s["traceId"] == trace_id.as_str())
    });
    assert!(
        spans.iter().any(|s| s["traceId"] == trace_id.as_str()),
        "no span of {trace_id} at the collector: {spans:?}"
    );
    let export = collector.requests();
    assert!(
        export
            .iter()
            .all(|r| r.method == "POST" && r.path == "/v1/traces"),
        "{:?}",
        export
            .iter()
            .map(|r| (&r.method, &r.path))
            .collect::<Vec<_>>()
    );
}
