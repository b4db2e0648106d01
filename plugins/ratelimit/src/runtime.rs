//! What every request of one worker reads and updates: the configuration,
//! the compiled tiers, the local buckets, the state-service client, the
//! hybrid leases and the after-response charges. The root context builds it
//! and works on it on its tick; the filter reads it and never names the root.

use crate::config::RateLimitConfig;
use crate::leases::Leases;
use crate::local;
use crate::stats::{Stats, TierStats};
use meshguard_plugin_kit::state_client::StateClient;
use meshguard_policy::gcra::decide;
use meshguard_policy::ratelimit::headers::PolicyHeader;
use meshguard_policy::ratelimit::limiter::state;
use meshguard_policy::ratelimit::{Bucket, Costs};
use std::cell::RefCell;
use std::collections::BTreeMap;

pub struct Tier {
    pub buckets: [Bucket; 2],
    pub stats: TierStats,
    /// `RateLimit-Policy` for the tier's buckets and the global one.
    pub policy: PolicyHeader,
}

/// A response's real cost minus what its request was charged, settled with
/// the key's shared buckets on the next tick: more tokens taken (`delta > 0`)
/// or given back (`delta < 0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub key: String,
    pub tier: String,
    pub delta: i64,
}

/// What every request of this worker reads and updates.
pub struct Runtime {
    pub config: RateLimitConfig,
    pub tiers: BTreeMap<String, Tier>,
    pub global: Option<Bucket>,
    pub costs: Costs,
    pub stats: Stats,
    /// The local buckets: `local` mode, and the fallback of the others.
    pub local: local::Table,
    pub client: RefCell<StateClient>,
    /// `hybrid` mode's leases.
    pub leases: RefCell<Leases>,
    pub charges: RefCell<Vec<Charge>>,
}

impl Runtime {
    /// `None` when a limit does not compile.
    pub fn new(config: RateLimitConfig) -> Option<Runtime> {
        let global = match &config.global {
            Some(g) => Some(Bucket::global(g.tokens, g.per_seconds, g.burst)?),
            None => None,
        };
        let mut tiers = BTreeMap::new();
        for (name, t) in &config.tiers {
            let buckets = Bucket::tier(t.per_minute, t.per_hour, t.burst)?;
            let full: Vec<_> = buckets
                .iter()
                .chain(&global)
                .map(|b| state(b, &decide(&b.quota, None, 0, 0)))
                .collect();
            let tier = Tier {
                buckets,
                stats: TierStats::define(name),
                policy: PolicyHeader::new(&full),
            };
            tiers.insert(name.clone(), tier);
        }
        let costs = Costs::new(
            config
                .costs
                .iter()
                .map(|c| (c.prefix.clone(), c.cost))
                .collect(),
        );
        Some(Runtime {
            tiers,
            global,
            costs,
            stats: Stats::define(),
            local: local::Table::new(&config),
            client: RefCell::new(StateClient::new(config.state.clone())),
            leases: RefCell::new(Leases::default()),
            charges: RefCell::new(Vec::new()),
            config,
        })
    }

    /// The tier of this name; identities only carry configured tiers, so
    /// the default tier is a formality.
    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers
            .get(name)
            .or_else(|| self.tiers.get(&self.config.default_tier))
    }

    /// Tokens to lease for a key of `tier`: `hybrid.lease_tokens`, but at
    /// most a quarter of the tier's minute burst, so one worker or replica
    /// never parks a small tier's whole burst; never less than `cost`.
    pub fn lease_size(&self, tier: &Tier, cost: u64) -> u64 {
        let [minute, _] = &tier.buckets;
        let quarter = (minute.quota.burst() / 4).max(1);
        self.config.hybrid.lease_tokens.min(quarter).max(cost)
    }

    pub fn refresh_ns(&self) -> u64 {
        self.config.hybrid.refresh_ms.saturating_mul(1_000_000)
    }

    /// Leases this close to their expiry are neither spent from nor kept:
    /// their report must reach the service before it forgets them.
    pub fn lease_margin_ns(&self) -> u64 {
        self.refresh_ns().saturating_mul(2)
    }
}
