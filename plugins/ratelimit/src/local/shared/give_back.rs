//! Tokens going back to the shared buckets: a request the global bucket
//! refused, and the unspent reserves that expired.

use super::super::store::{update, Step, Store};
use super::slot::{decode, encode, parse_tat, Tats};
use super::{Reserves, SharedBuckets, GLOBAL};
use meshguard_policy::gcra::{decide, refund, Decision, Quota};
use meshguard_policy::ratelimit::Bucket;

impl<S: Store> SharedBuckets<S> {
    /// Gives back the tokens a request took from the key when the global
    /// bucket refuses it (into the key's reserve when it has one); returns
    /// the key's buckets as they then stand.
    pub(super) fn put_back(
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
    pub(super) fn give_back(&self, key: &str, quotas: &[Quota; 2], now: u64, tokens: u64) {
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
    pub(super) fn update_key(&self, key: &str, f: impl Fn(&Tats) -> Tats) {
        let _ = update(&self.store, &self.slot(key), |raw, _| {
            match raw.and_then(decode) {
                Some((k, tats)) if k == key => Step::Write(encode(key, &f(&tats)), ()),
                Some(_) => Step::Done(()),
                None => Step::Write(encode(key, &f(&[None, None])), ()),
            }
        });
    }
}
