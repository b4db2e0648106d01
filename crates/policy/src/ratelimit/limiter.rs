//! A bounded table of GCRA buckets in one process: each key's minute and
//! hour buckets plus the global bucket, decided together (all or nothing).
//!
//! Memory is bounded by `max_keys`. Keys whose buckets are full again carry no
//! information and are dropped first; when the table is still full, the
//! eighth of the keys closest to full is evicted at once (they come back
//! with a full bucket), so eviction costs amortized O(1) per new key.

use super::{Bucket, BucketState};
use crate::gcra::{decide, decide_all, refund, Decision};
use crate::mul::saturating_mul;
use std::borrow::Cow;
use std::collections::HashMap;

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether every bucket admitted the request (and spent its cost).
    pub allowed: bool,
    /// The key's buckets, then the global one.
    pub buckets: Vec<BucketState>,
    /// Keys evicted to make room for this one.
    pub evicted: usize,
}

impl Verdict {
    /// Milliseconds until the request could pass: 0 when it passed,
    /// `u64::MAX` when its cost exceeds a bucket's burst.
    pub fn retry_after_ms(&self) -> u64 {
        retry_after_ms(&self.buckets)
    }
}

/// The longest wait of the refusing buckets (0 when none refuses).
pub fn retry_after_ms(buckets: &[BucketState]) -> u64 {
    buckets
        .iter()
        .filter(|b| !b.allowed)
        .map(|b| b.retry_after_ms)
        .max()
        .unwrap_or(0)
}

pub struct Limiter {
    keys: HashMap<String, [Option<u64>; 2]>,
    global: Option<u64>,
    max_keys: usize,
}

fn us_to_ms_ceil(us: u64) -> u64 {
    us.div_ceil(1_000)
}

/// A bucket's state after a decision, in milliseconds.
pub fn state(bucket: &Bucket, d: &Decision) -> BucketState {
    BucketState {
        name: Cow::Borrowed(bucket.name),
        limit: bucket.quota.limit(),
        window_ms: bucket.window_us / 1_000,
        remaining: d.remaining,
        reset_ms: us_to_ms_ceil(d.reset_after),
        retry_after_ms: d.retry_after.map_or(u64::MAX, us_to_ms_ceil),
        allowed: d.allowed,
    }
}

