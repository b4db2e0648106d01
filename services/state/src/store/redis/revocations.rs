//! Revocations: recorded and appended to the feed by `revoke.lua`, read back
//! as changes or a snapshot by `feed.lua`.

use super::reply::{failed, feed_entry, int, pairs, scored_pairs, stream_id_of, text};
use super::RedisStore;
use crate::store::keys;
use crate::store::{Recorded, RevocationStore, StoreError};
use async_trait::async_trait;
use meshguard_api::revocation::{
    Revocation, RevocationFeed, RevocationSnapshot, RevokedSession, RevokedToken, UserCutoff,
    MAX_CLOCK_SKEW_S,
};
use redis::aio::ConnectionLike;
use redis::Value;

#[async_trait]
impl<C> RevocationStore for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn revoke(&self, revocation: &Revocation) -> Result<Recorded, StoreError> {
        let mut inv = self.scripts.revoke.prepare_invoke();
        inv.key(keys::REV_STREAM)
            .key(keys::REV_TOKENS)
            .key(keys::REV_USERS)
            .key(keys::REV_SESSIONS)
            .key(keys::REV_TRIMMED);
        match revocation {
            Revocation::Token { iss, jti, exp } => {
                inv.arg("token")
                    .arg(self.feed_max_len)
                    .arg(iss)
                    .arg(jti)
                    .arg(exp)
                    .arg(MAX_CLOCK_SKEW_S);
            }
            Revocation::User { sub, .. } => {
                inv.arg("user").arg(self.feed_max_len).arg(sub);
            }
            Revocation::Session {
                sub,
                session_id,
                until,
            } => {
                inv.arg("session")
                    .arg(self.feed_max_len)
                    .arg(sub)
                    .arg(session_id)
                    .arg(until);
            }
        }
        let (cursor, _at_ms, not_before): (String, String, u64) = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        let revocation = match revocation {
            Revocation::User { sub, .. } => Revocation::User {
                sub: sub.clone(),
                not_before,
            },
            other => other.clone(),
        };
        Ok(Recorded { cursor, revocation })
    }
    async fn revocation_feed(
        &self,
        since: &str,
        limit: usize,
    ) -> Result<RevocationFeed, StoreError> {
        let mut inv = self.scripts.feed.prepare_invoke();
        inv.key(keys::REV_STREAM)
            .key(keys::REV_TOKENS)
            .key(keys::REV_USERS)
            .key(keys::REV_SESSIONS)
            .key(keys::REV_TRIMMED)
            .arg(since)
            .arg(limit)
            .arg(MAX_CLOCK_SKEW_S);
        let reply: Vec<Value> = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        let kind = reply.first().and_then(text).ok_or_else(|| failed("feed"))?;
        let cursor = reply
            .get(1)
            .and_then(text)
            .ok_or_else(|| failed("feed cursor"))?;
        if kind == "changes" {
            let more = reply.get(2).and_then(int) == Some(1);
            let mut entries = Vec::new();
            for pair in reply.get(3..).unwrap_or_default().chunks(2) {
                let [id, fields] = pair else {
                    return Err(failed("feed entry"));
                };
                let id = stream_id_of(id).ok_or_else(|| failed("feed id"))?;
                let fields = pairs(fields).ok_or_else(|| failed("feed fields"))?;
                // Entries this version cannot read are skipped, not fatal.
                if let Some(entry) = feed_entry(id, &fields) {
                    entries.push(entry);
                }
            }
            return Ok(RevocationFeed::Changes {
                cursor,
                entries,
                more,
            });
        }
        let bad = || failed("snapshot");
        let tokens = scored_pairs(reply.get(3).ok_or_else(bad)?).ok_or_else(bad)?;
        let users = pairs(reply.get(4).ok_or_else(bad)?).ok_or_else(bad)?;
        let sessions = scored_pairs(reply.get(5).ok_or_else(bad)?).ok_or_else(bad)?;
        let mut users: Vec<UserCutoff> = users
            .into_iter()
            .filter_map(|(sub, nb)| {
                Some(UserCutoff {
                    sub,
                    not_before: nb.parse().ok()?,
                })
            })
            .collect();
        users.sort_by(|a, b| a.sub.cmp(&b.sub));
        Ok(RevocationFeed::Snapshot(RevocationSnapshot {
            cursor,
            tokens: tokens
                .into_iter()
                .map(|(iss, jti, exp)| RevokedToken { iss, jti, exp })
                .collect(),
            users,
            sessions: sessions
                .into_iter()
                .map(|(sub, session_id, until)| RevokedSession {
                    sub,
                    session_id,
                    until,
                })
                .collect(),
        }))
    }
}
