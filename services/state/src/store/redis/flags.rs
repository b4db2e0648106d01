//! Flag definitions in one hash, versioned by a counter both change in one
//! transaction.

use super::reply::failed;
use super::RedisStore;
use crate::store::keys;
use crate::store::{FlagStore, StoreError};
use async_trait::async_trait;
use meshguard_api::flags::{FlagDefinition, FlagSnapshot};
use redis::aio::ConnectionLike;
use std::collections::HashMap;

#[async_trait]
impl<C> FlagStore for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn change_flags(
        &self,
        put: &[FlagDefinition],
        delete: &[String],
        replace: bool,
    ) -> Result<(u64, bool), StoreError> {
        let mut encoded = Vec::with_capacity(put.len());
        for flag in put {
            let json =
                serde_json::to_string(flag).map_err(|e| StoreError::Failed(e.to_string()))?;
            encoded.push((flag.key.clone(), json));
        }
        let mut to_delete: Vec<String> = delete.to_vec();
        if replace {
            let existing: Vec<String> = self
                .run(|mut c| async move {
                    redis::cmd("HKEYS")
                        .arg(keys::FLAG_DEFS)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            to_delete.extend(
                existing
                    .into_iter()
                    .filter(|k| !put.iter().any(|f| &f.key == k)),
            );
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut deletes = 0;
        if !to_delete.is_empty() {
            pipe.cmd("HDEL").arg(keys::FLAG_DEFS).arg(&to_delete);
            deletes = 1;
        }
        if !encoded.is_empty() {
            pipe.cmd("HSET").arg(keys::FLAG_DEFS).arg(&encoded).ignore();
        }
        pipe.cmd("INCR").arg(keys::FLAG_VERSION);
        let reply: Vec<u64> = self
            .run(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        let version = reply
            .last()
            .copied()
            .ok_or_else(|| failed("flag version"))?;
        let deleted = if deletes == 1 {
            reply.first().copied().unwrap_or(0)
        } else {
            0
        };
        Ok((version, !encoded.is_empty() || deleted > 0))
    }
    async fn flag_version(&self) -> Result<u64, StoreError> {
        let v: Option<u64> = self
            .run(|mut c| async move {
                redis::cmd("GET")
                    .arg(keys::FLAG_VERSION)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(v.unwrap_or(0))
    }
    async fn flag_snapshot(&self) -> Result<FlagSnapshot, StoreError> {
        let (version, defs): (Option<u64>, HashMap<String, String>) = self
            .run(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .cmd("GET")
                    .arg(keys::FLAG_VERSION)
                    .cmd("HGETALL")
                    .arg(keys::FLAG_DEFS)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mut flags: Vec<FlagDefinition> = defs
            .values()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect();
        flags.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(FlagSnapshot {
            version: version.unwrap_or(0),
            flags,
        })
    }
}
