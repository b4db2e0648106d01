//! `meshguard-state` on a free port against a given Redis, with generated (or
//! given) secrets, ready when `/readyz` answers 200.

use crate::paths::service_binary;
use crate::ports::free_port;
use crate::process::Process;
use crate::redis::Redis;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Environment variables the service reads that must not leak in from the
/// caller's shell.
const SERVICE_ENV: &[&str] = &[
    "MESHGUARD_STATE_LISTEN",
    "MESHGUARD_REDIS_URL",
    "MESHGUARD_REDIS_CLUSTER",
    "MESHGUARD_PLUGIN_SECRET",
    "MESHGUARD_PLUGIN_SECRET_FILE",
    "MESHGUARD_ADMIN_TOKEN",
    "MESHGUARD_ADMIN_TOKEN_FILE",
    "MESHGUARD_LIMITS_FILE",
    "MESHGUARD_MAX_SESSIONS",
    "MESHGUARD_TRAVEL_MAX_KMH",
    "MESHGUARD_TRAVEL_END_SESSION",
    "MESHGUARD_FEED_MAX_LEN",
    "MESHGUARD_REDIS_TIMEOUT_MS",
];

/// How to start the service; `StateOptions::default()` picks a free port and
/// fresh secrets.
#[derive(Debug, Clone, Default)]
pub struct StateOptions {
    pub port: Option<u16>,
    pub admin_token: Option<String>,
    pub plugin_secret: Option<String>,
    /// Where the log goes; a fresh temp dir when absent.
    pub dir: Option<PathBuf>,
    /// Further `serve` flags, e.g. `["--max-sessions", "3"]`.
    pub args: Vec<String>,
}

pub struct StateService {
    pub port: u16,
    pub admin_token: String,
    pub plugin_secret: String,
    process: Process,
    _dir: Option<tempfile::TempDir>,
}

fn fresh_secret(role: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{role}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl StateService {
    /// Starts the service against `redis` with default settings.
    pub fn start(redis: &Redis) -> StateService {
        StateService::start_with(&redis.url(), StateOptions::default())
    }

    /// Starts the service against `redis` with extra `serve` flags.
    pub fn start_args(redis: &Redis, args: &[&str]) -> StateService {
        StateService::start_with(
            &redis.url(),
            StateOptions {
                args: args.iter().map(|a| a.to_string()).collect(),
                ..StateOptions::default()
            },
        )
    }

    /// Starts the service against the Redis at `redis_url`.
    pub fn start_with(redis_url: &str, options: StateOptions) -> StateService {
        let (dir, temp) = match &options.dir {
            Some(d) => {
                std::fs::create_dir_all(d).expect("state service dir");
                (d.clone(), None)
            }
            None => {
                let t = tempfile::tempdir().expect("temp dir for meshguard-state");
                (t.path().to_path_buf(), Some(t))
            }
        };
        let port = options.port.unwrap_or_else(free_port);
        let admin_token = options
            .admin_token
            .clone()
            .unwrap_or_else(|| fresh_secret("admin"));
        let plugin_secret = options
            .plugin_secret
            .clone()
            .unwrap_or_else(|| fresh_secret("plugin"));
        let mut command = Command::new(service_binary("meshguard-state"));
        for var in SERVICE_ENV {
            command.env_remove(var);
        }
        command
            .current_dir(&dir)
            .env("MESHGUARD_ADMIN_TOKEN", &admin_token)
            .env("MESHGUARD_PLUGIN_SECRET", &plugin_secret)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--redis-url", redis_url])
            .args(&options.args);
        let mut process = Process::spawn("meshguard-state", command, &dir);
        process.wait_until(Duration::from_secs(20), "ready (/readyz 200)", || {
            status_of(port, "/readyz") == Some(200)
        });
        StateService {
            port,
            admin_token,
            plugin_secret,
            process,
            _dir: temp,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_dir(&self) -> &Path {
        self.process.log_path().parent().unwrap_or(Path::new("."))
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// The status of a plain GET, or `None` when nothing answers.
fn status_of(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}
