//! The shipped stack, whole: exactly what `scripts/up` runs, for `scripts/up`
//! itself (fixed ports, `.run/`) and for the end-to-end tests (free ports, a
//! temp run dir).
//!
//! [`Mesh::start`] starts Redis, meshguard-state (with `flags/default.json`
//! imported), the five Python upstreams (two hosts each), meshguard-gdpr with
//! its connectors, and Envoy rendered from `envoy/envoy.yaml.j2` with the
//! plugin configurations of `envoy/local/*.json`: by default the single
//! module `meshguard_chain.wasm` whose configuration is
//! `{"trace": trace.json, "auth": auth.json, "ratelimit": ratelimit.json,
//! "flags": flags.json}`, or the four plugins as separate filters
//! ([`Layout::FourFilters`]). Secrets are files in the run dir, made once
//! from the system's randomness, with the names `scripts/up` uses:
//!
//! | file | what |
//! | --- | --- |
//! | `admin-token` | meshguard-state's admin token |
//! | `plugin-secret` | the secret the plugins present to meshguard-state |
//! | `dev-jwt-key` | the HS256 key the auth plugin trusts (`meshguard-state token mint --key-file`) |
//! | `gdpr-token` | meshguard-gdpr's credential for the upstreams' `/gdpr/...` endpoints |
//! | `gdpr-admin-token` | meshguard-gdpr's HTTP API token |
//!
//! Logs go to `<run dir>/logs/`, Redis data to `<run dir>/redis/`.
//!
//! ```no_run
//! use meshguard_harness::mesh::{Mesh, MeshOptions};
//! use meshguard_harness::Request;
//!
//! let mesh = Mesh::start(MeshOptions::for_test());
//! let token = mesh.mint_token("alice", "premium", serde_json::json!({"sid": "s1"}));
//! let response = mesh.send(&Request::get("/api/ml/").header("authorization", &format!("Bearer {token}")));
//! assert_eq!(response.status, 200);
//! ```

mod gdpr_service;
mod json_patch;
mod options;
mod plugin_config;
mod secrets;
mod spans;

pub use gdpr_service::GdprService;
pub use json_patch::merge_patch;
pub use options::{Layout, MeshOptions};
pub use secrets::{mint_dev_token, secret};
pub use spans::{SpanLog, COLLECTOR_CLUSTER};

use crate::envoy::{Cache, Envoy, EnvoySpec};
use crate::http::{Request, Response};
use crate::paths::service_binary;
use crate::ports::free_port;
use crate::python::{UpstreamOptions, Upstreams};
use crate::redis::Redis;
use crate::state::{StateOptions, StateService};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gdpr_service::{gdpr_command, start_gdpr};
use plugin_config::{assembled_config, load_seed_flags, plugins};
use secrets::private_dir;
use serde_json::{json, Value};
use spans::Collector;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The fixed ports of `scripts/up`.
pub mod fixed {
    pub const LISTENER: u16 = 10000;
    pub const ADMIN: u16 = 9901;
    pub const STATE: u16 = 7070;
    pub const GDPR: u16 = 7071;
    pub const REDIS: u16 = 6379;
    /// Envoy's GDPR data path (`meshguard_gdpr` listener), loopback only.
    pub const GDPR_PATH: u16 = 10001;
    /// meshguard-gdpr's self-service listener (`--self-listen`), reached only
    /// through Envoy's public listener at `/privacy/`.
    pub const GDPR_SELF: u16 = 7072;
    /// The local span log's OTLP/HTTP receiver, when no collector is set.
    pub const SPAN_LOG: u16 = 10002;
}

/// The environment variable naming the OTLP/HTTP collector `scripts/up`
/// exports spans to, e.g. `http://127.0.0.1:4318` (the OpenTelemetry
/// Collector's and Jaeger's OTLP/HTTP port; `/v1/traces` is added when the
/// URL has no path).
pub const OTLP_ENDPOINT_ENV: &str = "MESHGUARD_OTLP_ENDPOINT";

/// The filter chain's order: identity before limits and flags.
pub const CHAIN: [&str; 4] = ["trace", "auth", "ratelimit", "flags"];

/// The issuer `meshguard-state token mint` signs for and `envoy/local/auth.json` trusts.
pub const DEV_ISSUER: &str = "meshguard-dev";

