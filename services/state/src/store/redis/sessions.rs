//! Sessions: registered, touched and learned atomically by Lua scripts in the
//! user's hash slot; listed and ended with pipelines.

use super::reply::{array, failed, int, location, text};
use super::{now_ms, RedisStore};
use crate::store::keys;
use crate::store::{Learned, Registered, SeenSession, SessionStore, StoreError, Touched};
use async_trait::async_trait;
use meshguard_api::revocation::SESSION_REVOCATION_S;
use meshguard_api::session::{Geo, SessionInfo};
use redis::aio::ConnectionLike;
use redis::Value;
use std::collections::HashMap;

/// The sessions of a user that were ended (zset sid → until, Unix s): beside
/// the live ones, in the user's slot.
fn ended_sessions(user: &str) -> String {
    format!("{}-ended", keys::sessions(user))
}

#[async_trait]
impl<C> SessionStore for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn register_session(
        &self,
        session: &SessionInfo,
        max_sessions: u32,
    ) -> Result<Registered, StoreError> {
        let json = serde_json::to_string(session).map_err(|e| StoreError::Failed(e.to_string()))?;
        let (lat, lon) = session
            .geo
            .map(|g| (g.lat.to_string(), g.lon.to_string()))
            .unwrap_or_default();
        let mut inv = self.scripts.session_register.prepare_invoke();
        inv.key(keys::sessions(&session.user))
            .key(keys::session_records(&session.user))
            .key(keys::last_location(&session.user))
            .key(keys::index(&session.user))
            .arg(&session.session_id)
            .arg(session.created_ms)
            .arg(json)
            .arg(max_sessions)
            .arg(lat)
            .arg(lon)
            .arg(keys::USER_IDLE_TTL_MS);
        let reply: Vec<Value> = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        let [evicted, previous] = reply.as_slice() else {
            return Err(failed("session register"));
        };
        let mut out = Vec::new();
        for pair in array(evicted).ok_or_else(|| failed("evicted"))?.chunks(2) {
            let [sid, record] = pair else {
                return Err(failed("evicted pair"));
            };
            let sid = text(sid).ok_or_else(|| failed("evicted sid"))?;
            let info = text(record)
                .and_then(|r| serde_json::from_str::<SessionInfo>(&r).ok())
                .unwrap_or_else(|| SessionInfo {
                    user: session.user.clone(),
                    session_id: sid.clone(),
                    device_id: None,
                    user_agent: None,
                    ip: None,
                    geo: None,
                    created_ms: 0,
                    last_seen_ms: 0,
                });
            out.push(info);
        }
        Ok(Registered {
            evicted: out,
            previous: location(previous),
        })
    }
    async fn touch_session(
        &self,
        user: &str,
        session_id: &str,
        now_ms: u64,
        ip: Option<&str>,
        geo: Option<Geo>,
    ) -> Result<Touched, StoreError> {
        let (lat, lon) = geo
            .map(|g| (g.lat.to_string(), g.lon.to_string()))
            .unwrap_or_default();
        let mut inv = self.scripts.session_touch.prepare_invoke();
        inv.key(keys::sessions(user))
            .key(keys::session_records(user))
            .key(keys::last_location(user))
            .key(keys::index(user))
            .arg(session_id)
            .arg(now_ms)
            .arg(ip.unwrap_or(""))
            .arg(lat)
            .arg(lon)
            .arg(keys::USER_IDLE_TTL_MS);
        let reply: Vec<Value> = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        let [live, previous] = reply.as_slice() else {
            return Err(failed("session touch"));
        };
        if int(live) != Some(1) {
            return Ok(Touched::NotLive);
        }
        Ok(Touched::Live {
            previous: location(previous),
        })
    }
    async fn learn_session(
        &self,
        seen: &SeenSession<'_>,
        max_sessions: u32,
    ) -> Result<Learned, StoreError> {
        let (lat, lon) = seen
            .geo
            .map(|g| (g.lat.to_string(), g.lon.to_string()))
            .unwrap_or_default();
        let mut inv = self.scripts.session_learn.prepare_invoke();
        inv.key(keys::sessions(seen.user))
            .key(keys::session_records(seen.user))
            .key(keys::last_location(seen.user))
            .key(keys::index(seen.user))
            .key(ended_sessions(seen.user))
            .arg(seen.user)
            .arg(seen.session_id)
            .arg(seen.first_seen_ms)
            .arg(seen.last_seen_ms)
            .arg(seen.user_agent.unwrap_or(""))
            .arg(seen.ip.unwrap_or(""))
            .arg(lat)
            .arg(lon)
            .arg(max_sessions)
            .arg(keys::USER_IDLE_TTL_MS)
            .arg(SESSION_REVOCATION_S);
        let reply: Vec<Value> = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        let [state, evicted, previous] = reply.as_slice() else {
            return Err(failed("session learn"));
        };
        let new = match int(state) {
            Some(0) => return Ok(Learned::Ended),
            Some(1) => false,
            Some(2) => true,
            _ => return Err(failed("session learn state")),
        };
        let evicted = array(evicted)
            .ok_or_else(|| failed("evicted"))?
            .iter()
            .filter_map(text)
            .collect();
        Ok(Learned::Live {
            new,
            evicted,
            previous: location(previous),
        })
    }
    async fn mark_sessions_ended(
        &self,
        user: &str,
        session_ids: &[&str],
        until_s: u64,
    ) -> Result<(), StoreError> {
        if session_ids.is_empty() {
            return Ok(());
        }
        let key = ended_sessions(user);
        let ttl_s = until_s.saturating_sub(now_ms() / 1_000).max(1);
        self.run(|mut c| {
            let key = key.clone();
            async move {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for sid in session_ids {
                    pipe.cmd("ZADD").arg(&key).arg(until_s).arg(*sid).ignore();
                }
                pipe.cmd("EXPIRE").arg(&key).arg(ttl_s).ignore();
                pipe.cmd("SADD").arg(keys::index(user)).arg(&key).ignore();
                pipe.query_async::<()>(&mut c).await
            }
        })
        .await
    }
    async fn list_sessions(&self, user: &str) -> Result<Vec<SessionInfo>, StoreError> {
        let (order, records): (Vec<String>, HashMap<String, String>) = self
            .run(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .cmd("ZRANGE")
                    .arg(keys::sessions(user))
                    .arg(0)
                    .arg(-1)
                    .cmd("HGETALL")
                    .arg(keys::session_records(user))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(order
            .iter()
            .filter_map(|sid| records.get(sid))
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect())
    }
    async fn end_session(&self, user: &str, session_id: &str) -> Result<bool, StoreError> {
        let (removed, _): (u64, u64) = self
            .run(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .cmd("ZREM")
                    .arg(keys::sessions(user))
                    .arg(session_id)
                    .cmd("HDEL")
                    .arg(keys::session_records(user))
                    .arg(session_id)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(removed > 0)
    }
}
