//! `scripts/up`: the whole local mesh on the default ports, in the
//! foreground, until Ctrl-C or `scripts/down`. It starts the same pieces the
//! integration tests start, from the same Envoy template.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use meshguard_harness::envoy::{Envoy, EnvoySpec, Plugin};
use meshguard_harness::http::Request;
use meshguard_harness::paths::service_binary;
use meshguard_harness::paths::{built_plugins, workspace_root};
use meshguard_harness::process::Process;
use meshguard_harness::python::{self, UpstreamOptions, Upstreams};
use meshguard_harness::redis::Redis;
use meshguard_harness::state::{StateOptions, StateService};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

const LISTENER_PORT: u16 = 10000;
const ADMIN_PORT: u16 = 9901;
const STATE_PORT: u16 = 7070;
const REDIS_PORT: u16 = 6379;
const GDPR_PORT: u16 = 7071;
/// The filter chain's order (ARCHITECTURE.md): identity before limits and flags.
const CHAIN: [&str; 4] = ["trace", "auth", "ratelimit", "flags"];

fn main() {
    let run_dir = workspace_root().join(".run");
    let pid_file = run_dir.join("up.pid");
    if let Some(pid) = running_pid(&pid_file) {
        eprintln!("Meshguard is already running (pid {pid}); `scripts/down` stops it.");
        std::process::exit(1);
    }
    let fixed = [LISTENER_PORT, ADMIN_PORT, STATE_PORT, REDIS_PORT, GDPR_PORT];
    for port in fixed.into_iter().chain(python::fixed_ports()) {
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            eprintln!(
                "Port {port} is in use by another program; free it and run scripts/up again."
            );
            std::process::exit(1);
        }
    }
    std::fs::create_dir_all(run_dir.join("logs")).expect("create .run/logs");
    std::fs::write(&pid_file, std::process::id().to_string()).expect("write .run/up.pid");
    let _pid_guard = RemoveOnDrop(pid_file);

    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .expect("install Ctrl-C handler");

    let redis = Redis::start_in(&run_dir.join("redis"), REDIS_PORT);
    let state = StateService::start_with(
        &redis.url(),
        StateOptions {
            port: Some(STATE_PORT),
            admin_token: Some(secret(&run_dir, "admin-token")),
            plugin_secret: Some(secret(&run_dir, "plugin-secret")),
            dir: Some(run_dir.join("logs")),
            ..StateOptions::default()
        },
    );

    load_seed_flags(&state);

    let mut upstreams = Upstreams::start_all(
        true,
        Some(&run_dir.join("upstreams")),
        UpstreamOptions {
            gdpr_token: Some(secret(&run_dir, "gdpr-token")),
            ..UpstreamOptions::default()
        },
    );
    let mut gdpr = start_gdpr(&run_dir, &redis, &state);

    let mut spec = EnvoySpec::new();
    spec.listener_port = LISTENER_PORT;
    spec.admin_port = ADMIN_PORT;
    spec.concurrency = 2;
    spec = spec.cluster("meshguard_state", state.port);
    spec = upstreams.add_to(spec);
    let dev_key = secret(&run_dir, "dev-jwt-key");
    let substitutions = [
        ("${PLUGIN_SECRET}", state.plugin_secret.clone()),
        (
            "${DEV_JWT_KEY_B64URL}",
            URL_SAFE_NO_PAD.encode(dev_key.as_bytes()),
        ),
    ];
    let mut plugins: Vec<(usize, Plugin)> = built_plugins()
        .into_iter()
        // The single-module build runs the same policies: never beside them.
        .filter(|wasm| plugin_name(wasm) != "chain")
        .map(|wasm| {
            let name = plugin_name(&wasm);
            let rank = CHAIN.iter().position(|c| *c == name).unwrap_or(CHAIN.len());
            let config = local_config(&name).map(|c| substitute(c, &substitutions));
            (
                rank,
                Plugin {
                    name,
                    path: wasm,
                    config,
                },
            )
        })
        .collect();
    plugins.sort_by_key(|(rank, _)| *rank);
    for (_, plugin) in plugins {
        spec = spec.plugin(plugin);
    }
    let plugin_names: Vec<String> = spec.plugins.iter().map(|p| p.name.clone()).collect();
    let mut envoy = match Envoy::try_start_in(spec, &run_dir.join("logs")) {
        Ok(envoy) => envoy,
        Err(refused) => {
            eprintln!("Envoy did not start:\n{}", refused.log);
            std::process::exit(1);
        }
    };

    println!(
        "Meshguard is up (logs in {}):",
        run_dir.join("logs").display()
    );
    println!(
        "  Envoy listener     http://127.0.0.1:{LISTENER_PORT}   plugins: {}",
        plugin_names.join(", ")
    );
    println!("  Envoy admin        http://127.0.0.1:{ADMIN_PORT}");
    println!(
        "  meshguard-state    http://127.0.0.1:{}   admin token in .run/admin-token",
        state.port
    );
    println!("  Redis              redis://127.0.0.1:{REDIS_PORT}   data in .run/redis (AOF)");
    println!(
        "  meshguard-gdpr     http://127.0.0.1:{GDPR_PORT}    admin token in .run/gdpr-admin-token"
    );
    println!(
        "  Python upstreams   /api/<service>/...: ml 8101/8102, nlp 8111/8112, fraud 8121/8122,"
    );
    println!("                     data 8131/8132, blockchain 8141/8142 (fault switches at +1000)");
    println!("Dev tokens (HS256, .run/dev-jwt-key):");
    println!("  TOKEN=$(target/release/meshguard-state token mint --key-file .run/dev-jwt-key --sub alice --tier premium)");
    println!("  curl -si localhost:{LISTENER_PORT}/api/ml/predict -H \"authorization: Bearer $TOKEN\" -d '{{\"features\":[1,2,3]}}'");
    println!("Try: curl -si localhost:{LISTENER_PORT}/healthz");
    println!("Ctrl-C or scripts/down stops everything started here.");

    loop {
        match stop_rx.recv_timeout(Duration::from_millis(500)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(status) = envoy.process().exited() {
            eprintln!("Envoy exited ({status}); its log:\n{}", envoy.log());
            break;
        }
        if let Some((name, log)) = upstreams.exited() {
            eprintln!("{name} exited; its log:\n{log}");
            break;
        }
        if let Some(status) = gdpr.exited() {
            eprintln!("meshguard-gdpr exited ({status}); its log:\n{}", gdpr.log());
            break;
        }
    }
    println!("Stopping Meshguard…");
}

