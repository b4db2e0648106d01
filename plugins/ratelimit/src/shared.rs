//! Local buckets shared by every worker of one Envoy through proxy-wasm
//! shared data, so `local` mode (and the fallback) limits per Envoy rather
//! than per worker.
//!
//! Shared data has no eviction, so keys hash into a fixed number of slots;
//! a slot holds one key's minute and hour TATs (`"<tat> <tat> <key>"`). A
//! key finding its slot taken by another key whose buckets are not full
//! evicts it (that key comes back with a full bucket, as with the per-worker
//! table). Updates are compare-and-swap with a few retries; the key's
//! buckets and the global bucket are two steps, and a refusal by the global
//! bucket gives the key's tokens back. Two workers creating the same slot at
//! the same instant cannot be told apart (a new entry has no CAS version):
//! at most one extra admission per worker, once (a slot's first take is
//! never a batch).
//!
//! Reading shared data is the costliest host call a request makes here, so
//! a worker takes a key's tokens (and the global bucket's) in batches and
//! spends them without reading the slot (`policy::ratelimit::reserve`);
//! what it has not spent after `RESERVE_LIFETIME_US` goes back on the tick.

use meshguard_plugin_kit::stats::Counter;
use meshguard_policy::gcra::{decide, decide_all, refund, Decision, Quota};
use meshguard_policy::ratelimit::limiter::{adjust, state, Verdict};
use meshguard_policy::ratelimit::reserve::{extra_tokens, Reserve};
use meshguard_policy::ratelimit::{Bucket, BucketState};
use proxy_wasm::hostcalls;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

const SLOT_PREFIX: &str = "meshguard.ratelimit.slot.";
const GLOBAL: &str = "meshguard.ratelimit.global";
const ATTEMPTS: usize = 8;
/// How long a worker may hold tokens it took ahead before they go back.
const RESERVE_LIFETIME_US: u64 = 1_000_000;

pub struct SharedBuckets {
    slots: u64,
    max_batch: u64,
    /// Keys this worker holds reserves for at most.
    max_reserves: usize,
    reserves: RefCell<Reserves>,
    /// Writes to a key's slot that spent tokens (one per request without
    /// reserves; one per batch with them).
    takes: Counter,
}

/// What this worker took ahead: per key, and of the global bucket.
#[derive(Default)]
struct Reserves {
    keys: HashMap<String, Reserve<2>>,
    global: Option<Reserve<1>>,
}

fn states(tier: &[Bucket; 2], decisions: &[Decision; 2]) -> Vec<BucketState> {
    tier.iter()
        .zip(decisions)
        .map(|(b, d)| state(b, d))
        .collect()
}

type Tats = [Option<u64>; 2];

