//! The catalogue of Envoy configurations the figures measure: labels, the
//! shared fixture (key, token, headers), each plugin's benchmark
//! configuration, and how a configuration's Envoy is started and probed.
//!
//! Every request is `GET /healthz` (Envoy's direct response) with the same
//! headers, so a configuration's cost is its filters' alone (the auth rows
//! of `auth_variants` swap the token for one of their algorithm).

use super::auth_variants;
use super::measure::pin;
use super::native;
use super::options::Options;
use super::token::{DevKey, ISSUER};
use crate::envoy::{Envoy, EnvoySpec, Plugin};
use crate::http::Request;
use crate::paths::{built_plugins, workspace_root};
use crate::redis::Redis;
use crate::state::{StateOptions, StateService};
use serde_json::{json, Value};
use std::path::PathBuf;

pub const ENVOY_CORE: usize = 0;

pub const NATIVE_LABEL: &str = "native: jwt_authn + local_ratelimit + header_mutation";

pub const CHAIN_LABEL: &str = "Meshguard chain (4 plugins)";

pub const SINGLE_LABEL: &str = "Meshguard chain, single module";

pub const SINGLE_WITHOUT_RATELIMIT_LABEL: &str = "Meshguard chain, single module without ratelimit";

pub const NATIVE_SAME_HEADERS_LABEL: &str =
    "native, also writing the single module's other 9 request and 2 response headers";

pub const HYBRID_LABEL: &str = "ratelimit (hybrid, 10,000-token leases)";

pub const RATELIMIT_LABEL: &str = "ratelimit (local)";

pub const RATELIMIT_FLOOR_LABEL: &str = "ratelimit's host calls alone (reference filter, no logic)";

/// The host calls `meshguard_ratelimit.wasm` makes per request in local and
/// hybrid mode (one header-map read, the clock, `RateLimit-Policy` and
/// `RateLimit`), for the reference filter to make with nothing around them.
pub const RATELIMIT_HOST_CALLS: &str = "request_header_map x1, clock x1, response_header_add x2";

pub const RATELIMIT_PEER_LABEL: &str = "ratelimit (local, keyed on the peer)";

pub const RATELIMIT_PEER_FLOOR_LABEL: &str =
    "ratelimit's host calls alone, keyed on the peer (reference filter, no logic)";

/// The same when the limiter keys on the peer alone: the `source.address`
/// property instead of the header map.
pub const RATELIMIT_PEER_HOST_CALLS: &str = "property x1, clock x1, response_header_add x2";

pub const LOAD_CORE: usize = 1;

/// One Envoy configuration under test.
pub struct Variant {
    pub name: String,
    pub plugins: Vec<Plugin>,
    pub native: Vec<String>,
    /// The port of the meshguard-state the plugins call, if they do.
    pub state_port: Option<u16>,
    /// Request headers in place of the fixture's (another token), if any.
    pub headers: Option<Vec<String>>,
}

impl Variant {
    /// The headers this configuration's requests carry.
    pub fn headers<'a>(&'a self, fixture: &'a Fixture) -> &'a [String] {
        self.headers.as_deref().unwrap_or(&fixture.headers)
    }
}

/// The meshguard-state (and its Redis) that the hybrid rate limiter leases
/// from: one for the whole figure, off the measured cores' hot path (the
/// plugin calls it only to renew leases).
pub struct LeaseBackend {
    pub state: StateService,
    pub _redis: Redis,
    pub _dir: tempfile::TempDir,
}

impl LeaseBackend {
    pub fn start() -> LeaseBackend {
        let dir = tempfile::tempdir().expect("temp dir for the limits file");
        let limits_file = dir.path().join("limits.json");
        let limits =
            json!({"default_tier": "enterprise", "tiers": {"enterprise": never_limited()}});
        std::fs::write(&limits_file, limits.to_string()).expect("write limits");
        let redis = Redis::start();
        let args = vec![
            "--limits-file".into(),
            limits_file.to_string_lossy().into_owned(),
        ];
        let state = StateService::start_with(
            &redis.url(),
            StateOptions {
                args,
                ..StateOptions::default()
            },
        );
        LeaseBackend {
            state,
            _redis: redis,
            _dir: dir,
        }
    }
}

/// Everything the variants share: the HS256 key, a token, the headers every
/// request carries (the same bytes for every configuration).
pub struct Fixture {
    pub key: DevKey,
    pub headers: Vec<String>,
}

impl Default for Fixture {
    fn default() -> Fixture {
        Fixture::new()
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        let key = DevKey::generate();
        let token = key.mint("bench-user", "enterprise", "bench-token");
        Fixture {
            headers: vec![
                format!("authorization: Bearer {token}"),
                "x-auth-sub: bench-user".into(),
                "x-auth-tier: enterprise".into(),
            ],
            key,
        }
    }

    pub fn trace(&self) -> Plugin {
        Plugin::new("trace", Some(json!({"sampling_ratio": 0.1})))
    }

