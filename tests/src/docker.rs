//! The compose stack (`envoy/docker-compose.yaml`) with the local images of
//! `scripts/images`, for `tests/tests/docker_*.rs`.
//!
//! Each [`Compose`] is its own compose project (own networks and volumes,
//! Envoy's listener published on a free loopback port) and is removed with its
//! volumes when dropped. The tests are `#[ignore]`d in the ordinary
//! `cargo test` run and executed by `scripts/test`'s Docker step (after
//! `scripts/images`) with `--ignored`; without a Docker engine that step
//! prints one "skipped: no Docker engine" line instead.

use crate::http::{Request, Response};
use crate::paths::workspace_root;
use crate::ports::free_port;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The local builds standing in for the official images (docker/local.env).
pub const LOCAL_IMAGES: [(&str, &str); 2] = [
    ("ENVOY_IMAGE", "meshguard/envoy:local"),
    ("REDIS_IMAGE", "meshguard/redis:local"),
];

/// True when a Docker engine answers.
pub fn engine_available() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `docker-compose` (v1) when installed, else `docker compose` (v2).
fn compose_command() -> Command {
    let v1 = Command::new("docker-compose")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if v1 {
        Command::new("docker-compose")
    } else {
        let mut command = Command::new("docker");
        command.arg("compose");
        command
    }
}

/// How to start a stack.
#[derive(Clone, Debug, Default)]
pub struct ComposeOptions {
    /// More compose files layered over envoy/docker-compose.yaml (paths from
    /// the workspace root), e.g. `envoy/compose/redis-cluster.yaml`.
    pub overlays: Vec<String>,
    /// `--scale SERVICE=N`.
    pub scale: Vec<(String, u32)>,
    /// Extra environment for compose's variable substitution.
    pub env: Vec<(String, String)>,
}

/// A running compose project; `docker-compose down -v` when dropped
/// (`MESHGUARD_DOCKER_KEEP=1` keeps it for a look).
pub struct Compose {
    pub project: String,
    /// Envoy's listener on the host (127.0.0.1).
    pub port: u16,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Compose {
    /// `up -d` and waits until Envoy answers `/healthz` through its published
    /// port; panics with the services' logs when it does not within 4 minutes.
    pub fn up(name: &str, options: ComposeOptions) -> Compose {
        assert!(
            engine_available(),
            "no Docker engine: the docker_* tests run where one is (scripts/test skips them elsewhere)"
        );
        let port = free_port();
        let root = workspace_root();
        let mut files = vec![root.join("envoy/docker-compose.yaml")];
        files.extend(options.overlays.iter().map(|o| root.join(o)));
        let mut env: Vec<(String, String)> = LOCAL_IMAGES
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("MESHGUARD_PUBLISH".into(), format!("127.0.0.1:{port}")));
        env.extend(options.env.iter().cloned());
        let compose = Compose {
            project: format!("mgtest-{name}-{}", std::process::id()),
            port,
            files,
            env,
        };
        let mut args = vec!["up".to_string(), "-d".into(), "--no-build".into()];
        for (service, n) in &options.scale {
            args.push("--scale".into());
            args.push(format!("{service}={n}"));
        }
        let started = Instant::now();
        let output = compose.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        if !output.status.success() {
            panic!(
                "docker-compose up failed:\n{}\n{}",
                String::from_utf8_lossy(&output.stderr),
                compose.logs()
            );
        }
        compose.wait_healthy(Duration::from_secs(240));
        eprintln!(
            "compose project {} up in {:.1} s (Envoy on 127.0.0.1:{port})",
            compose.project,
            started.elapsed().as_secs_f64()
        );
        compose
    }

