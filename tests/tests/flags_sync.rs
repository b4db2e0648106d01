//! Snapshot sync with a real meshguard-state on real Redis: changes made
//! with the operator CLI reach the upstream's headers without an Envoy
//! reload, the last snapshot outlives the service, and flagd definitions
//! imported through the CLI bucket users as flagd does.

mod flags_support;

use flags_support::{ml_v2, native_variant, Mesh};
use meshguard_harness::paths::{service_binary, workspace_root};
use meshguard_harness::state::StateService;
use meshguard_harness::Redis;
use meshguard_policy::flags::{import_flagd, ImportOptions};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn plugin_config(state: &StateService, flags: Value) -> Value {
    json!({
        "flags": flags,
        "sync": {"interval_ms": 200, "state": {"secret": state.plugin_secret, "timeout_ms": 1000}}
    })
}

/// Runs the operator CLI with `stdin`; its exit success and output.
fn cli(state: &StateService, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(service_binary("meshguard-state"))
        .env("MESHGUARD_STATE_URL", state.url())
        .env("MESHGUARD_ADMIN_TOKEN", &state.admin_token)
        .env_remove("MESHGUARD_ADMIN_TOKEN_FILE")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("meshguard-state CLI");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn wait_for_stat(mesh: &Mesh, name: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while mesh.envoy.plugin_stat(name) < at_least {
        assert!(
            Instant::now() < deadline,
            "{name} < {at_least}\n{}",
            mesh.envoy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cli_changes_reach_the_headers_and_the_last_snapshot_outlives_the_service() {
    let redis = Redis::start();
    let mut state = StateService::start(&redis);
    let mesh = Mesh::start(plugin_config(&state, json!([ml_v2()])), Some(state.port));
    let header = "x-flag-feature-ml-v2";
    // A user the configured 50% rollout leaves out.
    let sub = (0..100)
        .map(|i| format!("user-{i}"))
        .find(|s| native_variant(&ml_v2(), Some(s)) == "off")
        .unwrap();

    // The store has no flags yet (version 0): the configured defaults hold.
    wait_for_stat(&mesh, "flags.snapshots_unchanged", 2);
    assert_eq!(mesh.variant_for(Some(&sub), header).as_deref(), Some("off"));

    let mut everyone = ml_v2();
    everyone["percentage"] = json!(100);
    let (ok, out) = cli(
        &state,
        &["flags", "set", "FEATURE_ML_V2", "-"],
        &everyone.to_string(),
    );
    assert!(ok, "{out}");
    let took = mesh.wait_for_variant(&sub, header, "on", Duration::from_secs(10));
    eprintln!("flag change reached the upstream headers in {took:?}");
    assert_eq!(mesh.envoy.plugin_stat("flags.snapshot_version"), 1);

    // A new flag appears in the headers; an invalid one never reaches the store.
    let (ok, out) = cli(
        &state,
        &["flags", "set", "checkout", "-"],
        &json!({"variants": {"a": 1, "b": 2}, "default_variant": "b"}).to_string(),
    );
    assert!(ok, "{out}");
    mesh.wait_for_variant(&sub, "x-flag-checkout", "b", Duration::from_secs(10));
    let (ok, out) = cli(
        &state,
        &["flags", "set", "checkout", "-"],
        &json!({"variants": {"a": 1}, "default_variant": "c"}).to_string(),
    );
    assert!(!ok && out.contains("default_variant"), "{out}");
    let unchanged = mesh.envoy.plugin_stat("flags.snapshots_unchanged");
    wait_for_stat(&mesh, "flags.snapshots_unchanged", unchanged + 2);
    assert_eq!(mesh.envoy.plugin_stat("flags.snapshot_version"), 2);

    // The service goes away: the last snapshot stays in force.
    state.stop();
    let failures = mesh.envoy.plugin_stat("flags.sync_failures");
    wait_for_stat(&mesh, "flags.sync_failures", failures + 2);
    for _ in 0..5 {
        assert_eq!(mesh.variant_for(Some(&sub), header).as_deref(), Some("on"));
        assert_eq!(
            mesh.variant_for(Some(&sub), "x-flag-checkout").as_deref(),
            Some("b")
        );
    }
    drop(redis);
}

/// flagd-testbed's fractional-v2 flags and cases, vendored with their source
/// and version in crates/policy/testdata/flagd; absent, the test fails.
fn flagd_vectors() -> Value {
    let path = workspace_root().join("crates/policy/testdata/flagd/fractional-v2.json");
    let raw = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the flagd vectors)", path.display()));
    serde_json::from_str(&raw).unwrap()
}

#[test]
fn flagd_definitions_imported_through_the_cli_give_flagds_variants_through_envoy() {
    let redis = Redis::start();
    let state = StateService::start(&redis);
    let mesh = Mesh::start(plugin_config(&state, json!([])), Some(state.port));

    let vectors = flagd_vectors();
    let mut options = ImportOptions::default();
    options.attributes.insert("user.name".into(), "sub".into());
    let flags = import_flagd(&json!({"flags": vectors["flags"]}), &options).unwrap();
    let body = json!({ "flags": flags }).to_string();
    let (ok, out) = cli(&state, &["flags", "import", "-"], &body);
    assert!(ok, "{out}");
    // Every worker (and the main thread) polls on its own: wait for this one's.
    let cases = vectors["cases"].as_array().unwrap();
    let first = &cases[0];
    mesh.wait_for_variant(
        first["targetingKey"].as_str().unwrap(),
        &format!("x-flag-{}", first["flag"].as_str().unwrap()),
        first["expected"].as_str().unwrap(),
        Duration::from_secs(10),
    );
    assert!(cases.len() >= 7);
    for case in cases {
        let flag = case["flag"].as_str().unwrap();
        let key = case["targetingKey"].as_str().unwrap();
        let header = format!("x-flag-{flag}");
        assert_eq!(
            mesh.variant_for(Some(key), &header).as_deref(),
            case["expected"].as_str(),
            "{flag} for {key}"
        );
    }
}
