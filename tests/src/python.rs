//! The Python upstreams (`upstreams/`): each service runs as two uvicorn
//! instances from the workspace's `.venv`, each with its fault switch on a
//! loopback control port.
//!
//! `scripts/up` starts all ten on the fixed ports of the README's table with
//! [`Upstreams::start_all`]`(true, ...)`; tests pick free ports.

use crate::envoy::{EnvoySpec, Service};
use crate::http::{Request, Response};
use crate::paths;
use crate::ports::free_port;
use crate::process::Process;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The services in the README's order, with their fixed local ports.
pub const SERVICES: [(&str, [u16; 2]); 5] = [
    ("ml", [8101, 8102]),
    ("nlp", [8111, 8112]),
    ("fraud", [8121, 8122]),
    ("data", [8131, 8132]),
    ("blockchain", [8141, 8142]),
];

/// With fixed ports, an instance's fault switch listens here above its port
/// (8101 -> 9101), on 127.0.0.1 only.
pub const CONTROL_PORT_OFFSET: u16 = 1000;

/// Every port `start_all(true, ..)` binds: services and their fault switches.
pub fn fixed_ports() -> Vec<u16> {
    SERVICES
        .iter()
        .flat_map(|(_, ports)| *ports)
        .flat_map(|port| [port, port + CONTROL_PORT_OFFSET])
        .collect()
}

/// How to start instances; the default is what `scripts/up` runs.
#[derive(Clone, Debug, Default)]
pub struct UpstreamOptions {
    /// The bearer token of `/gdpr/users/{id}`; `None` generates one.
    pub gdpr_token: Option<String>,
    /// uvicorn's idle keep-alive in seconds; `None` is uvicorn's 5 s.
    pub keep_alive_s: Option<f64>,
}

/// One uvicorn process serving one instance of a service.
pub struct Instance {
    pub service: String,
    pub port: u16,
    /// The fault switch (`PUT /fault`), bound to 127.0.0.1.
    pub control_port: u16,
    command: Vec<String>,
    env: Vec<(String, String)>,
    log_dir: PathBuf,
    process: Process,
}

impl Instance {
    fn spawn(&mut self) {
        self.process = spawn(&self.name(), &self.command, &self.env, &self.log_dir);
    }

    /// `ml@8101`, the value of its `x-upstream-instance` header.
    pub fn name(&self) -> String {
        format!("{}@{}", self.service, self.port)
    }

    fn wait_ready(&mut self) {
        let port = self.port;
        let what = format!("answering /healthz on {port}");
        self.process
            .wait_until(Duration::from_secs(30), &what, || healthz_ok(port));
    }

    /// Sets the fault switch, e.g. `{"mode": "error", "status": 503}`,
    /// `{"mode": "delay", "delay_ms": 2000}`, `{"mode": "reset"}`.
    pub fn fault(&self, fault: serde_json::Value) {
        let request = Request {
            method: "PUT".into(),
            path: "/fault".into(),
            body: fault.to_string().into_bytes(),
            ..Request::default()
        };
        let response = request
            .send(self.control_port)
            .unwrap_or_else(|e| panic!("fault switch of {}: {e}", self.name()));
        assert_eq!(response.status, 200, "fault switch: {}", response.text());
    }

    /// Back to normal service.
    pub fn heal(&self) {
        self.fault(serde_json::json!({"mode": "ok"}));
    }

    /// The fault switch's setting and request counters.
    pub fn fault_state(&self) -> serde_json::Value {
        Request::get("/fault")
            .send(self.control_port)
            .map(|r| r.json())
            .unwrap_or_else(|e| panic!("fault switch of {}: {e}", self.name()))
    }