    pub fn auth(&self) -> Plugin {
        Plugin::new("auth", Some(self.auth_config()))
    }

    pub fn auth_config(&self) -> Value {
        // /healthz is public by default; here it must verify the token.
        json!({"issuers": [ISSUER], "jwks": self.key.jwks(), "public_routes": []})
    }

    pub fn ratelimit(&self) -> Plugin {
        ratelimit_local("shared")
    }

    /// `ratelimit` with each worker keeping its own buckets (no shared data).
    pub fn ratelimit_per_worker(&self) -> Plugin {
        ratelimit_local("worker")
    }

    /// `ratelimit` keyed on the peer address alone: no request header read.
    pub fn ratelimit_by_peer(&self) -> Plugin {
        let mut config = ratelimit_local_config("shared");
        config["identity"] = json!({"trust_auth_headers": false});
        Plugin::new("ratelimit", Some(config))
    }

    pub fn flags(&self) -> Plugin {
        let path = workspace_root().join("envoy/local/flags.json");
        let mut config: Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| panic!("read {}", path.display()));
        config["sync"] = Value::Null;
        Plugin::new("flags", Some(config))
    }

    pub fn chain(&self) -> Vec<Plugin> {
        vec![self.trace(), self.auth(), self.ratelimit(), self.flags()]
    }

    /// `meshguard_chain.wasm` configured as the four plugins of `chain`.
    pub fn single_module(&self) -> Plugin {
        let mut config = serde_json::Map::new();
        for plugin in self.chain() {
            // No configuration: that policy's defaults (the section absent).
            let section = plugin.config.and_then(|c| serde_json::from_str(&c).ok());
            if let Some(section) = section {
                config.insert(plugin.name, section);
            }
        }
        Plugin::new("chain", Some(Value::Object(config)))
    }

    /// The single module without its rate limiter: the difference to
    /// `single_module` is what rate limiting costs inside it.
    pub fn single_module_without_ratelimit(&self) -> Plugin {
        let mut plugin = self.single_module();
        let mut config: Value = plugin
            .config
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        config["ratelimit"] = Value::Null; // null turns a policy off
        plugin.config = Some(config.to_string());
        plugin
    }
}

/// A tier the load never exhausts (the most a tier may allow).
pub fn never_limited() -> Value {
    json!({"per_minute": 60_000_000u64, "per_hour": 3_600_000_000u64})
}

/// The rate limiter in local mode with a limit the load never reaches.
pub fn ratelimit_local(buckets: &str) -> Plugin {
    Plugin::new("ratelimit", Some(ratelimit_local_config(buckets)))
}

/// Every figure requests `/healthz`, exempt from rate limiting by default:
/// here the limiter must decide it.
pub fn ratelimit_local_config(buckets: &str) -> Value {
    json!({
        "mode": "local",
        "local_buckets": buckets,
        "default_tier": "enterprise",
        "tiers": {"enterprise": never_limited()},
        "global": null,
        "exempt_paths": [],
    })
}

/// The rate limiter in hybrid mode: requests spend leased tokens; the
/// tick renews leases (10,000 tokens each) with meshguard-state.
pub fn ratelimit_hybrid(secret: &str) -> Plugin {
    let config = json!({
        "mode": "hybrid",
        "default_tier": "enterprise",
        "tiers": {"enterprise": never_limited()},
        "global": null,
        "state": {"secret": secret, "timeout_ms": 1000},
        "hybrid": {"lease_tokens": 10_000, "refresh_ms": 200},
        "exempt_paths": [],
    });
    Plugin::new("ratelimit", Some(config))
}

pub fn is_built(name: &str) -> bool {
    built_plugins().iter().any(|p| {
        p.file_stem()
            .is_some_and(|s| s == format!("meshguard_{name}").as_str())
    })
}

pub fn reference_wasm(cli: &Options) -> PathBuf {
    cli.reference.clone().unwrap_or_else(|| {
        workspace_root()
            .join("target/bench-reference/wasm32-wasip1/release/meshguard_bench_reference.wasm")
    })
}

