//! Rate-limit policy for the rate-limit plugin: tier and global buckets as
//! GCRA quotas in microseconds, route costs, the bucket state reported to
//! clients, a per-process bucket table, client keys and the IETF headers.

pub mod client;
pub mod headers;
pub mod limiter;
pub mod reserve;

use crate::gcra::Quota;
use std::borrow::Cow;

pub const SECOND_US: u64 = 1_000_000;
pub const MINUTE_US: u64 = 60 * SECOND_US;
pub const HOUR_US: u64 = 60 * MINUTE_US;

/// One named bucket: a quota and the window it is advertised with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// `minute`, `hour` or `global`.
    pub name: &'static str,
    pub quota: Quota,
    pub window_us: u64,
}

impl Bucket {
    /// A tier's minute and hour buckets; `burst` is how many tokens the minute
    /// bucket holds at once (default: the whole minute). `None` when a limit
    /// is 0 or finer than one token per microsecond.
    pub fn tier(per_minute: u64, per_hour: u64, burst: Option<u64>) -> Option<[Bucket; 2]> {
        Some([
            Bucket {
                name: "minute",
                quota: Quota::new(per_minute, MINUTE_US, burst.unwrap_or(per_minute))?,
                window_us: MINUTE_US,
            },
            Bucket {
                name: "hour",
                quota: Quota::per_period(per_hour, HOUR_US)?,
                window_us: HOUR_US,
            },
        ])
    }

    /// The bucket every key shares: `tokens` per `per_seconds`.
    pub fn global(tokens: u64, per_seconds: u64, burst: Option<u64>) -> Option<Bucket> {
        let window_us = per_seconds.checked_mul(SECOND_US)?;
        Some(Bucket {
            name: "global",
            quota: Quota::new(tokens, window_us, burst.unwrap_or(tokens))?,
            window_us,
        })
    }
}

/// A bucket after a decision, in milliseconds (the shape of the state
/// service's `BucketResult`, so both sources render the same headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketState {
    /// A configured bucket's name, or the one meshguard-state reported.
    pub name: Cow<'static, str>,
    /// Tokens per window (`q`).
    pub limit: u64,
    /// Window length (`w`).
    pub window_ms: u64,
    /// Tokens that can be spent now (`r`).
    pub remaining: u64,
    /// Until the bucket is full again (`t` when admitted).
    pub reset_ms: u64,
    /// Until this bucket admits the request: 0 when it does, `u64::MAX` never.
    pub retry_after_ms: u64,
    pub allowed: bool,
}

/// A bucket name as reported by meshguard-state: the configured names are
/// shared, not copied (bucket states are cloned on every request).
pub fn bucket_name(name: String) -> Cow<'static, str> {
    match name.as_str() {
        "minute" => Cow::Borrowed("minute"),
        "hour" => Cow::Borrowed("hour"),
        "global" => Cow::Borrowed("global"),
        _ => Cow::Owned(name),
    }
}

/// Route-prefix costs: the longest matching prefix decides, else 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Costs {
    /// Longest prefix first.
    by_prefix: Vec<(String, u64)>,
}

impl Costs {
    pub fn new(mut by_prefix: Vec<(String, u64)>) -> Costs {
        by_prefix.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Costs { by_prefix }
    }

    /// The cost of a request path (its query string ignored).
    pub fn of(&self, path: &str) -> u64 {
        let path = path.split('?').next().unwrap_or(path);
        self.by_prefix
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map_or(1, |(_, cost)| *cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn tier_buckets_follow_the_limits() {
        let [minute, hour] = Bucket::tier(10, 100, None).unwrap();
        assert_eq!(minute.quota.emission_interval(), 6 * SECOND_US);
        assert_eq!(minute.quota.burst(), 10);
        assert_eq!(hour.quota.limit(), 100);
        let [minute, _] = Bucket::tier(60, 1000, Some(5)).unwrap();
        assert_eq!(minute.quota.burst(), 5);
        assert!(Bucket::tier(0, 100, None).is_none());
        assert!(Bucket::tier(10, 100, Some(0)).is_none());
    }

    #[test]
    fn global_bucket_window() {
        let g = Bucket::global(10_000, 1, None).unwrap();
        assert_eq!(g.quota.emission_interval(), 100);
        assert_eq!(g.window_us, SECOND_US);
        assert!(Bucket::global(10, u64::MAX, None).is_none());
        assert!(Bucket::global(2_000_000, 1, None).is_none());
    }

    #[test]
    fn longest_prefix_wins_and_query_is_ignored() {
        let costs = Costs::new(vec![("/api/".into(), 2), ("/api/ml/".into(), 5)]);
        assert_eq!(costs.of("/api/ml/predict?x=/api/"), 5);
        assert_eq!(costs.of("/api/nlp/x"), 2);
        assert_eq!(costs.of("/healthz"), 1);
        assert_eq!(costs.of("/api?ml/"), 1);
    }
}
