//! Rate-limit policy as both sides configure it: tiers, the global limit and
//! route costs. The plugin's local buckets and meshguard-state's Redis
//! buckets must enforce the same numbers, so both read these types.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierLimits {
    pub per_minute: u64,
    pub per_hour: u64,
    /// Tokens the minute bucket holds at once (default: `per_minute`).
    #[serde(default)]
    pub burst: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub tokens: u64,
    pub per_seconds: u64,
    #[serde(default)]
    pub burst: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCost {
    pub prefix: String,
    pub cost: u64,
}

/// The largest cost of one request, lease or refund (tokens): from a route,
/// a response header, or a call to the state service.
pub const MAX_COST: u64 = 1_000_000;

pub const SEED_DEFAULT_TIER: &str = "free";

/// The seed tiers: free 10/min + 100/h, premium 50/min + 1,000/h,
/// enterprise 500/min + 10,000/h, admin 5,000/min + 100,000/h.
pub fn seed_tiers() -> BTreeMap<String, TierLimits> {
    let tier = |per_minute, per_hour| TierLimits {
        per_minute,
        per_hour,
        burst: None,
    };
    BTreeMap::from([
        ("free".to_string(), tier(10, 100)),
        ("premium".to_string(), tier(50, 1_000)),
        ("enterprise".to_string(), tier(500, 10_000)),
        ("admin".to_string(), tier(5_000, 100_000)),
    ])
}

/// The seed global limit: 10,000 tokens per second across every key.
pub fn seed_global() -> Rate {
    Rate {
        tokens: 10_000,
        per_seconds: 1,
        burst: None,
    }
}
