//! Rate-limit policy: tiers, the global limit and per-route costs, compiled
//! into GCRA quotas (µs) once at start.

use meshguard_api::limits::{seed_global, seed_tiers, Rate, SEED_DEFAULT_TIER};
pub use meshguard_api::limits::{RouteCost, TierLimits};
use meshguard_policy::gcra::Quota;
use serde::Deserialize;
use std::collections::BTreeMap;

const MINUTE_US: u64 = 60_000_000;
const HOUR_US: u64 = 3_600_000_000;
const SECOND_US: u64 = 1_000_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    #[serde(default = "default_tier")]
    pub default_tier: String,
    pub tiers: BTreeMap<String, TierLimits>,
    #[serde(default)]
    pub global: Option<Rate>,
    #[serde(default)]
    pub costs: Vec<RouteCost>,
}

fn default_tier() -> String {
    SEED_DEFAULT_TIER.to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedQuota {
    pub name: &'static str,
    pub quota: Quota,
    pub window_us: u64,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub default_tier: String,
    tiers: BTreeMap<String, Vec<NamedQuota>>,
    pub global: Option<NamedQuota>,
    /// Longest prefix first.
    costs: Vec<RouteCost>,
}

impl LimitsFile {
    /// The seed defaults: free 10/min + 100/h, premium 50/min + 1,000/h,
    /// enterprise 500/min + 10,000/h, admin 5,000/min + 100,000/h, global
    /// 10,000 tokens/s, every route costing 1.
    pub fn seed() -> LimitsFile {
        LimitsFile {
            default_tier: default_tier(),
            tiers: seed_tiers(),
            global: Some(seed_global()),
            costs: Vec::new(),
        }
    }

    pub fn compile(self) -> Result<Limits, String> {
        let mut tiers = BTreeMap::new();
        for (name, t) in &self.tiers {
            let minute = Quota::new(t.per_minute, MINUTE_US, t.burst.unwrap_or(t.per_minute))
                .ok_or_else(|| format!("tiers.{name}: per_minute/burst must be 1..=60000000"))?;
            let hour = Quota::per_period(t.per_hour, HOUR_US)
                .ok_or_else(|| format!("tiers.{name}.per_hour must be 1..=3600000000"))?;
            tiers.insert(
                name.clone(),
                vec![
                    NamedQuota {
                        name: "minute",
                        quota: minute,
                        window_us: MINUTE_US,
                    },
                    NamedQuota {
                        name: "hour",
                        quota: hour,
                        window_us: HOUR_US,
                    },
                ],
            );
        }
        if !tiers.contains_key(&self.default_tier) {
            return Err(format!(
                "default_tier {:?} is not a tier",
                self.default_tier
            ));
        }
        let global = match self.global {
            None => None,
            Some(r) => {
                let window_us = r
                    .per_seconds
                    .checked_mul(SECOND_US)
                    .ok_or("global.per_seconds is too large")?;
                let quota = Quota::new(r.tokens, window_us, r.burst.unwrap_or(r.tokens))
                    .ok_or("global: tokens must be 1..=1000000 per second and burst > 0")?;
                Some(NamedQuota {
                    name: "global",
                    quota,
                    window_us,
                })
            }
        };
        let mut costs = self.costs;
        if let Some(c) = costs
            .iter()
            .find(|c| c.cost == 0 || !c.prefix.starts_with('/'))
        {
            return Err(format!(
                "costs: prefix {:?} must start with / and cost at least 1",
                c.prefix
            ));
        }
        costs.sort_by_key(|c| std::cmp::Reverse(c.prefix.len()));
        Ok(Limits {
            default_tier: self.default_tier,
            tiers,
            global,
            costs,
        })
    }
}

impl Limits {
    pub fn tier(&self, name: &str) -> Option<&[NamedQuota]> {
        self.tiers.get(name).map(Vec::as_slice)
    }

    pub fn cost_of(&self, path: &str) -> u64 {
        self.costs
            .iter()
            .find(|c| path.starts_with(&c.prefix))
            .map_or(1, |c| c.cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_compiles_with_the_documented_limits() {
        let limits = LimitsFile::seed().compile().unwrap();
        let free = limits.tier("free").unwrap();
        assert_eq!(free[0].quota.limit(), 10);
        assert_eq!(free[0].quota.emission_interval(), 6_000_000);
        assert_eq!(free[1].quota.limit(), 100);
        assert_eq!(limits.tier("admin").unwrap()[1].quota.limit(), 100_000);
        assert_eq!(limits.global.unwrap().quota.emission_interval(), 100);
        assert!(limits.tier("gold").is_none());
    }

    #[test]
    fn longest_prefix_decides_the_cost() {
        let mut file = LimitsFile::seed();
        file.costs = vec![
            RouteCost {
                prefix: "/api/".into(),
                cost: 2,
            },
            RouteCost {
                prefix: "/api/ml/".into(),
                cost: 5,
            },
        ];
        let limits = file.compile().unwrap();
        assert_eq!(limits.cost_of("/api/ml/predict"), 5);
        assert_eq!(limits.cost_of("/api/nlp/x"), 2);
        assert_eq!(limits.cost_of("/other"), 1);
    }

    #[test]
    fn bad_files_are_refused() {
        let mut file = LimitsFile::seed();
        file.default_tier = "gold".into();
        assert!(file.compile().is_err());
        let mut file = LimitsFile::seed();
        file.costs = vec![RouteCost {
            prefix: "api".into(),
            cost: 1,
        }];
        assert!(file.compile().is_err());
        let json = r#"{"tiers": {"free": {"per_minute": 1, "per_hour": 1, "typo": 1}}}"#;
        assert!(serde_json::from_str::<LimitsFile>(json).is_err());
    }
}