    /// Runs `docker-compose -p PROJECT -f ... ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut command = compose_command();
        command.arg("-p").arg(&self.project);
        for file in &self.files {
            command.arg("-f").arg(file);
        }
        command.args(args);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("docker-compose {args:?}: {e}"))
    }

    /// Runs and panics unless it succeeds; stdout as text.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "docker-compose {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Until `/healthz` through the published listener answers 200.
    pub fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if Request::get("/healthz")
                .send(self.port)
                .is_ok_and(|r| r.status == 200)
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "the compose stack did not answer /healthz on 127.0.0.1:{} within {timeout:?}:\n{}",
                    self.port,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The container ids of a service (all replicas), in replica order.
    pub fn containers(&self, service: &str) -> Vec<String> {
        let mut ids: Vec<(String, String)> = self
            .run_ok(&["ps", "-q", service])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|id| {
                (
                    docker_ok(&["inspect", "-f", "{{.Name}}", id.trim()]),
                    id.trim().to_string(),
                )
            })
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// The one container of a service.
    pub fn container(&self, service: &str) -> String {
        self.containers(service)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no container for {service}"))
    }

    /// The compose network `name` (e.g. "mesh") of this project.
    pub fn network(&self, name: &str) -> String {
        format!("{}_{name}", self.project)
    }

    /// `docker-compose exec -T SERVICE ARGS`, stdout on success.
    pub fn exec(&self, service: &str, args: &[&str]) -> String {
        let mut all = vec!["exec", "-T", service];
        all.extend_from_slice(args);
        self.run_ok(&all).trim().to_string()
    }

    /// A dev token signed with the stack's generated key, minted inside the
    /// meshguard-state container the way the README shows.
    pub fn mint_token(&self, sub: &str, tier: &str) -> String {
        self.exec(
            "meshguard-state",
            &[
                "meshguard-state",
                "token",
                "mint",
                "--key-file",
                "/run/meshguard/dev-jwt-key",
                "--sub",
                sub,
                "--tier",
                tier,
            ],
        )
    }

    /// Mints dev tokens on the host with the stack's key (read once from the
    /// secrets volume): the same claims as [`Compose::mint_token`], without a
    /// container exec per token.
    pub fn minter(&self) -> Minter {
        let key = self.exec("meshguard-state", &["cat", "/run/meshguard/dev-jwt-key"]);
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("dev-jwt-key"), key).expect("write the key");
        Minter { dir }
    }

    /// `meshguard-state ARGS` (the operator CLI) inside its container.
    pub fn state_cli(&self, args: &[&str]) -> String {
        let mut all = vec!["meshguard-state"];
        all.extend_from_slice(args);
        self.exec("meshguard-state", &all)
    }

    /// A GET of Envoy's admin endpoint (loopback of the Envoy container).
    pub fn envoy_admin(&self, path: &str) -> String {
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/9901 && printf 'GET {path} HTTP/1.1\\r\\nhost: localhost\\r\\nconnection: close\\r\\n\\r\\n' >&3 && cat <&3"
        );
        self.exec("envoy", &["bash", "-c", &script])
    }

    /// One Envoy stat's value (0 when absent).
    pub fn envoy_stat(&self, name: &str) -> u64 {
        let stats = self.envoy_admin(&format!("/stats?filter=^{name}$"));
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn send(&self, request: &Request) -> std::io::Result<Response> {
        request.send(self.port)
    }

    /// The last lines of every service's log.
    pub fn logs(&self) -> String {
        let output = self.run(&["logs", "--no-color", "--tail", "40"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- compose logs ---\n{}", self.logs());
        }
        if std::env::var_os("MESHGUARD_DOCKER_KEEP").is_some() {
            eprintln!("kept compose project {}", self.project);
            return;
        }
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "5"]);
    }
}

/// Dev tokens for one stack's key (see [`Compose::minter`]).
pub struct Minter {
    dir: tempfile::TempDir,
}

impl Minter {
    pub fn mint(&self, sub: &str, tier: &str) -> String {
        crate::mesh::mint_dev_token(self.dir.path(), sub, tier, serde_json::Value::Null)
    }
}

/// `docker ARGS`, stdout on success (panics otherwise).
pub fn docker_ok(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"));
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// One request's outcome under load.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Since the load started.
    pub at: Duration,
    /// HTTP status; 0 when no answer came (connection refused, reset, timeout).
    pub status: u16,
    pub latency: Duration,
    /// The client's round-robin index (which token/request it sent).
    pub client: usize,
}

/// Steady load through Envoy's published listener from a few threads,
/// recording every request until [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Load {
    /// `threads` workers, each sending `requests[i % len]` in turn, pausing
    /// `pause` between requests.
    pub fn start(port: u16, requests: Vec<Request>, threads: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let requests = Arc::new(requests);
        let threads = (0..threads)
            .map(|worker| {
                let stop = stop.clone();
                let samples = samples.clone();
                let requests = requests.clone();
                std::thread::spawn(move || {
                    let mut i = worker;
                    while !stop.load(Ordering::Relaxed) {
                        let client = i % requests.len();
                        let begin = Instant::now();
                        let status = requests[client].send(port).map(|r| r.status).unwrap_or(0);
                        let sample = Sample {
                            at: begin - started,
                            status,
                            latency: begin.elapsed(),
                            client,
                        };
                        if let Ok(mut all) = samples.lock() {
                            all.push(sample);
                        }
                        i += 1;
                        std::thread::sleep(pause);
                    }
                })
            })
            .collect();
        Load {
            stop,
            samples,
            threads,
            started,
        }
    }

    /// Time since the load started (to mark a fault's window).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The figures a fault test prints: requests sent, failed (no answer or a
/// 5xx), and the p99 latency, over the samples of a window.
#[derive(Clone, Debug)]
pub struct Figures {
    pub sent: usize,
    pub failed: usize,
    pub p99: Duration,
}

impl Figures {
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Figures {
        let samples: Vec<&Sample> = samples.into_iter().collect();
        let failed = samples
            .iter()
            .filter(|s| s.status == 0 || s.status >= 500)
            .count();
        let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
        latencies.sort();
        let p99 = if latencies.is_empty() {
            Duration::ZERO
        } else {
            latencies[((latencies.len() * 99).div_ceil(100)).saturating_sub(1)]
        };
        Figures {
            sent: samples.len(),
            failed,
            p99,
        }
    }

    /// `label: sent N, failed F, p99 X ms` on stdout (the test's figure).
    pub fn print(&self, label: &str) {
        println!(
            "FIGURE {label}: sent {}, failed {}, p99 {:.1} ms",
            self.sent,
            self.failed,
            self.p99.as_secs_f64() * 1000.0
        );
    }
}
