//! The single-module build (`meshguard_chain.wasm`) alone in Envoy: the four
//! policies in chain order within one filter, each behaving as its own
//! plugin does, configured from one document with prefixed fields.

mod auth_support;
mod flags_support;
mod ratelimit_support;
mod state_support;

use auth_support::{claims, kid_for, mint};
use jsonwebtoken::Algorithm;
use meshguard_harness::envoy::assert_configs_refused;
use meshguard_harness::upstream::RecordingServer;
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request};
use ratelimit_support::{assert_limited, count, statuses};
use serde_json::json;
use state_support::Stack;
use std::io::Write;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

#[test]
fn policies_run_in_chain_order_in_one_filter() {
    let echo = RecordingServer::echo();
    let config = json!({
        "trace": {"sampling_ratio": 1.0, "trace_response": true},
        "auth": auth_support::config(json!({})),
        "ratelimit": {},
        "flags": {"flags": [flags_support::ml_v2()], "sync": null},
    });
    let envoy = Envoy::start(
        EnvoySpec::new()
            .plugin(Plugin::new("chain", Some(config)))
            .cluster("echo", echo.port)
            .route("/api/", "echo"),
    );

    // No token: auth answers 401 and the stages after it never see the request.
    let refused = envoy.get("/api/data");
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert!(refused.header("traceresponse").is_some(), "trace ran first");
    assert!(echo.requests().is_empty());
    assert_eq!(envoy.plugin_stat("flags.requests"), 0);

    // A verified premium token; the client's own identity headers are dropped.
    let token = mint(
        Algorithm::HS256,
        Some(kid_for(Algorithm::HS256)),
        &claims("pat"),
    );
    let request = Request::get("/api/data")
        .header("authorization", &format!("Bearer {token}"))
        .header("traceparent", &format!("00-{TRACE_ID}-b7ad6b7169203331-01"))
        .header("x-auth-tier", "admin")
        .header("x-auth-scopes", "admin")
        .header("x-flag-feature-ml-v2", "spoofed");
    let response = envoy.send(&request);
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.header("ratelimit").is_some(), "rate-limit headers");
    let traceresponse = response.header("traceresponse").unwrap_or_default();
    assert!(traceresponse.contains(TRACE_ID), "{traceresponse}");
    let seen = echo.requests().pop().expect("the upstream saw the request");
    let traceparent = seen.headers_named("traceparent");
    assert!(
        traceparent.len() == 1 && traceparent[0].contains(TRACE_ID),
        "{traceparent:?}"
    );
    assert_eq!(seen.headers_named("x-auth-sub"), ["pat"]);
    assert_eq!(seen.headers_named("x-auth-tier"), ["premium"]);
    assert!(seen.headers_named("x-auth-scopes").is_empty());
    let flag = seen.headers_named("x-flag-feature-ml-v2");
    assert!(flag == ["on"] || flag == ["off"], "{flag:?}");

    // Premium allows 50 a minute; the ratelimit stage keys on the verified subject.
    let got = statuses(&envoy, &request, 49);
    assert_eq!(count(&got, 200), 49, "{got:?}");
    let limited = envoy.send(&request);
    assert_limited(&limited, "minute");
    assert_eq!(limited.json()["tier"], "premium");
    assert_eq!(envoy.plugin_stat("ratelimit.premium.allowed"), 50);
    assert_eq!(envoy.plugin_stat("auth.verified"), 51);
    assert_eq!(envoy.plugin_stat("flags.requests"), 50);
    assert_eq!(envoy.plugin_stat("trace.traces_continued"), 51);
}

/// In `exact` mode the ratelimit stage pauses on meshguard-state: the flags
/// stage runs meanwhile, and the answer resumes (or refuses) the request.
#[test]
fn a_stage_waiting_on_meshguard_state_resumes_the_request() {
    let limits = json!({
        "default_tier": "free",
        "tiers": {"free": {"per_minute": 10, "per_hour": 100}},
        "global": null
    });
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(limits.to_string().as_bytes()).unwrap();
    let path = file.path().to_string_lossy().into_owned();
    let stack = Stack::start_with(None, &["--limits-file", &path]);
    let mut ratelimit = limits.clone();
    ratelimit["mode"] = json!("exact");
    ratelimit["state"] = json!({"secret": stack.service.plugin_secret, "timeout_ms": 1000});
    let config = json!({
        "auth": null,
        "ratelimit": ratelimit,
        "flags": {"flags": [flags_support::ml_v2()], "sync": null},
    });
    let echo = RecordingServer::echo();
    let envoy = Envoy::start(
        EnvoySpec::new()
            .plugin(Plugin::new("chain", Some(config)))
            .cluster("echo", echo.port)
            .cluster("meshguard_state", stack.service.port)
            .route("/api/", "echo"),
    );

    let alice = ratelimit_support::as_user("/api/data/rows", "alice", "free");
    let got = statuses(&envoy, &alice, 10);
    assert_eq!(count(&got, 200), 10, "{got:?}");
    assert_limited(&envoy.send(&alice), "minute");
    let seen = echo.requests();
    assert_eq!(seen.len(), 10);
    for request in &seen {
        assert_eq!(request.headers_named("traceparent").len(), 1);
        assert_eq!(request.headers_named("x-flag-feature-ml-v2").len(), 1);
    }
    assert_eq!(envoy.plugin_stat("ratelimit.free.allowed"), 10);
    assert_eq!(envoy.plugin_stat("ratelimit.free.fallbacks"), 0);
    // The flags stage ran before the service's answer, so also for the 429.
    assert_eq!(envoy.plugin_stat("flags.requests"), 11);
}

#[test]
fn a_policy_turned_off_is_skipped() {
    let echo = RecordingServer::echo();
    let config = json!({"auth": null, "ratelimit": null, "flags": null});
    let envoy = Envoy::start(
        EnvoySpec::new()
            .plugin(Plugin::new("chain", Some(config)))
            .cluster("echo", echo.port)
            .route("/api/", "echo"),
    );
    let response = envoy.send(&Request::get("/api/data").header("x-auth-sub", "mallory"));
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = echo.requests().pop().expect("the upstream saw the request");
    assert_eq!(seen.headers_named("traceparent").len(), 1);
    assert_eq!(
        seen.headers_named("x-auth-sub"),
        ["mallory"],
        "no auth stage"
    );
    assert!(response.header("ratelimit").is_none());
}

#[test]
fn malformed_configuration_is_refused_naming_the_prefixed_field() {
    let cases = [
        (r#"{"auth": {"issuers": 3}}"#, "field `auth.issuers`"),
        (
            r#"{"trace": {"sampling_ratio": 1.5}}"#,
            "field `trace.sampling_ratio`",
        ),
        (
            r#"{"ratelimit": {"mode": "sometimes"}}"#,
            "field `ratelimit.mode`",
        ),
        (
            r#"{"flags": {"header_prefix": 3}}"#,
            "field `flags.header_prefix`",
        ),
        (r#"{"tracing": {}}"#, "unknown field `tracing`"),
    ];
    assert_configs_refused("chain", &cases);
}

#[test]
fn starts_with_defaults_without_configuration() {
    let envoy = Envoy::start(EnvoySpec::new().plugin(Plugin::new("chain", None)));
    assert_eq!(envoy.get("/healthz").status, 200);
    assert_eq!(envoy.plugin_stat("trace.traces_started"), 1);
    assert_eq!(envoy.plugin_stat("auth.public"), 1);
    assert_eq!(envoy.plugin_stat("flags.requests"), 1);
}
