//! Rate-limit checks: one request evaluates every bucket that applies to it
//! (the key's per-minute and per-hour limits of its tier, plus the global
//! limit) atomically, all or nothing.

use serde::{Deserialize, Serialize};

/// One decision over all of a request's buckets ([`RateLimitRequest`]).
pub const CHECK_PATH: &str = "/v1/ratelimit/check";
/// Tokens leased ahead (`lease::LeaseRequest`).
pub const LEASE_PATH: &str = "/v1/ratelimit/lease";
/// A lease's usage reported, its unspent tokens given back (`lease::UsageReport`).
pub const USAGE_PATH: &str = "/v1/ratelimit/usage";
/// Tokens a cheaper response did not use, given back (`lease::RefundRequest`).
pub const REFUND_PATH: &str = "/v1/ratelimit/refund";

/// The Redis key of the global bucket's TAT in meshguard-state (a key's own
/// buckets are `keys::keyed(<key>, "rl:<bucket>")`).
pub const GLOBAL_BUCKET: &str = "mg:{rl:global}:tat";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRequest {
    /// Who is limited: the authenticated subject, or the client address.
    pub key: String,
    /// The key's tier (`free`, `premium`, ...); the service's default tier when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Tokens this request costs; when absent, taken from the route-prefix
    /// costs applied to `path`, else 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Decide and count, but never deny.
    #[serde(default)]
    pub shadow: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitResponse {
    /// Whether the request may pass (always true in shadow mode).
    pub allowed: bool,
    /// Whether the buckets refused it (in shadow mode this is the decision
    /// that would have been enforced).
    pub limited: bool,
    pub shadow: bool,
    pub tier: String,
    pub cost: u64,
    /// Milliseconds until the request could pass; 0 when it passed. For a cost
    /// larger than a bucket's burst this is `u64::MAX`: it never will.
    pub retry_after_ms: u64,
    pub buckets: Vec<BucketResult>,
}

/// One bucket's state after the decision, enough for the IETF
/// `RateLimit-Policy` / `RateLimit` headers (`q`, `w`, `r`, `t`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketResult {
    /// `minute`, `hour` or `global`.
    pub name: String,
    /// Tokens per window (`q`).
    pub limit: u64,
    /// Window length (`w`).
    pub window_ms: u64,
    /// Tokens that could be spent right now (`r`).
    pub remaining: u64,
    /// Milliseconds until the bucket is full again (`t`).
    pub reset_ms: u64,
    /// Milliseconds until this bucket would admit the request; 0 when it does.
    pub retry_after_ms: u64,
    /// Whether this bucket admits the request.
    pub allowed: bool,
}
