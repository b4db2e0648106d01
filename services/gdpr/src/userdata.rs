//! The user's data in meshguard-state's Redis, found through the per-user
//! index (`mg:{u:sub:<id>}:index`, written by meshguard-state as it stores
//! each key; entries inside shared keys are `<key>#<member>`), every key
//! under the user's hash tag, and the user's members of the shared
//! revocation structures. Key names come from `meshguard_api::keys`, the
//! same functions the rate limiter and meshguard-state name them with.
//!
//! Read and written here directly rather than through the state service:
//! its admin API lists the index but has no endpoint that reads or deletes
//! arbitrary indexed keys, and export needs every value type as stored.
//! The user's own keys share one hash tag, so each erasure is one atomic
//! MULTI on one slot.

use crate::error::{Error, Result};
use meshguard_api::keys;
use redis::{Connection, Value as RValue};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// The index key, as meshguard-state names it.
pub fn index_key(user: &str) -> String {
    keys::user_index(user)
}

/// The hash of users' not-before cutoffs (`sub` → Unix seconds).
pub const REV_USERS: &str = keys::REV_USERS;

pub fn consents_key(user: &str) -> String {
    keys::consents(user)
}

/// One index entry split into its key and, for shared keys, the member.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub member: Option<String>,
}

impl Entry {
    /// Keys look like `mg:{tag}:rest`; a `#` after the tag starts the member
    /// (the tag itself may contain `#`: user ids can).
    pub fn parse(entry: &str) -> Entry {
        let after_tag = entry.find('}').map_or(0, |i| i + 1);
        match entry[after_tag..].find('#') {
            Some(i) => Entry {
                key: entry[..after_tag + i].to_string(),
                member: Some(entry[after_tag + i + 1..].to_string()),
            },
            None => Entry {
                key: entry.to_string(),
                member: None,
            },
        }
    }
}

/// The data category of an index entry (what legal holds and the Art. 15
/// metadata refer to).
pub fn category(entry: &str) -> &'static str {
    let Entry { key, .. } = Entry::parse(entry);
    let rest = key.rsplit_once("}:").map_or("", |(_, r)| r);
    if key.starts_with("mg:{rev}") {
        "revocations"
    } else if rest.starts_with("rl:") || rest.starts_with("lease:") {
        "rate_limits"
    } else if rest == "sessions" || rest == "session-records" || rest.starts_with("sessions-") {
        "sessions"
    } else if rest == "last-location" {
        "location"
    } else if rest == "consents" {
        "consents"
    } else {
        "other"
    }
}

pub fn index(con: &mut Connection, user: &str) -> Result<Vec<String>> {
    let mut entries: Vec<String> = redis::cmd("SMEMBERS").arg(index_key(user)).query(con)?;
    entries.sort();
    Ok(entries)
}

/// `text` as a literal inside a Redis glob pattern.
fn glob_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every entry naming the user: the index, every key under the user's hash
/// tag (the index expires and may outlive or miss a key: leases are never
/// indexed), the user's not-before cutoff and session revocations. Single
/// node only (SCAN walks one node).
pub fn find(con: &mut Connection, user: &str) -> Result<Vec<String>> {
    let index = index_key(user);
    let mut all: BTreeSet<String> = self::index(con, user)?.into_iter().collect();
    let pattern = format!("{}*", glob_literal(&keys::user_prefix(user)));
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query(con)?;
        all.extend(batch.into_iter().filter(|k| *k != index));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let cutoff: bool = redis::cmd("HEXISTS")
        .arg(keys::REV_USERS)
        .arg(user)
        .query(con)?;
    if cutoff {
        all.insert(format!("{}#{user}", keys::REV_USERS));
    }
    let pattern = format!("{}\n*", glob_literal(user));
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("ZSCAN")
            .arg(keys::REV_SESSIONS)
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query(con)?;
        // Replies alternate member and score.
        for member in batch.into_iter().step_by(2) {
            all.insert(format!("{}#{member}", keys::REV_SESSIONS));
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(all.into_iter().collect())
}

/// Ids of the stream's entries for which `names_user` holds, read in pages.
fn stream_ids(
    con: &mut Connection,
    stream: &str,
    names_user: impl Fn(&[(String, String)]) -> bool,
) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut start = "-".to_string();
    loop {
        let page: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(1000)
            .query(con)?;
        let Some((last, _)) = page.last() else {
            return Ok(ids);
        };
        start = format!("({last}");
        for (id, flat) in &page {
            let fields: Vec<(String, String)> = flat
                .chunks(2)
                .filter_map(|p| match p {
                    [k, v] => Some((k.clone(), v.clone())),
                    _ => None,
                })
                .collect();
            if names_user(&fields) {
                ids.push(id.clone());
            }
        }
    }
}

