//! The rate-limit plugin's configuration (the filter's `configuration` JSON).

use meshguard_api::limits::{seed_global, seed_tiers, SEED_DEFAULT_TIER};
pub use meshguard_api::limits::{Rate, RouteCost, TierLimits, MAX_COST};
use meshguard_plugin_kit::config::{ConfigError, Validate};
use meshguard_plugin_kit::state_client::StateClientConfig;
use meshguard_policy::ratelimit::Bucket;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Exempt paths at most, and the longest one (bytes).
const MAX_EXEMPT_PATHS: usize = 64;
const MAX_EXEMPT_PATH_LEN: usize = 1_024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// GCRA buckets in each Envoy worker; no state service.
    Local,
    /// Every request asks meshguard-state (one atomic multi-bucket decision).
    Exact,
    /// Requests spend quota leased from meshguard-state; leases are topped
    /// up and usage reported on a tick.
    Hybrid,
}

/// Where the local buckets (`local` mode and the fallback) live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalBuckets {
    /// In proxy-wasm shared data: one set per Envoy, across its workers.
    Shared,
    /// In each worker: no coordination, a limit per worker.
    Worker,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub mode: Mode,
    pub local_buckets: LocalBuckets,
    /// Shared-data slots keys hash into (`local_buckets: shared`).
    pub shared_slots: u64,
    /// Tokens a worker takes ahead from a shared bucket, per key and for the
    /// global bucket (at most a sixteenth of the bucket's burst); 0: none.
    pub shared_batch_tokens: u64,
    /// The tier of a subject whose tier header is absent or unknown.
    pub default_tier: String,
    /// The tier of requests without a subject (limited by client address);
    /// `default_tier` when absent.
    pub anonymous_tier: Option<String>,
    pub tiers: BTreeMap<String, TierLimits>,
    /// One bucket shared by every key; none when absent.
    pub global: Option<Rate>,
    /// Route-prefix costs; the longest matching prefix wins, else 1.
    pub costs: Vec<RouteCost>,
    /// Paths never limited nor charged (health probes), matched exactly,
    /// the query string ignored.
    pub exempt_paths: Vec<String>,
    pub identity: IdentityConfig,
    /// Decide and count, never deny.
    pub shadow: bool,
    /// Send `RateLimit-Policy` and `RateLimit` on every response.
    pub ratelimit_headers: bool,
    /// An upstream response header carrying the request's real cost; the
    /// difference to what was charged is settled after the response.
    pub response_cost_header: Option<String>,
    /// When meshguard-state cannot decide: deny with 503 instead of falling
    /// back to the local buckets.
    pub fail_closed: bool,
    pub state: StateClientConfig,
    /// Keys each worker keeps buckets for (`local_buckets: worker`).
    pub max_keys: usize,
    pub hybrid: HybridConfig,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            mode: Mode::Local,
            local_buckets: LocalBuckets::Shared,
            shared_slots: 65_536,
            shared_batch_tokens: 32,
            default_tier: SEED_DEFAULT_TIER.into(),
            anonymous_tier: None,
            tiers: seed_tiers(),
            global: Some(seed_global()),
            costs: Vec::new(),
            exempt_paths: vec!["/healthz".into()],
            identity: IdentityConfig::default(),
            shadow: false,
            ratelimit_headers: true,
            response_cost_header: None,
            fail_closed: false,
            state: StateClientConfig::default(),
            max_keys: 100_000,
            hybrid: HybridConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Trust the subject and tier headers. They are safe only behind the
    /// auth plugin, which removes client-sent copies.
    pub trust_auth_headers: bool,
    pub subject_header: String,
    pub tier_header: String,
    /// Proxies in front of Envoy that append to `x-forwarded-for`; 0 keys
    /// anonymous requests on the peer address.
    pub trusted_hops: usize,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            trust_auth_headers: true,
            subject_header: "x-auth-sub".into(),
            tier_header: "x-auth-tier".into(),
            trusted_hops: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HybridConfig {
    /// Tokens asked for per lease.
    pub lease_tokens: u64,
    /// Tick: leases are topped up and usage reported this often.
    pub refresh_ms: u64,
    /// A lease with this share of its grant left is topped up on the tick.
    pub low_watermark: f64,
}

