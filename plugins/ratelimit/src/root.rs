//! The per-worker root context: configuration, the local buckets, the
//! state-service client, and the tick that reports lease usage, tops up busy
//! leases and sends after-response charges.

use crate::config::{LocalBuckets, Mode, RateLimitConfig};
use crate::filter::RateLimitFilter;
use crate::leases::{Leases, Retired};
use crate::shared::SharedBuckets;
use crate::stats::{Stats, TierStats};
use meshguard_api::lease::{
    LeaseRequest, LeaseResponse, RefundRequest, UsageReport, UsageResponse,
};
use meshguard_plugin_kit::config::ConfigError;
use meshguard_plugin_kit::host;
use meshguard_plugin_kit::policy::Policy;
use meshguard_plugin_kit::state_client::StateClient;
use meshguard_plugin_kit::tick_gate::TickGate;
use meshguard_policy::gcra::decide;
use meshguard_policy::ratelimit::headers::PolicyHeader;
use meshguard_policy::ratelimit::limiter::{state, Limiter};
use meshguard_policy::ratelimit::{Bucket, Costs};
use proxy_wasm::traits::Context;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

pub const LEASE_PATH: &str = "/v1/ratelimit/lease";
pub const USAGE_PATH: &str = "/v1/ratelimit/usage";
pub const CHECK_PATH: &str = "/v1/ratelimit/check";
pub const REFUND_PATH: &str = "/v1/ratelimit/refund";

/// Reports sent per tick at most (the rest wait for the next tick).
const MAX_CALLS_PER_TICK: usize = 256;
/// How often reserves taken from the shared buckets are checked for expiry
/// (the root ticks at least every 100 ms).
const RESERVE_CHECK: Duration = Duration::from_millis(250);
/// How often after-response charges are sent in `exact` mode.
const CHARGE_INTERVAL_MS: u64 = 200;

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
    pub limiter: RefCell<Limiter>,
    /// Set when the local buckets are shared by the workers.
    pub shared: Option<SharedBuckets>,
    pub client: RefCell<StateClient>,
    pub leases: RefCell<Leases>,
    pub charges: RefCell<Vec<Charge>>,
}

impl Runtime {
    fn new(config: RateLimitConfig) -> Option<Runtime> {
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
            limiter: RefCell::new(Limiter::new(config.max_keys)),
            shared: (config.local_buckets == LocalBuckets::Shared).then(|| {
                SharedBuckets::new(
                    config.shared_slots,
                    config.shared_batch_tokens,
                    config.max_keys,
                )
            }),
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

    fn refresh_ns(&self) -> u64 {
        self.config.hybrid.refresh_ms.saturating_mul(1_000_000)
    }

    /// Leases this close to their expiry are neither spent from nor kept:
    /// their report must reach the service before it forgets them.
    pub fn lease_margin_ns(&self) -> u64 {
        self.refresh_ns().saturating_mul(2)
    }
}

enum RootCall {
    Settle(Box<Retired>),
    TopUp(String),
    Charge,
}

#[derive(Default)]
pub struct RateLimitRoot {
    runtime: Option<Rc<Runtime>>,
    calls: HashMap<u32, RootCall>,
    topping_up: HashSet<String>,
    tick_gate: TickGate,
    reserve_gate: TickGate,
}

impl RateLimitRoot {
    fn dispatch(
        &mut self,
        runtime: &Runtime,
        path: &str,
        body: Vec<u8>,
        call: RootCall,
    ) -> Result<(), RootCall> {
        let token = runtime
            .client
            .borrow_mut()
            .dispatch("POST", path, Some(&body), &[]);
        match token {
            Ok(token) => {
                self.calls.insert(token, call);
                Ok(())
            }
            Err(_) => Err(call),
        }
    }

    fn settle_retired(&mut self, runtime: &Runtime, now_ns: u64) {
        let retired = runtime.leases.borrow_mut().take_retired(MAX_CALLS_PER_TICK);
        for r in retired {
            if r.lease.owed() > 0 {
                runtime.charges.borrow_mut().push(Charge {
                    key: r.key.clone(),
                    tier: r.lease.tier.clone(),
                    delta: i64::try_from(r.lease.owed()).unwrap_or(i64::MAX),
                });
            }
            if r.lease.used >= r.lease.granted {
                // Fully spent: the service keeps every token, nothing to settle.
                continue;
            }
            let report = UsageReport {
                key: r.key.clone(),
                tier: Some(r.lease.tier.clone()),
                lease_id: r.lease.id.clone(),
                used: r.lease.used,
            };
            let Ok(body) = serde_json::to_vec(&report) else {
                continue;
            };
            if let Err(RootCall::Settle(r)) =
                self.dispatch(runtime, USAGE_PATH, body, RootCall::Settle(Box::new(r)))
            {
                runtime.leases.borrow_mut().requeue(*r, now_ns);
            }
        }
    }

