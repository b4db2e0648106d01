//! The deployment files that cannot run here are still checked here:
//! every Envoy config passes `envoy --mode validate` (which also runs each
//! plugin's on_configure) and envoy/istio/*.yaml match Istio's CRD schemas
//! (vendored in envoy/istio/schemas, with their source in its SOURCE.md).

use meshguard_harness::envoy::{Plugin, Resilience, Service};
use meshguard_harness::paths::{built_plugins, envoy_binary, workspace_root};
use meshguard_harness::python::SERVICES;
use meshguard_harness::EnvoySpec;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The filter chain's order (docs/architecture.md).
const CHAIN: [&str; 4] = ["trace", "auth", "ratelimit", "flags"];
/// Runs `envoy --mode validate` on `yaml`; the error is Envoy's log.
fn envoy_validate(yaml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let output = Command::new(envoy_binary())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&path)
        .output()
        .expect("run envoy --mode validate");
    let log = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    // Validate mode exits 0 on some failures; its "OK" line is the verdict.
    if output.status.success() && log.contains("configuration '") && log.contains("' OK") {
        Ok(())
    } else {
        Err(log)
    }
}

#[track_caller]
fn assert_valid(what: &str, yaml: &str) {
    if let Err(log) = envoy_validate(yaml) {
        panic!("{what} is not a valid Envoy config:\n{log}\n--- config ---\n{yaml}");
    }
}

fn loopback_services() -> Vec<Service> {
    SERVICES
        .iter()
        .map(|(name, ports)| Service::loopback(name, ports))
        .collect()
}

#[test]
fn every_rendering_of_the_template_passes_envoy_validate() {
    assert_valid("the bare template", &EnvoySpec::new().render());

    let mut full = EnvoySpec::new()
        .cluster("meshguard_state", 7070)
        .cluster("collector", 4318)
        .envoy_tracing("collector")
        .route("/echo/", "collector")
        .resilience(Resilience {
            outlier_interval: Some("0.5s".into()),
            base_ejection_time: Some("2s".into()),
            max_ejection_time: Some("10s".into()),
            health_check_interval: Some("1s".into()),
            upstream_idle_timeout: Some("0.5s".into()),
            per_try_timeout: Some("0.25s".into()),
            max_connections: Some(1),
            max_pending_requests: Some(1),
            max_requests: Some(1),
        });
    full.listen_address = Some("0.0.0.0".into());
    for service in loopback_services() {
        full = full.service(service);
    }
    assert_valid("the template with every option", &full.render());

    // What scripts/up runs: every built plugin, in chain order, with the
    // upstreams; plugins load without configuration (their defaults).
    let mut local = EnvoySpec::new().cluster("meshguard_state", 7070);
    for wasm in built_plugins() {
        let name = plugin_name(&wasm);
        local = local.plugin(Plugin {
            name,
            path: wasm,
            config: None,
        });
    }
    for service in loopback_services() {
        local = local.service(service);
    }
    assert_valid("the template with every built plugin", &local.render());

    // The check has teeth: a value Envoy refuses is reported.
    let broken = full
        .render()
        .replace("max_ejection_percent: 50", "max_ejection_percent: 500");
    assert!(
        envoy_validate(&broken).is_err(),
        "envoy accepted max_ejection_percent 500"
    );
}

fn plugin_name(wasm: &Path) -> String {
    wasm.file_stem()
        .map(|s| {
            s.to_string_lossy()
                .trim_start_matches("meshguard_")
                .to_string()
        })
        .unwrap_or_default()
}

/// Istio's CRD schemas, vendored in envoy/istio/schemas (source and version
/// in its SOURCE.md). Their absence fails the check: it never passes unchecked.
fn istio_schemas() -> Vec<Value> {
    let dir = workspace_root().join("envoy/istio/schemas");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the Istio manifests cannot be checked without Istio's CRD schemas",
            dir.display()
        )
    });
    let mut crds = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read CRD");
            crds.push(
                serde_yaml_ng::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            );
        }
    }
    assert!(
        !crds.is_empty(),
        "{} holds no CRD schema (*.yaml)",
        dir.display()
    );
    crds
}

/// The openAPIV3Schema of the CRD serving `apiVersion` + `kind`.
fn schema_for<'a>(crds: &'a [Value], api_version: &str, kind: &str) -> Option<&'a Value> {
    let (group, version) = api_version.split_once('/')?;
    let crd = crds
        .iter()
        .find(|crd| crd["spec"]["group"] == group && crd["spec"]["names"]["kind"] == kind)?;
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == version && v["served"] == true)
        .map(|v| &v["schema"]["openAPIV3Schema"])
}

fn schema_errors(crds: &[Value], doc: &Value) -> Vec<String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let Some(schema) = schema_for(crds, api_version, kind) else {
        return vec![format!("no served CRD schema for {api_version} {kind}")];
    };
    let validator = jsonschema::validator_for(schema)
        .unwrap_or_else(|e| panic!("schema of {api_version} {kind}: {e}"));
    let name = &doc["metadata"]["name"];
    let mut errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{api_version} {kind} {name}: {e} at {}", e.instance_path()))
        .collect();
    if let Some(spec) = doc.get("spec") {
        unknown_fields(&schema["properties"]["spec"], spec, "/spec", &mut errors);
    }
    errors
        .iter_mut()
        .filter(|e| !e.starts_with(api_version))
        .for_each(|e| *e = format!("{api_version} {kind} {name}: {e}"));
    errors
}

