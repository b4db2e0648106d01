//! GCRA (generic cell rate algorithm), the token-bucket equivalent that keeps
//! one number per key: the theoretical arrival time (TAT) of the next request.
//!
//! A quota of `limit` tokens per `period` emits one token every emission
//! interval `T = period / limit`. The bucket holds at most `burst` tokens, so
//! the delay tolerance is `tau = T * burst`: a request costing `n` tokens is
//! admitted when `max(TAT, now) + n*T - tau <= now`, and then moves the TAT to
//! `max(TAT, now) + n*T`. A refused request leaves the TAT alone.
//!
//! Times are plain `u64` ticks in a unit the caller picks (the state service's
//! Lua script uses microseconds, with exactly this arithmetic), so the module
//! stays free of clocks and I/O.

use crate::mul::saturating_mul;

/// `limit` tokens per `period` ticks, at most `burst` of them at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: u64,
    period: u64,
    burst: u64,
}

impl Quota {
    /// `None` when the quota is empty or finer than one tick per token.
    pub fn new(limit: u64, period: u64, burst: u64) -> Option<Quota> {
        if limit == 0 || burst == 0 || period < limit {
            return None;
        }
        // tau must fit in u64 with room for now + tau.
        (period / limit).checked_mul(burst)?.checked_mul(2)?;
        Some(Quota {
            limit,
            period,
            burst,
        })
    }

    /// A quota whose burst is its whole limit (the bucket starts full).
    pub fn per_period(limit: u64, period: u64) -> Option<Quota> {
        Quota::new(limit, period, limit)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn period(&self) -> u64 {
        self.period
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Ticks between two tokens (`T`).
    pub fn emission_interval(&self) -> u64 {
        self.period / self.limit
    }

    /// How far the TAT may run ahead of now (`tau = T * burst`).
    pub fn delay_tolerance(&self) -> u64 {
        saturating_mul(self.emission_interval(), self.burst)
    }
}

/// The outcome of one request against one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The TAT to store (unchanged when refused).
    pub tat: u64,
    /// Tokens that could be spent right after this decision.
    pub remaining: u64,
    /// Ticks until the bucket is full again.
    pub reset_after: u64,
    /// Ticks until the same request would be admitted: `Some(0)` when it was,
    /// `None` when it never can be (its cost exceeds the burst).
    pub retry_after: Option<u64>,
}

/// Decides a request costing `cost` tokens at `now`, given the stored TAT
/// (`None` for a key never seen, i.e. a full bucket). A cost of 0 only reads.
pub fn decide(quota: &Quota, stored_tat: Option<u64>, now: u64, cost: u64) -> Decision {
    let t = quota.emission_interval();
    let tau = quota.delay_tolerance();
    let tat = stored_tat.map_or(now, |s| s.max(now));
    let state_after = |tat_after: u64| {
        let horizon = now.saturating_add(tau);
        (
            horizon.saturating_sub(tat_after) / t,
            tat_after.saturating_sub(now),
        )
    };
    if cost > quota.burst {
        let (remaining, reset_after) = state_after(tat);
        return Decision {
            allowed: false,
            tat,
            remaining,
            reset_after,
            retry_after: None,
        };
    }
    let new_tat = tat.saturating_add(saturating_mul(t, cost));
    let allow_at = new_tat.saturating_sub(tau);
    if allow_at <= now {
        let (remaining, reset_after) = state_after(new_tat);
        Decision {
            allowed: true,
            tat: new_tat,
            remaining,
            reset_after,
            retry_after: Some(0),
        }
    } else {
        let (remaining, reset_after) = state_after(tat);
        Decision {
            allowed: false,
            tat,
            remaining,
            reset_after,
            retry_after: Some(allow_at - now),
        }
    }
}

/// Decides one request against several buckets at once: admitted only when
/// every bucket admits it, and then every TAT moves; otherwise none does.
pub fn decide_all(buckets: &[(Quota, Option<u64>)], now: u64, cost: u64) -> Vec<Decision> {
    let decisions: Vec<Decision> = buckets
        .iter()
        .map(|(quota, tat)| decide(quota, *tat, now, cost))
        .collect();
    if decisions.iter().all(|d| d.allowed) {
        return decisions;
    }
    // Refused: report each bucket as it stands, without consuming anything.
    buckets
        .iter()
        .zip(decisions)
        .map(|((quota, tat), d)| {
            if d.allowed {
                let peek = decide(quota, *tat, now, 0);
                Decision {
                    allowed: true,
                    tat: peek.tat,
                    remaining: peek.remaining,
                    reset_after: peek.reset_after,
                    retry_after: Some(0),
                }
            } else {
                d
            }
        })
        .collect()
}

/// Tokens a lease of up to `want` gets from these buckets at `now`: as many
/// as every bucket still holds (meshguard-state's lease rule, in
/// `ratelimit.lua`); then taken with [`decide_all`].
pub fn grantable(buckets: &[(Quota, Option<u64>)], now: u64, want: u64) -> u64 {
    buckets
        .iter()
        .map(|(quota, tat)| decide(quota, *tat, now, 0).remaining)
        .fold(want, u64::min)
}

/// Gives `tokens` back to a bucket (unused lease tokens): the TAT moves back,
/// never before `now` (a bucket cannot be fuller than full).
pub fn refund(quota: &Quota, stored_tat: u64, now: u64, tokens: u64) -> u64 {
    stored_tat
        .saturating_sub(saturating_mul(quota.emission_interval(), tokens))
        .max(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const SECOND: u64 = 1_000_000;
    const MINUTE: u64 = 60 * SECOND;

    fn free_minute() -> Quota {
        Quota::per_period(10, MINUTE).unwrap()
    }

    #[test]
    fn quota_math() {
        let q = free_minute();
        assert_eq!(q.emission_interval(), 6 * SECOND);
        assert_eq!(q.delay_tolerance(), MINUTE);
        let q = Quota::new(10_000, SECOND, 10_000).unwrap();
        assert_eq!(q.emission_interval(), 100);
        assert!(Quota::new(0, MINUTE, 1).is_none());
        assert!(Quota::new(10, MINUTE, 0).is_none());
        assert!(Quota::new(10, 5, 10).is_none());
        assert!(Quota::new(1, u64::MAX, 3).is_none());
    }

    #[test]
    fn a_full_bucket_admits_its_burst_then_refuses() {
        let q = free_minute();
        let now = 1_000 * SECOND;
        let mut tat = None;
        for i in 0..10 {
            let d = decide(&q, tat, now, 1);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 9 - i);
            assert_eq!(d.reset_after, (i + 1) * 6 * SECOND);
            tat = Some(d.tat);
        }
        let d = decide(&q, tat, now, 1);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after, Some(6 * SECOND));
        assert_eq!(d.tat, tat.unwrap(), "a refusal consumes nothing");
    }

