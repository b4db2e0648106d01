//! The observability pack against the shipped stack: Prometheus (Debian's
//! `prometheus`) scrapes a running mesh with observability/prometheus.yml's
//! jobs, and every query of the Grafana dashboard
//! (observability/grafana/meshguard.json) must return data; the services
//! log JSON lines whose request id is the caller's trace id.

use meshguard_harness::http::Request;
use meshguard_harness::mesh::{Mesh, MeshOptions};
use meshguard_harness::paths::{service_binary, workspace_root};
use meshguard_harness::ports::free_port;
use meshguard_harness::process::Process;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// A Prometheus server scraping the mesh's Envoy admin, meshguard-state and
/// meshguard-gdpr every 500 ms, with the repository's alert rules loaded.
fn prometheus(mesh: &Mesh, dir: &std::path::Path) -> (Process, u16) {
    let shipped = std::fs::read_to_string(workspace_root().join("observability/prometheus.yml"))
        .expect("observability/prometheus.yml");
    // The shipped config's jobs, with this mesh's ports and a fast interval.
    let config = shipped
        .replace("scrape_interval: 15s", "scrape_interval: 500ms")
        .replace(
            "127.0.0.1:9901",
            &format!("127.0.0.1:{}", mesh.admin_port()),
        )
        .replace("127.0.0.1:7070", &format!("127.0.0.1:{}", mesh.state.port))
        .replace("127.0.0.1:7071", &format!("127.0.0.1:{}", mesh.gdpr_port()))
        .replace(
            "rules/meshguard.rules.yml",
            &workspace_root()
                .join("observability/rules/meshguard.rules.yml")
                .display()
                .to_string(),
        );
    assert_ne!(
        config, shipped,
        "the shipped targets moved: update this test"
    );
    let config_file = dir.join("prometheus.yml");
    std::fs::write(&config_file, config).unwrap();
    let port = free_port();
    let mut command = Command::new("prometheus");
    command
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let mut process = Process::spawn("prometheus", command, dir);
    process.wait_until(Duration::from_secs(20), "answering /-/ready", || {
        Request::get("/-/ready")
            .send(port)
            .is_ok_and(|r| r.status == 200)
    });
    (process, port)
}

fn query(port: u16, expr: &str) -> Vec<Value> {
    let encoded: String = expr
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let response = Request::get(&format!("/api/v1/query?query={encoded}"))
        .send(port)
        .expect("prometheus query");
    let body = response.json();
    assert_eq!(body["status"], "success", "{expr}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Every `expr` of the dashboard's panels, with Grafana's `$__rate_interval`
/// as the one-minute window a short test can fill.
fn dashboard_queries() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(workspace_root().join("observability/grafana/meshguard.json"))
            .expect("observability/grafana/meshguard.json");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            queries.push((
                panel["title"].as_str().unwrap_or("?").to_string(),
                expr.replace("$__rate_interval", "1m"),
            ));
        }
    }
    queries
}

/// Traffic that makes every panel's series exist: users of several tiers
/// (flag exposures, upstream times), a free user over its limit (429s),
/// bad tokens (auth rejections) and a repeated cacheable read.
fn drive_traffic(mesh: &Mesh) {
    for (sub, tier) in [("obs-premium", "premium"), ("obs-enterprise", "enterprise")] {
        let token = mesh.mint_token(sub, tier, Value::Null);
        for path in ["/api/nlp/", "/api/fraud/", "/api/data/"] {
            let response = mesh.get_as(path, &token);
            assert!(response.status < 500, "{path}: {}", response.status);
        }
    }
    let free = mesh.mint_token("obs-free", "free", Value::Null);
    let statuses: Vec<u16> = (0..4)
        .map(|_| mesh.get_as("/api/ml/", &free).status)
        .collect();
    assert!(
        statuses.contains(&429),
        "no 429 for the free tier: {statuses:?}"
    );
    assert_eq!(mesh.get_as("/api/nlp/", "not-a-jwt").status, 401);
    let reader = mesh.mint_token("obs-reader", "premium", Value::Null);
    for _ in 0..3 {
        mesh.get_as("/api/ml/models", &reader);
    }
}

