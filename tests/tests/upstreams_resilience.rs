//! Envoy's outlier detection, retries and circuit breakers in front of the
//! Python upstreams, proven with faults switched on in real uvicorn processes.

mod upstreams_support;

use meshguard_harness::envoy::Resilience;
use meshguard_harness::http::Request;
use meshguard_harness::python::UpstreamOptions;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use upstreams_support::{fast, served_by, validate_events, wait_for, Mesh};

const QUOTE: &str = "/api/data/market/ABC";

#[test]
fn a_host_answering_503_is_ejected_and_returns_after_the_ejection_time() {
    let mesh = Mesh::data();
    let (sick, well) = (
        mesh.upstreams.instance("data", 0),
        mesh.upstreams.instance("data", 1),
    );
    let mut seen = BTreeMap::new();
    for _ in 0..10 {
        let response = mesh.get(QUOTE);
        assert_eq!(response.status, 200, "{}", response.text());
        *seen.entry(served_by(&response)).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "round robin over both hosts: {seen:?}");

    sick.fault(json!({"mode": "error", "status": 503}));
    for i in 0..20 {
        let response = mesh.get(QUOTE);
        // Idempotent: every 503 is retried on the other host.
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
        assert_eq!(served_by(&response), well.name());
    }
    assert!(mesh.stat("cluster.data.outlier_detection.ejections_enforced_total") >= 1);
    assert_eq!(
        mesh.stat("cluster.data.outlier_detection.ejections_active"),
        1
    );
    assert!(mesh.stat("cluster.data.upstream_rq_retry") >= 1);
    assert!(
        mesh.health_flags("data", sick.port)
            .contains("failed_outlier_check"),
        "{}",
        mesh.clusters()
    );
    let failed = sick.fault_state()["counters"]["failed"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        (1..=3).contains(&failed),
        "consecutive_gateway_failure is 3: the sick host got {failed} requests"
    );

    sick.heal();
    // Healthy again, but out until base_ejection_time (5 s here) has passed.
    assert_eq!(served_by(&mesh.get(QUOTE)), well.name());
    wait_for(Duration::from_secs(20), "back in rotation", || {
        served_by(&mesh.get(QUOTE)) == sick.name()
    });
    assert_eq!(
        mesh.stat("cluster.data.outlier_detection.ejections_active"),
        0
    );
    assert_eq!(mesh.health_flags("data", sick.port), "healthy");
}

#[test]
fn non_idempotent_requests_see_at_most_a_handful_of_503s() {
    let mesh = Mesh::data();
    let sick = mesh.upstreams.instance("data", 0);
    sick.fault(json!({"mode": "error", "status": 503}));
    let statuses: Vec<u16> = (0..30)
        .map(|_| mesh.send(&validate_events()).expect("through envoy").status)
        .collect();
    let failures = statuses.iter().filter(|s| **s != 200).count();
    // POST is not retried after the application answered; ejection stops it.
    assert!(failures <= 3, "{failures} failures: {statuses:?}");
    assert!(
        statuses[10..].iter().all(|s| *s == 200),
        "all traffic on the healthy host once ejected: {statuses:?}"
    );
    assert!(
        mesh.stat("cluster.data.outlier_detection.ejections_enforced_consecutive_gateway_failure")
            >= 1
    );
}

#[test]
fn a_host_resetting_connections_is_ejected_without_client_errors() {
    let mesh = Mesh::data();
    let sick = mesh.upstreams.instance("data", 0);
    sick.fault(json!({"mode": "reset"}));
    for i in 0..30 {
        let response = mesh.get(QUOTE);
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
    }
    let resets = sick.fault_state()["counters"]["reset"]
        .as_u64()
        .unwrap_or(0);
    eprintln!(
        "STATS {:?}",
        mesh.envoy
            .stats()
            .into_iter()
            .filter(|(k, _)| k.contains("outlier") || k.contains("retry") || k.contains("destroy"))
            .collect::<Vec<_>>()
    );
    assert!((1..=3).contains(&resets), "{resets} connections reset");
    assert!(
        mesh.stat("cluster.data.outlier_detection.ejections_enforced_consecutive_gateway_failure")
            >= 1
    );
    assert!(mesh
        .health_flags("data", sick.port)
        .contains("failed_outlier_check"));
}

