//! A per-client budget of refused requests. Auth runs before the rate
//! limiter, so a flood of bad tokens would never reach a limit: each 401
//! charges the client's address one token of a small GCRA bucket (the
//! policy crate's), and a client out of budget gets 429 instead, before any
//! signature work for a token the cache does not know. A guessing client
//! learns nothing more from the answers; its CPU cost is bounded.
//!
//! Requests only pay for the client's address (one host call) when some
//! client is out of budget or the request is refused anyway.

use meshguard_plugin_kit::config::ConfigError;
use meshguard_policy::gcra::{decide, Quota};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Refusals a client may cause per minute, on average.
    pub per_minute: u64,
    /// Refusals a client may cause at once.
    pub burst: u64,
    /// Clients tracked per worker; past it, clients with a full budget are
    /// forgotten first, and a new one is not tracked until room frees.
    pub max_clients: usize,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            per_minute: 60,
            burst: 30,
            max_clients: 10_000,
        }
    }
}

impl BudgetConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=60_000).contains(&self.per_minute) {
            return Err(ConfigError::new(
                "reject_budget.per_minute",
                "must be from 1 to 60000",
            ));
        }
        if !(1..=100_000).contains(&self.burst) {
            return Err(ConfigError::new(
                "reject_budget.burst",
                "must be from 1 to 100000",
            ));
        }
        if !(1..=1_000_000).contains(&self.max_clients) {
            return Err(ConfigError::new(
                "reject_budget.max_clients",
                "must be from 1 to 1000000",
            ));
        }
        Ok(())
    }
}

/// The buckets of one worker, in milliseconds.
pub struct RejectBudget {
    quota: Quota,
    max_clients: usize,
    /// Client address → GCRA TAT.
    tats: HashMap<String, u64>,
    /// Until when some client may be out of budget: before it, requests
    /// look their client up before verifying.
    hot_until_ms: u64,
}

impl RejectBudget {
    pub fn new(config: &BudgetConfig) -> Option<RejectBudget> {
        Some(RejectBudget {
            quota: Quota::new(config.per_minute, 60_000, config.burst)?,
            max_clients: config.max_clients,
            tats: HashMap::new(),
            hot_until_ms: 0,
        })
    }

    /// Whether any client may be out of budget at `now_ms`.
    pub fn is_hot(&self, now_ms: u64) -> bool {
        now_ms < self.hot_until_ms
    }

    /// Whether `client` may cause another refusal now (reads only).
    pub fn allows(&self, client: &str, now_ms: u64) -> bool {
        decide(&self.quota, self.tats.get(client).copied(), now_ms, 1).allowed
    }

    /// Charges one refusal to `client`; false when it is over budget (the
    /// refusal becomes a 429). Also gives the seconds to wait.
    pub fn charge(&mut self, client: &str, now_ms: u64) -> (bool, u64) {
        if !self.tats.contains_key(client) && self.tats.len() >= self.max_clients {
            // Forget the clients whose bucket is full again: they carry no state.
            self.tats.retain(|_, tat| *tat > now_ms);
            if self.tats.len() >= self.max_clients {
                return (true, 0);
            }
        }
        let decision = decide(&self.quota, self.tats.get(client).copied(), now_ms, 1);
        if decision.allowed {
            self.tats.insert(client.to_string(), decision.tat);
        }
        if decision.remaining == 0 {
            // The next refusal of this client is over budget until a token returns.
            let next = decide(&self.quota, Some(decision.tat), now_ms, 1);
            let wait = next.retry_after.unwrap_or(self.quota.period());
            self.hot_until_ms = self.hot_until_ms.max(now_ms.saturating_add(wait));
        }
        let retry_s = decision.retry_after.unwrap_or(0).div_ceil(1_000).max(1);
        (decision.allowed, retry_s)
    }

    /// Seconds until `client` may cause a refusal again (at least 1).
    pub fn retry_after_s(&self, client: &str, now_ms: u64) -> u64 {
        decide(&self.quota, self.tats.get(client).copied(), now_ms, 1)
            .retry_after
            .unwrap_or(60_000)
            .div_ceil(1_000)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_429_and_others_are_untouched() {
        let config = BudgetConfig {
            per_minute: 60,
            burst: 3,
            max_clients: 10,
        };
        let mut budget = RejectBudget::new(&config).unwrap();
        let now = 1_000_000;
        assert!(!budget.is_hot(now));
        for _ in 0..3 {
            assert!(budget.charge("1.1.1.1", now).0);
        }
        assert!(budget.is_hot(now));
        assert!(!budget.allows("1.1.1.1", now));
        let (allowed, retry) = budget.charge("1.1.1.1", now);
        assert!(!allowed);
        assert_eq!(retry, 1);
        assert!(budget.allows("2.2.2.2", now));
        // One refusal a second comes back.
        assert!(budget.allows("1.1.1.1", now + 1_000));
        assert!(!budget.is_hot(now + 1_000));
    }

    #[test]
    fn the_table_is_bounded_and_forgets_full_buckets_first() {
        let config = BudgetConfig {
            per_minute: 60,
            burst: 2,
            max_clients: 2,
        };
        let mut budget = RejectBudget::new(&config).unwrap();
        budget.charge("a", 0);
        budget.charge("b", 0);
        // Full: an untracked client is not limited.
        assert_eq!(budget.charge("c", 0), (true, 0));
        // Later a's and b's buckets are full again and make room.
        budget.charge("c", 10_000);
        assert_eq!(budget.tats.len(), 1);
    }
}
