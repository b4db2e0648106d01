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
//!
//! Which slot a key lands in is a keyed hash (SipHash-1-3) whose key is
//! drawn from WASI `random_get` once per Envoy: a client who knows the code
//! cannot pick keys that land in another key's slot to evict it. The key is
//! kept in shared data itself, so that every worker of the Envoy puts a key
//! in the same slot; Envoy configures the plugin once on its main thread
//! (the configuration canary) before any worker, so the first one draws it.
//!
//! Every read and write goes through a [`Store`]: Envoy's shared data in the
//! plugin, memory in the unit tests below.

use super::store::{update, HostStore, Step, Store};
use meshguard_plugin_kit::stats::Counter;
use meshguard_policy::gcra::{decide, decide_all, refund, Decision, Quota};
use meshguard_policy::ratelimit::limiter::{adjust, state, Verdict};
use meshguard_policy::ratelimit::reserve::{extra_tokens, Reserve};
use meshguard_policy::ratelimit::{Bucket, BucketState};
use siphasher::sip::SipHasher13;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

const SLOT_PREFIX: &str = "meshguard.ratelimit.slot.";
const GLOBAL: &str = "meshguard.ratelimit.global";
/// The slot hash's key: 16 random bytes, drawn by the first VM of an Envoy.
const SLOT_KEY: &str = "meshguard.ratelimit.slot-key";
/// How long a worker may hold tokens it took ahead before they go back.
const RESERVE_LIFETIME_US: u64 = 1_000_000;

pub struct SharedBuckets<S: Store = HostStore> {
    store: S,
    /// The slot hash's key (see [`slot_key`]).
    hash_key: (u64, u64),
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

/// The slot hash's key every worker of this Envoy uses: the one in shared
/// data, or else the `fresh` bytes written there. Written without
/// compare-and-swap (a new entry has no version), so whatever is stored after
/// the write is read back and used.
fn slot_key(store: &impl Store, fresh: [u8; 16]) -> (u64, u64) {
    let parse = |raw: Option<Vec<u8>>| -> Option<(u64, u64)> {
        let raw: [u8; 16] = raw?.try_into().ok()?;
        let (k0, k1) = raw.split_at(8);
        Some((
            u64::from_le_bytes(k0.try_into().ok()?),
            u64::from_le_bytes(k1.try_into().ok()?),
        ))
    };
    if let Some(key) = parse(store.get(SLOT_KEY).0) {
        return key;
    }
    store.set(SLOT_KEY, &fresh, None);
    parse(store.get(SLOT_KEY).0)
        .or_else(|| parse(Some(fresh.to_vec())))
        .unwrap_or((0, 0))
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

impl SharedBuckets<HostStore> {
    /// Envoy's shared data; `max_batch`: tokens a worker may take ahead per
    /// key (and for the global bucket); 0 takes only what each request costs.
    pub fn new(slots: u64, max_batch: u64, max_reserves: usize) -> SharedBuckets {
        // Without randomness from the host the clock stands in: still
        // unknown to clients, if weaker.
        let fresh = meshguard_plugin_kit::host::random_bytes().unwrap_or_else(|| {
            let now = u128::from(meshguard_plugin_kit::host::now_unix_nanos());
            (now ^ (now << 64)).to_le_bytes()
        });
        let takes = Counter::define("ratelimit", "shared_takes");
        SharedBuckets::with_store(HostStore, fresh, slots, max_batch, max_reserves, takes)
    }
}

impl<S: Store> SharedBuckets<S> {
    /// `fresh`: 16 random bytes, the slot hash's key unless another worker
    /// already stored one; `takes` counts the writes that spent tokens.
    pub fn with_store(
        store: S,
        fresh: [u8; 16],
        slots: u64,
        max_batch: u64,
        max_reserves: usize,
        takes: Counter,
    ) -> SharedBuckets<S> {
        SharedBuckets {
            hash_key: slot_key(&store, fresh),
            store,
            slots: slots.max(1),
            max_batch,
            max_reserves,
            reserves: RefCell::new(Reserves::default()),
            takes,
        }
    }

    fn slot(&self, key: &str) -> String {
        let mut hasher = SipHasher13::new_with_keys(self.hash_key.0, self.hash_key.1);
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
    fn global_view(&self, reserves: &Reserves, global: &Bucket, now: u64) -> Decision {
        match reserves.global {
            Some(reserve) => reserve.view(now)[0],
            None => {
                let (raw, _) = self.store.get(GLOBAL);
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
            let _ = update(&self.store, GLOBAL, |raw, _| match parse_tat(raw) {
                Some(tat) => {
                    let back = refund(&reserve.quotas[0], tat, now, reserve.left);
                    Step::Write(itoa::Buffer::new().format(back).as_bytes().to_vec(), ())
                }
                None => Step::Done(()),
            });
            returned += reserve.left;
        }
        returned
    }

    /// Moves `tokens` back into the key's buckets (unless its slot is now
    /// another key's).
    fn give_back(&self, key: &str, quotas: &[Quota; 2], now: u64, tokens: u64) {
        self.update_key(key, |tats| {
            let mut out = *tats;
            for (tat, quota) in out.iter_mut().zip(quotas) {
                *tat = tat.map(|t| refund(quota, t, now, tokens));
            }
            out
        });
    }

    /// Applies `f` to the key's TATs with compare-and-swap (a slot now held
    /// by another key is left alone).
    fn update_key(&self, key: &str, f: impl Fn(&Tats) -> Tats) {
        let _ = update(&self.store, &self.slot(key), |raw, _| {
            match raw.and_then(decode) {
                Some((k, tats)) if k == key => Step::Write(encode(key, &f(&tats)), ()),
                Some(_) => Step::Done(()),
                None => Step::Write(encode(key, &f(&[None, None])), ()),
            }
        });
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
            self.update_key(key, |tats| {
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
            let _ = update(&self.store, GLOBAL, |raw, _| {
                let tat = adjust(g, parse_tat(raw), now, delta);
                Step::Write(itoa::Buffer::new().format(tat).as_bytes().to_vec(), ())
            });
        }
    }
}

fn parse_tat(raw: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(raw?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
