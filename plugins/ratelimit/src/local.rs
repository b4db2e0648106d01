//! `local` mode, and where `exact` and `hybrid` fall back: GCRA buckets in
//! this Envoy, no network. Either one table per Envoy in proxy-wasm shared
//! data (`local_buckets: shared`, [`shared`]) or one per worker (`worker`,
//! `policy::ratelimit::limiter`).

pub mod shared;
pub mod store;

use crate::config::{LocalBuckets, RateLimitConfig};
use meshguard_policy::ratelimit::limiter::{Limiter, Verdict};
use meshguard_policy::ratelimit::Bucket;
use shared::SharedBuckets;
use std::cell::RefCell;

/// This worker's local buckets.
pub enum Table {
    Shared(SharedBuckets),
    Worker(RefCell<Limiter>),
}

impl Table {
    pub fn new(config: &RateLimitConfig) -> Table {
        match config.local_buckets {
            LocalBuckets::Shared => Table::Shared(SharedBuckets::new(
                config.shared_slots,
                config.shared_batch_tokens,
                config.max_keys,
            )),
            LocalBuckets::Worker => Table::Worker(RefCell::new(Limiter::new(config.max_keys))),
        }
    }

    /// Decides a request of `cost` tokens for `key` at `now` (µs).
    pub fn check(
        &self,
        key: &str,
        tier: &[Bucket; 2],
        global: Option<&Bucket>,
        now: u64,
        cost: u64,
    ) -> Verdict {
        match self {
            Table::Shared(shared) => shared.check(key, tier, global, now, cost),
            Table::Worker(limiter) => limiter.borrow_mut().check(key, tier, global, now, cost),
        }
    }

    /// Corrects what a request cost once the response said (`Limiter::charge`).
    pub fn charge(
        &self,
        key: &str,
        tier: &[Bucket; 2],
        global: Option<&Bucket>,
        now: u64,
        delta: i64,
    ) {
        match self {
            Table::Shared(shared) => shared.charge(key, tier, global, now, delta),
            Table::Worker(limiter) => limiter.borrow_mut().charge(key, tier, global, now, delta),
        }
    }

    /// Gives tokens taken ahead and not spent back to the shared buckets;
    /// how many went back.
    pub fn return_expired(&self, now: u64) -> u64 {
        match self {
            Table::Shared(shared) => shared.return_expired(now),
            Table::Worker(_) => 0,
        }
    }

    /// Whether `return_expired` has anything to do.
    pub fn takes_ahead(&self) -> bool {
        matches!(self, Table::Shared(_))
    }
}
