//! Flags evaluated from the plugin's configuration through real Envoy: one
//! header per flag and a summary for the upstream, client copies removed,
//! targeting by user, group, tier and header, and per-variant stats.

mod flags_support;

use flags_support::{checkout, ml_v2, native_variant, Mesh};
use meshguard_harness::envoy::assert_configs_refused;
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request};
use serde_json::{json, Value};

fn fraud_v3() -> Value {
    json!({
        "key": "FEATURE_FRAUD_DETECTION_V3",
        "variants": {"on": true, "off": false, "beta": "beta"},
        "default_variant": "off",
        "percentage": 0,
        "rules": [
            {"attribute": "sub", "op": "in", "values": ["carol"], "variant": "beta"},
            {"attribute": "group", "op": "in", "values": ["testers"], "variant": "beta"},
            {"attribute": "header:x-client", "op": "starts_with", "values": ["mobile/"], "variant": "beta"},
            {"attribute": "tier", "op": "in", "values": ["premium", "enterprise"], "variant": "on"}
        ]
    })
}

fn config() -> Value {
    json!({
        "flags": [ml_v2(), checkout(), fraud_v3()],
        "header_prefix": "x-",
        "headers": {"checkout": "x-variant-checkout"},
        "strip_prefixes": ["x-feature-", "x-variant-"],
        "sync": null
    })
}

