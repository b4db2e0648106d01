//! Shared by the `upstreams_*` tests: Python upstream instances behind a real
//! Envoy rendered from the one template, with times shrunk so ejections and
//! health checks play out in seconds.

#![allow(dead_code)]

use meshguard_harness::envoy::Resilience;
use meshguard_harness::http::{Request, Response};
use meshguard_harness::python::{UpstreamOptions, Upstreams};
use meshguard_harness::{Envoy, EnvoySpec};
use std::time::{Duration, Instant};

pub struct Mesh {
    pub upstreams: Upstreams,
    pub envoy: Envoy,
    /// Envoy's GDPR data-path listener (`/api/<service>/gdpr/...` only), the
    /// way meshguard-gdpr reaches the upstreams; the public listener refuses
    /// those paths.
    pub gdpr_port: u16,
}

/// The template's resilience settings with test-sized times: ejections are
/// reviewed every 0.5 s and last 5 s (long enough that a test's burst of
/// requests ends before an ejection does, even on a loaded machine), hosts
/// are probed every second.
pub fn fast() -> Resilience {
    Resilience {
        outlier_interval: Some("0.5s".into()),
        base_ejection_time: Some("5s".into()),
        max_ejection_time: Some("20s".into()),
        health_check_interval: Some("1s".into()),
        ..Resilience::default()
    }
}

impl Mesh {
    pub fn start(services: &[&str], resilience: Resilience, options: UpstreamOptions) -> Mesh {
        let upstreams = Upstreams::start(services, options);
        let mut spec = upstreams.add_to(EnvoySpec::new().resilience(resilience));
        let gdpr_port = meshguard_harness::ports::free_port();
        spec.gdpr_listener_port = Some(gdpr_port);
        let envoy = Envoy::start(spec);
        let mesh = Mesh {
            upstreams,
            envoy,
            gdpr_port,
        };
        for service in services {
            mesh.wait_healthy(service, 2);
        }
        mesh
    }

    /// The `data` service with `fast()` settings.
    pub fn data() -> Mesh {
        Mesh::start(&["data"], fast(), UpstreamOptions::default())
    }

    pub fn send(&self, request: &Request) -> std::io::Result<Response> {
        request.send(self.envoy.port)
    }

    pub fn get(&self, path: &str) -> Response {
        self.envoy.get(path)
    }

    /// A counter or gauge of Envoy, 0 when absent.
    pub fn stat(&self, name: &str) -> u64 {
        self.envoy.stats().get(name).copied().unwrap_or(0)
    }

    /// Envoy's `/clusters` admin page.
    pub fn clusters(&self) -> String {
        Request::get("/clusters")
            .send(self.envoy.admin_port)
            .map(|r| r.text())
            .unwrap_or_default()
    }

    /// The `health_flags` of one host on `/clusters`.
    pub fn health_flags(&self, service: &str, port: u16) -> String {
        let prefix = format!("{service}::127.0.0.1:{port}::health_flags::");
        self.clusters()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .unwrap_or_default()
    }

    /// Waits until Envoy's active health checks pass for `count` hosts.
    pub fn wait_healthy(&self, service: &str, count: usize) {
        wait_for(Duration::from_secs(20), "hosts healthy", || {
            self.upstreams
                .instances
                .iter()
                .filter(|i| i.service == service)
                .filter(|i| self.health_flags(service, i.port) == "healthy")
                .count()
                >= count
        });
    }
}

/// The instance that answered (`x-upstream-instance`), "" for Envoy itself.
pub fn served_by(response: &Response) -> String {
    response
        .header("x-upstream-instance")
        .unwrap_or_default()
        .to_string()
}

/// Polls `done` until true; panics naming `what` after `limit`.
#[track_caller]
pub fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "not {what} after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn validate_events() -> Request {
    Request::post(
        "/api/data/events/validate",
        r#"{"events":[{"type":"click","user_id":"u1","timestamp":"2026-01-01T00:00:00Z"}]}"#,
    )
    .header("content-type", "application/json")
}