/// Deletes the given feed entries atomically and moves `trimmed-through` up to
/// the newest deleted id, so a plugin whose cursor lies before it reloads a
/// snapshot (which still carries the retained cutoff) instead of reading
/// changes past a gap.
const SCRUB_FEED: &str = r"
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return { tonumber(ms or 0), tonumber(seq or 0) }
end
for i = 1, #ARGV do redis.call('XDEL', KEYS[1], ARGV[i]) end
local newest = parse(ARGV[#ARGV])
local cur = parse(redis.call('GET', KEYS[2]) or '0-0')
if cur[1] < newest[1] or (cur[1] == newest[1] and cur[2] < newest[2]) then
  redis.call('SET', KEYS[2], ARGV[#ARGV])
end
return #ARGV
";

/// Removes the revocation feed's entries naming the user (user and session
/// revocations). Their effect stays: the cutoff lives in `mg:{rev}:users`.
pub fn scrub_feed(con: &mut Connection, user: &str) -> Result<usize> {
    let mut ids = stream_ids(con, keys::REV_STREAM, |fields| {
        fields.iter().any(|(k, v)| k == "sub" && v == user)
    })?;
    if ids.is_empty() {
        return Ok(0);
    }
    ids.sort_by_key(|id| {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (
            ms.parse::<u64>().unwrap_or(0),
            seq.parse::<u64>().unwrap_or(0),
        )
    });
    let n = ids.len();
    redis::Script::new(SCRUB_FEED)
        .key(keys::REV_STREAM)
        .key(keys::REV_TRIMMED)
        .arg(&ids)
        .invoke::<i64>(con)?;
    Ok(n)
}

fn json_names(value: &Value, user: &str) -> bool {
    match value {
        Value::String(s) => s == user,
        Value::Array(a) => a.iter().any(|v| json_names(v, user)),
        Value::Object(o) => o.values().any(|v| json_names(v, user)),
        _ => false,
    }
}

/// Removes meshguard-state's audit events about the user (ingest them into
/// the hash chain first: there they keep only the subject's HMAC).
pub fn scrub_audit(con: &mut Connection, user: &str) -> Result<usize> {
    let ids = stream_ids(con, keys::AUDIT_STREAM, |fields| {
        fields.iter().any(|(k, v)| {
            (k == "subject" && v == user)
                || (k == "details"
                    && serde_json::from_str::<Value>(v).is_ok_and(|d| json_names(&d, user)))
        })
    })?;
    for chunk in ids.chunks(500) {
        redis::cmd("XDEL")
            .arg(keys::AUDIT_STREAM)
            .arg(chunk)
            .query::<()>(con)?;
    }
    Ok(ids.len())
}

fn text(v: &RValue) -> String {
    match v {
        RValue::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        RValue::SimpleString(s) => s.clone(),
        RValue::Int(i) => i.to_string(),
        RValue::Double(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// Stored strings that are JSON (session records, consents) stay structured.
fn value_of(raw: String) -> Value {
    match serde_json::from_str::<Value>(&raw) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
        _ => Value::String(raw),
    }
}

/// The data one entry holds, or `None` when it is gone already.
pub fn read(con: &mut Connection, entry: &str) -> Result<Option<Value>> {
    let Entry { key, member } = Entry::parse(entry);
    let kind: String = redis::cmd("TYPE").arg(&key).query(con)?;
    let value = match (kind.as_str(), member) {
        ("none", _) => return Ok(None),
        ("string", None) => {
            let v: Option<String> = redis::cmd("GET").arg(&key).query(con)?;
            v.map(value_of)
        }
        ("hash", None) => {
            let pairs: Vec<(String, String)> = redis::cmd("HGETALL").arg(&key).query(con)?;
            let map: Map<String, Value> =
                pairs.into_iter().map(|(f, v)| (f, value_of(v))).collect();
            Some(Value::Object(map))
        }
        ("hash", Some(m)) => {
            let v: Option<String> = redis::cmd("HGET").arg(&key).arg(&m).query(con)?;
            v.map(|v| json!({ m: value_of(v) }))
        }
        ("zset", None) => {
            let pairs: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(con)?;
            let map: Map<String, Value> = pairs.into_iter().map(|(m, s)| (m, json!(s))).collect();
            Some(Value::Object(map))
        }
        ("zset", Some(m)) => {
            let v: Option<f64> = redis::cmd("ZSCORE").arg(&key).arg(&m).query(con)?;
            v.map(|s| json!({ m: s }))
        }
        ("set", None) => {
            let mut v: Vec<String> = redis::cmd("SMEMBERS").arg(&key).query(con)?;
            v.sort();
            Some(json!(v))
        }
        ("set", Some(m)) => {
            let present: bool = redis::cmd("SISMEMBER").arg(&key).arg(&m).query(con)?;
            present.then(|| json!([m]))
        }
        ("list", None) => {
            let v: Vec<RValue> = redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query(con)?;
            Some(Value::Array(v.iter().map(|x| value_of(text(x))).collect()))
        }
        (other, _) => {
            return Err(Error::Internal(format!(
                "index entry {entry} is a Redis {other}, which export does not read"
            )))
        }
    };
    Ok(value)
}

/// Removes one entry's data and its index entry, atomically where they share
/// a slot (every per-user key does). Removing what is gone already is fine.
pub fn erase(con: &mut Connection, user: &str, entry: &str) -> Result<()> {
    let Entry { key, member } = Entry::parse(entry);
    let index = index_key(user);
    let mut pipe = redis::pipe();
    match member {
        None => {
            pipe.atomic().cmd("DEL").arg(&key).ignore();
            pipe.cmd("SREM").arg(&index).arg(entry).ignore();
            pipe.query::<()>(con)?;
        }
        Some(m) => {
            // Shared keys live in another slot: delete the member first, then
            // the index entry, so a crash in between leaves it to be redone.
            let kind: String = redis::cmd("TYPE").arg(&key).query(con)?;
            let command = match kind.as_str() {
                "hash" => Some("HDEL"),
                "zset" => Some("ZREM"),
                "set" => Some("SREM"),
                "none" => None,
                other => {
                    return Err(Error::Internal(format!(
                        "index entry {entry} is a member of a Redis {other}"
                    )))
                }
            };
            if let Some(c) = command {
                redis::cmd(c).arg(&key).arg(&m).query::<()>(con)?;
            }
            redis::cmd("SREM").arg(&index).arg(entry).query::<()>(con)?;
        }
    }
    Ok(())
}

/// Drops an index entry without touching its data (for data kept on purpose).
pub fn unindex(con: &mut Connection, user: &str, entry: &str) -> Result<()> {
    redis::cmd("SREM")
        .arg(index_key(user))
        .arg(entry)
        .query::<()>(con)?;
    Ok(())
}

/// Mirrors a user's current consents where the policy layer reads user data.
pub fn write_consent(
    con: &mut Connection,
    user: &str,
    purpose: &str,
    record: &Value,
) -> Result<()> {
    let key = consents_key(user);
    redis::pipe()
        .atomic()
        .cmd("HSET")
        .arg(&key)
        .arg(purpose)
        .arg(record.to_string())
        .ignore()
        .cmd("SADD")
        .arg(index_key(user))
        .arg(&key)
        .ignore()
        .query::<()>(con)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_after_the_hash_tag() {
        assert_eq!(
            Entry::parse("mg:{u:a#b}:sessions"),
            Entry {
                key: "mg:{u:a#b}:sessions".into(),
                member: None
            }
        );
        assert_eq!(
            Entry::parse("mg:{rev}:sessions#a#b\ns1"),
            Entry {
                key: "mg:{rev}:sessions".into(),
                member: Some("a#b\ns1".into())
            }
        );
    }

    #[test]
    fn categories() {
        assert_eq!(category("mg:{u:a}:rl:minute"), "rate_limits");
        assert_eq!(category("mg:{u:a}:lease:x"), "rate_limits");
        assert_eq!(category("mg:{u:a}:session-records"), "sessions");
        assert_eq!(category("mg:{u:sub:a}:sessions-ended"), "sessions");
        assert_eq!(category("mg:{u:a}:last-location"), "location");
        assert_eq!(category("mg:{rev}:users#a"), "revocations");
        assert_eq!(category("mg:{u:a}:consents"), "consents");
    }
}
