//! Hybrid mode: quota leased from meshguard-state and spent locally.
//!
//! A key's leases live in the worker that took them. A request spends from
//! them without a round trip; when they run dry the request waits for a new
//! lease (one hop per lease), and the root tops up busy keys on its tick so
//! that hop is rare. Spent leases are dropped; leases of idle keys and
//! leases near their expiry are retired and their usage reported, which
//! gives their unspent tokens back to the shared buckets. Tokens are taken from the shared
//! buckets before they are spent, so replicas cannot admit more than the
//! buckets hold: the price is tokens parked in other replicas' leases.

use meshguard_api::lease::LeaseResponse;
use meshguard_policy::ratelimit::{bucket_name, BucketState};
use std::collections::{HashMap, VecDeque};

const MS: u64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub tier: String,
    pub granted: u64,
    pub used: u64,
    pub expires_at_ns: u64,
    pub last_spent_ns: u64,
    /// The shared buckets right after the grant.
    pub buckets: Vec<BucketState>,
}

impl Lease {
    pub fn left(&self) -> u64 {
        self.granted.saturating_sub(self.used)
    }

    /// Tokens spent beyond the grant (costs known after responses).
    pub fn owed(&self) -> u64 {
        self.used.saturating_sub(self.granted)
    }
}

/// A lease to report: its key, and how much of it was spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    pub key: String,
    pub lease: Lease,
}

#[derive(Debug, Default)]
pub struct Leases {
    /// Per key, oldest first: spent in order, each settled on its own.
    live: HashMap<String, VecDeque<Lease>>,
    /// Keys refused by the service: denied locally until then, with the
    /// buckets that refused them.
    refused: HashMap<String, (u64, Vec<BucketState>)>,
    retired: Vec<Retired>,
}

/// What the lease table says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// Spent from a live lease.
    Spent(Vec<BucketState>),
    /// The service refused this key a moment ago: refuse without asking.
    Refused(Vec<BucketState>),
    /// No usable lease: ask for one.
    NeedLease,
}

/// The buckets as a client sees them: the newest grant's view of the
/// shared buckets plus every token left in the key's leases.
fn view(leases: &VecDeque<Lease>) -> Vec<BucketState> {
    let left: u64 = leases.iter().map(Lease::left).sum();
    leases.back().map_or_else(Vec::new, |newest| {
        newest
            .buckets
            .iter()
            .map(|b| BucketState {
                remaining: b.remaining.saturating_add(left),
                ..b.clone()
            })
            .collect()
    })
}

/// Spends `cost` from the oldest lease that has it and is not about to expire.
fn spend_from(leases: &mut VecDeque<Lease>, cost: u64, now_ns: u64, margin_ns: u64) -> bool {
    let usable = leases
        .iter_mut()
        .find(|l| l.left() >= cost && now_ns.saturating_add(margin_ns) < l.expires_at_ns);
    match usable {
        Some(lease) => {
            lease.used += cost;
            lease.last_spent_ns = now_ns;
            true
        }
        None => false,
    }
}

impl Leases {
    #[cfg(test)]
    pub fn live_count(&self) -> usize {
        self.live.values().map(VecDeque::len).sum()
    }

    /// Spends `cost` from the key's leases if they can; a lease this close
    /// to its expiry (`margin_ns`) is not spent from.
    pub fn spend(&mut self, key: &str, cost: u64, now_ns: u64, margin_ns: u64) -> Spend {
        if let Some((until, buckets)) = self.refused.get(key) {
            if now_ns < *until {
                let wait_ms = (until - now_ns).div_ceil(MS);
                return Spend::Refused(
                    buckets
                        .iter()
                        .map(|b| BucketState {
                            retry_after_ms: if b.allowed { 0 } else { wait_ms },
                            ..b.clone()
                        })
                        .collect(),
                );
            }
            self.refused.remove(key);
        }
        match self.live.get_mut(key) {
            Some(leases) => {
                if spend_from(leases, cost, now_ns, margin_ns) {
                    Spend::Spent(view(leases))
                } else {
                    Spend::NeedLease
                }
            }
            None => Spend::NeedLease,
        }
    }

