//! `hybrid` mode: requests spend quota leased from meshguard-state
//! ([`leases`]), with no hop while a lease has tokens; a request that finds
//! its key's leases empty waits for one lease call. On the root's tick busy
//! keys are topped up and the usage of retired leases is reported, which
//! gives their unspent tokens back.

use crate::identity::Identity;
use crate::leases::{Retired, Spend};
use crate::runtime::{Charge, Runtime, Tier};
use meshguard_api::lease::{LeaseRequest, LeaseResponse, UsageReport, UsageResponse};
use meshguard_api::ratelimit::LEASE_PATH;
use meshguard_policy::ratelimit::BucketState;
use std::collections::HashSet;

/// Reports sent per tick at most (the rest wait for the next tick).
const MAX_CALLS_PER_TICK: usize = 256;

/// Spends a request's `cost` from the key's leases, arrived at `now_ns`.
pub fn spend(rt: &Runtime, identity: &Identity, cost: u64, now_ns: u64) -> Spend {
    rt.leases
        .borrow_mut()
        .spend(&identity.key, cost, now_ns, rt.lease_margin_ns())
}

/// The lease call a request whose key has no tokens left waits for.
pub fn lease_call(
    rt: &Runtime,
    tier: &Tier,
    identity: &Identity,
    cost: u64,
) -> (&'static str, serde_json::Result<Vec<u8>>) {
    let body = serde_json::to_vec(&LeaseRequest {
        key: identity.key.clone(),
        tier: Some(identity.tier.clone()),
        tokens: rt.lease_size(tier, cost),
    });
    (LEASE_PATH, body)
}

/// Installs the lease in `body` and spends the waiting request's `cost`
/// from it: the buckets, and whether it passed. `None`: not a lease.
pub fn leased(
    rt: &Runtime,
    key: &str,
    body: &[u8],
    cost: u64,
    now_ns: u64,
) -> Option<(Vec<BucketState>, bool)> {
    let reply = serde_json::from_slice::<LeaseResponse>(body).ok()?;
    rt.stats.leases_taken.inc();
    rt.stats.lease_tokens_granted.add(reply.granted);
    Some(rt.leases.borrow_mut().install(key, reply, cost, now_ns))
}

/// The top-up calls due on this tick: keys busy and low on their newest
/// lease, except those in `pending`.
pub fn top_ups(rt: &Runtime, now_ns: u64, pending: &HashSet<String>) -> Vec<(String, Vec<u8>)> {
    let hybrid = &rt.config.hybrid;
    let refresh = rt.refresh_ns();
    let busy = rt.leases.borrow_mut().tick(
        now_ns,
        now_ns.saturating_sub(refresh.saturating_mul(2)),
        rt.lease_margin_ns(),
        hybrid.low_watermark,
    );
    let mut calls = Vec::new();
    for (key, tier) in busy {
        if pending.contains(&key) {
            continue;
        }
        let Some(tokens) = rt.tier(&tier).map(|t| rt.lease_size(t, 1)) else {
            continue;
        };
        let request = LeaseRequest {
            key: key.clone(),
            tier: Some(tier),
            tokens,
        };
        if let Ok(body) = serde_json::to_vec(&request) {
            calls.push((key, body));
        }
    }
    calls
}

/// A top-up's answer: the lease installed when it is one.
pub fn topped_up(rt: &Runtime, key: &str, ok: bool, body: &[u8], now_ns: u64) {
    if ok {
        let _ = leased(rt, key, body, 0, now_ns);
    }
}

/// The usage reports due on this tick, one per retired lease with tokens
/// left (sent to `USAGE_PATH`). What a retired lease owes beyond its
/// grant becomes a charge.
pub fn usage_reports(rt: &Runtime) -> Vec<(Retired, Vec<u8>)> {
    let retired = rt.leases.borrow_mut().take_retired(MAX_CALLS_PER_TICK);
    let mut reports = Vec::new();
    for r in retired {
        if r.lease.owed() > 0 {
            rt.charges.borrow_mut().push(Charge {
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
        if let Ok(body) = serde_json::to_vec(&report) {
            reports.push((r, body));
        }
    }
    reports
}

/// A usage report's answer; a failed report is retried on a later tick
/// while the lease has not expired.
pub fn reported(rt: &Runtime, retired: Retired, ok: bool, body: &[u8], now_ns: u64) {
    match serde_json::from_slice::<UsageResponse>(body) {
        Ok(reply) if ok => {
            rt.stats.leases_settled.inc();
            rt.stats.lease_tokens_refunded.add(reply.refunded);
        }
        _ => {
            rt.leases.borrow_mut().requeue(retired, now_ns);
        }
    }
}

/// A report that could not be sent waits for the next tick.
pub fn unsent(rt: &Runtime, retired: Retired, now_ns: u64) {
    rt.leases.borrow_mut().requeue(retired, now_ns);
}
