//! The compose deployment's files, checked without Docker: envoy/compose/envoy.yaml
//! is the current rendering of the one template with the single module and the
//! plugin configurations of envoy/local/*.json, it holds no secret (the plugins
//! read them from Envoy's environment), Envoy accepts it with the built plugins,
//! and every host it names is a service of envoy/docker-compose.yaml.
//!
//! `MESHGUARD_BLESS=1 cargo test -p meshguard-harness --test docker_config`
//! regenerates the file.

use meshguard_harness::envoy::{Cache, Host, Plugin, Service};
use meshguard_harness::mesh::{merge_patch, CHAIN, COLLECTOR_CLUSTER};
use meshguard_harness::paths::{self, envoy_binary, workspace_root};
use meshguard_harness::python::SERVICES;
use meshguard_harness::EnvoySpec;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

/// Where the compose file mounts the plugins volume.
const COMPOSE_PLUGIN_DIR: &str = "/etc/meshguard/plugins/";
/// The listener meshguard-gdpr's connectors use (not published).
const COMPOSE_GDPR_PORT: u16 = 10001;
/// Envoy's environment in the compose stack: its entrypoint reads these from
/// the secrets volume (envoy/docker-compose.yaml), and the plugin
/// configurations of envoy/local name them as `{"env": NAME}`.
const SECRET_ENV: [&str; 2] = ["MESHGUARD_PLUGIN_SECRET", "MESHGUARD_JWT_KEY_B64URL"];
/// Where the compose Envoy exports spans: the span-log service's alias on the
/// mesh network, which envoy/compose/jaeger.yaml (or a user's collector)
/// takes over; 4318 is OTLP/HTTP's port.
const COMPOSE_COLLECTOR: (&str, u16) = ("otel-collector", 4318);

