//! Who may call what: operator endpoints need the admin token, plugin
//! endpoints the plugin secret (or the admin token); health and metrics are
//! open; errors are JSON; secrets never reach the log.

mod state_support;

use serde_json::json;
use state_support::{As, Stack};

const OPERATOR: &[(&str, &str)] = &[
    ("POST", "/v1/revocations/token"),
    ("POST", "/v1/revocations/user"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions/alice"),
    ("DELETE", "/v1/sessions/alice/s1"),
    ("GET", "/v1/flags"),
    ("POST", "/v1/flags/import"),
    ("PUT", "/v1/flags/f"),
    ("GET", "/v1/flags/f"),
    ("DELETE", "/v1/flags/f"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/users/alice/index"),
];

const PLUGIN: &[(&str, &str)] = &[
    ("POST", "/v1/ratelimit/check"),
    ("POST", "/v1/ratelimit/lease"),
    ("POST", "/v1/ratelimit/usage"),
    ("GET", "/v1/revocations/feed"),
    ("GET", "/v1/flags/snapshot"),
    ("POST", "/v1/sessions/activity"),
];

fn body_for(method: &str) -> Option<&'static [u8]> {
    (method != "GET" && method != "DELETE").then_some(b"{}")
}

#[test]
fn every_endpoint_refuses_missing_or_wrong_credentials() {
    let stack = Stack::start();
    let wrong = format!("{}x", stack.service.admin_token);
    let plugin_secret = stack.service.plugin_secret.clone();
    for &(method, path) in OPERATOR {
        for (who, code) in [
            (As::Nobody, "missing_credentials"),
            (As::Token(&wrong), "invalid_credentials"),
            (As::Token(""), "missing_credentials"),
            (As::Token(&plugin_secret), "invalid_credentials"),
        ] {
            let r = stack.api.send(method, path, who, &[], body_for(method));
            assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
            assert_eq!(r.code(), code, "{method} {path}");
        }
        // The secret header is no way around it either.
        let r = stack.api.send(
            method,
            path,
            As::Nobody,
            &[("x-meshguard-secret", &plugin_secret)],
            body_for(method),
        );
        assert_eq!(r.status, 401, "{method} {path}");
        // With the admin token the request gets past authentication.
        let r = stack
            .api
            .send(method, path, stack.admin(), &[], body_for(method));
        assert_ne!(r.status, 401, "{method} {path}: {}", r.body);
    }
    for &(method, path) in PLUGIN {
        for who in [As::Nobody, As::Token(&wrong)] {
            let r = stack.api.send(method, path, who, &[], body_for(method));
            assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        }
        for r in [
            stack
                .api
                .send(method, path, stack.plugin(), &[], body_for(method)),
            stack.api.send(
                method,
                path,
                As::Nobody,
                &[("x-meshguard-secret", &plugin_secret)],
                body_for(method),
            ),
            stack
                .api
                .send(method, path, stack.admin(), &[], body_for(method)),
        ] {
            assert_ne!(r.status, 401, "{method} {path}: {}", r.body);
        }
    }
}

#[test]
fn health_metrics_and_errors_are_json_and_secrets_stay_out_of_the_log() {
    let stack = Stack::start();
    assert_eq!(
        stack.api.get("/healthz", As::Nobody).ok(),
        json!({"status": "ok"})
    );
    assert_eq!(stack.api.get("/readyz", As::Nobody).ok()["status"], "ready");
    let openapi = stack.api.get("/v1/openapi.json", As::Nobody).ok();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
    assert!(openapi["paths"]["/v1/ratelimit/check"].is_object());

    let r = stack.api.get("/v1/nothing-here", stack.admin());
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");
    let r = stack
        .api
        .send("PATCH", "/v1/ratelimit/check", stack.plugin(), &[], None);
    assert_eq!(r.status, 405);
    assert_eq!(r.code(), "method_not_allowed");

    stack
        .api
        .post("/v1/ratelimit/check", stack.plugin(), &json!({"key": "m"}))
        .ok();
    let metrics = stack.api.get("/metrics", As::Nobody);
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().unwrap();
    for want in [
        "meshguard_state_http_requests_total{method=\"POST\",route=\"/v1/ratelimit/check\",status=\"200\"} 1",
        "meshguard_state_http_request_duration_seconds_bucket{route=\"/v1/ratelimit/check\"",
        "meshguard_state_redis_errors_total 0",
        "meshguard_state_ratelimit_decisions_total{decision=\"allowed\"} 1",
    ] {
        assert!(text.contains(want), "{want} missing from\n{text}");
    }
    let log = std::fs::read_to_string(stack.service.log_dir().join("meshguard-state.log")).unwrap();
    assert!(log.contains("listening"), "{log}");
    assert!(!log.contains(&stack.service.admin_token));
    assert!(!log.contains(&stack.service.plugin_secret));
}