    #[test]
    fn tokens_come_back_at_the_emission_interval() {
        let q = free_minute();
        let now = 1_000 * SECOND;
        let mut tat = None;
        for _ in 0..10 {
            tat = Some(decide(&q, tat, now, 1).tat);
        }
        assert!(!decide(&q, tat, now + 6 * SECOND - 1, 1).allowed);
        let d = decide(&q, tat, now + 6 * SECOND, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        // A long pause refills to the burst, never beyond.
        let d = decide(&q, Some(d.tat), now + 3_600 * SECOND, 0);
        assert_eq!(d.remaining, 10);
        assert_eq!(d.reset_after, 0);
    }

    #[test]
    fn cost_spends_several_tokens_at_once() {
        let q = free_minute();
        let now = 50 * MINUTE;
        let d = decide(&q, None, now, 4);
        assert!(d.allowed);
        assert_eq!(d.remaining, 6);
        let d = decide(&q, Some(d.tat), now, 7);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 6);
        assert_eq!(d.retry_after, Some(6 * SECOND));
        let d = decide(&q, Some(d.tat), now, 6);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn cost_above_the_burst_never_passes() {
        let q = Quota::new(10, MINUTE, 5).unwrap();
        let d = decide(&q, None, MINUTE, 6);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, None);
        assert_eq!(d.remaining, 5);
    }

    #[test]
    fn burst_smaller_than_limit_spreads_the_window() {
        // 60/min but only 5 at once: after the burst, one per second.
        let q = Quota::new(60, MINUTE, 5).unwrap();
        let now = 10 * MINUTE;
        let mut tat = None;
        let mut admitted = 0;
        for _ in 0..20 {
            let d = decide(&q, tat, now, 1);
            if d.allowed {
                admitted += 1;
                tat = Some(d.tat);
            }
        }
        assert_eq!(admitted, 5);
        assert!(decide(&q, tat, now + SECOND, 1).allowed);
    }

    #[test]
    fn never_more_than_burst_plus_rate_over_any_span() {
        let q = Quota::new(30, MINUTE, 10).unwrap();
        let t = q.emission_interval();
        let start = 7 * MINUTE;
        let mut tat = None;
        let mut admitted_at = Vec::new();
        // A request every 100 ms for 5 minutes.
        let mut now = start;
        while now < start + 5 * MINUTE {
            let d = decide(&q, tat, now, 1);
            if d.allowed {
                admitted_at.push(now);
                tat = Some(d.tat);
            }
            now += SECOND / 10;
        }
        for (i, &from) in admitted_at.iter().enumerate() {
            for (j, &to) in admitted_at.iter().enumerate().skip(i) {
                let allowed = q.burst() + (to - from) / t;
                assert!(
                    (j - i + 1) as u64 <= allowed,
                    "{} in {} ticks",
                    j - i + 1,
                    to - from
                );
            }
        }
        assert_eq!(admitted_at.len() as u64, 10 + 5 * 30 - 1);
    }

    #[test]
    fn all_or_nothing_over_several_buckets() {
        let minute = free_minute();
        let hour = Quota::per_period(100, 60 * MINUTE).unwrap();
        let now = 100 * MINUTE;
        let hour_tat = now + 99 * 36 * SECOND; // 1 token left in the hour
        let d = decide_all(&[(minute, None), (hour, Some(hour_tat))], now, 2);
        assert!(!d[1].allowed);
        assert!(d[0].allowed, "the minute bucket would admit it");
        assert_eq!(d[0].tat, now, "but consumes nothing");
        assert_eq!(d[0].remaining, 10);
        assert_eq!(d[1].tat, hour_tat);
        let d = decide_all(&[(minute, None), (hour, Some(hour_tat))], now, 1);
        assert!(d.iter().all(|d| d.allowed));
        assert_eq!(d[0].remaining, 9);
        assert_eq!(d[1].remaining, 0);
    }

    #[test]
    fn refund_moves_the_tat_back_but_not_past_now() {
        let q = free_minute();
        let now = 3 * MINUTE;
        let d = decide(&q, None, now, 5);
        assert_eq!(refund(&q, d.tat, now, 2), now + 3 * 6 * SECOND);
        assert_eq!(refund(&q, d.tat, now, 50), now);
    }
}
