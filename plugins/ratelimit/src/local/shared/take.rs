//! Taking tokens for a request (and a batch ahead into this worker's
//! reserve) from the key's slot and from the global bucket.

use super::super::store::{update, Step, Store};
use super::slot::{encode, parse_tat, stored};
use super::{Reserves, SharedBuckets, GLOBAL, RESERVE_LIFETIME_US};
use meshguard_policy::gcra::{decide, decide_all, Decision};
use meshguard_policy::ratelimit::reserve::{extra_tokens, Reserve};
use meshguard_policy::ratelimit::Bucket;

/// What one reading of a key's slot allows.
enum Seen {
    Refused([Decision; 2]),
    Taken(Take),
    Unreadable,
}

/// Tokens taken from a key's slot for a request (and a batch ahead).
struct Take {
    /// The request's own decisions.
    admitted: [Decision; 2],
    /// The slot's buckets after the take.
    after: [Decision; 2],
    /// Tokens this worker then holds unspent.
    left: u64,
    /// Whether another key with buckets still owing tokens held the slot.
    other_live: bool,
    /// Whether the slot was written (the reserve did not cover the cost).
    wrote: bool,
}

impl<S: Store> SharedBuckets<S> {
    /// Spends `cost` from the key's reserve, or takes it (and a batch ahead)
    /// from the key's shared slot. `Ok`: the key's buckets as this worker
    /// sees them and whether another live key was evicted from the slot;
    /// `Err`: the refusing decisions.
    pub(super) fn take_for_key(
        &self,
        reserves: &mut Reserves,
        key: &str,
        tier: &[Bucket; 2],
        now: u64,
        cost: u64,
    ) -> Result<([Decision; 2], usize), [Decision; 2]> {
        if let Some(reserve) = reserves.keys.get_mut(key) {
            if reserve.spend(cost, now) {
                return Ok((reserve.view(now), 0));
            }
        }
        let quotas = [tier[0].quota, tier[1].quota];
        let slot = self.slot(key);
        let taken = update(&self.store, &slot, |raw, cas| {
            let (tats, other_live, ours) = stored(raw, key, now);
            // Tokens still held are in the slot only while it is this key's.
            let held = if ours {
                reserves.keys.get(key).map_or(0, |r| r.left)
            } else {
                0
            };
            let need = cost.saturating_sub(held);
            let pairs = [(quotas[0], tats[0]), (quotas[1], tats[1])];
            let decisions = decide_all(&pairs, now, need);
            let (Some(minute), Some(hour)) = (decisions.first(), decisions.get(1)) else {
                return Step::Done(Seen::Unreadable);
            };
            if !(minute.allowed && hour.allowed) {
                return Step::Done(Seen::Refused([*minute, *hour]));
            }
            let admitted = [*minute, *hour];
            let has_room =
                reserves.keys.contains_key(key) || reserves.keys.len() < self.max_reserves;
            // A slot's first write cannot be compare-and-swap (a new entry
            // has no version): a race there loses one writer's take, so the
            // first take is the request's alone.
            let extra = if cost == 0 || !has_room || cas.is_none() {
                0
            } else {
                extra_tokens(&quotas, &admitted, self.max_batch)
            };
            let after = if extra == 0 {
                admitted
            } else {
                let more = decide_all(&pairs, now, need + extra);
                match (more.first(), more.get(1)) {
                    (Some(m), Some(h)) => [*m, *h],
                    _ => return Step::Done(Seen::Unreadable),
                }
            };
            let wrote = need + extra > 0;
            let take = Take {
                admitted,
                after,
                left: held + need + extra - cost,
                other_live,
                wrote,
            };
            if !wrote {
                return Step::Done(Seen::Taken(take));
            }
            let tats = [Some(after[0].tat), Some(after[1].tat)];
            Step::Write(encode(key, &tats), Seen::Taken(take))
        });
        match taken {
            Ok(Seen::Refused(decisions)) => Err(decisions),
            Ok(Seen::Taken(take)) => {
                if take.wrote {
                    self.takes.inc();
                }
                let reserve = Reserve {
                    quotas,
                    tats: [take.after[0].tat, take.after[1].tat],
                    left: take.left,
                    expires: now.saturating_add(RESERVE_LIFETIME_US),
                };
                let view = reserve.view(now);
                if take.left > 0 {
                    reserves.keys.insert(key.to_string(), reserve);
                } else {
                    reserves.keys.remove(key);
                }
                Ok((view, usize::from(take.other_live)))
            }
            // The slot kept changing under us: admit on the last reading
            // rather than refuse a request the buckets had room for.
            Err(Some(Seen::Taken(take))) => Ok((take.admitted, 0)),
            Ok(Seen::Unreadable) | Err(_) => Ok((
                [
                    decide(&quotas[0], None, now, cost),
                    decide(&quotas[1], None, now, cost),
                ],
                0,
            )),
        }
    }

    /// The same for the global bucket, with one reserve per worker.
    pub(super) fn take_for_global(
        &self,
        reserves: &mut Reserves,
        global: &Bucket,
        now: u64,
        cost: u64,
    ) -> Result<Decision, Decision> {
        if let Some(reserve) = reserves.global.as_mut() {
            if reserve.spend(cost, now) {
                return Ok(reserve.view(now)[0]);
            }
        }
        let quota = global.quota;
        let held = reserves.global.map_or(0, |r| r.left);
        let need = cost.saturating_sub(held);
        // Ok: the request's decision and the bucket after the take, and how
        // many tokens were taken; Err: the refusing decision.
        let taken = update(&self.store, GLOBAL, |raw, cas| {
            let tat = parse_tat(raw);
            let admitted = decide(&quota, tat, now, need);
            if !admitted.allowed {
                return Step::Done(Err(admitted));
            }
            let extra = if cost == 0 || cas.is_none() {
                0
            } else {
                extra_tokens(&[quota], &[admitted], self.max_batch)
            };
            let after = decide(&quota, tat, now, need + extra);
            let take = Ok((admitted, after, need + extra));
            if need + extra == 0 {
                return Step::Done(take);
            }
            Step::Write(
                itoa::Buffer::new().format(after.tat).as_bytes().to_vec(),
                take,
            )
        });
        match taken {
            Ok(Ok((_, after, tokens))) => {
                let reserve = Reserve {
                    quotas: [quota],
                    tats: [after.tat],
                    left: held + tokens - cost,
                    expires: now.saturating_add(RESERVE_LIFETIME_US),
                };
                reserves.global = (reserve.left > 0).then_some(reserve);
                Ok(reserve.view(now)[0])
            }
            Ok(Err(refused)) => Err(refused),
            // The bucket kept changing under us: admit on the last reading.
            Err(Some(Ok((admitted, _, _)))) => Ok(admitted),
            Err(_) => Ok(decide(&quota, None, now, need)),
        }
    }

    /// The global bucket as this worker sees it, spending nothing.
    pub(super) fn global_view(&self, reserves: &Reserves, global: &Bucket, now: u64) -> Decision {
        match reserves.global {
            Some(reserve) => reserve.view(now)[0],
            None => {
                let (raw, _) = self.store.get(GLOBAL);
                decide(&global.quota, parse_tat(raw.as_deref()), now, 0)
            }
        }
    }
}