/// The variables of Envoy's environment the shipped plugin configurations
/// read their secrets from (`{"env": …}` in envoy/local/*.json), so the
/// rendered config and `/config_dump` hold none: meshguard-state's plugin
/// secret, and the base64url HS256 key auth trusts (`dev-jwt-key`).
pub const PLUGIN_SECRET_ENV: &str = "MESHGUARD_PLUGIN_SECRET";
pub const JWT_KEY_ENV: &str = "MESHGUARD_JWT_KEY_B64URL";

/// The identity [`Mesh::start`] probes the chain with until it serves; it
/// shows up in Redis like any user (rate-limit counters, index).
pub const READINESS_USER: &str = "mesh-readiness-probe";

/// The running mesh; everything stops when it drops (Envoy first).
pub struct Mesh {
    // Declaration order is drop order: Envoy goes before what it routes to.
    pub envoy: Envoy,
    pub gdpr: GdprService,
    pub upstreams: Upstreams,
    pub state: StateService,
    pub redis: Redis,
    /// The local span log, when no collector is set.
    pub span_log: Option<SpanLog>,
    /// Where sampled spans go: the collector's URL or the span log's file.
    pub trace_export: String,
    /// The plugin configuration loaded, after substitution and the patch:
    /// `{"trace": …, "auth": …, "ratelimit": …, "flags": …}`.
    pub plugin_config: Value,
    pub layout: Layout,
    gdpr_path_port: u16,
    run_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Mesh {
    /// Starts everything and waits until each piece answers; panics with the
    /// logs of what failed.
    pub fn start(options: MeshOptions) -> Mesh {
        match Mesh::try_start(options) {
            Ok(mesh) => mesh,
            Err(message) => panic!("{message}"),
        }
    }

    /// As [`Mesh::start`], but Envoy refusing its configuration is an `Err`
    /// with its log (what `scripts/up` reports).
    pub fn try_start(options: MeshOptions) -> Result<Mesh, String> {
        // Meshes of one test binary start one at a time: starting is the
        // CPU-heavy part (ten Python processes, Envoy compiling the Wasm), and
        // several at once on a small machine pass Envoy's start-up limit.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let temp = match options.run_dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().map_err(|e| format!("temp run dir: {e}"))?),
        };
        let run_dir = options
            .run_dir
            .clone()
            .or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()))
            .unwrap_or_default();
        let logs = run_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        // Secrets, databases and logs: the owner's alone.
        private_dir(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        let port = |fixed: u16| {
            if options.fixed_ports {
                fixed
            } else {
                free_port()
            }
        };

        let redis = Redis::start_in(&run_dir.join("redis"), port(fixed::REDIS));
        let state = StateService::start_with(
            &redis.url(),
            StateOptions {
                port: Some(port(fixed::STATE)),
                admin_token: Some(secret(&run_dir, "admin-token")),
                plugin_secret: Some(secret(&run_dir, "plugin-secret")),
                dir: Some(logs.clone()),
                args: options.state_args.clone(),
            },
        );
        load_seed_flags(&state)?;

        let upstreams = Upstreams::start_all(
            options.fixed_ports,
            Some(&run_dir.join("upstreams")),
            UpstreamOptions {
                gdpr_token: Some(secret(&run_dir, "gdpr-token")),
                ..UpstreamOptions::default()
            },
        );

        let listener_port = port(fixed::LISTENER);
        let gdpr_path_port = port(fixed::GDPR_PATH);
        let mut spec = EnvoySpec::new();
        spec.listener_port = listener_port;
        spec.gdpr_listener_port = Some(gdpr_path_port);
        spec.admin_port = port(fixed::ADMIN);
        spec.concurrency = options.concurrency;
        // Envoy's HTTP cache after the chain, kept in the run dir across restarts.
        spec.cache = Some(Cache::in_dir(&run_dir.join("envoy-cache")));
        spec = spec.cluster("meshguard_state", state.port);
        // Data subjects file their own requests at /privacy/, through the chain:
        // meshguard-gdpr takes the subject from the x-auth-sub auth sets.
        let gdpr_self_port = port(fixed::GDPR_SELF);
        spec = spec
            .cluster("meshguard_gdpr_self", gdpr_self_port)
            .route("/privacy/", "meshguard_gdpr_self");
        // The plugins' secrets go through Envoy's environment (SECURITY.md).
        let jwt_key = URL_SAFE_NO_PAD.encode(secret(&run_dir, "dev-jwt-key").as_bytes());
        spec = spec
            .secret_env(PLUGIN_SECRET_ENV, &state.plugin_secret)
            .secret_env(JWT_KEY_ENV, &jwt_key);
        spec = upstreams.add_to(spec);
        let (span_log, collector) = match &options.otlp_endpoint {
            Some(url) => (None, Collector::parse(url)?),
            None => {
                let log = SpanLog::start(port(fixed::SPAN_LOG), &logs.join("spans.jsonl"))?;
                let collector = Collector {
                    host: "127.0.0.1".into(),
                    port: log.port,
                    path: "/v1/traces".into(),
                };
                (Some(log), collector)
            }
        };
        spec = match collector.host.parse::<std::net::IpAddr>() {
            Ok(_) if collector.host == "127.0.0.1" => {
                spec.cluster(COLLECTOR_CLUSTER, collector.port)
            }
            _ => spec.cluster_at(COLLECTOR_CLUSTER, &collector.host, collector.port),
        };
        let trace_export = match &span_log {
            Some(log) => log.path.display().to_string(),
            None => collector.url(),
        };
        let mut export_patch = json!({"trace": {"export": {
            "cluster": COLLECTOR_CLUSTER,
            "authority": collector.authority(),
            "path": collector.path,
        }}});
        if let Some(timeout_ms) = options.ratelimit_state_timeout_ms {
            merge_patch(
                &mut export_patch,
                &json!({"ratelimit": {"state": {"timeout_ms": timeout_ms}}}),
            );
        }
        merge_patch(&mut export_patch, &options.config_patch);
        let plugin_config = assembled_config(&run_dir, &state, &export_patch)?;
        for plugin in plugins(options.layout, &plugin_config) {
            spec = spec.plugin(plugin);
        }

        let gdpr = start_gdpr(
            &run_dir,
            port(fixed::GDPR),
            gdpr_self_port,
            gdpr_path_port,
            &redis,
            &state,
            &options,
        );
        let envoy = Envoy::try_start_in(spec, &logs)
            .map_err(|refused| format!("Envoy did not start:\n{}", refused.log))?;
        let mesh = Mesh {
            envoy,
            gdpr,
            upstreams,
            state,
            redis,
            span_log,
            trace_export,
            plugin_config,
            layout: options.layout,
            gdpr_path_port,
            run_dir,
            _temp: temp,
        };
        mesh.wait_serving()?;
        Ok(mesh)
    }

    /// Waits until the chain serves an authenticated request with flags:
    /// the auth plugin has its first revocation feed (before that it
    /// answers 401 `stale_revocations`) and flags its first snapshot, on
    /// every worker (several answers in a row, each on a new connection), and
    /// `/healthz/upstreams` says every upstream service has a healthy host.
    /// The probe's identity is [`READINESS_USER`] on the admin tier.
    fn wait_serving(&self) -> Result<(), String> {
        let token = self.mint_token(READINESS_USER, "admin", Value::Null);
        let probe = Request::get("/api/ml/").header("authorization", &format!("Bearer {token}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut in_a_row = 0;
        let mut last = String::new();
        while in_a_row < 8 {
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "the mesh did not serve within 30 s; last answer: {last}\n{}",
                    self.logs()
                ));
            }
            let serving = match probe.send(self.listener_port()) {
                Ok(response) => {
                    let flags_loaded = response.status == 200
                        && response.json()["meshguard_headers"]["x-meshguard-flags"]
                            .as_str()
                            .is_some_and(|f| !f.is_empty());
                    last = format!("{} {}", response.status, response.text());
                    flags_loaded
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            };
            // And Envoy's active health checks have found a healthy host of
            // every upstream (the first probes may time out while everything
            // starts at once).
            let serving = serving
                && Request::get("/healthz/upstreams")
                    .send(self.listener_port())
                    .is_ok_and(|r| r.status == 200);
            if serving {
                in_a_row += 1;
            } else {
                in_a_row = 0;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// The public listener a client uses.
    pub fn listener_port(&self) -> u16 {
        self.envoy.port
    }

    pub fn admin_port(&self) -> u16 {
        self.envoy.admin_port
    }

    /// Sends `request` through the public listener; panics (with Envoy's
    /// log) only when no HTTP answer comes.
    pub fn send(&self, request: &Request) -> Response {
        self.envoy.send(request)
    }

    /// A GET through the public listener with this bearer token.
    pub fn get_as(&self, path: &str, token: &str) -> Response {
        self.send(&Request::get(path).header("authorization", &format!("Bearer {token}")))
    }

    /// An HS256 token signed with the run dir's `dev-jwt-key`, with the
    /// claims `meshguard-state token mint --sub SUB --tier TIER` gives
    /// (`iss` meshguard-dev, a random `jti`, `iat` now, `exp` in an hour),
    /// `tier` left out when empty, then every member of `extra_claims` (an
    /// object, or `Value::Null`) added or replacing: e.g. `sid`, `groups`,
    /// `scope`, `exp`, `iat`, or `"tier": null` to drop one.
    pub fn mint_token(&self, sub: &str, tier: &str, extra_claims: Value) -> String {
        mint_dev_token(&self.run_dir, sub, tier, extra_claims)
    }

    /// Where secrets, logs (`logs/`) and data live.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// meshguard-gdpr's HTTP API.
    pub fn gdpr_port(&self) -> u16 {
        self.gdpr.port
    }

    /// Envoy's `meshguard_gdpr` listener: `/api/<service>/gdpr/...` only,
    /// for meshguard-gdpr's connectors (the upstreams check `gdpr-token`).
    pub fn gdpr_path_port(&self) -> u16 {
        self.gdpr_path_port
    }

    pub fn gdpr_admin_token(&self) -> String {
        self.gdpr.admin_token.clone()
    }

    /// meshguard-state's admin token.
    pub fn admin_token(&self) -> String {
        self.state.admin_token.clone()
    }

    /// Runs `meshguard-state ARGS` as an operator would against this mesh
    /// (`MESHGUARD_STATE_URL` and the admin token file set).
    pub fn state_cli(&self, args: &[&str]) -> Output {
        Command::new(service_binary("meshguard-state"))
            .env_remove("MESHGUARD_ADMIN_TOKEN")
            .env("MESHGUARD_STATE_URL", self.state.url())
            .env(
                "MESHGUARD_ADMIN_TOKEN_FILE",
                self.run_dir.join("admin-token"),
            )
            .env("MESHGUARD_ACTOR", "e2e-operator")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("meshguard-state {args:?}: {e}"))
    }

    /// Runs `meshguard-gdpr ARGS` against the same database, key, Redis,
    /// state service and connectors as the running `serve`.
    pub fn gdpr_cli(&self, args: &[&str]) -> Output {
        let mut command = gdpr_command(&self.run_dir, &self.redis, &self.state);
        command
            .env(
                "MESHGUARD_GDPR_REVOCATION_GRACE_MS",
                self.gdpr.revocation_grace_ms.to_string(),
            )
            .env("MESHGUARD_ACTOR", "e2e-operator")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("meshguard-gdpr {args:?}: {e}"))
    }

    /// The spans in the local span log (`<run dir>/logs/spans.jsonl`), each
    /// an OTLP JSON span with its resource's `service.name` added as
    /// `"service"`; empty when spans go to an external collector.
    pub fn spans(&self) -> Vec<Value> {
        self.span_log
            .as_ref()
            .map(SpanLog::spans)
            .unwrap_or_default()
    }

    /// Waits up to `limit` for a span of `trace_id` (32 hex digits) in the
    /// local span log; the export runs on the trace plugin's tick.
    pub fn wait_for_span(&self, trace_id: &str, limit: Duration) -> Option<Value> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let found = self
                .spans()
                .into_iter()
                .find(|span| span["traceId"].as_str() == Some(trace_id));
            if found.is_some() || std::time::Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The logs of every process, for a failing test's message.
    pub fn logs(&self) -> String {
        format!(
            "envoy:\n{}\nmeshguard-gdpr:\n{}",
            self.envoy.log(),
            self.gdpr.log()
        )
    }
}
