//! Correcting what a request cost once its real cost is known.

use super::super::store::{update, Step, Store};
use super::slot::parse_tat;
use super::{SharedBuckets, GLOBAL};
use meshguard_policy::ratelimit::limiter::adjust;
use meshguard_policy::ratelimit::Bucket;

impl<S: Store> SharedBuckets<S> {
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
