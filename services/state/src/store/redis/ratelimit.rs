//! Rate-limit decisions: one call of `ratelimit.lua` over buckets of one hash
//! slot, or two phases on a cluster where the shared buckets live elsewhere.

use super::reply::{failed, int, u64_of};
use super::RedisStore;
use crate::store::keys;
use crate::store::{
    BucketOutcome, BucketSpec, Buckets, Decision, RateLimitStore, StoreError, Take,
};
use async_trait::async_trait;
use redis::aio::ConnectionLike;
use redis::Value;

#[derive(Debug, Clone, Copy)]
enum Mode {
    Check,
    Lease,
}

/// One call of `ratelimit.lua` over buckets of one hash slot.
struct Invocation<'a> {
    specs: &'a [BucketSpec],
    /// How many leading `specs` are the key's own (indexed under the user).
    user_specs: usize,
    index_key: &'a str,
    mode: Mode,
    /// Tokens to admit (check) or to take at most (lease).
    cost: u64,
    /// Admit whatever the buckets say (still counting).
    shadow: bool,
    /// Where a lease is recorded, for `ttl_ms`.
    lease_key: Option<&'a str>,
    ttl_ms: u64,
}

impl<'a> Invocation<'a> {
    fn check(specs: &'a [BucketSpec], user_specs: usize, index_key: &'a str, cost: u64) -> Self {
        Invocation {
            specs,
            user_specs,
            index_key,
            mode: Mode::Check,
            cost,
            shadow: false,
            lease_key: None,
            ttl_ms: 0,
        }
    }