/// Fields the schema does not know. The API server prunes them silently (a
/// typo would just vanish), so they are errors here. The CEL rules
/// (x-kubernetes-validations, e.g. duration bounds) are not evaluated.
fn unknown_fields(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    match value {
        Value::Object(map) => {
            let properties = schema["properties"].as_object();
            for (key, child) in map {
                let child_schema = match properties.and_then(|p| p.get(key)) {
                    Some(s) => s,
                    None if schema["additionalProperties"].is_object() => {
                        &schema["additionalProperties"]
                    }
                    None => {
                        errors.push(format!("unknown field {path}/{key}"));
                        continue;
                    }
                };
                unknown_fields(child_schema, child, &format!("{path}/{key}"), errors);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                unknown_fields(&schema["items"], item, &format!("{path}/{i}"), errors);
            }
        }
        _ => {}
    }
}

fn istio_documents() -> Vec<(PathBuf, Value)> {
    istio_documents_in("envoy/istio")
}

/// The manifests of one directory (`kubectl apply -f DIR`, not recursive).
fn istio_documents_in(dir: &str) -> Vec<(PathBuf, Value)> {
    let dir = workspace_root().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read envoy/istio")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read manifest");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !value.is_null() {
                docs.push((file.clone(), value));
            }
        }
    }
    docs
}

#[test]
fn the_istio_manifests_match_istios_crd_schemas() {
    let crds = istio_schemas();
    let docs = istio_documents();
    let kinds: Vec<&str> = docs
        .iter()
        .filter_map(|(_, d)| d["kind"].as_str())
        .collect();
    for kind in ["WasmPlugin", "DestinationRule", "ServiceEntry"] {
        assert!(kinds.contains(&kind), "envoy/istio has no {kind}");
    }
    let errors: Vec<String> = docs
        .iter()
        .flat_map(|(file, doc)| {
            schema_errors(&crds, doc)
                .into_iter()
                .map(move |e| format!("{}: {e}", file.display()))
        })
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));

    // The default deployment: one WasmPlugin, the single module.
    let wasm_plugins: Vec<&str> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "WasmPlugin")
        .filter_map(|(_, d)| d["metadata"]["name"].as_str())
        .collect();
    assert_eq!(wasm_plugins, ["meshguard-chain"]);

    // The alternative (envoy/istio/four-filters/): one WasmPlugin per
    // plugin of the repository, in the chain's order.
    let alternative = istio_documents_in("envoy/istio/four-filters");
    let errors: Vec<String> = alternative
        .iter()
        .flat_map(|(file, doc)| {
            schema_errors(&crds, doc)
                .into_iter()
                .map(move |e| format!("{}: {e}", file.display()))
        })
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let order = |doc: &Value| {
        let phase = match doc["spec"]["phase"].as_str() {
            Some("AUTHN") => 0,
            Some("AUTHZ") => 1,
            Some("STATS") => 2,
            _ => 3,
        };
        (phase, -doc["spec"]["priority"].as_i64().unwrap_or(0))
    };
    let mut plugins: Vec<&Value> = alternative
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "WasmPlugin")
        .collect();
    plugins.sort_by_key(|d| order(d));
    let names: Vec<String> = plugins
        .iter()
        .map(|d| {
            d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("meshguard-")
                .to_string()
        })
        .collect();
    let expected: Vec<&str> = CHAIN
        .into_iter()
        .filter(|n| workspace_root().join("plugins").join(n).is_dir())
        .collect();
    assert_eq!(names, expected);
    // Both layouts configure the policies alike: each section of the single
    // module's pluginConfig is that plugin's pluginConfig.
    let chain = docs
        .iter()
        .find(|(_, d)| d["kind"] == "WasmPlugin")
        .map(|(_, d)| &d["spec"]["pluginConfig"])
        .expect("the single module's WasmPlugin");
    for (plugin, name) in plugins.iter().zip(&names) {
        assert_eq!(
            &chain[name.as_str()],
            &plugin["spec"]["pluginConfig"],
            "the {name} section of envoy/istio/wasmplugins.yaml"
        );
    }

    // The check has teeth: values outside the schema are reported.
    let (_, wasm_plugin) = docs
        .iter()
        .find(|(_, d)| d["kind"] == "WasmPlugin")
        .expect("a WasmPlugin");
    let mut bad = wasm_plugin.clone();
    bad["spec"]["phase"] = "BEFORE_EVERYTHING".into();
    bad["spec"]["priority"] = "high".into();
    assert_eq!(
        schema_errors(&crds, &bad).len(),
        2,
        "{:?}",
        schema_errors(&crds, &bad)
    );
    let (_, rule) = docs
        .iter()
        .find(|(_, d)| d["kind"] == "DestinationRule")
        .expect("a DestinationRule");
    let mut bad = rule.clone();
    bad["spec"]["trafficPolicy"]["outlierDetection"]["maxEjectionPercent"] = "half".into();
    bad["spec"]["trafficPolicy"]["outlierDetection"]["consecutiveGatewayErrorz"] = 3.into();
    let errors = schema_errors(&crds, &bad);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[1].contains(
            "unknown field /spec/trafficPolicy/outlierDetection/consecutiveGatewayErrorz"
        ),
        "{errors:?}"
    );
}
