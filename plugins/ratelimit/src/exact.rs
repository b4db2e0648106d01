//! `exact` mode: every request asks meshguard-state, whose one atomic Lua
//! call over the key's and the global buckets in Redis decides it. Also how
//! after-response cost differences reach those buckets (in `exact`, and in
//! `hybrid` for what a lease no longer covers), summed per key on a tick.

use crate::identity::Identity;
use crate::leases::bucket_state;
use crate::runtime::Charge;
use meshguard_api::lease::{LeaseRequest, RefundRequest};
use meshguard_api::limits::MAX_COST;
use meshguard_api::ratelimit::{
    RateLimitRequest, RateLimitResponse, CHECK_PATH, LEASE_PATH, REFUND_PATH,
};
use meshguard_policy::ratelimit::BucketState;
use std::collections::BTreeMap;

/// How often after-response charges are sent in `exact` mode.
pub const CHARGE_INTERVAL_MS: u64 = 200;

/// The check call for a request of `cost` tokens: its path and body.
pub fn check_call(
    identity: &Identity,
    cost: u64,
    shadow: bool,
) -> (&'static str, serde_json::Result<Vec<u8>>) {
    let body = serde_json::to_vec(&RateLimitRequest {
        key: identity.key.clone(),
        tier: Some(identity.tier.clone()),
        cost: Some(cost),
        path: None,
        shadow,
    });
    (CHECK_PATH, body)
}

/// The service's decision: the buckets, and whether they refused.
pub fn decided(body: &[u8]) -> Option<(Vec<BucketState>, bool)> {
    let reply = serde_json::from_slice::<RateLimitResponse>(body).ok()?;
    let buckets = reply.buckets.into_iter().map(bucket_state).collect();
    Some((buckets, reply.limited))
}

/// The calls that settle `charges`, summed per key: extra tokens as a lease
/// never reported back (the service keeps as many as the buckets hold),
/// unused ones through the refund endpoint. `Err`: a body that would not
/// serialize (counted as failed).
pub fn charge_calls(
    charges: impl IntoIterator<Item = Charge>,
) -> Vec<Result<(&'static str, Vec<u8>), ()>> {
    let mut merged: BTreeMap<(String, String), i64> = BTreeMap::new();
    for c in charges {
        let delta = merged.entry((c.key, c.tier)).or_default();
        *delta = delta.saturating_add(c.delta);
    }
    let mut calls = Vec::new();
    for ((key, tier), delta) in merged {
        let tokens = delta.unsigned_abs().min(MAX_COST);
        let call = match delta {
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
        calls.push(match call {
            (path, Ok(body)) => Ok((path, body)),
            (_, Err(_)) => Err(()),
        });
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_summed_per_key_and_split_into_leases_and_refunds() {
        let charge = |key: &str, delta| Charge {
            key: key.into(),
            tier: "free".into(),
            delta,
        };
        let calls = charge_calls([
            charge("a", 3),
            charge("b", -2),
            charge("a", 2),
            charge("c", 1),
            charge("c", -1),
        ]);
        let paths: Vec<_> = calls.iter().map(|c| c.as_ref().map(|(p, _)| *p)).collect();
        assert_eq!(paths, [Ok(LEASE_PATH), Ok(REFUND_PATH)]);
        let body = |i: usize| {
            serde_json::from_slice::<serde_json::Value>(&calls[i].as_ref().unwrap().1).unwrap()
        };
        assert_eq!(body(0)["tokens"], 5);
        assert_eq!(body(1)["tokens"], 2);
    }
}
