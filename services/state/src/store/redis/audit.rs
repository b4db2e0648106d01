//! The audit stream (capped) and the per-user key index (expiring with the
//! user's keys).

use super::reply::{array, failed, parse_audit};
use super::{now_ms, RedisStore};
use crate::store::keys;
use crate::store::{AuditStore, NewAuditEvent, StoreError};
use async_trait::async_trait;
use meshguard_api::audit::AuditEvent;
use redis::aio::ConnectionLike;
use redis::Value;

#[async_trait]
impl<C> AuditStore for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn audit(&self, event: &NewAuditEvent) -> Result<String, StoreError> {
        let details = event.details.to_string();
        let at_ms = now_ms();
        self.run(|mut c| async move {
            redis::cmd("XADD")
                .arg(keys::AUDIT_STREAM)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.audit_max_len)
                .arg("*")
                .arg("at_ms")
                .arg(at_ms)
                .arg("actor")
                .arg(&event.actor)
                .arg("action")
                .arg(&event.action)
                .arg("subject")
                .arg(&event.subject)
                .arg("details")
                .arg(details)
                .query_async(&mut c)
                .await
        })
        .await
    }
    async fn read_audit(&self, since: &str, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let start = if since == "0" || since.is_empty() {
            "-".to_string()
        } else {
            format!("({since}")
        };
        let reply: Value = self
            .run(|mut c| async move {
                redis::cmd("XRANGE")
                    .arg(keys::AUDIT_STREAM)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        parse_audit(array(&reply).ok_or_else(|| failed("audit"))?)
            .ok_or_else(|| failed("audit entry"))
    }
    async fn index_user(&self, user: &str, entries: &[String]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let index = keys::index(user);
        self.run(|mut c| async move {
            // The index expires like the user's keys: NX sets a first
            // expiry, GT only lengthens it.
            redis::pipe()
                .cmd("SADD")
                .arg(&index)
                .arg(entries)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&index)
                .arg(keys::USER_IDLE_TTL_MS)
                .arg("NX")
                .ignore()
                .cmd("PEXPIRE")
                .arg(&index)
                .arg(keys::USER_IDLE_TTL_MS)
                .arg("GT")
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }
    async fn user_index(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let mut keys: Vec<String> = self
            .run(|mut c| async move {
                redis::cmd("SMEMBERS")
                    .arg(keys::index(user))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        keys.sort();
        Ok(keys)
    }
}
