//! Attacks on the secrets of the shipped stack (SECURITY.md): what anyone
//! who reaches Envoy's admin port, or reads the run directory, learns.
//!
//! - `/config_dump` (and every other admin page) shows no secret: the plugin
//!   secret and the HS256 key reach the plugins through Envoy's environment
//!   (`{"env": NAME}`), in every encoding a key could be written in;
//! - the plugins still authenticate to meshguard-state with that secret;
//! - the admin port binds loopback whatever the listener's address;
//! - secret files are 0600 in a 0700 run directory, also when an older run
//!   left them readable by others;
//! - a secret the VM cannot find makes Envoy refuse the filter, naming it.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use meshguard_harness::envoy::assert_configs_refused;
use meshguard_harness::mesh::{Layout, Mesh, MeshOptions, JWT_KEY_ENV, PLUGIN_SECRET_ENV};
use meshguard_harness::{EnvoySpec, Request};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The run dir's secret files.
const SECRET_FILES: [&str; 5] = [
    "admin-token",
    "plugin-secret",
    "dev-jwt-key",
    "gdpr-token",
    "gdpr-admin-token",
];

/// Every way a secret of the run dir could be spelled in a config.
fn spellings(run_dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for name in SECRET_FILES {
        let text =
            std::fs::read_to_string(run_dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        for value in text.lines().map(str::trim).filter(|v| !v.is_empty()) {
            let bytes = value.as_bytes();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            for (encoding, spelled) in [
                ("raw", value.to_string()),
                ("base64url", URL_SAFE_NO_PAD.encode(bytes)),
                ("base64url padded", URL_SAFE.encode(bytes)),
                ("base64", STANDARD.encode(bytes)),
                ("hex of the bytes", hex),
            ] {
                found.push((format!("{name} ({encoding})"), spelled));
            }
        }
    }
    found
}

/// Everything the admin port answers that could echo configuration.
fn admin_pages(mesh: &Mesh) -> Vec<(String, String)> {
    [
        "/config_dump",
        "/config_dump?include_eds",
        "/server_info",
        "/runtime",
        "/clusters",
        "/listeners",
        "/stats",
        "/certs",
    ]
    .iter()
    .map(|page| {
        let response = Request::get(page)
            .send(mesh.admin_port())
            .unwrap_or_else(|e| panic!("admin {page}: {e}"));
        assert_eq!(response.status, 200, "admin {page}");
        (page.to_string(), response.text())
    })
    .collect()
}

fn assert_admin_shows_no_secret(layout: Layout) {
    let mesh = Mesh::start(MeshOptions {
        layout,
        ..MeshOptions::for_test()
    });
    let pages = admin_pages(&mesh);
    for (what, spelled) in spellings(mesh.run_dir()) {
        for (page, text) in &pages {
            assert!(!text.contains(&spelled), "{page} shows {what} ({layout:?})");
        }
    }
    // The rendered config on disk (the run dir's logs) holds none either.
    let rendered = std::fs::read_to_string(mesh.run_dir().join("logs/envoy.yaml"))
        .expect("the rendered envoy.yaml");
    for (what, spelled) in spellings(mesh.run_dir()) {
        assert!(!rendered.contains(&spelled), "envoy.yaml holds {what}");
    }
    // The dump names where the secrets come from.
    let dump = &pages[0].1;
    for name in [PLUGIN_SECRET_ENV, JWT_KEY_ENV] {
        assert!(dump.contains(name), "/config_dump lacks {name}");
    }
    assert!(dump.contains("host_env_keys"), "{layout:?}");

    // And the plugins have them: a dev token verifies (the HS256 key), and a
    // user revoked at meshguard-state is refused (the feed is read with the
    // plugin secret).
    let token = mesh.mint_token("mallory", "free", json!({}));
    let response = mesh.get_as("/api/ml/", &token);
    assert_eq!(response.status, 200, "{}", response.text());
    std::thread::sleep(Duration::from_millis(1_100));
    let out = mesh.state_cli(&["revoke-user", "mallory"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = mesh.get_as("/api/ml/", &token);
        if response.status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a revoked user still passes: the plugin cannot read the feed ({layout:?}):\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Envoy's own log (the plugins log at debug here) names no secret either.
    let log = mesh.envoy.log();
    for (what, spelled) in spellings(mesh.run_dir()) {
        assert!(!log.contains(&spelled), "Envoy's log shows {what}");
    }
}

#[test]
fn the_admin_port_shows_no_secret_in_the_single_module() {
    assert_admin_shows_no_secret(Layout::SingleModule);
}

#[test]
fn the_admin_port_shows_no_secret_in_the_four_filters() {
    assert_admin_shows_no_secret(Layout::FourFilters);
}

#[test]
fn the_admin_port_binds_loopback_whatever_the_listener() {
    let mut spec = EnvoySpec::new();
    spec.listen_address = Some("0.0.0.0".into());
    let rendered = spec.render();
    let admin = rendered
        .split("static_resources:")
        .next()
        .expect("the admin section");
    assert!(
        admin.contains(&format!(
            "address: 127.0.0.1, port_value: {}",
            spec.admin_port
        )),
        "admin section:\n{admin}"
    );
    assert!(!admin.contains("0.0.0.0"), "admin section:\n{admin}");
    // An operator who needs it elsewhere says so.
    spec.admin_address = Some("10.1.2.3".into());
    assert!(spec.render().contains(&format!(
        "address: 10.1.2.3, port_value: {}",
        spec.admin_port
    )));
}

#[test]
fn run_dir_secrets_are_readable_by_the_owner_alone() {
    let parent = tempfile::tempdir().unwrap();
    let run_dir = parent.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A secret an older run left readable by everyone.
    let old = run_dir.join("plugin-secret");
    std::fs::write(&old, "an-old-plugin-secret-of-some-length\n").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();

    let mesh = Mesh::start(MeshOptions {
        run_dir: Some(run_dir.clone()),
        ..MeshOptions::for_test()
    });
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&run_dir), 0o700, "the run dir");
    for name in SECRET_FILES {
        assert_eq!(mode(&run_dir.join(name)), 0o600, "{name}");
    }
    assert_eq!(
        std::fs::read_to_string(&old).unwrap().trim(),
        "an-old-plugin-secret-of-some-length",
        "the secret itself is kept"
    );
    drop(mesh);
}

#[test]
fn a_secret_missing_from_the_vm_environment_is_refused_by_name() {
    assert_configs_refused(
        "ratelimit",
        &[(
            r#"{"state": {"secret": {"env": "MESHGUARD_SECRET_NOBODY_SET"}}}"#,
            "field `state.secret`: environment variable MESHGUARD_SECRET_NOBODY_SET is not set",
        )],
    );
    assert_configs_refused(
        "auth",
        &[(
            r#"{"jwks": {"keys": [{"kty": "oct", "kid": "k", "alg": "HS256", "k": {"env": "MESHGUARD_SECRET_NOBODY_SET"}}]}}"#,
            "field `jwks`: keys[0].k: environment variable MESHGUARD_SECRET_NOBODY_SET",
        )],
    );
}
