//! The auth plugin's Envoy stats (`wasmcustom.meshguard.auth.*`).

use meshguard_plugin_kit::stats::Counter;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// Every reason a request is refused; each has a `rejected.<reason>` counter.
pub const REASONS: [&str; 23] = [
    "missing_token",
    "malformed",
    "too_large",
    "unsupported_alg",
    "alg_not_allowed",
    "unknown_kid",
    "bad_signature",
    "bad_claims",
    "expired",
    "not_yet_valid",
    "issued_in_future",
    "too_old",
    "too_long_lived",
    "missing_claim",
    "bad_issuer",
    "bad_audience",
    "bad_identity",
    "revoked_token",
    "revoked_user",
    "revoked_session",
    "stale_revocations",
    "insufficient_scope",
    "over_reject_budget",
];

/// A gauge; a failed host call leaves it unrecorded.
#[derive(Clone, Copy, Debug)]
pub struct Gauge(Option<u32>);

impl Gauge {
    pub fn define(name: &str) -> Gauge {
        let full = format!("meshguard.auth.{name}");
        Gauge(hostcalls::define_metric(MetricType::Gauge, &full).ok())
    }

    pub fn set(&self, value: u64) {
        if let Some(id) = self.0 {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}

pub struct Stats {
    pub verified: Counter,
    pub public: Counter,
    pub rejected: Counter,
    rejected_by_reason: Vec<(&'static str, Counter)>,
    pub revoked_hits: Counter,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub feed_syncs: Counter,
    pub feed_snapshots: Counter,
    pub feed_errors: Counter,
    pub feed_lag_ms: Gauge,
    /// From a change's creation at meshguard-state to its application here.
    pub propagation_ms: Gauge,
    pub revocations: Gauge,
    pub jwks_fetches: Counter,
    pub jwks_errors: Counter,
    pub keys: Gauge,
    pub activity_sampled: Counter,
    pub activity_reported: Counter,
    pub activity_dropped: Counter,
    pub sessions_seen: Counter,
    pub consent_syncs: Counter,
    pub consent_errors: Counter,
}

impl Stats {
    pub fn define() -> Stats {
        let counter = |name: &str| Counter::define("auth", name);
        Stats {
            verified: counter("verified"),
            public: counter("public"),
            rejected: counter("rejected"),
            rejected_by_reason: REASONS
                .iter()
                .map(|r| (*r, counter(&format!("rejected.{r}"))))
                .collect(),
            revoked_hits: counter("revoked_hits"),
            cache_hits: counter("cache_hits"),
            cache_misses: counter("cache_misses"),
            feed_syncs: counter("feed_syncs"),
            feed_snapshots: counter("feed_snapshots"),
            feed_errors: counter("feed_errors"),
            feed_lag_ms: Gauge::define("feed_lag_ms"),
            propagation_ms: Gauge::define("propagation_ms"),
            revocations: Gauge::define("revocations"),
            jwks_fetches: counter("jwks_fetches"),
            jwks_errors: counter("jwks_errors"),
            keys: Gauge::define("keys"),
            activity_sampled: counter("activity_sampled"),
            activity_reported: counter("activity_reported"),
            activity_dropped: counter("activity_dropped"),
            sessions_seen: counter("sessions_seen"),
            consent_syncs: counter("consent_syncs"),
            consent_errors: counter("consent_errors"),
        }
    }

    pub fn reject(&self, reason: &str) {
        self.rejected.inc();
        if let Some((_, c)) = self.rejected_by_reason.iter().find(|(r, _)| *r == reason) {
            c.inc();
        }
    }
}