impl Limiter {
    pub fn new(max_keys: usize) -> Limiter {
        Limiter {
            keys: HashMap::new(),
            global: None,
            max_keys: max_keys.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Decides a request of `cost` tokens for `key` at `now` (µs).
    pub fn check(
        &mut self,
        key: &str,
        tier: &[Bucket; 2],
        global: Option<&Bucket>,
        now: u64,
        cost: u64,
    ) -> Verdict {
        let stored = self.keys.get(key).copied().unwrap_or([None, None]);
        let mut buckets = vec![(tier[0].quota, stored[0]), (tier[1].quota, stored[1])];
        if let Some(g) = global {
            buckets.push((g.quota, self.global));
        }
        let decisions = decide_all(&buckets, now, cost);
        let allowed = decisions.iter().all(|d| d.allowed);
        let mut evicted = 0;
        if allowed && cost > 0 {
            let tats = [decisions.first(), decisions.get(1)].map(|d| d.map(|d| d.tat));
            // A key seen before is updated in place: one hash, no new String.
            match self.keys.get_mut(key) {
                Some(stored) => *stored = tats,
                None => {
                    evicted = self.make_room(now);
                    self.keys.insert(key.to_string(), tats);
                }
            }
            if global.is_some() {
                self.global = decisions.get(2).map(|d| d.tat);
            }
        }
        let named = tier.iter().chain(global);
        Verdict {
            allowed,
            buckets: named.zip(&decisions).map(|(b, d)| state(b, d)).collect(),
            evicted,
        }
    }

    /// The buckets of `key` as they stand, spending nothing.
    pub fn peek(
        &self,
        key: &str,
        tier: &[Bucket; 2],
        global: Option<&Bucket>,
        now: u64,
    ) -> Vec<BucketState> {
        let stored = self.keys.get(key).copied().unwrap_or([None, None]);
        let named = tier.iter().zip(stored);
        let global = global.map(|g| (g, self.global));
        named
            .chain(global)
            .map(|(b, tat)| state(b, &decide(&b.quota, tat, now, 0)))
            .collect()
    }

    /// Adjusts what a request cost once its real cost is known: `delta > 0`
    /// spends more tokens (even past empty: the key owes them, up to one
    /// window beyond its burst), `delta < 0` gives tokens back.
    pub fn charge(
        &mut self,
        key: &str,
        tier: &[Bucket; 2],
        global: Option<&Bucket>,
        now: u64,
        delta: i64,
    ) {
        if delta == 0 {
            return;
        }
        let stored = self.keys.get(key).copied();
        if stored.is_none() && delta < 0 {
            return;
        }
        let mut tats = stored.unwrap_or([None, None]);
        for (tat, bucket) in tats.iter_mut().zip(tier) {
            *tat = Some(adjust(bucket, *tat, now, delta));
        }
        if stored.is_none() {
            self.make_room(now);
        }
        self.keys.insert(key.to_string(), tats);
        if let Some(g) = global {
            self.global = Some(adjust(g, self.global, now, delta));
        }
    }

    /// Drops the keys whose buckets are full again; returns how many.
    pub fn sweep(&mut self, now: u64) -> usize {
        let before = self.keys.len();
        self.keys
            .retain(|_, tats| tats.iter().any(|t| t.is_some_and(|t| t > now)));
        before - self.keys.len()
    }

    /// Frees a slot for a new key; returns how many keys were evicted (full
    /// buckets dropped by the sweep are not counted: nothing is lost).
    fn make_room(&mut self, now: u64) -> usize {
        if self.keys.len() < self.max_keys {
            return 0;
        }
        self.sweep(now);
        if self.keys.len() < self.max_keys {
            return 0;
        }
        let mut horizons: Vec<u64> = self
            .keys
            .values()
            .map(|tats| tats.iter().flatten().copied().max().unwrap_or(0))
            .collect();
        if horizons.is_empty() {
            return 0;
        }
        let n = (self.max_keys / 8).clamp(1, horizons.len());
        let (_, cutoff, _) = horizons.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        let mut budget = n;
        let before = self.keys.len();
        self.keys.retain(|_, tats| {
            let horizon = tats.iter().flatten().copied().max().unwrap_or(0);
            if budget > 0 && horizon <= cutoff {
                budget -= 1;
                false
            } else {
                true
            }
        });
        before - self.keys.len()
    }
}

/// A bucket's TAT after a cost correction of `delta` tokens (see
/// [`Limiter::charge`]).
pub fn adjust(bucket: &Bucket, tat: Option<u64>, now: u64, delta: i64) -> u64 {
    let quota = &bucket.quota;
    let tat = tat.unwrap_or(now).max(now);
    let tokens = delta.unsigned_abs();
    if delta < 0 {
        return refund(quota, tat, now, tokens);
    }
    let most = now
        .saturating_add(quota.delay_tolerance())
        .saturating_add(bucket.window_us);
    tat.saturating_add(saturating_mul(quota.emission_interval(), tokens))
        .min(most)
}

#[cfg(test)]
mod tests {
    use super::super::SECOND_US;
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const NOW: u64 = 1_000_000 * SECOND_US;

    fn free() -> [Bucket; 2] {
        Bucket::tier(10, 100, None).unwrap()
    }

    #[test]
    fn eleventh_request_in_a_minute_is_refused() {
        let mut limiter = Limiter::new(100);
        for i in 0..10 {
            let v = limiter.check("a", &free(), None, NOW + i, 1);
            assert!(v.allowed, "request {i}");
            assert_eq!(v.buckets[0].remaining, 9 - i);
        }
        let v = limiter.check("a", &free(), None, NOW + 10, 1);
        assert!(!v.allowed);
        assert_eq!(v.buckets.len(), 2);
        assert!(!v.buckets[0].allowed && v.buckets[1].allowed);
        assert_eq!(v.buckets[0].remaining, 0);
        assert_eq!(v.buckets[1].remaining, 90);
        // The first token was spent at NOW: back 6 s later.
        assert_eq!(v.retry_after_ms(), 6_000);
        assert!(limiter.check("b", &free(), None, NOW, 1).allowed);
    }

    #[test]
    fn global_bucket_is_shared_by_keys() {
        let global = Bucket::global(3, 60, None).unwrap();
        let mut limiter = Limiter::new(100);
        for key in ["a", "b", "c"] {
            assert!(limiter.check(key, &free(), Some(&global), NOW, 1).allowed);
        }
        let v = limiter.check("d", &free(), Some(&global), NOW, 1);
        assert!(!v.allowed);
        assert_eq!(v.buckets[2].name, "global");
        assert!(!v.buckets[2].allowed);
        assert!(v.buckets[0].allowed, "the key's own buckets had room");
        assert_eq!(v.buckets[0].remaining, 10, "and spent nothing");
    }

    #[test]
    fn cost_above_burst_never_passes() {
        let mut limiter = Limiter::new(10);
        let v = limiter.check("a", &free(), None, NOW, 11);
        assert!(!v.allowed);
        assert_eq!(v.retry_after_ms(), u64::MAX);
        assert!(limiter.is_empty());
    }

    #[test]
    fn charge_spends_past_empty_and_refunds() {
        let mut limiter = Limiter::new(10);
        limiter.check("a", &free(), None, NOW, 1);
        limiter.charge("a", &free(), None, NOW, 14);
        let state = limiter.peek("a", &free(), None, NOW);
        assert_eq!(state[0].remaining, 0);
        // 15 tokens spent from a 10-token bucket: 5 owed, 6 s each, plus 6 s.
        let v = limiter.check("a", &free(), None, NOW, 1);
        assert_eq!(v.retry_after_ms(), 36_000);
        limiter.charge("a", &free(), None, NOW, -12);
        assert_eq!(limiter.peek("a", &free(), None, NOW)[0].remaining, 7);
        // A refund for a key never seen changes nothing.
        limiter.charge("z", &free(), None, NOW, -3);
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn debt_is_capped_at_one_window() {
        let mut limiter = Limiter::new(10);
        limiter.charge("a", &free(), None, NOW, i64::MAX);
        let state = limiter.peek("a", &free(), None, NOW);
        assert_eq!(state[0].reset_ms, 120_000);
    }

    #[test]
    fn full_buckets_are_swept_and_the_table_stays_bounded() {
        let mut limiter = Limiter::new(16);
        for i in 0..16 {
            limiter.check(&format!("k{i}"), &free(), None, NOW, 1);
        }
        assert_eq!(limiter.len(), 16);
        // An hour later every bucket is full: the sweep frees room, no eviction.
        let later = NOW + 3_600 * SECOND_US;
        let v = limiter.check("new", &free(), None, later, 1);
        assert_eq!(v.evicted, 0);
        assert_eq!(limiter.len(), 1);
        for i in 0..15 {
            limiter.check(&format!("j{i}"), &free(), None, later + i, 1);
        }
        assert_eq!(limiter.len(), 16);
        // Full of live keys: the two closest to full go.
        let v = limiter.check("newer", &free(), None, later + 100, 1);
        assert_eq!(v.evicted, 2);
        assert_eq!(limiter.len(), 15);
        assert_eq!(
            limiter.peek("new", &free(), None, later + 100)[0].remaining,
            10
        );
    }
}
