//! The Redis implementation of [`Store`](super::Store): Lua scripts for everything that must
//! be atomic, loaded once and called by hash (the `redis` crate's `Script`
//! reloads on NOSCRIPT), and a deadline on every call so a dead Redis costs a
//! caller at most `timeout`.

mod audit;
mod consents;
mod flags;
mod ratelimit;
mod reply;
mod revocations;
mod sessions;

use super::{Store, StoreError};
use async_trait::async_trait;
pub(super) use meshguard_api::time::now_ms;
use prometheus::IntCounter;
use redis::aio::ConnectionLike;
use redis::Script;
use reply::failed;
use std::future::Future;
use std::time::Duration;

struct Scripts {
    ratelimit: Script,
    settle: Script,
    revoke: Script,
    feed: Script,
    session_register: Script,
    session_touch: Script,
    session_learn: Script,
    refund: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            ratelimit: Script::new(include_str!("../lua/ratelimit.lua")),
            settle: Script::new(include_str!("../lua/settle.lua")),
            revoke: Script::new(include_str!("../lua/revoke.lua")),
            feed: Script::new(include_str!("../lua/feed.lua")),
            session_register: Script::new(include_str!("../lua/session_register.lua")),
            session_touch: Script::new(include_str!("../lua/session_touch.lua")),
            session_learn: Script::new(include_str!("../lua/session_learn.lua")),
            refund: Script::new(include_str!("../lua/refund.lua")),
        }
    }
}

pub struct RedisStore<C> {
    conn: C,
    /// Keys of different hash slots cannot meet in one script on a cluster:
    /// a decision over the key's buckets and the global one runs in two
    /// phases there (see `take_in_two_phases`).
    cluster: bool,
    scripts: Scripts,
    timeout: Duration,
    feed_max_len: u64,
    audit_max_len: u64,
    errors: IntCounter,
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    pub fn new(
        conn: C,
        cluster: bool,
        timeout: Duration,
        feed_max_len: u64,
        audit_max_len: u64,
        errors: IntCounter,
    ) -> Self {
        RedisStore {
            conn,
            cluster,
            scripts: Scripts::new(),
            timeout,
            feed_max_len,
            audit_max_len,
            errors,
        }
    }

    /// Runs one Redis interaction under the deadline, mapping failures.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(C) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, f(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.errors.inc();
                if e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
                {
                    Err(StoreError::Unavailable(e.to_string()))
                } else {
                    Err(StoreError::Failed(e.to_string()))
                }
            }
            Err(_) => {
                self.errors.inc();
                Err(StoreError::Unavailable(format!(
                    "no answer from redis within {:?}",
                    self.timeout
                )))
            }
        }
    }
}

#[async_trait]
impl<C> Store for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self
            .run(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(failed("PING"))
        }
    }
}
