//! The shared buckets against the in-memory store: eviction, batches, the
//! give-back when the global bucket refuses, lost races, aimed collisions.

// Compiled only as `local::shared::tests` (declared under #[cfg(test)]).
use super::super::store::MemoryStore;
use super::slot::{decode, encode, slot_key, stored, Tats};
use super::*;
use meshguard_policy::ratelimit::SECOND_US;
use std::cell::Cell;
use std::rc::Rc;

const NOW: u64 = 1_000_000 * SECOND_US;

fn buckets(store: MemoryStore, slots: u64, batch: u64) -> SharedBuckets<MemoryStore> {
    let key = *b"sixteen random b";
    SharedBuckets::with_store(store, key, slots, batch, 100, Counter::default())
}

fn tier(per_minute: u64) -> [Bucket; 2] {
    Bucket::tier(per_minute, per_minute * 10, None).unwrap()
}

fn remaining(v: &Verdict) -> Vec<u64> {
    v.buckets.iter().map(|b| b.remaining).collect()
}

/// The TATs the store holds for `key` (none when the slot is another key's).
fn tats_of(b: &SharedBuckets<MemoryStore>, key: &str) -> Option<Tats> {
    let raw = b.store.value(&b.slot(key))?;
    let (k, tats) = decode(&raw)?;
    (k == key).then_some(tats)
}

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

#[test]
fn a_key_sharing_a_slot_evicts_a_live_key_which_comes_back_full() {
    let b = buckets(MemoryStore::default(), 1, 0);
    let t = tier(10);
    for _ in 0..4 {
        assert!(b.check("a", &t, None, NOW, 1).allowed);
    }
    let v = b.check("b", &t, None, NOW, 1);
    assert!(v.allowed);
    assert_eq!(v.evicted, 1, "a still owed tokens");
    assert_eq!(tats_of(&b, "a"), None);
    let v = b.check("a", &t, None, NOW, 1);
    assert_eq!(remaining(&v)[0], 9, "a is back with a full bucket");
    // A full key is not counted as evicted: nothing was lost.
    let later = NOW + 3_600 * SECOND_US;
    assert_eq!(b.check("b", &t, None, later, 1).evicted, 0);
}

#[test]
fn batches_take_ahead_and_count_down_one_by_one() {
    let b = buckets(MemoryStore::default(), 64, 32);
    let t = tier(1_000); // burst 1000: batches of up to 1000 / 16 = 62, capped at 32
                         // The first take is the request's alone (a new slot has no version).
    let v = b.check("k", &t, None, NOW, 1);
    assert_eq!(remaining(&v)[0], 999);
    let tats = tats_of(&b, "k").unwrap();
    for i in 2..=40 {
        let v = b.check("k", &t, None, NOW, 1);
        assert!(v.allowed);
        assert_eq!(remaining(&v)[0], 1_000 - i, "request {i}");
    }
    // The second request took 1 + 32 tokens; the 35th took the next batch.
    let after = tats_of(&b, "k").unwrap();
    let interval = t[0].quota.emission_interval();
    assert_eq!(after[0].unwrap() - tats[0].unwrap(), (33 + 33) * interval);
    // What was taken and not spent goes back once the batch expires.
    let left = 1 + 33 + 33 - 40;
    assert_eq!(b.return_expired(NOW + RESERVE_LIFETIME_US), left);
    assert_eq!(
        tats_of(&b, "k").unwrap()[0],
        Some(after[0].unwrap() - left * interval)
    );
}

#[test]
fn a_refusal_by_the_global_bucket_gives_the_keys_tokens_back() {
    let b = buckets(MemoryStore::default(), 64, 0);
    let t = tier(10);
    let global = Bucket::global(2, 60, None).unwrap();
    assert!(b.check("a", &t, Some(&global), NOW, 1).allowed);
    assert!(b.check("b", &t, Some(&global), NOW, 1).allowed);
    let before = tats_of(&b, "a").unwrap();
    let v = b.check("a", &t, Some(&global), NOW, 1);
    assert!(!v.allowed);
    assert_eq!(v.buckets[2].name, "global");
    assert!(!v.buckets[2].allowed && v.buckets[0].allowed);
    assert_eq!(remaining(&v)[0], 9, "the key's buckets show nothing spent");
    assert_eq!(
        tats_of(&b, "a").unwrap(),
        before,
        "and the slot holds what it held"
    );
}

#[test]
fn a_refusal_by_the_global_bucket_goes_back_into_the_keys_batch() {
    let b = buckets(MemoryStore::default(), 64, 32);
    let t = tier(1_000);
    let global = Bucket::global(3, 60, None).unwrap();
    for _ in 0..3 {
        assert!(b.check("a", &t, Some(&global), NOW, 1).allowed);
    }
    let held = b.reserves.borrow().keys.get("a").map(|r| r.left);
    let v = b.check("a", &t, Some(&global), NOW, 1);
    assert!(!v.allowed);
    assert_eq!(b.reserves.borrow().keys.get("a").map(|r| r.left), held);
    assert_eq!(remaining(&v)[0], 997);
}

