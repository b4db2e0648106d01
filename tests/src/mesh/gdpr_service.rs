//! meshguard-gdpr as the mesh runs it: its files under `<run dir>/gdpr`, the
//! five upstreams as connectors through Envoy's `meshguard_gdpr` listener,
//! and the command line its CLI shares with `serve`.

use super::{secrets::secret, MeshOptions};
use crate::http::Request;
use crate::paths::service_binary;
use crate::process::Process;
use crate::python;
use crate::redis::Redis;
use crate::state::StateService;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// meshguard-gdpr's `serve`, as the mesh runs it.
pub struct GdprService {
    pub port: u16,
    pub admin_token: String,
    /// Its database, key, connectors file, outbox and packages.
    pub dir: PathBuf,
    /// Its `--revocation-grace-ms`.
    pub revocation_grace_ms: u64,
    process: Process,
}

impl GdprService {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// meshguard-gdpr's command line with its files under `<run dir>/gdpr`.
pub(super) fn gdpr_command(run_dir: &Path, redis: &Redis, state: &StateService) -> Command {
    let dir = run_dir.join("gdpr");
    let mut command = Command::new(service_binary("meshguard-gdpr"));
    for var in crate::gdpr::GDPR_ENV {
        command.env_remove(var);
    }
    command
        .current_dir(&dir)
        .env("MESHGUARD_GDPR_DB", dir.join("gdpr.db"))
        .env("MESHGUARD_GDPR_KEY_FILE", dir.join("gdpr.key"))
        .env("MESHGUARD_GDPR_OUTBOX", dir.join("outbox"))
        .env("MESHGUARD_GDPR_PACKAGES", dir.join("packages"))
        .env("MESHGUARD_REDIS_URL", redis.url())
        .env("MESHGUARD_STATE_URL", state.url())
        .env("MESHGUARD_ADMIN_TOKEN", &state.admin_token)
        .env("MESHGUARD_GDPR_CONNECTORS", dir.join("connectors.json"));
    command
}

/// `meshguard-gdpr serve` with its key, database, packages and outbox under
/// `<run dir>/gdpr`, and the five upstreams as connectors: through Envoy's
/// `meshguard_gdpr` listener (the public one refuses `/api/<svc>/gdpr`),
/// with the upstreams' GDPR token from `<run dir>/gdpr-token`.
pub(super) fn start_gdpr(
    run_dir: &Path,
    port: u16,
    self_port: u16,
    gdpr_path_port: u16,
    redis: &Redis,
    state: &StateService,
    options: &MeshOptions,
) -> GdprService {
    let dir = run_dir.join("gdpr");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let key = dir.join("gdpr.key");
    if !key.exists() {
        let status = Command::new(service_binary("meshguard-gdpr"))
            .arg("keygen")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "meshguard-gdpr keygen failed"
        );
    }
    let connectors: Vec<Value> = python::SERVICES
        .iter()
        .map(|(name, _)| {
            json!({
                "name": name,
                "url": format!("http://127.0.0.1:{gdpr_path_port}/api/{name}/gdpr/users/{{id}}"),
                "token_file": run_dir.join("gdpr-token"),
            })
        })
        .collect();
    let connectors_file = dir.join("connectors.json");
    std::fs::write(
        &connectors_file,
        json!({ "connectors": connectors }).to_string(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", connectors_file.display()));
    let admin_token = secret(run_dir, "gdpr-admin-token");
    let mut command = gdpr_command(run_dir, redis, state);
    command
        .env(
            "MESHGUARD_GDPR_ADMIN_TOKEN_FILE",
            run_dir.join("gdpr-admin-token"),
        )
        .env(
            "MESHGUARD_GDPR_PUBLIC_URL",
            format!("http://127.0.0.1:{port}"),
        )
        .env(
            "MESHGUARD_GDPR_REVOCATION_GRACE_MS",
            options.gdpr_revocation_grace_ms.to_string(),
        )
        .env(
            "MESHGUARD_GDPR_SELF_LISTEN",
            format!("127.0.0.1:{self_port}"),
        )
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(&options.gdpr_args);
    let mut process = Process::spawn("meshguard-gdpr", command, &run_dir.join("logs"));
    process.wait_until(Duration::from_secs(20), "answering /healthz", || {
        Request::get("/healthz")
            .send(port)
            .is_ok_and(|r| r.status == 200)
    });
    GdprService {
        port,
        admin_token,
        dir,
        revocation_grace_ms: options.gdpr_revocation_grace_ms,
        process,
    }
}
