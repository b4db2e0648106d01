//! The Redis implementation of [`Store`]: Lua scripts for everything that must
//! be atomic, loaded once and called by hash (the `redis` crate's `Script`
//! reloads on NOSCRIPT), and a deadline on every call so a dead Redis costs a
//! caller at most `timeout`.

use super::keys;
use super::{
    BucketOutcome, BucketSpec, Buckets, Decision, LastLocation, Learned, NewAuditEvent, Recorded,
    Registered, SeenSession, Store, StoreError, Take, Touched,
};
use async_trait::async_trait;
use meshguard_api::audit::AuditEvent;
use meshguard_api::flags::{FlagDefinition, FlagSnapshot};
use meshguard_api::revocation::{
    FeedEntry, Revocation, RevocationFeed, RevocationSnapshot, RevokedSession, RevokedToken,
    UserCutoff, MAX_CLOCK_SKEW_S, SESSION_REVOCATION_S,
};
use meshguard_api::session::{Geo, SessionInfo};
use prometheus::IntCounter;
use redis::aio::ConnectionLike;
use redis::{Script, Value};
use std::collections::HashMap;
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
            ratelimit: Script::new(include_str!("lua/ratelimit.lua")),
            settle: Script::new(include_str!("lua/settle.lua")),
            revoke: Script::new(include_str!("lua/revoke.lua")),
            feed: Script::new(include_str!("lua/feed.lua")),
            session_register: Script::new(include_str!("lua/session_register.lua")),
            session_touch: Script::new(include_str!("lua/session_touch.lua")),
            session_learn: Script::new(include_str!("lua/session_learn.lua")),
            refund: Script::new(include_str!("lua/refund.lua")),
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

