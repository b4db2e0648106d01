//! The W3C's own Trace Context test suite (w3c/trace-context, `test/`) at
//! `SPEC_LEVEL=2 STRICT_LEVEL=2`, against the trace plugin as a meshed
//! service meets it:
//!
//! ```text
//! W3C harness ──▶ ingress Envoy (plugin) ──▶ test service ──▶ egress Envoy (plugin) ──▶ W3C harness
//! ```
//!
//! The test service is what an application without a tracer does in a mesh:
//! it copies the `traceparent` and `tracestate` it received onto the calls
//! the harness asks it to make, and sends them through its egress Envoy.
//!
//! The suite is not part of this repository and CI cannot fetch it, so this
//! test is ignored unless `scripts/w3c-trace-context PATH` runs it with a
//! checkout; `trace_w3c.rs` and the policy crate's unit tests check the same
//! cases on every run.

use meshguard_harness::ports::free_port;
use meshguard_harness::{paths, Envoy, EnvoySpec, Plugin, Request};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// The shipped trace configuration (`envoy/local/trace.json`).
fn shipped_trace_config() -> serde_json::Value {
    let path = paths::workspace_root().join("envoy/local/trace.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The plugin under test in both shipped layouts: the trace module alone,
/// and the single module with only its trace policy on (the harness cannot
/// authenticate).
fn plugin(layout: &str) -> Plugin {
    let trace = shipped_trace_config();
    match layout {
        "trace" => Plugin::new("trace", Some(trace)),
        _ => Plugin::new(
            "chain",
            Some(serde_json::json!({
                "trace": trace, "auth": null, "ratelimit": null, "flags": null
            })),
        ),
    }
}

/// The test service: for each `{url, arguments}` in the posted array, posts
/// `arguments` to `url` through the egress Envoy with the trace headers it
/// received, then answers 200.
fn start_test_service(egress_port: u16) -> u16 {
    let port = free_port();
    let server = Arc::new(
        tiny_http::Server::http(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("test service on {port}: {e}")),
    );
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let trace_headers: Vec<(String, String)> = request
                .headers()
                .iter()
                .filter(|h| h.field.equiv("traceparent") || h.field.equiv("tracestate"))
                .map(|h| (h.field.to_string(), h.value.to_string()))
                .collect();
            let actions: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
            for action in actions {
                let url = action["url"].as_str().unwrap_or_default();
                // http://host:port/path → /path, sent to the egress Envoy.
                let path = url
                    .split_once("://")
                    .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
                    .unwrap_or("/");
                let arguments = action.get("arguments").cloned().unwrap_or_default();
                let mut call = Request::post(path, arguments.to_string())
                    .header("content-type", "application/json");
                for (name, value) in &trace_headers {
                    call = call.header(name, value);
                }
                if let Err(e) = call.send(egress_port) {
                    eprintln!("test service: callback {url}: {e}");
                }
            }
            let reply = tiny_http::Response::from_string("{}").with_header(
                tiny_http::Header::from_bytes("content-type", "application/json")
                    .unwrap_or_else(|_| unreachable!("static header")),
            );
            let _ = request.respond(reply);
        }
    });
    port
}

struct SuiteRun {
    passed: bool,
    ran: usize,
    output: String,
}

fn run_suite(checkout: &Path, layout: &str) -> SuiteRun {
    let harness_port = free_port();
    let egress = Envoy::start(
        EnvoySpec::new()
            .plugin(plugin(layout))
            .cluster("harness", harness_port)
            .route("/", "harness"),
    );
    let service_port = start_test_service(egress.port);
    let ingress = Envoy::start(
        EnvoySpec::new()
            .plugin(plugin(layout))
            .cluster("service", service_port)
            .route("/test", "service"),
    );
    let endpoint = format!("http://127.0.0.1:{}/test", ingress.port);
    let output = Command::new(paths::workspace_root().join(".venv/bin/python"))
        .arg("test.py")
        .arg(&endpoint)
        .current_dir(checkout.join("test"))
        .env("SPEC_LEVEL", "2")
        .env("STRICT_LEVEL", "2")
        .env("HARNESS_HOST", "127.0.0.1")
        .env("HARNESS_PORT", harness_port.to_string())
        .output()
        .unwrap_or_else(|e| panic!("run the W3C suite: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let ran = text
        .lines()
        .find_map(|l| l.strip_prefix("Ran ")?.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    SuiteRun {
        passed: output.status.success(),
        ran,
        output: text,
    }
}

#[test]
#[ignore = "needs a w3c/trace-context checkout: run scripts/w3c-trace-context PATH"]
fn w3c_trace_context_suite_passes_at_level_2() {
    let checkout = PathBuf::from(
        std::env::var("W3C_TRACE_CONTEXT")
            .expect("W3C_TRACE_CONTEXT: path to a w3c/trace-context checkout"),
    );
    assert!(
        checkout.join("test/test.py").is_file(),
        "{} has no test/test.py",
        checkout.display()
    );
    for layout in ["trace", "chain"] {
        let run = run_suite(&checkout, layout);
        println!("--- {layout} module ---\n{}", run.output);
        assert!(run.passed, "{layout}: the W3C suite failed");
        assert!(run.ran >= 30, "{layout}: only {} tests ran", run.ran);
        assert!(
            !run.output.contains("skipped"),
            "{layout}: a test was skipped at level 2"
        );
        println!(
            "w3c trace-context ({layout} module): {} tests, all passed",
            run.ran
        );
    }
}
