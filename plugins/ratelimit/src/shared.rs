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
//! at most one extra admission per worker, once.

use meshguard_policy::gcra::{decide, decide_all, refund, Decision};
use meshguard_policy::ratelimit::limiter::{adjust, state, Verdict};
use meshguard_policy::ratelimit::Bucket;
use proxy_wasm::hostcalls;
use std::hash::{DefaultHasher, Hash, Hasher};

const SLOT_PREFIX: &str = "meshguard.ratelimit.slot.";
const GLOBAL: &str = "meshguard.ratelimit.global";
const ATTEMPTS: usize = 8;

pub struct SharedBuckets {
    slots: u64,
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

/// What the slot says about `key`: its TATs, and whether another key with
/// buckets still owing tokens held the slot.
fn stored(raw: Option<&[u8]>, key: &str, now: u64) -> (Tats, bool) {
    match raw.and_then(decode) {
        Some((k, tats)) if k == key => (tats, false),
        Some((_, tats)) => ([None, None], tats.iter().flatten().any(|t| *t > now)),
        None => ([None, None], false),
    }
}

impl SharedBuckets {
    pub fn new(slots: u64) -> SharedBuckets {
        SharedBuckets {
            slots: slots.max(1),
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
        let slot = self.slot(key);
        let [minute, hour] = tier;
        let mut evicted = 0;
        let mut before: Tats = [None, None];
        let mut decisions: Vec<Decision> = Vec::new();
        for _ in 0..ATTEMPTS {
            let (raw, cas) = read(&slot);
            let (tats, other_live) = stored(raw.as_deref(), key, now);
            before = tats;
            let [minute_tat, hour_tat] = tats;
            decisions = decide_all(
                &[(minute.quota, minute_tat), (hour.quota, hour_tat)],
                now,
                cost,
            );
            if !decisions.iter().all(|d| d.allowed) {
                let mut buckets: Vec<_> = tier
                    .iter()
                    .zip(&decisions)
                    .map(|(b, d)| state(b, d))
                    .collect();
                if let Some(g) = global {
                    let (raw, _) = read(GLOBAL);
                    buckets.push(state(
                        g,
                        &decide(&g.quota, parse_tat(raw.as_deref()), now, 0),
                    ));
                }
                return Verdict {
                    allowed: false,
                    buckets,
                    evicted: 0,
                };
            }
            let after = [
                decisions.first().map(|d| d.tat),
                decisions.get(1).map(|d| d.tat),
            ];
            if cost == 0 || write(&slot, &encode(key, &after), cas) {
                evicted = usize::from(other_live);
                break;
            }
        }
        let mut buckets: Vec<_> = tier
            .iter()
            .zip(&decisions)
            .map(|(b, d)| state(b, d))
            .collect();
        let Some(g) = global else {
            return Verdict {
                allowed: true,
                buckets,
                evicted,
            };
        };
        let mut last = decide(&g.quota, None, now, cost);
        for _ in 0..ATTEMPTS {
            let (raw, cas) = read(GLOBAL);
            last = decide(&g.quota, parse_tat(raw.as_deref()), now, cost);
            if !last.allowed || cost == 0 || write(GLOBAL, last.tat.to_string().as_bytes(), cas) {
                break;
            }
        }
        if !last.allowed {
            self.give_back(&slot, key, tier, now, cost);
            buckets = tier
                .iter()
                .zip(before)
                .map(|(b, tat)| state(b, &decide(&b.quota, tat, now, 0)))
                .collect();
        }
        buckets.push(state(g, &last));
        Verdict {
            allowed: last.allowed,
            buckets,
            evicted,
        }
    }

    fn give_back(&self, slot: &str, key: &str, tier: &[Bucket; 2], now: u64, cost: u64) {
        self.update(slot, key, |tats| {
            let mut out = *tats;
            for (tat, b) in out.iter_mut().zip(tier) {
                *tat = tat.map(|t| refund(&b.quota, t, now, cost));
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
        let slot = self.slot(key);
        self.update(&slot, key, |tats| {
            let mut out = *tats;
            for (tat, b) in out.iter_mut().zip(tier) {
                if delta > 0 || tat.is_some() {
                    *tat = Some(adjust(b, *tat, now, delta));
                }
            }
            out
        });
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
        assert_eq!(stored(Some(&raw), "me", 50), ([None, None], true));
        assert_eq!(stored(Some(&raw), "me", 100), ([None, None], false));
        assert_eq!(stored(Some(&raw), "other", 50), ([Some(100), None], false));
        assert_eq!(stored(None, "me", 50), ([None, None], false));
    }
}
