//! Quota leases: a plugin takes a slice of a key's buckets up front and spends
//! it locally (no round trip per request), then reports what it used so the
//! unused part goes back.

use crate::ratelimit::BucketResult;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Tokens wanted; the grant may be smaller (down to 0).
    pub tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseResponse {
    pub lease_id: String,
    pub key: String,
    pub tier: String,
    /// Tokens taken from every bucket for this lease.
    pub granted: u64,
    /// After this the lease is void and unspent tokens are not refunded.
    pub expires_in_ms: u64,
    pub buckets: Vec<BucketResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    pub key: String,
    /// The tier the lease was taken under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    pub lease_id: String,
    /// Tokens actually spent out of the grant.
    pub used: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageResponse {
    /// Tokens given back to the buckets (0 for an expired or unknown lease).
    pub refunded: u64,
    /// Whether the lease was still live.
    pub settled: bool,
}

/// Tokens a request was charged beyond what it really cost, given back
/// (`exact` mode, once the upstream reported the real cost).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    pub tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundResponse {
    /// Tokens given back to each of the key's buckets and the global one
    /// (a bucket never holds more than its burst).
    pub refunded: u64,
}
