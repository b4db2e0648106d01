//! How to start the mesh: the layout of the policies and [`MeshOptions`].

use super::OTLP_ENDPOINT_ENV;
use crate::paths::workspace_root;
use serde_json::Value;
use std::path::PathBuf;

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