#[derive(Debug, Clone, Copy)]
enum Mode {
    Check,
    Lease,
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// One call of the rate-limit script over buckets of one hash slot.
    #[allow(clippy::too_many_arguments)]
    async fn take_once(
        &self,
        specs: &[BucketSpec],
        user_specs: usize,
        index_key: &str,
        mode: Mode,
        cost: u64,
        shadow: bool,
        lease_key: Option<&str>,
        ttl_ms: u64,
    ) -> Result<Decision, StoreError> {
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
        let head = reply.get(..3).ok_or_else(|| failed("ratelimit"))?;
        let admitted = int(&head[0]).ok_or_else(|| failed("ratelimit admitted"))? == 1;
        let granted = u64_of(&head[1]).ok_or_else(|| failed("ratelimit granted"))?;
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
                    .take_once(own, own.len(), index, Mode::Check, *cost, false, None, 0)
                    .await?;
                if !first.admitted {
                    let peek = self
                        .take_once(shared, 0, shared_index, Mode::Check, 0, false, None, 0)
                        .await?;
                    first.buckets.extend(peek.buckets);
                    first.admitted = *shadow;
                    return Ok(first);
                }
                let second = self
                    .take_once(shared, 0, shared_index, Mode::Check, *cost, false, None, 0)
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
                    .take_once(
                        own,
                        own.len(),
                        index,
                        Mode::Lease,
                        *tokens,
                        false,
                        Some(lease_key),
                        *ttl_ms,
                    )
                    .await?;
                let second = self
                    .take_once(
                        shared,
                        0,
                        shared_index,
                        Mode::Lease,
                        first.granted,
                        false,
                        None,
                        *ttl_ms,
                    )
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

fn failed(what: &str) -> StoreError {
    StoreError::Failed(format!("unexpected reply: {what}"))
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(items) => Some(items),
        Value::Nil => Some(&[]),
        _ => None,
    }
}

fn u64_of(v: &Value) -> Option<u64> {
    int(v).and_then(|i| u64::try_from(i).ok())
}

/// A flat `[k1, v1, k2, v2, ...]` reply as a map.
fn pairs(v: &Value) -> Option<HashMap<String, String>> {
    let items = array(v)?;
    let mut map = HashMap::with_capacity(items.len() / 2);
    for pair in items.chunks(2) {
        if let [k, v] = pair {
            map.insert(text(k)?, text(v)?);
        }
    }
    Some(map)
}

fn location(v: &Value) -> Option<LastLocation> {
    let items = array(v)?;
    if let [lat, lon, at, sid] = items {
        Some(LastLocation {
            geo: Geo {
                lat: text(lat)?.parse().ok()?,
                lon: text(lon)?.parse().ok()?,
            },
            at_ms: text(at)?.parse().ok()?,
            session_id: text(sid)?,
        })
    } else {
        None
    }
}

fn feed_entry(id: String, fields: &HashMap<String, String>) -> Option<FeedEntry> {
    let get = |k: &str| fields.get(k).cloned();
    let num = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
    let revocation = match fields.get("kind").map(String::as_str)? {
        "token" => Revocation::Token {
            iss: get("iss")?,
            jti: get("jti")?,
            exp: num("exp")?,
        },
        "user" => Revocation::User {
            sub: get("sub")?,
            not_before: num("not_before")?,
        },
        "session" => Revocation::Session {
            sub: get("sub")?,
            session_id: get("session_id")?,
            until: num("until")?,
        },
        _ => return None,
    };
    Some(FeedEntry {
        cursor: id,
        at_ms: num("at_ms")?,
        revocation,
    })
}

/// `[member1, score1, ...]` with members `a\nb`.
fn scored_pairs(v: &Value) -> Option<Vec<(String, String, u64)>> {
    let items = array(v)?;
    let mut out = Vec::with_capacity(items.len() / 2);
    for pair in items.chunks(2) {
        if let [member, score] = pair {
            let member = text(member)?;
            let (a, b) = member.split_once('\n')?;
            let score = text(score)?.parse::<f64>().ok()?;
            out.push((a.to_string(), b.to_string(), score as u64));
        }
    }
    Some(out)
}

fn stream_id_of(v: &Value) -> Option<String> {
    text(v)
}

fn parse_audit(items: &[Value]) -> Option<Vec<AuditEvent>> {
    let mut events = Vec::with_capacity(items.len());
    for entry in items {
        let [id, fields] = array(entry)? else {
            return None;
        };
        let id = text(id)?;
        let fields = pairs(fields)?;
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        events.push(AuditEvent {
            at_ms: get("at_ms").parse().unwrap_or(0),
            actor: get("actor"),
            action: get("action"),
            subject: get("subject"),
            details: serde_json::from_str(&get("details")).unwrap_or(serde_json::Value::Null),
            id,
        });
    }
    Some(events)
}

/// The sessions of a user that were ended (zset sid → until, Unix s): beside
/// the live ones, in the user's slot.
fn ended_sessions(user: &str) -> String {
    format!("{}-ended", keys::sessions(user))
}

/// How long a user's session keys live after their last write: a user not
/// seen for this long leaves no session data behind.
const SESSION_KEYS_TTL_MS: u64 = 30 * 24 * 3_600 * 1_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
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
        self.take_once(
            &buckets.specs,
            buckets.user_specs,
            &buckets.index_key,
            mode,
            cost,
            shadow,
            lease_key,
            ttl,
        )
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
            .arg(SESSION_KEYS_TTL_MS)
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

    async fn consents(&self, users: &[String]) -> Result<HashMap<String, Vec<String>>, StoreError> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let records: Vec<HashMap<String, String>> = self
            .run(|mut c| async move {
                let mut pipe = redis::pipe();
                for user in users {
                    pipe.cmd("HGETALL").arg(meshguard_api::keys::consents(user));
                }
                pipe.query_async(&mut c).await
            })
            .await?;
        Ok(users
            .iter()
            .zip(records)
            .map(|(user, record)| {
                let mut granted: Vec<String> = record
                    .into_iter()
                    .filter(|(_, choice)| {
                        // `{"granted": true, ...}`; anything else is no consent.
                        serde_json::from_str::<serde_json::Value>(choice)
                            .is_ok_and(|c| c["granted"] == serde_json::Value::Bool(true))
                    })
                    .map(|(purpose, _)| purpose)
                    .collect();
                granted.sort();
                (user.clone(), granted)
            })
            .collect())
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
