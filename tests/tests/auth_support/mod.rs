//! Shared by the `auth_*` integration tests: keys generated per test run
//! and tokens minted with `jsonwebtoken` (independent of the plugin's
//! jwt-compact; both in `meshguard_harness::jwt_keys`, which the bench
//! shares), the plugin configuration and an Envoy in front of an echo
//! upstream.

#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
// Each test binary uses some of them.
#[allow(unused_imports)]
pub use meshguard_harness::jwt_keys::{b64, keys, kid_for, mint, ALGORITHMS};
use meshguard_harness::upstream::{Recorded, RecordingServer};
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request, Response};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const ISSUER: &str = "https://issuer.test";

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn fresh_jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "jti-{}-{}-{}",
        std::process::id(),
        now_s(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Standard claims for `sub`, issued 10 s ago, valid for 10 minutes.
pub fn claims(sub: &str) -> Value {
    let now = now_s();
    json!({"iss": ISSUER, "sub": sub, "jti": fresh_jti(), "iat": now - 10, "exp": now + 600, "tier": "premium"})
}

/// The other valid byte form of an ES256 token: `(r, s)` becomes `(r, n - s)`.
pub fn malleate_es256(token: &str) -> String {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut sig = unb64(signature);
    assert_eq!(sig.len(), 64);
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        sig[32 + i] = (d + 256 * borrow) as u8;
    }
    assert_eq!(borrow, 0);
    format!("{signed}.{}", b64(&sig))
}

/// The plugin configuration of the tests: every test key, the issuer, and
/// `extra` merged on top.
pub fn config(extra: Value) -> Value {
    let mut config = json!({
        "issuers": [ISSUER],
        "jwks": keys().jwks(),
        "key_algorithms": {"rsa": ["RS256", "PS256"]},
        "public_routes": ["/healthz", "/public/*"],
        "required_scopes": [{"prefix": "/api/admin/", "scopes": ["admin"]}],
        // These tests send many bad tokens on purpose; attack_identity
        // tests the budget through the shipped configuration.
        "reject_budget": null,
    });
    if let (Some(base), Value::Object(extra)) = (config.as_object_mut(), extra) {
        base.extend(extra);
    }
    config
}

/// Envoy with the auth plugin in front of an echo upstream on `/api/` and `/public/`.
pub struct Mesh {
    pub echo: RecordingServer,
    pub envoy: Envoy,
}

impl Mesh {
    pub fn start(config: Value) -> Mesh {
        Mesh::start_with(config, |spec| spec)
    }

    pub fn start_with(config: Value, more: impl FnOnce(EnvoySpec) -> EnvoySpec) -> Mesh {
        let echo = RecordingServer::echo();
        let spec = EnvoySpec::new()
            .plugin(Plugin::new("auth", Some(config)))
            .cluster("echo", echo.port)
            .route("/api/", "echo")
            .route("/public/", "echo");
        let envoy = Envoy::start(more(spec));
        Mesh { echo, envoy }
    }

    pub fn get_with(&self, path: &str, token: &str) -> Response {
        self.envoy
            .send(&Request::get(path).header("authorization", &format!("Bearer {token}")))
    }

    /// Sends the request, expects a 200, returns what the upstream received.
    pub fn upstream_saw(&self, request: Request) -> Recorded {
        let before = self.echo.requests().len();
        let response = self.envoy.send(&request);
        assert_eq!(response.status, 200, "{}", response.text());
        let seen = self.echo.requests();
        assert_eq!(seen.len(), before + 1, "the upstream saw the request");
        seen.last().cloned().unwrap()
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.envoy.plugin_stat(&format!("auth.{name}"))
    }
}

/// Asserts a 401 with an RFC 6750 challenge and the JSON reason.
#[track_caller]
pub fn assert_rejected(response: &Response, reason: &str) {
    assert_eq!(
        response.status,
        401,
        "want 401 {reason}: {}",
        response.text()
    );
    let challenge = response.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    if reason != "missing_token" {
        assert!(
            challenge.contains("error=\"invalid_token\"")
                && challenge.contains("error_description=\""),
            "{challenge}"
        );
    }
    let body = response.json();
    assert_eq!(body["reason"], reason, "{body}");
}

/// Redis, meshguard-state, and a JSON client for its admin API.
pub struct Stack {
    pub redis: meshguard_harness::Redis,
    pub service: meshguard_harness::state::StateService,
    agent: ureq::Agent,
}

impl Stack {
    pub fn start() -> Stack {
        Stack::start_args(&[])
    }

    /// With extra `meshguard-state serve` flags.
    pub fn start_args(args: &[&str]) -> Stack {
        let redis = meshguard_harness::Redis::start();
        let service = meshguard_harness::state::StateService::start_args(&redis, args);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        Stack {
            redis,
            service,
            agent,
        }
    }

    /// An admin call; panics unless it answers 200.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.service.url());
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header(
                "authorization",
                format!("Bearer {}", self.service.admin_token),
            )
            .header("content-type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .unwrap();
        let mut response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The plugin's `revocation` section pointing at this service.
    pub fn revocation_config(&self, extra: Value) -> Value {
        let mut config = json!({
            "state": {"secret": self.service.plugin_secret, "timeout_ms": 1000},
            "poll_interval_ms": 100,
            "max_staleness_ms": 5000,
        });
        if let (Some(base), Value::Object(extra)) = (config.as_object_mut(), extra) {
            base.extend(extra);
        }
        config
    }

    /// Envoy with the auth plugin syncing from this service, once it has synced.
    pub fn mesh(&self, config: Value) -> Mesh {
        let probe = mint(Algorithm::HS256, Some("hs"), &claims("sync-probe"));
        self.mesh_probing(config, &probe)
    }

    /// Envoy with the auth plugin, once `probe` (a valid token) passes.
    pub fn mesh_probing(&self, config: Value, probe: &str) -> Mesh {
        self.mesh_workers(config, probe, 1)
    }

    /// As `mesh_probing`, with `workers` Envoy worker threads.
    pub fn mesh_workers(&self, config: Value, probe: &str, workers: u32) -> Mesh {
        let port = self.service.port;
        let mesh = Mesh::start_with(config, |mut spec| {
            spec.concurrency = workers;
            spec.cluster("meshguard_state", port)
        });
        mesh.wait_for_sync(probe);
        mesh
    }
}

impl Mesh {
    /// Waits until the plugin serves: the worker's root context has synced
    /// the revocation feed (before that it fails closed). The `feed_syncs`
    /// stat alone is not enough: the main thread's VM syncs too.
    pub fn wait_for_sync(&self, probe: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let response = self.get_with("/api/sync-probe", probe);
            if response.status == 200 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the plugin never synced the revocation feed: {}\n{}",
                response.text(),
                self.envoy.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Sends `token` until the answer is not 200; returns it and how long that took.
    pub fn until_refused(&self, token: &str) -> (Response, std::time::Duration) {
        let start = std::time::Instant::now();
        loop {
            let response = self.get_with("/api/x", token);
            if response.status != 200 || start.elapsed() > std::time::Duration::from_secs(10) {
                return (response, start.elapsed());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