#[test]
fn a_killed_host_costs_no_client_error_and_comes_back() {
    let mut mesh = Mesh::data();
    mesh.upstreams.instance_mut("data", 0).kill();
    for i in 0..20 {
        let get = mesh.get(QUOTE);
        assert_eq!(get.status, 200, "GET {i}: {}", get.text());
        // Connect failures are retried for every method: nothing was sent.
        let post = mesh.send(&validate_events()).expect("through envoy");
        assert_eq!(post.status, 200, "POST {i}: {}", post.text());
    }
    assert!(mesh.stat("cluster.data.upstream_cx_connect_fail") >= 1);
    let port = mesh.upstreams.instance("data", 0).port;
    wait_for(Duration::from_secs(10), "health check failed", || {
        mesh.health_flags("data", port).contains("failed_active_hc")
    });

    mesh.upstreams.instance_mut("data", 0).restart();
    let name = mesh.upstreams.instance("data", 0).name();
    wait_for(Duration::from_secs(20), "restarted host serving", || {
        served_by(&mesh.get(QUOTE)) == name
    });
}

#[test]
fn all_hosts_failing_or_down_means_a_fast_503() {
    let mut mesh = Mesh::data();
    for index in 0..2 {
        mesh.upstreams
            .instance("data", index)
            .fault(json!({"mode": "error", "status": 503}));
    }
    for _ in 0..10 {
        let started = Instant::now();
        let response = mesh.get(QUOTE);
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    // max_ejection_percent 50: one host stays in rotation, never none.
    assert_eq!(
        mesh.stat("cluster.data.outlier_detection.ejections_active"),
        1
    );

    for index in 0..2 {
        mesh.upstreams.instance_mut("data", index).kill();
    }
    for _ in 0..10 {
        let started = Instant::now();
        let response = mesh.get(QUOTE);
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_slow_host_is_cut_off_by_the_per_try_timeout_and_ejected() {
    let mesh = Mesh::data();
    let slow = mesh.upstreams.instance("data", 0);
    slow.fault(json!({"mode": "delay", "delay_ms": 4000}));
    for i in 0..8 {
        let started = Instant::now();
        let response = mesh.get(QUOTE);
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
        // At worst one per-try timeout (1.5 s) plus the retry.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(mesh.stat("cluster.data.upstream_rq_per_try_timeout") >= 1);
    // Timeouts count as gateway failures: 3 in a row eject the slow host.
    assert!(mesh
        .health_flags("data", slow.port)
        .contains("failed_outlier_check"));
}

#[test]
fn load_over_the_circuit_breaker_limits_gets_fast_503_overflow() {
    let mesh = Mesh::start(
        &["data"],
        Resilience {
            max_connections: Some(1),
            max_pending_requests: Some(1),
            max_requests: Some(1),
            ..fast()
        },
        UpstreamOptions::default(),
    );
    for index in 0..2 {
        mesh.upstreams
            .instance("data", index)
            .fault(json!({"mode": "delay", "delay_ms": 1000}));
    }
    let port = mesh.envoy.port;
    let results: Vec<(u16, bool, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(move || {
                    let started = Instant::now();
                    let r = Request::get(QUOTE).send(port).expect("through envoy");
                    let overloaded = r.header("x-envoy-overloaded") == Some("true");
                    (r.status, overloaded, started.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    let overflowed: Vec<_> = results.iter().filter(|(_, o, _)| *o).collect();
    assert!(!overflowed.is_empty(), "{results:?}");
    for (status, _, took) in &overflowed {
        assert_eq!(*status, 503);
        // Refused at once, not after the 1 s the hosts take.
        assert!(*took < Duration::from_millis(900), "{results:?}");
    }
    assert!(results.iter().any(|(s, _, _)| *s == 200), "{results:?}");
    assert!(mesh.stat("cluster.data.upstream_rq_pending_overflow") >= 1);
}
