//! The sweep: removing the cutoffs kept after erasures once every token
//! they guard has expired.

use crate::core::Core;
use crate::error::Result;
use crate::{time, userdata};
use rusqlite::params;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Serialize)]
pub struct Swept {
    pub removed_cutoffs: u64,
    pub waiting: u64,
}

/// Removes not-before cutoffs kept after erasures once every token they
/// guard has expired. The cutoff's owner is found by HMAC: no identifier
/// is kept for this.
pub fn sweep(core: &mut Core) -> Result<Swept> {
    let mut stmt = core.conn.prepare(
        "SELECT s.request_id, s.seq, s.detail, r.subject_mac FROM erasure_steps s
         JOIN requests r ON r.id = s.request_id WHERE s.status = 'retained'",
    )?;
    let retained: Vec<(String, i64, Option<String>, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    drop(stmt);
    let now = time::now_s();
    let (due, waiting): (Vec<_>, Vec<_>) = retained.into_iter().partition(|(_, _, detail, _)| {
        detail
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
            .and_then(|d| d.get("until").and_then(Value::as_i64))
            .is_none_or(|until| until <= now)
    });
    if due.is_empty() {
        return Ok(Swept {
            removed_cutoffs: 0,
            waiting: waiting.len() as u64,
        });
    }
    let mut con = core.redis()?;
    let cutoffs: Vec<String> = redis::cmd("HKEYS")
        .arg(userdata::REV_USERS)
        .query(&mut con)?;
    let mut removed = 0;
    for (request_id, seq, _, mac) in &due {
        for sub in cutoffs.iter().filter(|s| core.keys.subject(s) == *mac) {
            redis::cmd("HDEL")
                .arg(userdata::REV_USERS)
                .arg(sub)
                .query::<()>(&mut con)?;
            removed += 1;
        }
        let tx = core.conn.transaction()?;
        tx.execute(
            "UPDATE erasure_steps SET status = 'done', detail = ?3, done_at = ?4 WHERE request_id = ?1 AND seq = ?2",
            params![request_id, seq, json!({"cutoff_removed": true}).to_string(), time::now_rfc3339()],
        )?;
        crate::audit::append(
            &tx,
            &core.keys,
            &core.settings.actor,
            "erasure.cutoff_removed",
            Some(mac),
            &json!({"request": request_id}),
        )?;
        tx.commit()?;
    }
    Ok(Swept {
        removed_cutoffs: removed,
        waiting: waiting.len() as u64,
    })
}
