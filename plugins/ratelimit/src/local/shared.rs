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
//!
//! Here: the buckets and a request's decision; `slot` is what shared data
//! holds, `take` the taking (and reserving), `give_back` the tokens going
//! back, `charge` the correction of a request's cost.

mod charge;
mod give_back;
mod slot;
mod take;

use super::store::{HostStore, Store};
use meshguard_plugin_kit::stats::Counter;
use meshguard_policy::gcra::Decision;
use meshguard_policy::ratelimit::limiter::{state, Verdict};
use meshguard_policy::ratelimit::reserve::Reserve;
use meshguard_policy::ratelimit::{Bucket, BucketState};
use siphasher::sip::SipHasher13;
use slot::slot_key;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

const SLOT_PREFIX: &str = "meshguard.ratelimit.slot.";
const GLOBAL: &str = "meshguard.ratelimit.global";
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
}

#[cfg(test)]
mod tests;