    /// Kills the process at once (SIGKILL): no goodbye to open connections.
    pub fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.process.pid().to_string()])
            .status();
        self.process.wait_exit(Duration::from_secs(5));
    }

    /// Starts it again on the same ports and waits for `/healthz`.
    pub fn restart(&mut self) {
        self.process.stop();
        self.spawn();
        self.wait_ready();
    }

    /// A request straight to this instance, bypassing Envoy.
    pub fn send(&self, request: &Request) -> std::io::Result<Response> {
        request.send(self.port)
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// Running upstream instances, stopped on drop.
pub struct Upstreams {
    pub instances: Vec<Instance>,
    pub gdpr_token: String,
    _dir: Option<tempfile::TempDir>,
}

impl Upstreams {
    /// All five services, two instances each, with data and logs in `dir`
    /// (a temp dir if `None`). With `fixed_ports` they listen on
    /// The README's ports (8101/8102 ... 8141/8142) and their fault
    /// switches 1000 above; otherwise on free ports.
    pub fn start_all(fixed_ports: bool, dir: Option<&Path>, options: UpstreamOptions) -> Upstreams {
        let names: Vec<&str> = SERVICES.iter().map(|(name, _)| *name).collect();
        Upstreams::start_services(&names, fixed_ports, dir, options)
    }

    /// Two instances of each named service on free ports, in a temp dir.
    pub fn start(services: &[&str], options: UpstreamOptions) -> Upstreams {
        Upstreams::start_services(services, false, None, options)
    }

    fn start_services(
        services: &[&str],
        fixed_ports: bool,
        dir: Option<&Path>,
        options: UpstreamOptions,
    ) -> Upstreams {
        let temp = match dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().expect("temp dir for upstreams")),
        };
        let dir: PathBuf = dir
            .map(Path::to_path_buf)
            .or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()))
            .unwrap_or_default();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let gdpr_token = options
            .gdpr_token
            .clone()
            .unwrap_or_else(|| format!("gdpr-token-{:08}-{:05}", std::process::id(), free_port()));
        let env = vec![
            (
                "PYTHONPATH".to_string(),
                paths::workspace_root()
                    .join("upstreams")
                    .display()
                    .to_string(),
            ),
            ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
            ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
            ("MESHGUARD_GDPR_TOKEN".to_string(), gdpr_token.clone()),
        ];
        let mut instances = Vec::new();
        for service in services {
            let fixed = SERVICES
                .iter()
                .find(|(name, _)| name == service)
                .map(|(_, ports)| *ports)
                .unwrap_or_else(|| panic!("unknown upstream service {service}"));
            for fixed_port in fixed {
                let (port, control_port) = if fixed_ports {
                    (fixed_port, fixed_port + CONTROL_PORT_OFFSET)
                } else {
                    (free_port(), free_port())
                };
                let mut command = vec![
                    python().display().to_string(),
                    "-m".into(),
                    "meshguard_upstreams".into(),
                    service.to_string(),
                    "--port".into(),
                    port.to_string(),
                    "--control-port".into(),
                    control_port.to_string(),
                    "--data-dir".into(),
                    dir.join("data").display().to_string(),
                ];
                if let Some(keep_alive) = options.keep_alive_s {
                    command.extend(["--keep-alive".into(), keep_alive.to_string()]);
                }
                let name = format!("{service}@{port}");
                let process = spawn(&name, &command, &env, &dir);
                instances.push(Instance {
                    service: service.to_string(),
                    port,
                    control_port,
                    command,
                    env: env.clone(),
                    log_dir: dir.clone(),
                    process,
                });
            }
        }
        // Started side by side, then awaited: Python's start-up is the slow part.
        for instance in &mut instances {
            instance.wait_ready();
        }
        Upstreams {
            instances,
            gdpr_token,
            _dir: temp,
        }
    }

    /// The Envoy clusters for these instances (what `EnvoySpec` needs).
    pub fn services(&self) -> Vec<Service> {
        let mut services: Vec<Service> = Vec::new();
        for instance in &self.instances {
            match services.iter_mut().find(|s| s.name == instance.service) {
                Some(service) => {
                    *service =
                        Service::loopback(&service.name, &[service.hosts[0].port, instance.port])
                }
                None => services.push(Service::loopback(&instance.service, &[instance.port])),
            }
        }
        services
    }

    /// `spec` with a cluster and `/api/<service>/` routes per service.
    pub fn add_to(&self, mut spec: EnvoySpec) -> EnvoySpec {
        for service in self.services() {
            spec = spec.service(service);
        }
        spec
    }

    /// Instance `index` (0 or 1) of `service`.
    pub fn instance(&self, service: &str, index: usize) -> &Instance {
        self.instances
            .iter()
            .filter(|i| i.service == service)
            .nth(index)
            .unwrap_or_else(|| panic!("no instance {index} of {service}"))
    }

    pub fn instance_mut(&mut self, service: &str, index: usize) -> &mut Instance {
        self.instances
            .iter_mut()
            .filter(|i| i.service == service)
            .nth(index)
            .unwrap_or_else(|| panic!("no instance {index} of {service}"))
    }

    /// The first instance whose process has exited, with its log.
    pub fn exited(&mut self) -> Option<(String, String)> {
        self.instances
            .iter_mut()
            .find_map(|i| i.process.exited().map(|_| (i.name(), i.log())))
    }
}

/// The `.venv` interpreter that scripts/setup installed upstreams/requirements.txt into.
pub fn python() -> PathBuf {
    let path = paths::workspace_root().join(".venv/bin/python");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup (it installs upstreams/requirements.txt)",
        path.display()
    );
    path
}

fn spawn(name: &str, command: &[String], env: &[(String, String)], dir: &Path) -> Process {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .current_dir(paths::workspace_root().join("upstreams"));
    for (key, value) in env {
        cmd.env(key, value);
    }
    Process::spawn(name, cmd, dir)
}

fn healthz_ok(port: u16) -> bool {
    Request::get("/healthz")
        .send(port)
        .is_ok_and(|r| r.status == 200)
}
