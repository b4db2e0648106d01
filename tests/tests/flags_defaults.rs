//! The seed's eight flags (`flags/default.json`, loaded by `scripts/up`) and
//! the local plugin configuration (`envoy/local/flags.json`) that carries
//! them as defaults before the first snapshot.

mod flags_support;

use flags_support::Mesh;
use meshguard_harness::paths::workspace_root;
use meshguard_harness::upstream::RecordingServer;
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request};
use meshguard_policy::flags::FlagDefinition;
use meshguard_policy::flags::{FlagSet, Subject};
use serde_json::Value;

fn read(path: &str) -> Value {
    let path = workspace_root().join(path);
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn defaults() -> Vec<FlagDefinition> {
    serde_json::from_value(read("flags/default.json")["flags"].clone()).unwrap()
}

#[test]
fn the_eight_seed_flags_roll_out_to_their_shares_and_tiers() {
    let definitions = defaults();
    let (set, rejected) = FlagSet::compile(&definitions);
    assert!(rejected.is_empty(), "{rejected:?}");
    // key, share of premium users on, share of enterprise users on, share of free users on
    let expected = [
        ("FEATURE_ML_V2", 50.0, 50.0, 50.0),
        ("FEATURE_FRAUD_DETECTION_V3", 75.0, 75.0, 0.0),
        ("FEATURE_NLP_BATCH_PROCESSING", 100.0, 100.0, 100.0),
        ("FEATURE_ADVANCED_ANALYTICS", 0.0, 25.0, 0.0),
        ("FEATURE_BLOCKCHAIN_MEV_DETECTION", 30.0, 30.0, 0.0),
        ("FEATURE_RATE_LIMITING_V2", 60.0, 60.0, 60.0),
        ("FEATURE_GDPR_STRICT_MODE", 100.0, 100.0, 100.0),
        ("FEATURE_DISTRIBUTED_TRACING", 0.0, 40.0, 0.0),
    ];
    assert_eq!(set.len(), expected.len());
    let users: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
    for (flag, (key, premium, enterprise, free)) in set.flags().iter().zip(expected) {
        assert_eq!(flag.key(), key);
        for (tier, want) in [
            ("premium", premium),
            ("enterprise", enterprise),
            ("free", free),
        ] {
            let on = users
                .iter()
                .filter(|u| {
                    let subject = Subject {
                        key: Some(u),
                        tier: Some(tier),
                        ..Subject::default()
                    };
                    flag.evaluate(&subject).variant == "on"
                })
                .count();
            let share = on as f64 * 100.0 / users.len() as f64;
            assert!(
                (share - want).abs() <= 1.0,
                "{key} {tier}: {share}% for {want}%"
            );
        }
    }
}

#[test]
fn the_local_configuration_carries_the_seed_flags_and_runs_in_envoy() {
    let local = read("envoy/local/flags.json");
    let local_flags: Vec<FlagDefinition> = serde_json::from_value(local["flags"].clone()).unwrap();
    assert_eq!(
        local_flags,
        defaults(),
        "envoy/local/flags.json drifted from flags/default.json"
    );

    // No meshguard-state here: the configured defaults are what requests get.
    // The sync secret is read from Envoy's environment, as scripts/up ships it.
    let upstream = RecordingServer::echo();
    let spec = EnvoySpec::new()
        .plugin(Plugin::new("flags", Some(local)))
        .cluster("echo", upstream.port)
        .route("/api/", "echo")
        .secret_env("MESHGUARD_PLUGIN_SECRET", "s");
    let mesh = Mesh {
        envoy: Envoy::start(spec),
        upstream,
    };
    let headers = mesh.upstream_headers(
        Request::get("/api/ml/predict")
            .header("x-auth-sub", "alice")
            .header("x-auth-tier", "enterprise")
            .header("x-feature-gdpr-strict-mode", "off"),
    );
    assert_eq!(headers["x-feature-gdpr-strict-mode"], ["on"]);
    assert_eq!(headers["x-feature-nlp-batch-processing"], ["on"]);
    let summary = &headers["x-meshguard-flags"][0];
    assert_eq!(summary.split(',').count(), 8, "{summary}");
    assert!(summary.contains("FEATURE_GDPR_STRICT_MODE=on"), "{summary}");
}
