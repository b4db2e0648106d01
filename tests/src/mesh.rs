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

use crate::envoy::{Cache, Envoy, EnvoySpec, Plugin};
use crate::http::{Request, Response};
use crate::paths::{self, service_binary, workspace_root};
use crate::ports::free_port;
use crate::process::Process;
use crate::python::{self, UpstreamOptions, Upstreams};
use crate::redis::Redis;
use crate::state::{StateOptions, StateService};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// How the Meshguard policies are loaded into Envoy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// `meshguard_chain.wasm`: the four policies in one filter (the default
    /// deployment, docs/chain.md).
    #[default]
    SingleModule,
    /// `meshguard_{trace,auth,ratelimit,flags}.wasm` as four filters in
    /// chain order, each with its own `envoy/local/<name>.json`.
    FourFilters,
}

/// How to start the mesh. Construct with [`MeshOptions::for_test`] (or
/// [`MeshOptions::for_up`]) and change fields; new fields always get a
/// default there, so callers keep compiling.
#[derive(Clone, Debug)]
pub struct MeshOptions {
    /// `scripts/up`'s ports ([`fixed`], the upstreams' 81xx) instead of free ones.
    pub fixed_ports: bool,
    /// Where secrets, logs and data live; `None` is a fresh temp dir removed
    /// when the mesh drops.
    pub run_dir: Option<PathBuf>,
    pub layout: Layout,
    /// A JSON merge patch (RFC 7386) applied to the assembled plugin
    /// configuration `{"trace": …, "auth": …, "ratelimit": …, "flags": …}`
    /// before it is loaded (in either layout), e.g.
    /// `json!({"auth": {"revocation": {"poll_interval_ms": 100}}})`.
    /// `Value::Null` changes nothing.
    pub config_patch: Value,
    /// Extra `meshguard-state serve` flags, e.g. `["--max-sessions", "3"]`.
    pub state_args: Vec<String>,
    /// Extra `meshguard-gdpr serve` flags.
    pub gdpr_args: Vec<String>,
    /// How long an erasure waits after the user's revocation before deleting
    /// (meshguard-gdpr's `--revocation-grace-ms`): long enough for the auth
    /// plugin of the local Envoy to poll the feed (every 250 ms in
    /// `envoy/local/auth.json`).
    pub gdpr_revocation_grace_ms: u64,
    /// Envoy worker threads.
    pub concurrency: u32,
    /// The OTLP/HTTP collector sampled spans go to (`http://host:port[/path]`);
    /// `None` writes them to `<run dir>/logs/spans.jsonl` through the mesh's
    /// own receiver ([`SpanLog`]).
    pub otlp_endpoint: Option<String>,
    /// The rate limiter's budget for a meshguard-state call
    /// (`ratelimit.state.timeout_ms`); `None` keeps `envoy/local/ratelimit.json`'s
    /// 20 ms. Tests run debug builds of meshguard-state on a busy machine,
    /// where 20 ms is often missed and the limiter decides on its local
    /// fallback buckets instead (a different count); they allow 1 s.
    pub ratelimit_state_timeout_ms: Option<u64>,
}

impl Default for MeshOptions {
    fn default() -> MeshOptions {
        MeshOptions::for_test()
    }
}

impl MeshOptions {
    /// Free ports, a temp run dir, the single module.
    pub fn for_test() -> MeshOptions {
        MeshOptions {
            fixed_ports: false,
            run_dir: None,
            layout: Layout::SingleModule,
            config_patch: Value::Null,
            state_args: Vec::new(),
            gdpr_args: Vec::new(),
            gdpr_revocation_grace_ms: 2_000,
            concurrency: 2,
            otlp_endpoint: None,
            ratelimit_state_timeout_ms: Some(1_000),
        }
    }

    /// What `scripts/up` runs: fixed ports, `.run/` in the workspace, spans
    /// to [`OTLP_ENDPOINT_ENV`] when set.
    pub fn for_up() -> MeshOptions {
        MeshOptions {
            fixed_ports: true,
            run_dir: Some(workspace_root().join(".run")),
            otlp_endpoint: std::env::var(OTLP_ENDPOINT_ENV)
                .ok()
                .filter(|e| !e.trim().is_empty()),
            ratelimit_state_timeout_ms: None,
            ..MeshOptions::for_test()
        }
    }
}

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