    fn lease(
        specs: &'a [BucketSpec],
        user_specs: usize,
        index_key: &'a str,
        tokens: u64,
        ttl_ms: u64,
    ) -> Self {
        Invocation {
            mode: Mode::Lease,
            ttl_ms,
            ..Invocation::check(specs, user_specs, index_key, tokens)
        }
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// One call of the rate-limit script over buckets of one hash slot.
    async fn take_once(&self, call: Invocation<'_>) -> Result<Decision, StoreError> {
        let Invocation {
            specs,
            user_specs,
            index_key,
            mode,
            cost,
            shadow,
            lease_key,
            ttl_ms,
        } = call;
        let mut inv = self.scripts.ratelimit.prepare_invoke();
        for spec in specs {
            inv.key(&spec.key);
        }
        inv.key(index_key);
        if let Some(lease_key) = lease_key {
            inv.key(lease_key);
        }
        inv.arg(match mode {
            Mode::Check => "check",
            Mode::Lease => "lease",
        })
        .arg(cost)
        .arg(if shadow { "1" } else { "0" })
        .arg(user_specs)
        .arg(specs.len())
        .arg(ttl_ms);
        for spec in specs {
            inv.arg(spec.emission_us).arg(spec.tolerance_us);
        }
        let reply: Vec<Value> = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        let [admitted, granted, _] = reply.get(..3).unwrap_or_default() else {
            return Err(failed("ratelimit"));
        };
        let admitted = int(admitted).ok_or_else(|| failed("ratelimit admitted"))? == 1;
        let granted = u64_of(granted).ok_or_else(|| failed("ratelimit granted"))?;
        let mut outcomes = Vec::with_capacity(specs.len());
        for chunk in reply.get(3..).unwrap_or_default().chunks(4) {
            let [allowed, remaining, reset, retry] = chunk else {
                return Err(failed("ratelimit bucket"));
            };
            let retry = int(retry).ok_or_else(|| failed("retry"))?;
            outcomes.push(BucketOutcome {
                allowed: int(allowed) == Some(1),
                remaining: u64_of(remaining).unwrap_or(0),
                reset_us: u64_of(reset).unwrap_or(0),
                retry_us: u64::try_from(retry).ok(),
            });
        }
        if outcomes.len() != specs.len() {
            return Err(failed("ratelimit bucket count"));
        }
        Ok(Decision {
            admitted,
            granted,
            buckets: outcomes,
        })
    }

    /// Gives `tokens` back to `specs` (one slot), optionally setting a lease
    /// record's grant.
    async fn refund(
        &self,
        specs: &[BucketSpec],
        tokens: u64,
        lease: Option<(&str, u64)>,
    ) -> Result<(), StoreError> {
        let mut inv = self.scripts.refund.prepare_invoke();
        for spec in specs {
            inv.key(&spec.key);
        }
        if let Some((key, _)) = lease {
            inv.key(key);
        }
        inv.arg(tokens).arg(specs.len());
        for spec in specs {
            inv.arg(spec.emission_us);
        }
        inv.arg(lease.map_or(String::new(), |(_, grant)| grant.to_string()));
        self.run(|mut c| async move { inv.invoke_async::<i64>(&mut c).await })
            .await?;
        Ok(())
    }

    /// On a cluster: the key's own buckets first (one slot, atomic), then the
    /// shared ones; when the second phase refuses, the first phase's tokens
    /// are given back. Never admits more than an atomic decision would; a
    /// concurrent caller may briefly see the refunded tokens as taken.
    async fn take_in_two_phases(
        &self,
        buckets: &Buckets,
        take: &Take,
    ) -> Result<Decision, StoreError> {
        let (own, shared) = buckets.specs.split_at(buckets.user_specs);
        let index = &buckets.index_key;
        let shared_index = keys::GLOBAL_INDEX;
        match take {
            Take::Check { cost, shadow } => {
                let mut first = self
                    .take_once(Invocation::check(own, own.len(), index, *cost))
                    .await?;
                if !first.admitted {
                    let peek = self
                        .take_once(Invocation::check(shared, 0, shared_index, 0))
                        .await?;
                    first.buckets.extend(peek.buckets);
                    first.admitted = *shadow;
                    return Ok(first);
                }
                let second = self
                    .take_once(Invocation::check(shared, 0, shared_index, *cost))
                    .await?;
                let admitted = second.admitted;
                if !admitted {
                    self.refund(own, *cost, None).await?;
                    for b in &mut first.buckets {
                        b.remaining = b.remaining.saturating_add(*cost);
                    }
                }
                first.buckets.extend(second.buckets);
                Ok(Decision {
                    admitted: admitted || *shadow,
                    granted: if admitted { *cost } else { 0 },
                    buckets: first.buckets,
                })
            }
            Take::Lease {
                tokens,
                lease_key,
                ttl_ms,
            } => {
                let mut first = self
                    .take_once(Invocation {
                        lease_key: Some(lease_key),
                        ..Invocation::lease(own, own.len(), index, *tokens, *ttl_ms)
                    })
                    .await?;
                let second = self
                    .take_once(Invocation::lease(
                        shared,
                        0,
                        shared_index,
                        first.granted,
                        *ttl_ms,
                    ))
                    .await?;
                let unused = first.granted.saturating_sub(second.granted);
                if unused > 0 {
                    self.refund(own, unused, Some((lease_key, second.granted)))
                        .await?;
                    for b in &mut first.buckets {
                        b.remaining = b.remaining.saturating_add(unused);
                    }
                }
                first.buckets.extend(second.buckets);
                Ok(Decision {
                    admitted: true,
                    granted: second.granted,
                    buckets: first.buckets,
                })
            }
        }
    }
}

#[async_trait]
impl<C> RateLimitStore for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn take(&self, buckets: &Buckets, take: &Take) -> Result<Decision, StoreError> {
        if self.cluster && buckets.specs.len() > buckets.user_specs {
            return self.take_in_two_phases(buckets, take).await;
        }
        let (mode, cost, shadow, lease_key, ttl) = match take {
            Take::Check { cost, shadow } => (Mode::Check, *cost, *shadow, None, 0),
            Take::Lease {
                tokens,
                lease_key,
                ttl_ms,
            } => (
                Mode::Lease,
                *tokens,
                false,
                Some(lease_key.as_str()),
                *ttl_ms,
            ),
        };
        self.take_once(Invocation {
            specs: &buckets.specs,
            user_specs: buckets.user_specs,
            index_key: &buckets.index_key,
            mode,
            cost,
            shadow,
            lease_key,
            ttl_ms: ttl,
        })
        .await
    }
    async fn settle(
        &self,
        buckets: &Buckets,
        lease_key: &str,
        used: u64,
    ) -> Result<(u64, bool), StoreError> {
        let split = self.cluster && buckets.specs.len() > buckets.user_specs;
        let (own, shared) = if split {
            buckets.specs.split_at(buckets.user_specs)
        } else {
            (buckets.specs.as_slice(), &[][..])
        };
        let mut inv = self.scripts.settle.prepare_invoke();
        for spec in own {
            inv.key(&spec.key);
        }
        inv.key(lease_key).arg(used).arg(own.len());
        for spec in own {
            inv.arg(spec.emission_us);
        }
        let (refunded, settled): (u64, i64) = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        if refunded > 0 && !shared.is_empty() {
            self.refund(shared, refunded, None).await?;
        }
        Ok((refunded, settled == 1))
    }
    async fn give_back(&self, buckets: &Buckets, tokens: u64) -> Result<(), StoreError> {
        // On a cluster the key's buckets share a slot, the global one may not.
        let split = self.cluster && buckets.specs.len() > buckets.user_specs;
        let (own, shared) = if split {
            buckets.specs.split_at(buckets.user_specs)
        } else {
            (buckets.specs.as_slice(), &[][..])
        };
        self.refund(own, tokens, None).await?;
        if !shared.is_empty() {
            self.refund(shared, tokens, None).await?;
        }
        Ok(())
    }
}