    /// Adds a lease the service granted to the key's leases and spends
    /// `cost` from them. Returns the buckets, and whether the request
    /// passed; a refusal is remembered until the refusing buckets could
    /// admit it.
    pub fn install(
        &mut self,
        key: &str,
        reply: LeaseResponse,
        cost: u64,
        now_ns: u64,
    ) -> (Vec<BucketState>, bool) {
        let lease = Lease {
            id: reply.lease_id,
            tier: reply.tier,
            granted: reply.granted,
            used: 0,
            expires_at_ns: now_ns.saturating_add(reply.expires_in_ms.saturating_mul(MS)),
            last_spent_ns: now_ns,
            buckets: reply.buckets.into_iter().map(bucket_state).collect(),
        };
        let leases = self.live.entry(key.to_string()).or_default();
        let fallback_view = lease.buckets.clone();
        if lease.granted > 0 {
            leases.push_back(lease);
        }
        let passed = cost == 0 || spend_from(leases, cost, now_ns, 0);
        let current = if leases.is_empty() {
            fallback_view
        } else {
            view(leases)
        };
        if leases.is_empty() {
            self.live.remove(key);
        }
        if passed {
            self.refused.remove(key);
            return (current, true);
        }
        let refusing = refusing(&current, cost);
        let wait_ms = refusing
            .iter()
            .filter(|b| !b.allowed)
            .map(|b| b.retry_after_ms)
            .max()
            .unwrap_or(0);
        if wait_ms != u64::MAX && wait_ms > 0 {
            self.refused.insert(
                key.to_string(),
                (
                    now_ns.saturating_add(wait_ms.saturating_mul(MS)),
                    refusing.clone(),
                ),
            );
        }
        (refusing, false)
    }

    /// Changes what a passed request cost (after its response), on the
    /// key's newest lease: more is spent, even past its grant (its report
    /// then says so), or tokens are given back to it.
    pub fn adjust(&mut self, key: &str, delta: i64) -> bool {
        let Some(lease) = self.live.get_mut(key).and_then(VecDeque::back_mut) else {
            return false;
        };
        lease.used = if delta < 0 {
            lease.used.saturating_sub(delta.unsigned_abs())
        } else {
            lease.used.saturating_add(delta.unsigned_abs())
        };
        true
    }

    /// The tick: retires spent leases, leases of keys idle since
    /// `idle_before_ns`, and leases expiring within `margin_ns`; returns the
    /// busy keys whose tokens left are at most `low` of their newest grant
    /// (to top up), with their tier.
    pub fn tick(
        &mut self,
        now_ns: u64,
        idle_before_ns: u64,
        margin_ns: u64,
        low: f64,
    ) -> Vec<(String, String)> {
        let mut top_up = Vec::new();
        let retired = &mut self.retired;
        self.live.retain(|key, leases| {
            let last_spent = leases.iter().map(|l| l.last_spent_ns).max().unwrap_or(0);
            let idle = last_spent < idle_before_ns;
            let (keep, done): (VecDeque<Lease>, VecDeque<Lease>) =
                std::mem::take(leases).into_iter().partition(|l| {
                    !idle && l.left() > 0 && now_ns.saturating_add(margin_ns) < l.expires_at_ns
                });
            retired.extend(done.into_iter().map(|lease| Retired {
                key: key.clone(),
                lease,
            }));
            *leases = keep;
            if !idle {
                let left: u64 = leases.iter().map(Lease::left).sum();
                let (granted, tier) = leases
                    .back()
                    .map_or((0, None), |l| (l.granted, Some(l.tier.clone())));
                if let Some(tier) = tier.filter(|_| (left as f64) <= low * granted as f64) {
                    top_up.push((key.clone(), tier));
                }
            }
            !leases.is_empty()
        });
        self.refused.retain(|_, (until, _)| *until > now_ns);
        top_up
    }

    /// Takes up to `max` retired leases to report.
    pub fn take_retired(&mut self, max: usize) -> Vec<Retired> {
        let n = max.min(self.retired.len());
        self.retired.drain(..n).collect()
    }

    /// Puts a report that could not be sent back, unless its lease expired
    /// (the service no longer refunds it).
    pub fn requeue(&mut self, retired: Retired, now_ns: u64) -> bool {
        if now_ns >= retired.lease.expires_at_ns {
            return false;
        }
        self.retired.push(retired);
        true
    }
}

pub fn bucket_state(b: meshguard_api::ratelimit::BucketResult) -> BucketState {
    BucketState {
        name: bucket_name(b.name),
        limit: b.limit,
        window_ms: b.window_ms,
        remaining: b.remaining,
        reset_ms: b.reset_ms,
        retry_after_ms: b.retry_after_ms,
        allowed: b.allowed,
    }
}