fn encode(key: &str, tats: &Tats) -> Vec<u8> {
    let mut out = Vec::with_capacity(42 + key.len());
    let mut digits = itoa::Buffer::new();
    for tat in tats {
        out.extend_from_slice(digits.format(tat.unwrap_or(0)).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(key.as_bytes());
    out
}

fn decode(raw: &[u8]) -> Option<(&str, Tats)> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = text.splitn(3, ' ');
    let minute: u64 = parts.next()?.parse().ok()?;
    let hour: u64 = parts.next()?.parse().ok()?;
    let key = parts.next()?;
    let tat = |t: u64| (t > 0).then_some(t);
    Some((key, [tat(minute), tat(hour)]))
}

/// The value and CAS version of a shared-data entry (none when absent or
/// unreadable).
fn read(name: &str) -> (Option<Vec<u8>>, Option<u32>) {
    hostcalls::get_shared_data(name).unwrap_or((None, None))
}

fn write(name: &str, value: &[u8], cas: Option<u32>) -> bool {
    hostcalls::set_shared_data(name, Some(value), cas).is_ok()
}

/// What the slot says about `key`: its TATs, whether another key with
/// buckets still owing tokens held the slot, and whether it is `key`'s.
fn stored(raw: Option<&[u8]>, key: &str, now: u64) -> (Tats, bool, bool) {
    match raw.and_then(decode) {
        Some((k, tats)) if k == key => (tats, false, true),
        Some((_, tats)) => ([None, None], tats.iter().flatten().any(|t| *t > now), false),
        None => ([None, None], false, false),
    }
}

impl SharedBuckets {
    /// `max_batch`: tokens a worker may take ahead per key (and for the
    /// global bucket); 0 takes only what each request costs.
    pub fn new(slots: u64, max_batch: u64, max_reserves: usize) -> SharedBuckets {
        SharedBuckets {
            slots: slots.max(1),
            max_batch,
            max_reserves,
            reserves: RefCell::new(Reserves::default()),
            takes: Counter::define("ratelimit", "shared_takes"),
        }
    }

    fn slot(&self, key: &str) -> String {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let mut digits = itoa::Buffer::new();
        [SLOT_PREFIX, digits.format(hasher.finish() % self.slots)].concat()
    }

    /// Decides a request of `cost` tokens for `key` at `now` (µs).
    pub fn check(
        &self,
        key: &str,
        tier: &[Bucket; 2],
        global: Option<&Bucket>,
        now: u64,
        cost: u64,
    ) -> Verdict {
        let reserves = &mut *self.reserves.borrow_mut();
        let (allowed, key_view, global_view, evicted) =
            match self.take_for_key(reserves, key, tier, now, cost) {
                Err(refused) => {
                    let global_view = global.map(|g| self.global_view(reserves, g, now));
                    (false, refused, global_view, 0)
                }
                Ok((key_view, evicted)) => match global {
                    None => (true, key_view, None, evicted),
                    Some(g) => match self.take_for_global(reserves, g, now, cost) {
                        Ok(global_view) => (true, key_view, Some(global_view), evicted),
                        Err(refused) => {
                            let key_view = self.put_back(reserves, key, tier, key_view, now, cost);
                            (false, key_view, Some(refused), evicted)
                        }
                    },
                },
            };
        let mut buckets = states(tier, &key_view);
        buckets.extend(global.zip(global_view).map(|(g, d)| state(g, &d)));
        Verdict {
            allowed,
            buckets,
            evicted,
        }
    }

    /// Gives back the tokens a request took from the key when the global
    /// bucket refuses it (into the key's reserve when it has one); returns
    /// the key's buckets as they then stand.
    fn put_back(
        &self,
        reserves: &mut Reserves,
        key: &str,
        tier: &[Bucket; 2],
        taken: [Decision; 2],
        now: u64,
        cost: u64,
    ) -> [Decision; 2] {
        if let Some(reserve) = reserves.keys.get_mut(key) {
            reserve.left += cost;
            return reserve.view(now);
        }
        self.give_back(key, &[tier[0].quota, tier[1].quota], now, cost);
        let mut view = taken;
        for (d, b) in view.iter_mut().zip(tier) {
            *d = decide(&b.quota, Some(refund(&b.quota, d.tat, now, cost)), now, 0);
        }
        view
    }

    /// Spends `cost` from the key's reserve, or takes it (and a batch ahead)
    /// from the key's shared slot. `Ok`: the key's buckets as this worker
    /// sees them and whether another live key was evicted from the slot;
    /// `Err`: the refusing decisions.
    fn take_for_key(
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
        let mut admitted = [
            decide(&quotas[0], None, now, cost),
            decide(&quotas[1], None, now, cost),
        ];
        for _ in 0..ATTEMPTS {
            let (raw, cas) = read(&slot);
            let (tats, other_live, ours) = stored(raw.as_deref(), key, now);
            // Tokens still held are in the slot only while it is this key's.
            let held = if ours {
                reserves.keys.get(key).map_or(0, |r| r.left)
            } else {
                0
            };
            let need = cost.saturating_sub(held);
            let pairs = [(quotas[0], tats[0]), (quotas[1], tats[1])];
            let decisions = decide_all(&pairs, now, need);
            let [minute, hour] = [decisions.first(), decisions.get(1)];
            let (Some(minute), Some(hour)) = (minute.copied(), hour.copied()) else {
                break;
            };
            if !(minute.allowed && hour.allowed) {
                return Err([minute, hour]);
            }
            admitted = [minute, hour];
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
                    _ => break,
                }
            };
            let tats = [Some(after[0].tat), Some(after[1].tat)];
            let written = need + extra > 0 && write(&slot, &encode(key, &tats), cas);
            if written {
                self.takes.inc();
            }
            if written || need + extra == 0 {
                let left = held + need + extra - cost;
                let reserve = Reserve {
                    quotas,
                    tats: [after[0].tat, after[1].tat],
                    left,
                    expires: now.saturating_add(RESERVE_LIFETIME_US),
                };
                let view = reserve.view(now);
                if left > 0 {
                    reserves.keys.insert(key.to_string(), reserve);
                } else {
                    reserves.keys.remove(key);
                }
                return Ok((view, usize::from(other_live)));
            }
        }
        // The slot kept changing under us: admit on the last reading
        // rather than refuse a request the buckets had room for.
        Ok((admitted, 0))
    }

    /// The same for the global bucket, with one reserve per worker.
    fn take_for_global(
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
        let mut last = decide(&quota, None, now, need);
        for _ in 0..ATTEMPTS {
            let (raw, cas) = read(GLOBAL);
            let tat = parse_tat(raw.as_deref());
            last = decide(&quota, tat, now, need);
            if !last.allowed {
                return Err(last);
            }
            let extra = if cost == 0 || cas.is_none() {
                0
            } else {
                extra_tokens(&[quota], &[last], self.max_batch)
            };
            let after = decide(&quota, tat, now, need + extra);
            if need + extra == 0
                || write(
                    GLOBAL,
                    itoa::Buffer::new().format(after.tat).as_bytes(),
                    cas,
                )
            {
                let reserve = Reserve {
                    quotas: [quota],
                    tats: [after.tat],
                    left: held + need + extra - cost,
                    expires: now.saturating_add(RESERVE_LIFETIME_US),
                };
                reserves.global = (reserve.left > 0).then_some(reserve);
                return Ok(reserve.view(now)[0]);
            }
        }
        Ok(last)
    }

    /// The global bucket as this worker sees it, spending nothing.
    fn global_view(&self, reserves: &Reserves, global: &Bucket, now: u64) -> Decision {
        match reserves.global {
            Some(reserve) => reserve.view(now)[0],
            None => {
                let (raw, _) = read(GLOBAL);
                decide(&global.quota, parse_tat(raw.as_deref()), now, 0)
            }
        }
    }

    /// Gives the unspent tokens of expired reserves back to the shared
    /// buckets; returns how many tokens went back.
    pub fn return_expired(&self, now: u64) -> u64 {
        let reserves = &mut *self.reserves.borrow_mut();
        let mut returned = 0;
        let expired: Vec<String> = reserves
            .keys
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            let Some(reserve) = reserves.keys.remove(&key) else {
                continue;
            };
            self.give_back(&key, &reserve.quotas, now, reserve.left);
            returned += reserve.left;
        }
        if let Some(reserve) = reserves.global.filter(|r| r.expires <= now) {
            reserves.global = None;
            for _ in 0..ATTEMPTS {
                let (raw, cas) = read(GLOBAL);
                let Some(tat) = parse_tat(raw.as_deref()) else {
                    break;
                };
                let back = refund(&reserve.quotas[0], tat, now, reserve.left);
                if write(GLOBAL, itoa::Buffer::new().format(back).as_bytes(), cas) {
                    break;
                }
            }
            returned += reserve.left;
        }
        returned
    }

    /// Moves `tokens` back into the key's buckets (unless its slot is now
    /// another key's).
    fn give_back(&self, key: &str, quotas: &[Quota; 2], now: u64, tokens: u64) {
        self.update(&self.slot(key), key, |tats| {
            let mut out = *tats;
            for (tat, quota) in out.iter_mut().zip(quotas) {
                *tat = tat.map(|t| refund(quota, t, now, tokens));
            }
            out
        });
    }

    /// Applies `f` to the key's TATs with compare-and-swap (a slot now held
    /// by another key is left alone).
    fn update(&self, slot: &str, key: &str, f: impl Fn(&Tats) -> Tats) {
        for _ in 0..ATTEMPTS {
            let (raw, cas) = read(slot);
            let current = match raw.as_deref().and_then(decode) {
                Some((k, tats)) if k == key => tats,
                Some(_) => return,
                None => [None, None],
            };
            if write(slot, &encode(key, &f(&current)), cas) {
                return;
            }
        }
    }

    /// Corrects what a request cost (see `Limiter::charge`).
    pub fn charge(
        &self,
        key: &str,
        tier: &[Bucket; 2],
        global: Option<&Bucket>,
        now: u64,
        delta: i64,
    ) {
        if delta == 0 {
            return;
        }
        // The key's unspent batch goes back in the same update, so that the
        // next request takes a fresh one and its headers include the charge.
        let held = self
            .reserves
            .borrow_mut()
            .keys
            .remove(key)
            .map_or(0, |r| r.left);
        let key_delta = delta.saturating_sub(i64::try_from(held).unwrap_or(i64::MAX));
        if key_delta != 0 {
            let slot = self.slot(key);
            self.update(&slot, key, |tats| {
                let mut out = *tats;
                for (tat, b) in out.iter_mut().zip(tier) {
                    if key_delta > 0 || tat.is_some() {
                        *tat = Some(adjust(b, *tat, now, key_delta));
                    }
                }
                out
            });
        }
        if let Some(g) = global {
            for _ in 0..ATTEMPTS {
                let (raw, cas) = read(GLOBAL);
                let tat = adjust(g, parse_tat(raw.as_deref()), now, delta);
                if write(GLOBAL, tat.to_string().as_bytes(), cas) {
                    return;
                }
            }
        }
    }
}

fn parse_tat(raw: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(raw?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_values_round_trip() {
        let tats = [Some(5), None];
        let raw = encode("sub:a b c", &tats);
        assert_eq!(raw, b"5 0 sub:a b c");
        assert_eq!(decode(&raw), Some(("sub:a b c", tats)));
        assert_eq!(decode(b"x 1 k"), None);
        assert_eq!(decode(b"1 1"), None);
    }

    #[test]
    fn another_live_key_in_the_slot_is_evicted_a_full_one_is_not() {
        let raw = encode("other", &[Some(100), None]);
        assert_eq!(stored(Some(&raw), "me", 50), ([None, None], true, false));
        assert_eq!(stored(Some(&raw), "me", 100), ([None, None], false, false));
        assert_eq!(
            stored(Some(&raw), "other", 50),
            ([Some(100), None], false, true)
        );
        assert_eq!(stored(None, "me", 50), ([None, None], false, false));
    }
}