#[test]
fn a_lost_compare_and_swap_is_taken_again_on_what_the_other_worker_wrote() {
    let store = MemoryStore::default();
    let b = buckets(store, 64, 0);
    let t = tier(10);
    assert!(b.check("k", &t, None, NOW, 1).allowed);
    // Another worker spends 3 tokens between our read and our write, once.
    let slot = b.slot("k");
    let interval = t[0].quota.emission_interval();
    let raced = Rc::new(Cell::new(false));
    let flag = Rc::clone(&raced);
    *b.store.interfere.borrow_mut() = Some(Box::new(move |s: &MemoryStore, name: &str| {
        if name == slot && !flag.replace(true) {
            let (k, tats) = decode(&s.value(name).unwrap())
                .map(|(k, t)| (k.to_string(), t))
                .unwrap();
            let moved = tats.map(|t| t.map(|t| t + 3 * interval));
            s.put(name, &encode(&k, &moved));
        }
    }));
    let v = b.check("k", &t, None, NOW, 1);
    assert!(raced.get());
    assert_eq!(
        remaining(&v)[0],
        5,
        "10 - 1 - 3 - 1: nothing lost, nothing doubled"
    );
}

#[test]
fn the_first_write_race_admits_at_most_once_more_and_takes_no_batch() {
    // Two workers create the same key's slot at the same instant: the
    // entry has no version, so both writes land and one take is lost.
    let store = MemoryStore::default();
    let b = buckets(store, 64, 32);
    let t = tier(1_000);
    let slot = b.slot("k");
    let mut once = Some(());
    let other = encode(
        "k",
        &[
            Some(NOW + t[0].quota.emission_interval()),
            Some(NOW + t[1].quota.emission_interval()),
        ],
    );
    *b.store.interfere.borrow_mut() = Some(Box::new(move |s: &MemoryStore, name: &str| {
        if name == slot && once.take().is_some() {
            s.put(name, &other);
        }
    }));
    let v = b.check("k", &t, None, NOW, 1);
    assert!(v.allowed);
    assert_eq!(remaining(&v)[0], 999, "our own view: one token");
    assert!(
        !b.reserves.borrow().keys.contains_key("k"),
        "no batch on a first write"
    );
    // The other worker's take was overwritten: the slot shows one token
    // spent where two requests passed, one admission too many, once.
    assert_eq!(
        tats_of(&b, "k").unwrap()[0],
        Some(NOW + t[0].quota.emission_interval())
    );
    // From then on every write is compare-and-swap.
    let v = b.check("k", &t, None, NOW, 1);
    assert_eq!(remaining(&v)[0], 998);
}

#[test]
fn the_slot_hash_key_is_drawn_once_and_shared_by_every_worker() {
    let store = MemoryStore::default();
    let first = slot_key(&store, [7; 16]);
    assert_eq!(
        first,
        (u64::from_le_bytes([7; 8]), u64::from_le_bytes([7; 8]))
    );
    let second = slot_key(&store, [9; 16]);
    assert_eq!(second, first, "a second worker uses the stored key");
    let key = |k: u8| {
        let b = SharedBuckets::with_store(
            MemoryStore::default(),
            [k; 16],
            1 << 16,
            0,
            1,
            Counter::default(),
        );
        (0..64)
            .map(|i| b.slot(&format!("ip:10.0.0.{i}")))
            .collect::<Vec<_>>()
    };
    assert_ne!(key(1), key(2), "another key puts keys elsewhere");
}

/// The slot a key had under the fixed-key hash (std's SipHash-1-3 with
/// a zero key): anyone could compute it.
fn fixed_slot(key: &str, slots: u64) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish() % slots
}

#[test]
fn collisions_aimed_at_the_fixed_hash_no_longer_share_a_slot() {
    let slots = 65_536;
    let victim = "sub:victim";
    let target = fixed_slot(victim, slots);
    // An attacker's keys precomputed to land in the victim's slot.
    let aimed: Vec<String> = (0u64..)
        .map(|i| format!("ip:10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255))
        .filter(|k| fixed_slot(k, slots) == target)
        .take(8)
        .collect();
    assert_eq!(aimed.len(), 8);
    let fresh = meshguard_plugin_kit::host::random_bytes().unwrap();
    let b = SharedBuckets::with_store(
        MemoryStore::default(),
        fresh,
        slots,
        0,
        100,
        Counter::default(),
    );
    let landed = aimed.iter().filter(|k| b.slot(k) == b.slot(victim)).count();
    assert_eq!(
        landed, 0,
        "with a random key each lands in the victim's slot with p = 1/65536"
    );
    // And the victim's bucket survives the attacker's requests.
    let t = tier(10);
    for _ in 0..5 {
        assert!(b.check(victim, &t, None, NOW, 1).allowed);
    }
    for k in &aimed {
        assert_eq!(b.check(k, &t, None, NOW, 1).evicted, 0);
    }
    assert_eq!(remaining(&b.check(victim, &t, None, NOW, 1))[0], 4);
}