    fn top_up(&mut self, runtime: &Runtime, now_ns: u64) {
        let hybrid = &runtime.config.hybrid;
        let refresh = runtime.refresh_ns();
        let busy = runtime.leases.borrow_mut().tick(
            now_ns,
            now_ns.saturating_sub(refresh.saturating_mul(2)),
            runtime.lease_margin_ns(),
            hybrid.low_watermark,
        );
        for (key, tier) in busy {
            if self.topping_up.contains(&key) {
                continue;
            }
            let Some(tokens) = runtime.tier(&tier).map(|t| runtime.lease_size(t, 1)) else {
                continue;
            };
            let request = LeaseRequest {
                key: key.clone(),
                tier: Some(tier),
                tokens,
            };
            let Ok(body) = serde_json::to_vec(&request) else {
                continue;
            };
            if self
                .dispatch(runtime, LEASE_PATH, body, RootCall::TopUp(key.clone()))
                .is_ok()
            {
                self.topping_up.insert(key);
            }
        }
    }

    /// Settles the after-response cost differences, summed per key: extra
    /// tokens as a lease never reported back (the service keeps as many as
    /// the buckets hold), unused ones through the refund endpoint.
    fn send_charges(&mut self, runtime: &Runtime) {
        let mut merged: BTreeMap<(String, String), i64> = BTreeMap::new();
        for c in runtime.charges.borrow_mut().drain(..) {
            let delta = merged.entry((c.key, c.tier)).or_default();
            *delta = delta.saturating_add(c.delta);
        }
        for ((key, tier), delta) in merged {
            let tokens = delta.unsigned_abs().min(crate::config::MAX_COST);
            let (path, body) = match delta {
                0 => continue,
                // Taking tokens is a lease that is never settled.
                1.. => (
                    LEASE_PATH,
                    serde_json::to_vec(&LeaseRequest {
                        key,
                        tier: Some(tier),
                        tokens,
                    }),
                ),
                _ => (
                    REFUND_PATH,
                    serde_json::to_vec(&RefundRequest {
                        key,
                        tier: Some(tier),
                        tokens,
                    }),
                ),
            };
            let sent = body
                .ok()
                .is_some_and(|body| self.dispatch(runtime, path, body, RootCall::Charge).is_ok());
            if !sent {
                runtime.stats.charges_failed.inc();
            }
        }
    }
}

impl Context for RateLimitRoot {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        let Some(call) = self.calls.remove(&token) else {
            return;
        };
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        let outcome = runtime.client.borrow_mut().outcome(body_size);
        let ok = outcome.is_success();
        let now_ns = host::now_unix_nanos();
        match call {
            RootCall::Settle(r) => match serde_json::from_slice::<UsageResponse>(&outcome.body) {
                Ok(reply) if ok => {
                    runtime.stats.leases_settled.inc();
                    runtime.stats.lease_tokens_refunded.add(reply.refunded);
                }
                _ => {
                    runtime.leases.borrow_mut().requeue(*r, now_ns);
                }
            },
            RootCall::TopUp(key) => {
                self.topping_up.remove(&key);
                if let (true, Ok(reply)) =
                    (ok, serde_json::from_slice::<LeaseResponse>(&outcome.body))
                {
                    runtime.stats.leases_taken.inc();
                    runtime.stats.lease_tokens_granted.add(reply.granted);
                    runtime.leases.borrow_mut().install(&key, reply, 0, now_ns);
                }
            }
            RootCall::Charge => {
                if !ok {
                    runtime.stats.charges_failed.inc();
                }
            }
        }
    }
}

impl Policy for RateLimitRoot {
    type Config = RateLimitConfig;
    type Filter = RateLimitFilter;

    /// Applies an already validated configuration; refuses one whose limits do not compile.
    fn configure(&mut self, config: RateLimitConfig) -> Result<(), ConfigError> {
        let runtime = Runtime::new(config)
            .ok_or_else(|| ConfigError::new("tiers", "a limit does not compile"))?;
        self.runtime = Some(Rc::new(runtime));
        Ok(())
    }

    /// How often `tick` has work to do; `None`: never.
    fn tick_period(&self) -> Option<Duration> {
        let config = &self.runtime.as_ref()?.config;
        let ms = match config.mode {
            Mode::Hybrid => config.hybrid.refresh_ms,
            Mode::Exact if config.response_cost_header.is_some() => CHARGE_INTERVAL_MS,
            _ => return None,
        };
        Some(Duration::from_millis(ms))
    }

    /// Tops up and settles leases and sends charges when due; may be called more often.
    fn tick(&mut self) {
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        let now_ns = host::now_unix_nanos();
        if let Some(shared) = &runtime.shared {
            if self.reserve_gate.due(RESERVE_CHECK, now_ns) {
                let returned = shared.return_expired(now_ns / 1_000);
                runtime.stats.reserve_tokens_returned.add(returned);
            }
        }
        let Some(period) = self.tick_period() else {
            return;
        };
        if !self.tick_gate.due(period, now_ns) {
            return;
        }
        if runtime.config.mode == Mode::Hybrid {
            self.top_up(&runtime, now_ns);
            self.settle_retired(&runtime, now_ns);
        }
        self.send_charges(&runtime);
    }

    /// A per-request context of this worker.
    fn filter(&self) -> RateLimitFilter {
        RateLimitFilter::new(self.runtime.clone())
    }
}