/// `meshguard-gdpr serve` on its default port, with its key, database,
/// packages and outbox under `.run/gdpr`, and the upstreams as connectors.
fn start_gdpr(run_dir: &Path, redis: &Redis, state: &StateService) -> Process {
    let dir = run_dir.join("gdpr");
    std::fs::create_dir_all(&dir).expect("create .run/gdpr");
    let binary = service_binary("meshguard-gdpr");
    let key = dir.join("gdpr.key");
    if !key.exists() {
        let status = Command::new(&binary)
            .arg("keygen")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "meshguard-gdpr keygen failed"
        );
    }
    let connectors: Vec<serde_json::Value> = python::SERVICES
        .iter()
        .map(|(name, _)| {
            serde_json::json!({
                "name": name,
                "url": format!("http://127.0.0.1:{LISTENER_PORT}/api/{name}/gdpr/users/{{id}}"),
                "token_file": run_dir.join("gdpr-token"),
            })
        })
        .collect();
    let connectors_file = dir.join("connectors.json");
    std::fs::write(
        &connectors_file,
        serde_json::json!({ "connectors": connectors }).to_string(),
    )
    .expect("write .run/gdpr/connectors.json");
    let admin_token_file = run_dir.join("gdpr-admin-token");
    secret(run_dir, "gdpr-admin-token");
    let mut command = Command::new(binary);
    command
        .current_dir(&dir)
        .env("MESHGUARD_GDPR_DB", dir.join("gdpr.db"))
        .env("MESHGUARD_GDPR_KEY_FILE", &key)
        .env("MESHGUARD_REDIS_URL", redis.url())
        .env("MESHGUARD_STATE_URL", state.url())
        .env("MESHGUARD_ADMIN_TOKEN", &state.admin_token)
        .env("MESHGUARD_GDPR_CONNECTORS", &connectors_file)
        .env("MESHGUARD_GDPR_ADMIN_TOKEN_FILE", &admin_token_file)
        .args(["serve", "--listen", &format!("127.0.0.1:{GDPR_PORT}")]);
    let mut process = Process::spawn("meshguard-gdpr", command, &run_dir.join("logs"));
    process.wait_until(Duration::from_secs(20), "answering /healthz", || {
        Request::get("/healthz")
            .send(GDPR_PORT)
            .is_ok_and(|r| r.status == 200)
    });
    process
}

/// Imports `flags/default.json` (the seed's eight flags) into meshguard-state,
/// so the flags plugin picks them up on its next snapshot.
fn load_seed_flags(state: &StateService) {
    let Ok(body) = std::fs::read(workspace_root().join("flags/default.json")) else {
        return;
    };
    let response = Request::post("/v1/flags/import", body)
        .header("authorization", &format!("Bearer {}", state.admin_token))
        .header("content-type", "application/json")
        .send(state.port);
    match response {
        Ok(r) if r.status == 200 => println!("Seed flags loaded from flags/default.json."),
        Ok(r) => eprintln!(
            "Loading flags/default.json failed: {} {}",
            r.status,
            r.text()
        ),
        Err(e) => eprintln!("Loading flags/default.json failed: {e}"),
    }
}

fn running_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// `meshguard_trace.wasm` -> `trace`.
fn plugin_name(wasm: &Path) -> String {
    let stem = wasm
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    stem.trim_start_matches("meshguard_").to_string()
}

/// `envoy/local/<plugin>.json`, the local mesh's plugin configuration.
fn local_config(name: &str) -> Option<String> {
    std::fs::read_to_string(
        workspace_root()
            .join("envoy/local")
            .join(format!("{name}.json")),
    )
    .ok()
}

/// Fills `${NAME}` placeholders of a local plugin configuration.
fn substitute(mut config: String, substitutions: &[(&str, String)]) -> String {
    for (placeholder, value) in substitutions {
        config = config.replace(placeholder, value);
    }
    config
}

/// A secret kept in `.run/<name>`, made once from the system's randomness.
fn secret(run_dir: &Path, name: &str) -> String {
    let path = run_dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if !existing.trim().is_empty() {
            return existing.trim().to_string();
        }
    }
    let mut bytes = [0u8; 24];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = urandom.read_exact(&mut bytes);
    }
    let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, &value).expect("write secret");
    value
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
