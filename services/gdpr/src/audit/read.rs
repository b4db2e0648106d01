//! Reading the log back: the entries after a sequence number, as JSON.

use crate::error::Result;
use rusqlite::Connection;
use serde_json::Value;

/// Entries after `since`, oldest first.
pub fn entries(conn: &Connection, since: i64) -> Result<Vec<Value>> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, action, subject_mac, details, hash FROM audit WHERE seq > ?1 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([since], |r| {
            let details: String = r.get(5)?;
            Ok(serde_json::json!({
                "seq": r.get::<_, i64>(0)?, "at": r.get::<_, String>(1)?, "actor": r.get::<_, String>(2)?,
                "action": r.get::<_, String>(3)?, "subject_hmac": r.get::<_, Option<String>>(4)?,
                "details": serde_json::from_str::<Value>(&details).unwrap_or(Value::String(details)),
                "hash": r.get::<_, String>(6)?,
            }))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}