pub fn variants(
    cli: &Options,
    fixture: &Fixture,
    backend: Option<&LeaseBackend>,
    notes: &mut Vec<String>,
) -> Vec<Variant> {
    let variant = |name: &str, plugins: Vec<Plugin>| Variant {
        name: name.into(),
        plugins,
        native: vec![],
        state_port: None,
        headers: None,
    };
    let mut out = vec![variant("bare Envoy", vec![])];
    let reference = reference_wasm(cli);
    if reference.exists() {
        let filter = |config: Option<&str>| Plugin {
            name: "reference".into(),
            path: reference.clone(),
            config: config.map(String::from),
        };
        out.push(variant(
            "trivial Rust filter (+1 header)",
            vec![filter(None)],
        ));
        out.push(variant(
            RATELIMIT_FLOOR_LABEL,
            vec![filter(Some(RATELIMIT_HOST_CALLS))],
        ));
        out.push(variant(
            RATELIMIT_PEER_FLOOR_LABEL,
            vec![filter(Some(RATELIMIT_PEER_HOST_CALLS))],
        ));
    } else {
        notes.push(format!(
            "reference filter not built ({}): scripts/bench builds it",
            reference.display()
        ));
    }
    let mut all_built = true;
    for (name, label, plugin) in [
        ("trace", "trace", Fixture::trace as fn(&Fixture) -> Plugin),
        ("auth", "auth (HS256 token)", Fixture::auth),
        ("ratelimit", RATELIMIT_LABEL, Fixture::ratelimit),
        (
            "ratelimit",
            "ratelimit (local, per-worker buckets)",
            Fixture::ratelimit_per_worker,
        ),
        (
            "ratelimit",
            RATELIMIT_PEER_LABEL,
            Fixture::ratelimit_by_peer,
        ),
        ("flags", "flags (8 seed flags)", Fixture::flags),
    ] {
        if !is_built(name) {
            notes.push(format!("meshguard_{name}.wasm not built: left out"));
            all_built = false;
            continue;
        }
        out.push(variant(label, vec![plugin(fixture)]));
        if let Some(dir) = &cli.baseline {
            let before = dir.join(format!("meshguard_{name}.wasm"));
            if before.exists() {
                let mut p = plugin(fixture);
                p.path = before;
                out.push(variant(&format!("{label} (baseline)"), vec![p]));
            }
        }
        if name == "auth" && auth_variants::wanted(&cli.only) {
            let rows = auth_variants::verified_every_time(&fixture.auth_config(), &fixture.headers);
            out.extend(rows.into_iter().map(|row| Variant {
                headers: row.headers,
                ..variant(&row.label, vec![row.plugin])
            }));
        }
    }
    if all_built {
        out.push(variant(CHAIN_LABEL, fixture.chain()));
    }
    if is_built("chain") {
        let label = SINGLE_LABEL;
        out.push(variant(label, vec![fixture.single_module()]));
        if let Some(dir) = &cli.baseline {
            let before = dir.join("meshguard_chain.wasm");
            if before.exists() {
                let mut p = fixture.single_module();
                p.path = before;
                out.push(variant(&format!("{label} (baseline)"), vec![p]));
            }
        }
        out.push(variant(
            SINGLE_WITHOUT_RATELIMIT_LABEL,
            vec![fixture.single_module_without_ratelimit()],
        ));
    } else {
        notes.push("meshguard_chain.wasm not built: left out".into());
    }
    if let (Some(backend), true) = (backend, is_built("ratelimit")) {
        let mut v = variant(
            HYBRID_LABEL,
            vec![ratelimit_hybrid(&backend.state.plugin_secret)],
        );
        v.state_port = Some(backend.state.port);
        out.push(v);
    }
    out.push(Variant {
        name: NATIVE_LABEL.into(),
        plugins: vec![],
        native: native::filters(&fixture.key.jwks(), ISSUER),
        state_port: None,
        headers: None,
    });
    out.push(Variant {
        name: NATIVE_SAME_HEADERS_LABEL.into(),
        plugins: vec![],
        native: native::filters_writing_single_module_headers(&fixture.key.jwks(), ISSUER),
        state_port: None,
        headers: None,
    });
    out
}

/// The plugin-figure configurations `--only` selects (bare Envoy always
/// first), and the meshguard-state the hybrid one leases from, which must
/// outlive the measurements.
pub fn selected_variants(
    cli: &Options,
    fixture: &Fixture,
    notes: &mut Vec<String>,
) -> (Vec<Variant>, Option<LeaseBackend>) {
    let hybrid_wanted =
        cli.only.is_empty() || cli.only.iter().any(|o| HYBRID_LABEL.contains(o.as_str()));
    let backend = hybrid_wanted.then(LeaseBackend::start);
    let mut variants = variants(cli, fixture, backend.as_ref(), notes);
    if !cli.only.is_empty() {
        let mut index = 0;
        variants.retain(|v| {
            index += 1;
            index == 1 || cli.only.iter().any(|o| v.name.contains(o.as_str()))
        });
    }
    (variants, backend)
}

pub fn start_pinned(variant: &Variant, concurrency: u32) -> Envoy {
    let mut spec = EnvoySpec::new();
    spec.concurrency = concurrency;
    spec.native_filters = variant.native.clone();
    for plugin in &variant.plugins {
        spec = spec.plugin(plugin.clone());
    }
    if let Some(port) = variant.state_port {
        spec = spec.cluster("meshguard_state", port);
    }
    let envoy = Envoy::start(spec);
    pin(envoy.pid(), ENVOY_CORE);
    envoy
}

/// One request with the fixture's headers: its status.
pub fn probe(envoy: &Envoy, headers: &[String]) -> u16 {
    let request = headers.iter().fold(Request::get("/healthz"), |r, h| {
        let (name, value) = h.split_once(": ").unwrap_or((h, ""));
        r.header(name, value)
    });
    request.send(envoy.port).map_or(0, |r| r.status)
}
