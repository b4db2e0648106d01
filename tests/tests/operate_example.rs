//! docs/operate.md's first walkthrough, run: `envoy/examples/single-module.yaml`
//! (a plain Envoy with the single module as its one Meshguard filter) with
//! only its paths and ports changed, in front of an echo service. What the
//! doc promises must hold: 401 without a token, the identity and flag
//! headers at the service, 429 past the free tier, the plugin stats in
//! /stats, and no key in /config_dump.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use meshguard_harness::http::Request;
use meshguard_harness::paths::{envoy_binary, plugin_wasm, workspace_root};
use meshguard_harness::ports::free_port;
use meshguard_harness::process::Process;
use meshguard_harness::upstream::RecordingServer;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEY: &[u8] = b"operate-example-hs256-key-32bytes!!";

struct Example {
    process: Process,
    port: u16,
    admin_port: u16,
    _dir: tempfile::TempDir,
}

fn start_example(app_port: u16) -> Example {
    let yaml = std::fs::read_to_string(workspace_root().join("envoy/examples/single-module.yaml"))
        .expect("envoy/examples/single-module.yaml");
    let (port, admin_port) = (free_port(), free_port());
    let wasm = plugin_wasm("chain");
    let adapted = yaml
        .replace(
            "/etc/envoy/meshguard_chain.wasm",
            &wasm.display().to_string(),
        )
        .replace("port_value: 8080", &format!("port_value: {port}"))
        .replace("address: 0.0.0.0", "address: 127.0.0.1")
        .replace("port_value: 9901", &format!("port_value: {admin_port}"))
        .replace("port_value: 8000", &format!("port_value: {app_port}"));
    for changed in ["meshguard_chain.wasm", "8080", "9901", "8000"] {
        assert!(
            !adapted.contains(&format!("port_value: {changed} ")) && adapted != yaml,
            "the example no longer has {changed} where the doc says"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("envoy.yaml");
    std::fs::write(&config, adapted).unwrap();
    let mut command = Command::new(envoy_binary());
    command
        .arg("-c")
        .arg(&config)
        .args(["--disable-hot-restart", "--concurrency", "2", "-l", "info"])
        .env("MESHGUARD_JWT_KEY", URL_SAFE_NO_PAD.encode(KEY));
    let mut process = Process::spawn("envoy", command, dir.path());
    process.wait_until(Duration::from_secs(30), "Envoy ready", || {
        Request::get("/ready")
            .send(admin_port)
            .is_ok_and(|r| r.status == 200)
    });
    Example {
        process,
        port,
        admin_port,
        _dir: dir,
    }
}

fn token(sub: &str, tier: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "example-idp", "sub": sub, "tier": tier, "iat": now, "exp": now + 600
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(KEY),
    )
    .unwrap()
}

#[test]
fn the_single_module_in_a_plain_envoy_does_what_operate_md_says() {
    let app = RecordingServer::echo();
    let mut example = start_example(app.port);
    let get = |path: &str, token: Option<&str>| {
        let mut request = Request::get(path).header("x-auth-sub", "spoofed");
        if let Some(token) = token {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        request.send(example.port).expect("the example's listener")
    };

    let anonymous = get("/orders", None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    assert!(anonymous.header("www-authenticate").is_some());
    assert_eq!(get("/healthz", None).status, 200, "public route");

    let premium = token("pat", "premium");
    let answer = get("/orders", Some(&premium));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.header("traceresponse").is_some());
    assert!(answer.header("ratelimit-policy").is_some());
    let seen = app.requests();
    let last = seen.last().expect("the service saw the request");
    assert_eq!(last.headers_named("x-auth-sub"), ["pat"]);
    assert_eq!(last.headers_named("x-auth-tier"), ["premium"]);
    assert_eq!(
        last.headers_named("x-flag-new-checkout"),
        ["on"],
        "{:?}",
        last.headers
    );
    assert_eq!(last.headers_named("traceparent").len(), 1);

    let free = token("fay", "free");
    let statuses: Vec<u16> = (0..7).map(|_| get("/orders", Some(&free)).status).collect();
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert_eq!(statuses[6], 429, "{statuses:?}");

    std::thread::sleep(Duration::from_millis(300));
    let stats = Request::get("/stats?filter=wasmcustom.meshguard")
        .send(example.admin_port)
        .unwrap()
        .text();
    for stat in [
        "wasmcustom.meshguard.trace.traces_started",
        "wasmcustom.meshguard.auth.verified",
        "wasmcustom.meshguard.auth.rejected",
        "wasmcustom.meshguard.ratelimit.free.denied",
        "wasmcustom.meshguard.flags.variant.NEW_CHECKOUT.on.exposures",
    ] {
        let value = stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{stat}: ")))
            .and_then(|v| v.trim().parse::<u64>().ok());
        assert!(value.is_some_and(|v| v > 0), "{stat} not counted:\n{stats}");
    }

    let dump = Request::get("/config_dump")
        .send(example.admin_port)
        .unwrap()
        .text();
    assert!(dump.contains("MESHGUARD_JWT_KEY"));
    assert!(
        !dump.contains(&URL_SAFE_NO_PAD.encode(KEY)),
        "the JWT key is in /config_dump"
    );
    example.process.stop();
}
