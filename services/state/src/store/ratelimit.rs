//! Rate-limit buckets: atomic GCRA decisions over several buckets, leases
//! and their settlement, and tokens given back.

use super::StoreError;
use async_trait::async_trait;

/// One GCRA bucket of a decision: its Redis key and its parameters in µs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    pub key: String,
    pub emission_us: u64,
    pub tolerance_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    /// The key's own buckets (indexed under the user), then shared ones.
    pub specs: Vec<BucketSpec>,
    /// How many leading specs belong to the key (same hash slot as `index_key`).
    pub user_specs: usize,
    pub index_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketOutcome {
    pub allowed: bool,
    pub remaining: u64,
    pub reset_us: u64,
    /// `None`: never (cost above the burst).
    pub retry_us: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Admitted (or shadow mode).
    pub admitted: bool,
    /// Tokens taken from every bucket (0 when refused).
    pub granted: u64,
    pub buckets: Vec<BucketOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// Admit `cost` tokens or nothing; `shadow` admits regardless (and still counts).
    Check { cost: u64, shadow: bool },
    /// Take up to `tokens` and record them under `lease_key` for `ttl_ms`.
    Lease {
        tokens: u64,
        lease_key: String,
        ttl_ms: u64,
    },
}

#[async_trait]
pub trait RateLimitStore: Send + Sync {
    async fn take(&self, buckets: &Buckets, take: &Take) -> Result<Decision, StoreError>;
    /// Returns (refunded, settled).
    async fn settle(
        &self,
        buckets: &Buckets,
        lease_key: &str,
        used: u64,
    ) -> Result<(u64, bool), StoreError>;
    /// Gives `tokens` back to every bucket (a bucket tops out at full).
    async fn give_back(&self, buckets: &Buckets, tokens: u64) -> Result<(), StoreError>;
}