impl Default for HybridConfig {
    fn default() -> Self {
        HybridConfig {
            lease_tokens: 10,
            refresh_ms: 500,
            low_watermark: 0.5,
        }
    }
}

pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

/// Tier names become stat names: keep them to `[a-z0-9_-]`.
fn is_tier_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

impl RateLimitConfig {
    pub fn anonymous_tier(&self) -> &str {
        self.anonymous_tier.as_deref().unwrap_or(&self.default_tier)
    }

    /// Whether requests to `path` (with its query string) pass unlimited
    /// and uncharged.
    pub fn is_exempt(&self, path: impl AsRef<[u8]>) -> bool {
        let path = path.as_ref();
        let end = path.iter().position(|&b| b == b'?').unwrap_or(path.len());
        let path = path.get(..end).unwrap_or(path);
        self.exempt_paths.iter().any(|p| p.as_bytes() == path)
    }

    /// Whether deciding a request needs any of its headers: the identity
    /// headers, the path for `costs`, or `x-forwarded-for`. A limiter keyed
    /// on the peer address alone needs none, and skips reading the header
    /// map (a host call of about 12k Envoy instructions per request).
    pub fn reads_request_headers(&self) -> bool {
        self.identity.trust_auth_headers || !self.costs.is_empty() || self.identity.trusted_hops > 0
    }
}

