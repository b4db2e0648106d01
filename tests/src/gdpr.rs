//! `meshguard-gdpr` for tests: the CLI with its own database, key, outbox
//! and packages in a temp dir, wired to a given Redis and state service.

use crate::paths::service_binary;
use crate::ports::free_port;
use crate::process::Process;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Environment variables the binary reads that must not leak in from the
/// caller's shell (the mesh clears them too).
pub const GDPR_ENV: &[&str] = &[
    "MESHGUARD_GDPR_DB",
    "MESHGUARD_GDPR_KEY_FILE",
    "MESHGUARD_REDIS_URL",
    "MESHGUARD_STATE_URL",
    "MESHGUARD_ADMIN_TOKEN",
    "MESHGUARD_ADMIN_TOKEN_FILE",
    "MESHGUARD_GDPR_CONNECTORS",
    "MESHGUARD_GDPR_OUTBOX",
    "MESHGUARD_GDPR_SMTP_URL",
    "MESHGUARD_GDPR_PACKAGES",
    "MESHGUARD_GDPR_PUBLIC_URL",
    "MESHGUARD_GDPR_ADMIN_TOKEN",
    "MESHGUARD_GDPR_ADMIN_TOKEN_FILE",
    "MESHGUARD_GDPR_PACKAGE_TTL_S",
    "MESHGUARD_GDPR_REVOCATION_GRACE_MS",
    "MESHGUARD_GDPR_LISTEN",
    "MESHGUARD_GDPR_TICK_S",
    "MESHGUARD_GDPR_SELF_LISTEN",
];

pub struct Gdpr {
    pub dir: PathBuf,
    pub redis_url: String,
    pub state_url: String,
    pub state_token: String,
    _temp: tempfile::TempDir,
}

/// A finished CLI run.
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            status: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Gdpr {
    /// A fresh instance (new key, empty database) against this Redis and
    /// state service.
    pub fn new(redis_url: &str, state_url: &str, state_token: &str) -> Gdpr {
        let temp = tempfile::tempdir().expect("temp dir for meshguard-gdpr");
        let gdpr = Gdpr {
            dir: temp.path().to_path_buf(),
            redis_url: redis_url.into(),
            state_url: state_url.into(),
            state_token: state_token.into(),
            _temp: temp,
        };
        let keygen = gdpr.run(&["keygen", &gdpr.key_path().to_string_lossy()]);
        assert_eq!(keygen.status, 0, "keygen: {}", keygen.stderr);
        gdpr
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("gdpr.db")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.join("gdpr.key")
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.join("outbox")
    }

    pub fn connectors_path(&self) -> PathBuf {
        self.dir.join("connectors.json")
    }

    /// Writes the connectors file (`{"connectors": [...]}`).
    pub fn set_connectors(&self, connectors: Value) {
        std::fs::write(
            self.connectors_path(),
            serde_json::json!({ "connectors": connectors }).to_string(),
        )
        .expect("connectors file");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(service_binary("meshguard-gdpr"));
        for var in GDPR_ENV {
            c.env_remove(var);
        }
        c.current_dir(&self.dir)
            .env("MESHGUARD_GDPR_DB", self.db_path())
            .env("MESHGUARD_GDPR_KEY_FILE", self.key_path())
            .env("MESHGUARD_REDIS_URL", &self.redis_url)
            .env("MESHGUARD_STATE_URL", &self.state_url)
            .env("MESHGUARD_ADMIN_TOKEN", &self.state_token)
            .env("MESHGUARD_GDPR_OUTBOX", self.outbox())
            .env("MESHGUARD_GDPR_PACKAGES", self.dir.join("packages"))
            .env("MESHGUARD_ACTOR", "test-operator")
            // No auth plugin to wait for unless a test says so
            // (`--revocation-grace-ms`, as gdpr_envoy does).
            .env("MESHGUARD_GDPR_REVOCATION_GRACE_MS", "0")
            .args(args);
        if self.connectors_path().exists() {
            c.env("MESHGUARD_GDPR_CONNECTORS", self.connectors_path());
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("meshguard-gdpr {args:?}: {e}"))
            .into()
    }

    /// Runs and expects success; the JSON it printed.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Value {
        let run = self.run(args);
        assert_eq!(
            run.status, 0,
            "meshguard-gdpr {args:?} failed: {}",
            run.stderr
        );
        run.json()
    }

    /// Runs and expects failure; stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_ne!(
            run.status, 0,
            "meshguard-gdpr {args:?} should fail: {}",
            run.stdout
        );
        run.stderr
    }

    /// Starts a command in the background (to kill it midway).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("meshguard-gdpr {args:?}: {e}"))
    }

    /// The newest verification code the outbox holds for a request.
    pub fn code_for(&self, request: &str) -> String {
        let mut mails: Vec<PathBuf> = std::fs::read_dir(self.outbox())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        mails.retain(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(request))
        });
        mails.sort_by_key(|p| mail_number(p));
        let mail = mails
            .last()
            .unwrap_or_else(|| panic!("no mail for {request} in the outbox"));
        let text = std::fs::read_to_string(mail).expect("mail");
        let after = text
            .split(" is ")
            .nth(1)
            .unwrap_or_else(|| panic!("no code in {text}"));
        after.chars().take(6).collect()
    }

    /// Files a request and verifies it with the mailed code; its id.
    pub fn verified_request(&self, kind: &str, user: &str) -> String {
        // `--user=<id>`: an id may start with `-`.
        let user = format!("--user={user}");
        self.ok(&[
            "contact",
            "set",
            &user,
            "--email",
            "subject@example.org",
            "--source",
            "test account record",
        ]);
        let created = self.ok(&["request", "create", "--kind", kind, &user]);
        let id = created["id"].as_str().expect("request id").to_string();
        let code = self.code_for(&id);
        let verified = self.ok(&["request", "verify", &id, "--code", &code]);
        assert_eq!(verified["status"], "verified");
        id
    }
}

/// `meshguard-gdpr serve` on a free port, sharing the CLI's database, key,
/// outbox and packages; stopped on drop.
pub struct GdprServer {
    pub port: u16,
    pub admin_token: String,
    process: Process,
}

impl GdprServer {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

impl Gdpr {
    /// Starts `serve` with a fresh admin token (in a file) and `extra`
    /// flags; ready once `/healthz` answers. Download links point at it.
    pub fn serve(&self, extra: &[&str]) -> GdprServer {
        let port = free_port();
        let admin_token = format!("gdpr-admin-{}-{port}-0123456789", std::process::id());
        let token_file = self.dir.join("gdpr-admin.token");
        std::fs::write(&token_file, &admin_token).expect("admin token file");
        let listen = format!("127.0.0.1:{port}");
        let mut command = self.command(&["serve", "--listen", &listen]);
        command
            .env("MESHGUARD_GDPR_ADMIN_TOKEN_FILE", &token_file)
            .env("MESHGUARD_GDPR_PUBLIC_URL", format!("http://{listen}"))
            .args(extra);
        let mut process = Process::spawn("meshguard-gdpr", command, &self.dir);
        process.wait_until(Duration::from_secs(20), "answering /healthz", || {
            crate::http::Request::get("/healthz")
                .send(port)
                .is_ok_and(|r| r.status == 200)
        });
        GdprServer {
            port,
            admin_token,
            process,
        }
    }
}

fn mail_number(p: &Path) -> u64 {
    p.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
