//! The plugin's Envoy stats: per tier, `wasmcustom.meshguard.ratelimit.<tier>.<name>`,
//! and plugin-wide ones.

use meshguard_plugin_kit::stats::Counter;

pub struct TierStats {
    pub allowed: Counter,
    pub denied: Counter,
    pub shadow_denied: Counter,
    /// Calls to meshguard-state that failed (timeout, 5xx, bad answer).
    pub backend_failures: Counter,
    /// Requests decided on the local buckets because meshguard-state could not.
    pub fallbacks: Counter,
    /// Requests refused with 503 because meshguard-state could not decide (`fail_closed`).
    pub unavailable: Counter,
}

impl TierStats {
    pub fn define(tier: &str) -> TierStats {
        let counter = |name: &str| Counter::define("ratelimit", &format!("{tier}.{name}"));
        TierStats {
            allowed: counter("allowed"),
            denied: counter("denied"),
            shadow_denied: counter("shadow_denied"),
            backend_failures: counter("backend_failures"),
            fallbacks: counter("fallbacks"),
            unavailable: counter("unavailable"),
        }
    }
}

pub struct Stats {
    /// Keys dropped from a full local bucket table while still owing tokens.
    pub keys_evicted: Counter,
    /// Tokens charged after responses through the response cost header.
    pub cost_charged: Counter,
    /// Tokens given back after responses that cost less than charged.
    pub cost_refunded: Counter,
    /// Response cost headers that were not a number.
    pub cost_header_invalid: Counter,
    /// After-response charges that could not reach meshguard-state.
    pub charges_failed: Counter,
    pub leases_taken: Counter,
    pub lease_tokens_granted: Counter,
    pub lease_tokens_refunded: Counter,
    pub leases_settled: Counter,
    /// Tokens workers took ahead from the shared buckets and gave back unspent.
    pub reserve_tokens_returned: Counter,
}

impl Stats {
    pub fn define() -> Stats {
        let counter = |name| Counter::define("ratelimit", name);
        Stats {
            keys_evicted: counter("keys_evicted"),
            cost_charged: counter("cost_charged"),
            cost_refunded: counter("cost_refunded"),
            cost_header_invalid: counter("cost_header_invalid"),
            charges_failed: counter("charges_failed"),
            leases_taken: counter("leases_taken"),
            lease_tokens_granted: counter("lease_tokens_granted"),
            lease_tokens_refunded: counter("lease_tokens_refunded"),
            leases_settled: counter("leases_settled"),
            reserve_tokens_returned: counter("reserve_tokens_returned"),
        }
    }
}