/// envoy/local/<name>.json for each policy, as the single module takes them,
/// with trace export to the compose stack's collector (as scripts/up sets it).
fn chain_config() -> Value {
    let mut assembled = serde_json::Map::new();
    for name in CHAIN {
        let path = workspace_root()
            .join("envoy/local")
            .join(format!("{name}.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let config: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assembled.insert(name.to_string(), config);
    }
    let mut config = Value::Object(assembled);
    let (host, port) = COMPOSE_COLLECTOR;
    merge_patch(
        &mut config,
        &json!({"trace": {"export": {
            "cluster": COLLECTOR_CLUSTER,
            "authority": format!("{host}:{port}"),
            "path": "/v1/traces",
        }}}),
    );
    config
}

/// Every `{"env": NAME}` the configuration refers to.
fn env_references(value: &Value, names: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            if let (1, Some(Value::String(name))) = (members.len(), members.get("env")) {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            members.values().for_each(|v| env_references(v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| env_references(v, names)),
        _ => {}
    }
}

/// The compose stack's Envoy: the single module on the plugins volume, the
/// state service and the upstreams by their compose service names.
fn compose_spec() -> EnvoySpec {
    let mut spec = EnvoySpec::new();
    spec.listener_port = 10000;
    spec.admin_port = 9901;
    spec.concurrency = 2;
    spec.listen_address = Some("0.0.0.0".into());
    spec.admin_address = Some("127.0.0.1".into());
    spec.gdpr_listener_port = Some(COMPOSE_GDPR_PORT);
    spec.gdpr_listen_address = Some("0.0.0.0".into());
    // Envoy's response cache on the tmpfs docker-compose.yaml mounts there.
    spec.cache = Some(Cache {
        path: PathBuf::from("/var/cache/meshguard-envoy"),
        memory: false,
    });
    let config = chain_config();
    let mut names = Vec::new();
    env_references(&config, &mut names);
    names.sort();
    spec.vm_env_keys = names;
    spec = spec.cluster_at("meshguard_state", "meshguard-state", 7070);
    let (collector_host, collector_port) = COMPOSE_COLLECTOR;
    spec = spec.cluster_at(COLLECTOR_CLUSTER, collector_host, collector_port);
    // Data subjects' own requests, through the chain to meshguard-gdpr's
    // self-service listener (docs/gdpr.md).
    spec = spec
        .cluster_at("meshguard_gdpr_self", "meshguard-gdpr", 7072)
        .route("/privacy/", "meshguard_gdpr_self");
    spec = spec.plugin(Plugin {
        name: "chain".into(),
        path: PathBuf::from(format!("{COMPOSE_PLUGIN_DIR}meshguard_chain.wasm")),
        config: Some(config.to_string()),
    });
    for (name, _) in SERVICES {
        let hosts = (1..=2)
            .map(|i| Host {
                address: format!("{name}-{i}"),
                port: 8000,
            })
            .collect();
        spec = spec.service(Service::new(name, hosts));
    }
    spec
}

/// `envoy --mode validate` (plugins configured, so a missing secret or a
/// refused field fails) with the secrets in Envoy's environment.
fn envoy_validate(yaml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let mut command = Command::new(envoy_binary());
    command.args(["--mode", "validate", "--disable-hot-restart", "-c"]);
    command.arg(&path);
    for env in SECRET_ENV {
        command.env(env, "dGVzdC1zZWNyZXQtb2YtMzItYnl0ZXMtZm9yLXZhbGlkYXRl");
    }
    let output = command.output().expect("run envoy --mode validate");
    let log = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if output.status.success() && log.contains("configuration '") && log.contains("' OK") {
        Ok(())
    } else {
        Err(log)
    }
}

#[test]
fn the_compose_envoy_config_is_the_current_rendering_and_valid() {
    let path = workspace_root().join("envoy/compose/envoy.yaml");
    let header = "# Generated from envoy/envoy.yaml.j2 and envoy/local/*.json by tests/tests/docker_config.rs; do not edit.\n\
                  # MESHGUARD_BLESS=1 cargo test -p meshguard-harness --test docker_config regenerates it.\n";
    let rendered = format!("{header}{}\n", compose_spec().render().trim_end());
    if std::env::var_os("MESHGUARD_BLESS").is_some() {
        std::fs::write(&path, &rendered).expect("write envoy/compose/envoy.yaml");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "{} is not the current rendering of the template (the template or an envoy/local \
         config changed): regenerate it with\n  \
         MESHGUARD_BLESS=1 cargo test -p meshguard-harness --test docker_config",
        path.display()
    );

    // No secret in the committed file: the plugins refer to exactly the
    // variables the compose file's Envoy entrypoint exports.
    let mut names = Vec::new();
    env_references(&chain_config(), &mut names);
    names.sort();
    let mut expected: Vec<String> = SECRET_ENV.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(
        names, expected,
        "the secrets the plugins read from the environment"
    );
    let compose = std::fs::read_to_string(workspace_root().join("envoy/docker-compose.yaml"))
        .expect("read envoy/docker-compose.yaml");
    for env in SECRET_ENV {
        assert!(
            compose.contains(&format!("export {env}")) || compose.contains(&format!(" {env}")),
            "envoy/docker-compose.yaml does not export {env} to Envoy"
        );
    }
    assert!(!committed.contains("${"), "a placeholder left in");
    assert!(!committed.contains("change-me"), "an inline dev secret");

    let wasm_dir = paths::plugin_wasm("chain")
        .parent()
        .map(|p| format!("{}/", p.display()))
        .unwrap_or_default();
    if let Err(log) = envoy_validate(&committed.replace(COMPOSE_PLUGIN_DIR, &wasm_dir)) {
        panic!("envoy/compose/envoy.yaml is not a valid Envoy config:\n{log}");
    }
}

#[test]
fn every_host_of_the_compose_envoy_is_a_compose_service() {
    let compose: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(workspace_root().join("envoy/docker-compose.yaml"))
            .expect("read envoy/docker-compose.yaml"),
    )
    .expect("docker-compose.yaml is YAML");
    let services = compose["services"].as_object().expect("services");
    let spec = compose_spec();
    let hosts = spec
        .services
        .iter()
        .flat_map(|s| s.hosts.iter().map(|h| h.address.clone()))
        .chain(spec.clusters.iter().filter_map(|c| c.address.clone()));
    // A service's name, or an alias it holds on the mesh network.
    let names: Vec<String> = services
        .iter()
        .flat_map(|(name, service)| {
            let aliases = service["networks"]["mesh"]["aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(String::from));
            std::iter::once(name.clone()).chain(aliases)
        })
        .collect();
    for host in hosts {
        assert!(
            names.contains(&host),
            "docker-compose.yaml has no service or mesh alias {host}"
        );
    }
    for (name, _) in SERVICES {
        for i in 1..=2 {
            let command = &services[&format!("{name}-{i}")]["command"];
            assert_eq!(command[0], name, "{name}-{i} runs {name}");
        }
    }
    // Only Envoy publishes a port, and its admin endpoint is not among them.
    for (name, service) in services {
        let ports = service["ports"].as_array().map(Vec::len).unwrap_or(0);
        if name == "envoy" {
            assert_eq!(ports, 1, "envoy publishes its listener alone");
        } else {
            assert_eq!(ports, 0, "{name} publishes a port");
        }
    }
    // The connectors reach the upstreams through Envoy's GDPR listener.
    let connectors: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("envoy/compose/gdpr-connectors.json"))
            .expect("read envoy/compose/gdpr-connectors.json"),
    )
    .expect("connectors JSON");
    for (name, _) in SERVICES {
        let url = format!("http://envoy:{COMPOSE_GDPR_PORT}/api/{name}/gdpr/users/{{id}}");
        assert!(
            connectors["connectors"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["url"] == url.as_str())),
            "no connector {url}"
        );
    }
}
