//! Tokens one worker took from buckets it shares with other workers ahead of
//! the requests that will spend them, so that most requests are decided
//! without touching the shared buckets.
//!
//! Taking `n` tokens moves each shared TAT by `n * T`, exactly as `n`
//! requests of cost 1 would: the shared buckets never hand out more than
//! their quota. What a worker holds and has not spent is only unavailable
//! to the other workers until it is spent or given back, at most the batch
//! size per key and worker, for at most the reserve's lifetime.
//!
//! A worker reports a key's buckets as if its unspent tokens were still in
//! them (`view`): with one worker the `RateLimit` headers are the same as
//! without reserves.

use crate::gcra::{decide, Decision, Quota};
use crate::mul::saturating_mul;

/// A batch is at most this fraction of a bucket's burst, so a small bucket
/// (a free tier's 10 per minute) is never batched at all.
const BURST_FRACTION: u64 = 16;

/// What one worker holds of `N` buckets it shares (a key's minute and hour
/// buckets, or the global bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserve<const N: usize> {
    pub quotas: [Quota; N],
    /// The shared TATs right after this worker's last take.
    pub tats: [u64; N],
    /// Tokens taken and not yet spent.
    pub left: u64,
    /// When the unspent tokens go back to the shared buckets (µs).
    pub expires: u64,
}

impl<const N: usize> Reserve<N> {
    /// Spends `cost` tokens when the reserve holds them and has not expired.
    pub fn spend(&mut self, cost: u64, now: u64) -> bool {
        if now >= self.expires || self.left < cost {
            return false;
        }
        self.left -= cost;
        true
    }

    /// The buckets as they stand for this worker: the shared TATs with its
    /// unspent tokens given back.
    pub fn view(&self, now: u64) -> [Decision; N] {
        // `from_fn` calls with i < N, the length of both arrays.
        #[allow(clippy::indexing_slicing)]
        std::array::from_fn(|i| {
            let quota = &self.quotas[i];
            let tat =
                self.tats[i].saturating_sub(saturating_mul(quota.emission_interval(), self.left));
            decide(quota, Some(tat), now, 0)
        })
    }
}

/// Tokens to take beyond a request's own, given the buckets' decisions for
/// that request: at most `max_batch` and a sixteenth of the smallest burst,
/// and never more than every bucket still has.
pub fn extra_tokens(quotas: &[Quota], admitted: &[Decision], max_batch: u64) -> u64 {
    let batch = quotas
        .iter()
        .map(|q| q.burst() / BURST_FRACTION)
        .min()
        .unwrap_or(0)
        .min(max_batch);
    let room = admitted.iter().map(|d| d.remaining).min().unwrap_or(0);
    batch.min(room)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcra::decide_all;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const SECOND: u64 = 1_000_000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;

    fn quotas() -> [Quota; 2] {
        [
            Quota::per_period(600, MINUTE).unwrap(),
            Quota::per_period(6000, HOUR).unwrap(),
        ]
    }

    /// Takes `cost + extra` from buckets at `tats` the way a worker does.
    fn take(tats: [Option<u64>; 2], now: u64, cost: u64, max_batch: u64) -> Reserve<2> {
        let q = quotas();
        let pairs = [(q[0], tats[0]), (q[1], tats[1])];
        let admitted = decide_all(&pairs, now, cost);
        let extra = extra_tokens(&q, &admitted, max_batch);
        let after = decide_all(&pairs, now, cost + extra);
        Reserve {
            quotas: q,
            tats: [after[0].tat, after[1].tat],
            left: extra,
            expires: now + SECOND,
        }
    }

    #[test]
    fn the_view_matches_spending_one_request_at_a_time() {
        let now = 5 * HOUR;
        let mut reserve = take([None, None], now, 1, 32);
        assert_eq!(
            reserve.left, 32,
            "600 per minute: a sixteenth is 37, capped at 32"
        );
        let q = quotas();
        let mut unbatched: [Option<u64>; 2] = [None, None];
        for i in 0..20u64 {
            let at = now + i * 1_000;
            if i > 0 {
                assert!(reserve.spend(1, at));
            }
            let one = decide_all(&[(q[0], unbatched[0]), (q[1], unbatched[1])], at, 1);
            unbatched = [Some(one[0].tat), Some(one[1].tat)];
            let view = reserve.view(at);
            for b in 0..2 {
                assert_eq!(
                    view[b].remaining, one[b].remaining,
                    "request {i}, bucket {b}"
                );
                assert_eq!(
                    view[b].reset_after, one[b].reset_after,
                    "request {i}, bucket {b}"
                );
                assert!(view[b].allowed);
            }
        }
    }

    #[test]
    fn the_shared_buckets_are_charged_for_the_whole_batch() {
        let now = 5 * HOUR;
        let reserve = take([None, None], now, 3, 8);
        assert_eq!(reserve.left, 8);
        let shared = decide(&quotas()[0], Some(reserve.tats[0]), now, 0);
        assert_eq!(shared.remaining, 600 - 11);
        assert_eq!(reserve.view(now)[0].remaining, 600 - 3);
    }

    #[test]
    fn a_reserve_spends_only_what_it_holds_and_only_until_it_expires() {
        let now = 5 * HOUR;
        let mut reserve = take([None, None], now, 1, 4);
        assert!(!reserve.spend(5, now));
        assert!(reserve.spend(4, now));
        assert!(!reserve.spend(1, now));
        let mut reserve = take([None, None], now, 1, 4);
        assert!(!reserve.spend(1, now + SECOND));
        assert_eq!(reserve.left, 4);
    }

    #[test]
    fn small_buckets_and_nearly_empty_ones_are_not_batched() {
        let free = [
            Quota::per_period(10, MINUTE).unwrap(),
            Quota::per_period(100, HOUR).unwrap(),
        ];
        let admitted = decide_all(&[(free[0], None), (free[1], None)], 0, 1);
        assert_eq!(extra_tokens(&free, &admitted, 32), 0);

        let q = quotas();
        let now = 5 * HOUR;
        // 595 of the minute's 600 tokens spent: 5 left before this request.
        let spent = decide(&q[0], None, now, 595).tat;
        let admitted = decide_all(&[(q[0], Some(spent)), (q[1], None)], now, 1);
        assert_eq!(extra_tokens(&q, &admitted, 32), 4);
        assert_eq!(extra_tokens(&q, &admitted, 0), 0, "batching off");
    }
}
