//! A real Envoy rendered from `envoy/envoy.yaml.j2`, the template `scripts/up`
//! uses too, with the built Meshguard plugins loaded.

use crate::http::{Request, Response};
use crate::paths;
use crate::ports::free_port;
use crate::process::Process;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Three of the plugins' counter flush periods (100 ms): room for a late tick.
const STATS_FLUSH_WAIT: Duration = Duration::from_millis(300);

#[derive(Clone, Debug, Serialize)]
pub struct Plugin {
    pub name: String,
    pub path: PathBuf,
    /// The JSON handed to the plugin; `None` loads it without configuration.
    pub config: Option<String>,
}

impl Plugin {
    /// The built `meshguard_<name>.wasm` with this configuration.
    pub fn new(name: &str, config: Option<serde_json::Value>) -> Plugin {
        Plugin {
            name: name.into(),
            path: paths::plugin_wasm(name),
            config: config.map(|c| c.to_string()),
        }
    }

    /// A plugin with a raw configuration string, valid JSON or not.
    pub fn raw(name: &str, config: &str) -> Plugin {
        Plugin {
            name: name.into(),
            path: paths::plugin_wasm(name),
            config: Some(config.into()),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Cluster {
    pub name: String,
    pub port: u16,
    pub http2: bool,
    /// A DNS name (STRICT_DNS cluster) instead of 127.0.0.1, e.g. in docker-compose.
    pub address: Option<String>,
}

/// A Python upstream: one cluster with outlier detection, circuit breakers,
/// health checks and retries, routed at `/api/<name>/...`.
#[derive(Clone, Debug, Serialize)]
pub struct Service {
    pub name: String,
    pub hosts: Vec<Host>,
    /// Some host is a DNS name rather than an IP: the cluster resolves them.
    pub dns: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Host {
    pub address: String,
    pub port: u16,
}

impl Service {
    pub fn new(name: &str, hosts: Vec<Host>) -> Service {
        let dns = hosts
            .iter()
            .any(|h| h.address.parse::<std::net::IpAddr>().is_err());
        Service {
            name: name.into(),
            hosts,
            dns,
        }
    }

    /// Hosts on 127.0.0.1 at these ports.
    pub fn loopback(name: &str, ports: &[u16]) -> Service {
        let hosts = ports
            .iter()
            .map(|&port| Host {
                address: "127.0.0.1".into(),
                port,
            })
            .collect();
        Service::new(name, hosts)
    }
}

/// Overrides of the upstream resilience settings; `None` keeps the template's
/// justified default. Durations are Envoy duration strings (`"1.5s"`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Resilience {
    pub outlier_interval: Option<String>,
    pub base_ejection_time: Option<String>,
    pub max_ejection_time: Option<String>,
    pub health_check_interval: Option<String>,
    pub upstream_idle_timeout: Option<String>,
    pub per_try_timeout: Option<String>,
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
}

/// Envoy's HTTP cache filter (`envoy.filters.http.cache`) in the template.
#[derive(Clone, Debug, Serialize)]
pub struct Cache {
    /// The file-system cache's directory (created if missing), shared by
    /// every worker and kept across restarts.
    pub path: PathBuf,
    /// The in-memory backend instead, for the benchmark's comparison only:
    /// it has no size bound and Envoy 1.40's crashes on a `Vary` response.
    pub memory: bool,
}

impl Cache {
    /// The shipped file-system cache in `dir`, created here: Envoy 1.40
    /// does not create it (`create_cache_path` notwithstanding) and then
    /// stores nothing.
    pub fn in_dir(dir: &Path) -> Cache {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Cache {
            path: dir.to_path_buf(),
            memory: false,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Route {
    pub prefix: String,
    pub cluster: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct EnvoySpec {
    pub listener_port: u16,
    pub admin_port: u16,
    pub plugins: Vec<Plugin>,
    pub clusters: Vec<Cluster>,
    pub routes: Vec<Route>,
    pub envoy_tracing_cluster: Option<String>,
    /// Address of the listener; `None` is 127.0.0.1.
    pub listen_address: Option<String>,
    /// Address of the admin endpoint; `None` is 127.0.0.1 whatever
    /// `listen_address` says (its /config_dump is for operators only).
    pub admin_address: Option<String>,
    /// Request body limit in bytes; `None` is the template's 1 MiB.
    pub max_request_bytes: Option<u64>,
    /// Names of Envoy's environment variables every Meshguard VM gets
    /// (`host_env_keys`): where `{"env": NAME}` secrets are read.
    pub vm_env_keys: Vec<String>,
    /// Envoy's environment: the values of `vm_env_keys`, never rendered.
    #[serde(skip)]
    pub env: Vec<(String, String)>,
    pub services: Vec<Service>,
    /// The GDPR data path's listener (`meshguard_gdpr`: only
    /// `/api/<service>/gdpr/...`, no Meshguard filter); `None` renders none.
    pub gdpr_listener_port: Option<u16>,
    /// Address of the GDPR data path's listener; `None` is 127.0.0.1
    /// (compose: `0.0.0.0` on a container port that is not published).
    pub gdpr_listen_address: Option<String>,
    pub resilience: Resilience,
    /// Envoy's own HTTP filters (YAML list items starting `- name:`), placed
    /// before the Meshguard filters; the benchmarks' native reference.
    pub native_filters: Vec<String>,
    /// Envoy's HTTP cache after the Meshguard filters (docs/upstreams.md,
    /// "Caching"); `None` renders no cache.
    pub cache: Option<Cache>,
    #[serde(skip)]
    pub concurrency: u32,
    /// A command Envoy runs under (e.g. valgrind), empty to run it directly.
    #[serde(skip)]
    pub launcher: Vec<String>,
}

impl EnvoySpec {
    /// Free ports, one worker, no plugins.
    pub fn new() -> EnvoySpec {
        EnvoySpec {
            listener_port: free_port(),
            admin_port: free_port(),
            concurrency: 1,
            ..EnvoySpec::default()
        }
    }

    pub fn plugin(mut self, plugin: Plugin) -> EnvoySpec {
        self.plugins.push(plugin);
        self
    }

    /// A secret the plugins read as `{"env": name}`: set in Envoy's
    /// environment and handed to every Meshguard VM, out of the rendered config.
    pub fn secret_env(mut self, name: &str, value: &str) -> EnvoySpec {
        if !self.vm_env_keys.iter().any(|k| k == name) {
            self.vm_env_keys.push(name.into());
        }
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn cluster(mut self, name: &str, port: u16) -> EnvoySpec {
        self.clusters.push(Cluster {
            name: name.into(),
            port,
            http2: false,
            address: None,
        });
        self
    }

    /// A cluster at a DNS name (STRICT_DNS), e.g. `meshguard-state:7070`.
    pub fn cluster_at(mut self, name: &str, address: &str, port: u16) -> EnvoySpec {
        self.clusters.push(Cluster {
            name: name.into(),
            port,
            http2: false,
            address: Some(address.into()),
        });
        self
    }

    /// A Python upstream cluster routed at `/api/<name>/...`.
    pub fn service(mut self, service: Service) -> EnvoySpec {
        self.services.push(service);
        self
    }

    pub fn resilience(mut self, resilience: Resilience) -> EnvoySpec {
        self.resilience = resilience;
        self
    }

    pub fn route(mut self, prefix: &str, cluster: &str) -> EnvoySpec {
        self.routes.push(Route {
            prefix: prefix.into(),
            cluster: cluster.into(),
        });
        self
    }

    /// Turns on Envoy's own OpenTelemetry tracer, exporting to `cluster`.
    pub fn envoy_tracing(mut self, cluster: &str) -> EnvoySpec {
        self.envoy_tracing_cluster = Some(cluster.into());
        self
    }

    pub fn render(&self) -> String {
        let template = std::fs::read_to_string(paths::envoy_template())
            .unwrap_or_else(|e| panic!("read {}: {e}", paths::envoy_template().display()));
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template("envoy", &template)
            .unwrap_or_else(|e| panic!("envoy template: {e}"));
        env.get_template("envoy")
            .and_then(|t| t.render(self))
            .unwrap_or_else(|e| panic!("render envoy template: {e:#}"))
    }

    /// Writes the rendered config to `dir/envoy.yaml`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("envoy.yaml");
        std::fs::write(&path, self.render())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

pub struct Envoy {
    pub port: u16,
    pub admin_port: u16,
    process: Process,
    _dir: Option<tempfile::TempDir>,
}

/// Envoy exited before it became ready: its status and log.
#[derive(Debug)]
pub struct Refused {
    pub status: Option<std::process::ExitStatus>,
    pub log: String,
}

impl Envoy {
    /// Starts Envoy and waits until the admin endpoint says it is ready.
    pub fn start(spec: EnvoySpec) -> Envoy {
        match Envoy::try_start(spec) {
            Ok(envoy) => envoy,
            Err(refused) => panic!(
                "envoy did not start ({:?}):\n{}",
                refused.status, refused.log
            ),
        }
    }

    /// Starts Envoy in a temp dir; `Err` if it exits or is not ready in time.
    pub fn try_start(spec: EnvoySpec) -> Result<Envoy, Refused> {
        let dir = tempfile::tempdir().expect("temp dir for envoy");
        let path = dir.path().to_path_buf();
        let mut envoy = Envoy::try_start_in(spec, &path)?;
        envoy._dir = Some(dir);
        Ok(envoy)
    }

    /// Starts Envoy with its config and log in `dir`.
    pub fn try_start_in(spec: EnvoySpec, dir: &Path) -> Result<Envoy, Refused> {
        let config = spec.write(dir);
        let mut command = match spec.launcher.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(paths::envoy_binary());
                command
            }
            None => Command::new(paths::envoy_binary()),
        };
        command
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", &spec.concurrency.max(1).to_string()])
            .args(["--disable-hot-restart", "--log-level", "info"])
            .args(["--component-log-level", "wasm:debug"]);
        let mut process = Process::spawn("envoy", command, dir);
        let admin_port = spec.admin_port;
        // Under a launcher such as valgrind, Envoy compiles the Wasm modules
        // tens of times slower.
        let startup = if spec.launcher.is_empty() { 30 } else { 300 };
        let deadline = std::time::Instant::now() + Duration::from_secs(startup);
        loop {
            if let Some(status) = process.exited() {
                return Err(Refused {
                    status: Some(status),
                    log: process.log(),
                });
            }
            if admin_get(admin_port, "/ready").is_some_and(|r| r.status == 200) {
                break;
            }
            if std::time::Instant::now() > deadline {
                let log = process.log();
                process.stop();
                return Err(Refused { status: None, log });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Envoy {
            port: spec.listener_port,
            admin_port,
            process,
            _dir: None,
        })
    }

    pub fn send(&self, request: &Request) -> Response {
        request
            .send(self.port)
            .unwrap_or_else(|e| panic!("request to envoy failed: {e}\nenvoy log:\n{}", self.log()))
    }

    pub fn get(&self, path: &str) -> Response {
        self.send(&Request::get(path))
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Envoy's counters and gauges by name (`/stats`), now.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        let Some(response) = admin_get(self.admin_port, "/stats") else {
            return BTreeMap::new();
        };
        response
            .text()
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }

    /// Envoy's counters and gauges once the plugins' counters have reached
    /// it: the plugins sum increments in the VM and flush them on their tick
    /// (at most `plugin_kit::stats::FLUSH_PERIOD`, 100 ms, apart), so this
    /// first waits three flush periods.
    pub fn settled_stats(&self) -> BTreeMap<String, u64> {
        std::thread::sleep(STATS_FLUSH_WAIT);
        self.stats()
    }

    /// A Meshguard plugin stat, e.g. `trace.traces_started` for
    /// `wasmcustom.meshguard.trace.traces_started`.
    pub fn plugin_stat(&self, name: &str) -> u64 {
        self.settled_stats()
            .get(&format!("wasmcustom.meshguard.{name}"))
            .copied()
            .unwrap_or(0)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// Starts Envoy with the plugin `name` under each configuration, side by side,
/// and asserts that Envoy refuses every one with a log containing the
/// expected text (the field at fault).
pub fn assert_configs_refused(name: &str, cases: &[(&str, &str)]) {
    std::thread::scope(|scope| {
        let checks: Vec<_> = cases
            .iter()
            .map(|&(config, expected)| {
                scope.spawn(move || {
                    let refused =
                        Envoy::try_start(EnvoySpec::new().plugin(Plugin::raw(name, config)))
                            .err()
                            .unwrap_or_else(|| {
                                panic!("envoy accepted {name} configuration {config}")
                            });
                    assert!(
                        refused.log.contains(expected),
                        "log for {config} lacks {expected:?}:\n{}",
                        refused.log
                    );
                })
            })
            .collect();
        for check in checks {
            if let Err(panic) = check.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

fn admin_get(port: u16, path: &str) -> Option<Response> {
    Request::get(path).send(port).ok()
}