#[test]
fn headers_match_native_evaluation_and_spoofed_copies_are_removed() {
    let mesh = Mesh::start(config(), None);
    let (ml, co) = (ml_v2(), checkout());
    for i in 0..40 {
        let sub = format!("user-{i}");
        let request = Request::get("/api/ml/predict")
            .header("x-auth-sub", &sub)
            .header("x-feature-ml-v2", "spoofed")
            .header("x-feature-not-a-flag", "1")
            .header("x-variant-checkout", "z")
            .header("x-variant-checkout", "y")
            .header("x-meshguard-flags", "FEATURE_ML_V2=on");
        let headers = mesh.upstream_headers(request);
        let want_ml = native_variant(&ml, Some(&sub));
        let want_co = native_variant(&co, Some(&sub));
        assert_eq!(headers["x-feature-ml-v2"].len(), 1, "{headers:?}");
        assert_eq!(headers["x-variant-checkout"].len(), 1, "{headers:?}");
        assert_eq!(headers["x-feature-ml-v2"][0], want_ml, "{sub}");
        assert_eq!(headers["x-variant-checkout"][0], want_co, "{sub}");
        assert_eq!(headers["x-feature-fraud-detection-v3"], ["off"], "{sub}");
        assert!(!headers.contains_key("x-feature-not-a-flag"), "{headers:?}");
        assert_eq!(
            headers["x-meshguard-flags"],
            [format!(
                "FEATURE_ML_V2={want_ml},checkout={want_co},FEATURE_FRAUD_DETECTION_V3=off"
            )]
        );
        // Identity headers are the auth plugin's and pass untouched.
        assert_eq!(headers["x-auth-sub"], [sub]);
    }
    let stats = mesh.envoy.settled_stats();
    assert!(mesh.envoy.plugin_stat("flags.spoofed_headers_removed") >= 40 * 4);
    assert_eq!(mesh.envoy.plugin_stat("flags.requests"), 40);
    let ml_exposures: u64 = ["on", "off"]
        .iter()
        .map(|v| {
            stats
                .get(&format!(
                    "wasmcustom.meshguard.flags.variant.FEATURE_ML_V2.{v}.exposures"
                ))
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(ml_exposures, 40, "{stats:?}");
}

#[test]
fn targeting_by_user_group_header_and_tier_and_anonymous_fallback() {
    let mesh = Mesh::start(config(), None);
    let fraud = "x-feature-fraud-detection-v3";
    let send = |request: Request| mesh.upstream_headers(request)[fraud].clone();
    let base = || Request::get("/api/fraud/score").header("x-auth-sub", "dave");
    assert_eq!(send(base()), ["off"]);
    assert_eq!(
        send(Request::get("/api/x").header("x-auth-sub", "carol")),
        ["beta"]
    );
    assert_eq!(
        send(base().header("x-auth-groups", "staff, testers")),
        ["beta"]
    );
    assert_eq!(send(base().header("x-client", "mobile/4.2")), ["beta"]);
    assert_eq!(send(base().header("x-auth-tier", "enterprise")), ["on"]);
    assert_eq!(send(base().header("x-auth-tier", "free")), ["off"]);

    // Anonymous: rules on tier still apply, a partial rollout gives the default.
    let headers = mesh.upstream_headers(Request::get("/api/x").header("x-auth-tier", "premium"));
    assert_eq!(headers[fraud], ["on"]);
    assert_eq!(headers["x-feature-ml-v2"], ["off"]);
    assert_eq!(mesh.envoy.plugin_stat("flags.anonymous"), 1);
    // Non-UTF-8 identity bytes are treated as absent, never a failure
    // (sent to Envoy's own /healthz: the echo upstream refuses such bytes).
    let response = mesh
        .envoy
        .send(&Request::get("/healthz").header_bytes("x-auth-sub", b"\xff\xfe"));
    assert_eq!(response.status, 200);
    assert_eq!(mesh.envoy.plugin_stat("flags.anonymous"), 2);
}

#[test]
fn per_variant_response_time_histograms_reach_prometheus() {
    let mesh = Mesh::start(config(), None);
    for i in 0..20 {
        mesh.upstream_headers(Request::get("/api/ml/x").header("x-auth-sub", &format!("u{i}")));
    }
    // Histograms reach the admin output at Envoy's stats flush (5 s by default).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    // The template's stats_tags make the flag and the variant labels.
    let flag = r#"meshguard_flag="checkout""#;
    loop {
        let text = meshguard_harness::http::send_raw(
            mesh.envoy.admin_port,
            &Request::get("/stats/prometheus").to_bytes(),
        )
        .expect("prometheus stats")
        .text();
        let counts: u64 = text
            .lines()
            .filter(|l| l.starts_with("meshguard_flags_variant_upstream_rq_time_count{"))
            .filter(|l| l.contains(flag))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        if counts == 20 {
            assert!(
                text.lines().any(|l| l
                    .starts_with("meshguard_flags_variant_upstream_rq_time_bucket{")
                    && l.contains(flag)
                    && l.contains(r#"meshguard_variant="b""#)),
                "{text}"
            );
            assert!(
                text.lines().any(
                    |l| l.starts_with("meshguard_flags_variant_exposures{") && l.contains(flag)
                ),
                "{text}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "histogram counts {counts} != 20:\n{}",
            text.lines()
                .filter(|l| l.contains("meshguard_flags"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn malformed_configuration_is_refused_naming_the_field() {
    let cases = [
        (r#"{"header_prefix": "x-"}"#, "field `header_prefix`"),
        (
            r#"{"strip_prefixes": ["x-auth-"]}"#,
            "field `strip_prefixes[0]`: would strip the identity header",
        ),
        (
            r#"{"sync": {"interval_ms": 1}}"#,
            "field `sync.interval_ms`",
        ),
        (
            r#"{"flags": [{"key": "a", "variants": {"on": 1}, "default_variant": "off"}]}"#,
            "field `flags[0].default_variant`: must name one of the variants",
        ),
        (r#"{"flagz": []}"#, "unknown field `flagz`"),
        (r#"{"flags": "#, "invalid configuration"),
    ];
    assert_configs_refused("flags", &cases);
}

#[test]
fn starts_with_defaults_without_configuration() {
    let envoy = Envoy::start(EnvoySpec::new().plugin(Plugin::new("flags", None)));
    let response = envoy.send(&Request::get("/healthz").header("x-flag-anything", "1"));
    assert_eq!(response.status, 200);
    assert_eq!(envoy.plugin_stat("flags.requests"), 1);
    assert_eq!(envoy.plugin_stat("flags.spoofed_headers_removed"), 1);
}
