//! Attacks on the rate limiter's local buckets.
//!
//! The shared buckets hash keys into a fixed number of shared-data slots; a
//! key finding its slot held by another key that still owes tokens evicts
//! it, and the evicted key comes back with a full bucket. With a fixed-key
//! slot hash anyone could compute which keys share a slot, and so aim
//! requests at another client's slot (or refill their own bucket by
//! evicting it with a second identity). The slot hash is keyed per Envoy
//! from WASI `random_get`: keys precomputed to collide under the old hash
//! land elsewhere.

use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request};
use serde_json::json;
use std::hash::{DefaultHasher, Hash, Hasher};

/// The shipped `shared_slots`.
const SLOTS: u64 = 65_536;

/// The slot of a rate-limit key under the old fixed-key hash (std's
/// `DefaultHasher::new()`, SipHash-1-3 with a zero key).
fn fixed_slot(key: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish() % SLOTS
}

fn as_subject(sub: &str) -> Request {
    Request::get("/elsewhere")
        .header("x-auth-sub", sub)
        .header("x-auth-tier", "free")
}

#[test]
fn keys_aimed_at_a_victims_slot_no_longer_evict_its_bucket() {
    let victim = "victim";
    let target = fixed_slot(&format!("sub:{victim}"));
    // Subjects an attacker precomputed to share the victim's slot.
    let aimed: Vec<String> = (0u64..)
        .map(|i| format!("attacker-{i}"))
        .filter(|s| fixed_slot(&format!("sub:{s}")) == target)
        .take(8)
        .collect();
    // The identity headers are trusted with no auth plugin in front: the
    // test picks its keys as an attacker picks addresses or identities.
    let config = json!({"mode": "local", "local_buckets": "shared", "global": null,
        "shared_slots": SLOTS});
    let envoy = Envoy::start(EnvoySpec::new().plugin(Plugin::new("ratelimit", Some(config))));
    // The victim spends its whole minute (10 requests of the free tier).
    for i in 0..10 {
        assert_ne!(
            envoy.send(&as_subject(victim)).status,
            429,
            "victim request {i}"
        );
    }
    for attacker in &aimed {
        assert_ne!(envoy.send(&as_subject(attacker)).status, 429, "{attacker}");
    }
    // Still empty: none of the aimed keys took its slot and reset it.
    let response = envoy.send(&as_subject(victim));
    assert_eq!(
        response.status, 429,
        "the victim's bucket was evicted and came back full: {:?}",
        response.headers
    );
    assert_eq!(envoy.plugin_stat("ratelimit.keys_evicted"), 0);
}