/// A data-subject request on file, so meshguard-gdpr's register gauges have one.
fn file_gdpr_request(mesh: &Mesh) {
    let admin = format!("Bearer {}", mesh.gdpr_admin_token());
    let contact = Request::post(
        "/v1/contacts/obs-subject",
        json!({"email": "obs@example.org", "source": "account record"}).to_string(),
    )
    .header("authorization", &admin)
    .header("content-type", "application/json")
    .send(mesh.gdpr_port())
    .expect("meshguard-gdpr");
    assert!(
        contact.status < 300,
        "a contact address: {} {}",
        contact.status,
        contact.text()
    );
    let filed = Request::post(
        "/v1/requests",
        json!({"kind": "access", "user": "obs-subject"}).to_string(),
    )
    .header("authorization", &admin)
    .header("content-type", "application/json")
    .send(mesh.gdpr_port())
    .expect("meshguard-gdpr");
    assert!(
        filed.status < 300,
        "filing a request: {} {}",
        filed.status,
        filed.text()
    );
}

#[test]
fn every_dashboard_query_returns_data_from_a_live_mesh() {
    let mesh = Mesh::start(MeshOptions::for_test());
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port) = prometheus(&mesh, dir.path());
    file_gdpr_request(&mesh);
    drive_traffic(&mesh);

    let queries = dashboard_queries();
    assert!(
        queries.len() >= 10,
        "the dashboard lost panels: {queries:?}"
    );
    // rate() needs two samples of a series after it appears; keep the
    // traffic flowing while the scrapes come in.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut empty: Vec<(String, String)>;
    loop {
        empty = queries
            .iter()
            .filter(|(_, expr)| query(port, expr).is_empty())
            .cloned()
            .collect();
        if empty.is_empty() || Instant::now() > deadline {
            break;
        }
        drive_traffic(&mesh);
        std::thread::sleep(Duration::from_secs(2));
    }
    let up = query(port, "up == 1");
    server.stop();
    assert_eq!(up.len(), 3, "every job scraped: {up:?}");
    assert!(
        empty.is_empty(),
        "dashboard queries with no data:\n{}\n\nEnvoy's meshguard and cache series:\n{}",
        empty
            .iter()
            .map(|(title, expr)| format!("  {title}: {expr}"))
            .collect::<Vec<_>>()
            .join("\n"),
        prometheus_names(&mesh)
    );
}

/// The metric names Envoy exposes for Meshguard and the cache, for a
/// failing test's message.
fn prometheus_names(mesh: &Mesh) -> String {
    let text = Request::get("/stats/prometheus")
        .send(mesh.admin_port())
        .map(|r| r.text())
        .unwrap_or_default();
    let mut names: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains("meshguard_ratelimit_allowed")
                || l.contains("cache_event")
                || l.contains("variant_exposures")
        })
        .collect();
    names.dedup();
    names.join("\n")
}

#[test]
fn the_services_log_json_lines_named_by_the_trace_id() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin-token");
    std::fs::write(&token, "observability-admin-token").unwrap();
    let key = dir.path().join("gdpr.key");
    let gdpr = service_binary("meshguard-gdpr");
    assert!(Command::new(&gdpr)
        .arg("keygen")
        .arg(&key)
        .output()
        .unwrap()
        .status
        .success());
    let port = free_port();
    let mut command = Command::new(&gdpr);
    command
        .env("MESHGUARD_GDPR_DB", dir.path().join("gdpr.db"))
        .env("MESHGUARD_GDPR_KEY_FILE", &key)
        // Nothing listens there: /readyz answers 503 and logs why.
        .env(
            "MESHGUARD_REDIS_URL",
            format!("redis://127.0.0.1:{}", free_port()),
        )
        .args(["serve", "--log-format", "json", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-token-file")
        .arg(&token);
    let mut process = Process::spawn("meshguard-gdpr", command, dir.path());
    process.wait_until(Duration::from_secs(20), "answering /healthz", || {
        Request::get("/healthz")
            .send(port)
            .is_ok_and(|r| r.status == 200)
    });
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = Request::get("/readyz")
        .header("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send(port)
        .unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.header("x-request-id"), Some(trace_id));
    std::thread::sleep(Duration::from_millis(300));
    process.stop();
    let log = process.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"] == trace_id && l["level"] == "WARN"),
        "no warning carrying the trace id:\n{log}"
    );
}
