//! The user's data in meshguard-state's Redis, found through the per-user
//! index (`mg:{u:<id>}:index`, written by meshguard-state as it stores each
//! key; entries inside shared keys are `<key>#<member>`).
//!
//! Read and written here directly rather than through the state service:
//! its admin API lists the index but has no endpoint that reads or deletes
//! arbitrary indexed keys, and export needs every value type as stored.
//! The user's own keys share one hash tag, so each erasure is one atomic
//! MULTI on one slot.

use crate::error::{Error, Result};
use redis::{Connection, Value as RValue};
use serde_json::{json, Map, Value};

/// The index key, as meshguard-state names it (services/state/src/store/keys.rs).
pub fn index_key(user: &str) -> String {
    format!("mg:{{u:{user}}}:index")
}

/// The hash of users' not-before cutoffs (`sub` → Unix seconds).
pub const REV_USERS: &str = "mg:{rev}:users";

pub fn consents_key(user: &str) -> String {
    format!("mg:{{u:{user}}}:consents")
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
    } else if rest == "sessions" || rest == "session-records" {
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
        assert_eq!(category("mg:{u:a}:last-location"), "location");
        assert_eq!(category("mg:{rev}:users#a"), "revocations");
        assert_eq!(category("mg:{u:a}:consents"), "consents");
    }
}