impl Validate for RateLimitConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.tiers.is_empty() {
            return Err(ConfigError::new("tiers", "must define at least one tier"));
        }
        for (name, t) in &self.tiers {
            if !is_tier_name(name) {
                return Err(ConfigError::new(
                    format!("tiers.{name}"),
                    "tier names are 1-64 of [a-z0-9_-]",
                ));
            }
            if Bucket::tier(t.per_minute, t.per_hour, t.burst).is_none() {
                return Err(ConfigError::new(
                    format!("tiers.{name}"),
                    "per_minute (1..=60000000), per_hour (1..=3600000000) and burst must be positive",
                ));
            }
        }
        if !self.tiers.contains_key(&self.default_tier) {
            return Err(ConfigError::new("default_tier", "is not one of `tiers`"));
        }
        if let Some(tier) = &self.anonymous_tier {
            if !self.tiers.contains_key(tier) {
                return Err(ConfigError::new("anonymous_tier", "is not one of `tiers`"));
            }
        }
        if let Some(g) = &self.global {
            if Bucket::global(g.tokens, g.per_seconds, g.burst).is_none() {
                return Err(ConfigError::new(
                    "global",
                    "tokens, per_seconds and burst must be positive, at most 1000000 tokens per second",
                ));
            }
        }
        for (i, c) in self.costs.iter().enumerate() {
            if !c.prefix.starts_with('/') {
                return Err(ConfigError::new(
                    format!("costs[{i}].prefix"),
                    "must start with /",
                ));
            }
            if !(1..=MAX_COST).contains(&c.cost) {
                return Err(ConfigError::new(
                    format!("costs[{i}].cost"),
                    format!("must be from 1 to {MAX_COST}"),
                ));
            }
        }
        if self.exempt_paths.len() > MAX_EXEMPT_PATHS {
            return Err(ConfigError::new(
                "exempt_paths",
                format!("at most {MAX_EXEMPT_PATHS} paths"),
            ));
        }
        for (i, p) in self.exempt_paths.iter().enumerate() {
            let valid = p.starts_with('/')
                && p.len() <= MAX_EXEMPT_PATH_LEN
                && p.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
            if !valid {
                return Err(ConfigError::new(
                    format!("exempt_paths[{i}]"),
                    format!("must be a path starting with /, without query, fragment or spaces, at most {MAX_EXEMPT_PATH_LEN} bytes"),
                ));
            }
        }
        let id = &self.identity;
        for (field, name) in [
            ("identity.subject_header", &id.subject_header),
            ("identity.tier_header", &id.tier_header),
        ] {
            if !is_header_name(name) {
                return Err(ConfigError::new(field, "must be a lowercase header name"));
            }
        }
        if id.trusted_hops > 16 {
            return Err(ConfigError::new(
                "identity.trusted_hops",
                "must be from 0 to 16",
            ));
        }
        if let Some(name) = &self.response_cost_header {
            if !is_header_name(name) {
                return Err(ConfigError::new(
                    "response_cost_header",
                    "must be a lowercase header name",
                ));
            }
        }
        if !(1..=16_777_216).contains(&self.shared_slots) {
            return Err(ConfigError::new(
                "shared_slots",
                "must be from 1 to 16777216",
            ));
        }
        if self.shared_batch_tokens > MAX_COST {
            return Err(ConfigError::new(
                "shared_batch_tokens",
                format!("must be at most {MAX_COST}"),
            ));
        }
        if self.max_keys == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1"));
        }
        self.state.validate("state")?;
        let h = &self.hybrid;
        if !(1..=MAX_COST).contains(&h.lease_tokens) {
            return Err(ConfigError::new(
                "hybrid.lease_tokens",
                format!("must be from 1 to {MAX_COST}"),
            ));
        }
        if !(10..=60_000).contains(&h.refresh_ms) {
            return Err(ConfigError::new(
                "hybrid.refresh_ms",
                "must be from 10 to 60000",
            ));
        }
        if !(h.low_watermark.is_finite() && (0.0..1.0).contains(&h.low_watermark)) {
            return Err(ConfigError::new(
                "hybrid.low_watermark",
                "must be a number from 0 to below 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshguard_plugin_kit::config::load;

    #[test]
    fn defaults_without_configuration() {
        let config: RateLimitConfig = load(None).unwrap();
        assert_eq!(config.mode, Mode::Local);
        assert_eq!(config.tiers["free"].per_minute, 10);
        assert_eq!(config.tiers["premium"].per_hour, 1_000);
        assert_eq!(config.anonymous_tier(), "free");
        assert_eq!(config.state.timeout_ms, 20);
        assert!(config.ratelimit_headers);
        assert_eq!(config.exempt_paths, ["/healthz"]);
    }

    #[test]
    fn exempt_paths_match_exactly_with_any_query() {
        let config: RateLimitConfig = load(None).unwrap();
        assert!(config.is_exempt("/healthz"));
        assert!(config.is_exempt("/healthz?probe=lb"));
        for path in [
            "/healthz/",
            "/healthzz",
            "/healthz/x",
            "/",
            "/api/healthz",
            "/HEALTHZ",
        ] {
            assert!(!config.is_exempt(path), "{path}");
        }
        let none: RateLimitConfig = load(Some(br#"{"exempt_paths": []}"#)).unwrap();
        assert!(!none.is_exempt("/healthz"));
        let two: RateLimitConfig =
            load(Some(br#"{"exempt_paths": ["/healthz", "/ready"]}"#)).unwrap();
        assert!(two.is_exempt("/ready?x=1") && two.is_exempt("/healthz"));
    }

    #[test]
    fn request_headers_are_read_only_when_a_decision_needs_them() {
        let needs = |raw: &str| {
            load::<RateLimitConfig>(Some(raw.as_bytes())).map(|c| c.reads_request_headers())
        };
        assert_eq!(
            needs("{}").ok(),
            Some(true),
            "the auth plugin's identity headers"
        );
        let peer_only = r#"{"identity": {"trust_auth_headers": false}}"#;
        assert_eq!(needs(peer_only).ok(), Some(false));
        let with_costs = r#"{"identity": {"trust_auth_headers": false}, "costs": [{"prefix": "/a", "cost": 2}]}"#;
        assert_eq!(needs(with_costs).ok(), Some(true), "the path");
        let behind_proxy = r#"{"identity": {"trust_auth_headers": false, "trusted_hops": 1}}"#;
        assert_eq!(needs(behind_proxy).ok(), Some(true), "x-forwarded-for");
    }

    #[test]
    fn full_configuration() {
        let raw = br#"{"mode": "exact", "default_tier": "basic", "anonymous_tier": "anon",
            "tiers": {"basic": {"per_minute": 5, "per_hour": 50, "burst": 2},
                      "anon": {"per_minute": 1, "per_hour": 10}},
            "global": {"tokens": 100, "per_seconds": 10},
            "costs": [{"prefix": "/api/ml/", "cost": 5}],
            "identity": {"trusted_hops": 1}, "shadow": true,
            "response_cost_header": "x-meshguard-cost", "fail_closed": true,
            "state": {"secret": "s3cret-s3cret-s3cret", "timeout_ms": 50},
            "hybrid": {"lease_tokens": 20}}"#;
        let config: RateLimitConfig = load(Some(raw)).unwrap();
        assert_eq!(config.mode, Mode::Exact);
        assert_eq!(config.anonymous_tier(), "anon");
        assert_eq!(config.identity.subject_header, "x-auth-sub");
        assert_eq!(config.state.cluster, "meshguard_state");
        assert_eq!(config.hybrid.refresh_ms, 500);
    }

    #[test]
    fn the_local_mesh_configuration_loads() {
        let raw = include_str!("../../../envoy/local/ratelimit.json").replace(
            r#"{"env": "MESHGUARD_PLUGIN_SECRET"}"#,
            r#""a-plugin-secret-of-some-length""#,
        );
        let config: RateLimitConfig = load(Some(raw.as_bytes())).unwrap();
        assert_eq!(config.mode, Mode::Exact);
        assert_eq!(config.costs[0].cost, 5);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: [(&[u8], &str); 19] = [
            (br#"{"exempt_paths": ["healthz"]}"#, "exempt_paths[0]"),
            (br#"{"exempt_paths": ["/ok", "/a?b"]}"#, "exempt_paths[1]"),
            (br#"{"exempt_paths": ["/a b"]}"#, "exempt_paths[0]"),
            (br#"{"exempt_paths": "/healthz"}"#, "exempt_paths"),
            (br#"{"local_buckets": "node"}"#, "local_buckets"),
            (br#"{"shared_slots": 0}"#, "shared_slots"),
            (
                br#"{"shared_batch_tokens": 2000000}"#,
                "shared_batch_tokens",
            ),
            (br#"{"mode": "fast"}"#, "mode"),
            (br#"{"default_tier": "gold"}"#, "default_tier"),
            (br#"{"anonymous_tier": "gold"}"#, "anonymous_tier"),
            (br#"{"tiers": {}}"#, "tiers"),
            (
                br#"{"tiers": {"free": {"per_minute": 0, "per_hour": 1}}}"#,
                "tiers.free",
            ),
            (
                br#"{"tiers": {"Free": {"per_minute": 1, "per_hour": 1}}, "default_tier": "Free"}"#,
                "tiers.Free",
            ),
            (br#"{"global": {"tokens": 0, "per_seconds": 1}}"#, "global"),
            (
                br#"{"costs": [{"prefix": "api", "cost": 2}]}"#,
                "costs[0].prefix",
            ),
            (
                br#"{"costs": [{"prefix": "/a", "cost": 0}]}"#,
                "costs[0].cost",
            ),
            (
                br#"{"identity": {"tier_header": "X Tier"}}"#,
                "identity.tier_header",
            ),
            (br#"{"state": {"timeout_ms": 0}}"#, "state.timeout_ms"),
            (br#"{"hybrid": {"refresh_ms": 1}}"#, "hybrid.refresh_ms"),
        ];
        for (raw, field) in cases {
            let err = load::<RateLimitConfig>(Some(raw)).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }
}