/// Marks the buckets holding fewer than `cost` tokens as refusing, with the
/// longest a refill of the missing tokens can take.
fn refusing(buckets: &[BucketState], cost: u64) -> Vec<BucketState> {
    buckets
        .iter()
        .map(|b| {
            if b.remaining >= cost {
                return BucketState {
                    allowed: true,
                    retry_after_ms: 0,
                    ..b.clone()
                };
            }
            let interval_ms = b.window_ms / b.limit.max(1);
            let retry = if cost > b.limit {
                u64::MAX
            } else {
                (cost - b.remaining).saturating_mul(interval_ms.max(1))
            };
            BucketState {
                allowed: false,
                retry_after_ms: retry,
                ..b.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshguard_api::ratelimit::BucketResult;

    const SEC: u64 = 1_000 * MS;

    fn reply(id: &str, granted: u64, remaining: u64) -> LeaseResponse {
        LeaseResponse {
            lease_id: id.into(),
            key: "k".into(),
            tier: "free".into(),
            granted,
            expires_in_ms: 10_000,
            buckets: vec![BucketResult {
                name: "minute".into(),
                limit: 10,
                window_ms: 60_000,
                remaining,
                reset_ms: 0,
                retry_after_ms: 0,
                allowed: true,
            }],
        }
    }

    fn spent(s: Spend) -> bool {
        matches!(s, Spend::Spent(_))
    }

    #[test]
    fn spends_locally_until_dry() {
        let mut leases = Leases::default();
        assert_eq!(leases.spend("k", 1, 0, SEC), Spend::NeedLease);
        let (view, passed) = leases.install("k", reply("l1", 3, 7), 1, 0);
        assert!(passed);
        assert_eq!(view[0].remaining, 9, "7 in the buckets + 2 in the lease");
        assert!(spent(leases.spend("k", 2, 1, SEC)));
        assert_eq!(leases.spend("k", 1, 2, SEC), Spend::NeedLease);
    }

    #[test]
    fn a_top_up_adds_a_lease_and_each_is_reported_with_its_own_use() {
        let mut leases = Leases::default();
        leases.install("k", reply("l1", 4, 6), 1, 0);
        leases.install("k", reply("l2", 4, 2), 0, 1);
        assert_eq!(leases.live_count(), 2);
        // The older lease is spent first: 3 left in l1, then l2.
        for _ in 0..5 {
            assert!(spent(leases.spend("k", 1, 2, SEC)));
        }
        // l1 is spent: dropped on the tick; the key is busy, l2 stays.
        leases.tick(3, 0, SEC, 0.5);
        let retired = leases.take_retired(10);
        assert_eq!(retired.len(), 1);
        assert_eq!(
            (retired[0].lease.id.as_str(), retired[0].lease.used),
            ("l1", 4)
        );
        // Idle: l2 is reported with the 2 it spent.
        leases.tick(5 * SEC, 4 * SEC, SEC, 0.5);
        let retired = leases.take_retired(10);
        assert_eq!(
            (retired[0].lease.id.as_str(), retired[0].lease.used),
            ("l2", 2)
        );
        assert_eq!(leases.live_count(), 0);
    }

    #[test]
    fn refusal_is_remembered_until_a_token_is_back() {
        let mut leases = Leases::default();
        let (view, passed) = leases.install("k", reply("", 0, 0), 1, 0);
        assert!(!passed);
        assert!(!view[0].allowed);
        assert_eq!(view[0].retry_after_ms, 6_000);
        match leases.spend("k", 1, 2 * SEC, SEC) {
            Spend::Refused(b) => assert_eq!(b[0].retry_after_ms, 4_000),
            other => panic!("{other:?}"),
        }
        assert_eq!(leases.spend("k", 1, 6 * SEC, SEC), Spend::NeedLease);
        assert!(
            leases.take_retired(10).is_empty(),
            "nothing granted, nothing to report"
        );
        assert_eq!(leases.live_count(), 0);
    }

    #[test]
    fn tick_retires_idle_and_expiring_leases_and_tops_up_busy_keys() {
        let mut leases = Leases::default();
        leases.install("idle", reply("a", 4, 0), 1, 0);
        leases.install("busy", reply("b", 4, 0), 3, 5 * SEC);
        leases.install("ok", reply("c", 10, 0), 1, 5 * SEC);
        let top = leases.tick(6 * SEC, SEC, SEC, 0.5);
        assert_eq!(top, vec![("busy".to_string(), "free".to_string())]);
        let retired = leases.take_retired(10);
        assert_eq!(retired.len(), 1);
        assert_eq!(retired[0].key, "idle");
        // Expiring (10 s leases from 5 s) within the margin.
        leases.tick(14 * SEC + 1, 0, SEC, 0.5);
        assert_eq!(leases.take_retired(10).len(), 2);
        assert_eq!(leases.live_count(), 0);
    }

    #[test]
    fn adjust_can_spend_past_the_grant() {
        let mut leases = Leases::default();
        leases.install("k", reply("l", 2, 0), 1, 0);
        assert!(leases.adjust("k", 5));
        assert_eq!(leases.spend("k", 1, 1, SEC), Spend::NeedLease);
        assert!(leases.adjust("k", -5));
        assert!(spent(leases.spend("k", 1, 1, SEC)));
        assert!(!leases.adjust("nobody", 1));
        leases.adjust("k", 3);
        leases.tick(2, 0, SEC, 0.5);
        assert_eq!(leases.take_retired(1)[0].lease.owed(), 3);
    }

    #[test]
    fn expired_reports_are_dropped() {
        let mut leases = Leases::default();
        leases.install("k", reply("l", 2, 0), 1, 0);
        leases.tick(20 * SEC, 30 * SEC, 0, 0.5);
        let r = leases.take_retired(1).pop().unwrap();
        assert!(!leases.requeue(r.clone(), 20 * SEC));
        let mut fresh = r;
        fresh.lease.expires_at_ns = 30 * SEC;
        assert!(leases.requeue(fresh, 20 * SEC));
    }
}