/// `{"trace": …, "auth": …, "ratelimit": …, "flags": …}` from
/// `envoy/local/<name>.json` with the run dir's secrets filled in and the
/// patch merged.
fn assembled_config(run_dir: &Path, state: &StateService, patch: &Value) -> Result<Value, String> {
    let dev_key = secret(run_dir, "dev-jwt-key");
    let substitutions = [
        ("${PLUGIN_SECRET}", state.plugin_secret.clone()),
        (
            "${DEV_JWT_KEY_B64URL}",
            URL_SAFE_NO_PAD.encode(dev_key.as_bytes()),
        ),
    ];
    let mut assembled = serde_json::Map::new();
    for name in CHAIN {
        let path = workspace_root()
            .join("envoy/local")
            .join(format!("{name}.json"));
        let mut text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (placeholder, value) in &substitutions {
            text = text.replace(placeholder, value);
        }
        let config: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        assembled.insert(name.to_string(), config);
    }
    let mut assembled = Value::Object(assembled);
    merge_patch(&mut assembled, patch);
    Ok(assembled)
}

/// RFC 7386: objects merge member by member, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        if !patch.is_null() {
            *target = patch.clone();
        }
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in members {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The Envoy filters of a layout.
fn plugins(layout: Layout, config: &Value) -> Vec<Plugin> {
    match layout {
        Layout::SingleModule => vec![Plugin {
            name: "chain".into(),
            path: paths::plugin_wasm("chain"),
            config: Some(config.to_string()),
        }],
        Layout::FourFilters => CHAIN
            .iter()
            .map(|name| Plugin {
                name: name.to_string(),
                path: paths::plugin_wasm(name),
                config: config.get(name).map(Value::to_string),
            })
            .collect(),
    }
}

/// Imports `flags/default.json` (the seed's eight flags) into meshguard-state,
/// so the flags plugin picks them up on its first snapshot.
fn load_seed_flags(state: &StateService) -> Result<(), String> {
    let path = workspace_root().join("flags/default.json");
    let body = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let response = Request::post("/v1/flags/import", body)
        .header("authorization", &format!("Bearer {}", state.admin_token))
        .header("content-type", "application/json")
        .send(state.port)
        .map_err(|e| format!("loading flags/default.json: {e}"))?;
    if response.status != 200 {
        return Err(format!(
            "loading flags/default.json: {} {}",
            response.status,
            response.text()
        ));
    }
    Ok(())
}

/// meshguard-gdpr's command line with its files under `<run dir>/gdpr`.
fn gdpr_command(run_dir: &Path, redis: &Redis, state: &StateService) -> Command {
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
fn start_gdpr(
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

/// An HS256 dev token from `<run_dir>/dev-jwt-key` (see [`Mesh::mint_token`]).
pub fn mint_dev_token(run_dir: &Path, sub: &str, tier: &str, extra_claims: Value) -> String {
    let key = secret(run_dir, "dev-jwt-key");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut claims = json!({
        "iss": DEV_ISSUER,
        "sub": sub,
        "jti": random_hex(16),
        "iat": now,
        "exp": now + 3_600,
    });
    if !tier.is_empty() {
        claims["tier"] = json!(tier);
    }
    merge_patch(&mut claims, &extra_claims);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("signing a dev token: {e}"))
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = urandom.read_exact(&mut buffer);
    }
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes `dir` readable and writable by its owner alone (0700).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// A secret kept in `<run_dir>/<name>` (0600), made once from the system's randomness.
pub fn secret(run_dir: &Path, name: &str) -> String {
    let path = run_dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if !existing.trim().is_empty() {
            // A file from an older run may be readable by others.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            return existing.trim().to_string();
        }
    }
    let value = random_hex(24);
    // Readable by the owner alone.
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| file.write_all(value.as_bytes()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    value
}

/// The Envoy cluster the trace plugin exports to.
pub const COLLECTOR_CLUSTER: &str = "otel_collector";

/// Where the trace plugin sends OTLP/HTTP JSON.
struct Collector {
    host: String,
    port: u16,
    path: String,
}

impl Collector {
    /// `http://host[:port][/path]`; plain HTTP only (Envoy's cluster has no
    /// TLS here: run a collector or agent beside the mesh).
    fn parse(url: &str) -> Result<Collector, String> {
        let invalid = |why: &str| format!("{OTLP_ENDPOINT_ENV}={url}: {why}");
        let rest = url
            .trim()
            .strip_prefix("http://")
            .ok_or_else(|| invalid("must start with http:// (OTLP/HTTP without TLS)"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]), // panic-ok: i is a char boundary from find
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| invalid("the port must be a number from 1 to 65535"))?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() || port == 0 {
            return Err(invalid("needs a host and a port"));
        }
        let path = match path.trim_end_matches('/') {
            "" => "/v1/traces".to_string(),
            p => p.to_string(),
        };
        Ok(Collector {
            host: host.to_string(),
            port,
            path,
        })
    }

    fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn url(&self) -> String {
        format!("http://{}{}", self.authority(), self.path)
    }
}

/// The local mesh's span log: an OTLP/HTTP JSON receiver on loopback that
/// appends each span as one line to a file (`.run/logs/spans.jsonl` under
/// `scripts/up`), so sampled spans are visible without a collector. The file
/// is bounded: past [`SpanLog::MAX_BYTES`] it moves to `spans.jsonl.1`
/// (replacing the previous one) and a new file starts.
pub struct SpanLog {
    pub port: u16,
    pub path: PathBuf,
    server: std::sync::Arc<tiny_http::Server>,
}

impl SpanLog {
    pub const MAX_BYTES: u64 = 16 * 1024 * 1024;

    /// Listens on 127.0.0.1:`port`, writing to `path`.
    pub fn start(port: u16, path: &Path) -> Result<SpanLog, String> {
        let server = std::sync::Arc::new(
            tiny_http::Server::http(("127.0.0.1", port))
                .map_err(|e| format!("span log receiver on 127.0.0.1:{port}: {e}"))?,
        );
        let (receiver, file) = (server.clone(), path.to_path_buf());
        std::thread::spawn(move || {
            for mut request in receiver.incoming_requests() {
                let mut body = Vec::new();
                let _ = std::io::Read::read_to_end(request.as_reader(), &mut body);
                let status = match serde_json::from_slice::<Value>(&body) {
                    Ok(export) => {
                        append_spans(&file, &export);
                        200
                    }
                    Err(_) => 400,
                };
                let _ = request
                    .respond(tiny_http::Response::from_string("{}").with_status_code(status));
            }
        });
        Ok(SpanLog {
            port,
            path: path.to_path_buf(),
            server,
        })
    }

    /// Every span in the current file.
    pub fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for SpanLog {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// Appends each span of an OTLP JSON export as a line, with `"service"`.
fn append_spans(path: &Path, export: &Value) {
    use std::io::Write;
    if std::fs::metadata(path).is_ok_and(|m| m.len() > SpanLog::MAX_BYTES) {
        let _ = std::fs::rename(path, path.with_extension("jsonl.1"));
    }
    let mut lines = String::new();
    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or("")
            .to_string();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let mut span = span.clone();
                span["service"] = json!(service);
                lines.push_str(&span.to_string());
                lines.push('\n');
            }
        }
    }
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(lines.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::{merge_patch, Collector};
    use serde_json::json;

    #[test]
    fn collector_urls_name_what_is_wrong() {
        let c = Collector::parse("http://otel.example:4318").expect("valid");
        assert_eq!(
            (c.host.as_str(), c.port, c.path.as_str()),
            ("otel.example", 4318, "/v1/traces")
        );
        let c = Collector::parse("http://127.0.0.1:9411/api/traces/").expect("valid");
        assert_eq!((c.port, c.path.as_str()), (9411, "/api/traces"));
        assert_eq!(Collector::parse("http://jaeger").expect("valid").port, 80);
        for (url, why) in [
            ("https://otel:4318", "http://"),
            ("otel:4318", "http://"),
            ("http://otel:99999", "port"),
            ("http://otel:x", "port"),
            ("http://:4318", "host"),
        ] {
            let error = Collector::parse(url).err().unwrap_or_default();
            assert!(error.contains(why) && error.contains(url), "{url}: {error}");
        }
    }

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let mut config = json!({"auth": {"a": 1, "b": {"c": 2}}, "flags": {"x": 1}});
        merge_patch(
            &mut config,
            &json!({"auth": {"b": {"c": 3, "d": 4}, "a": null}, "trace": null}),
        );
        assert_eq!(
            config,
            json!({"auth": {"b": {"c": 3, "d": 4}}, "flags": {"x": 1}})
        );
        merge_patch(&mut config, &serde_json::Value::Null);
        assert_eq!(config["flags"]["x"], 1);
    }
}
