//! Appending an entry to the chain.

use super::ends::head;
use super::macs::entry_hash;
use super::seal::{seal, seal_head};
use super::CHECKPOINT_EVERY;
use crate::error::Result;
use crate::keys::Keys;
use crate::time;
use rusqlite::{params, Connection};
use serde_json::Value;

/// Appends one entry (call inside the transaction that makes the change it
/// records) and seals a checkpoint every `CHECKPOINT_EVERY` entries.
pub fn append(
    conn: &Connection,
    keys: &Keys,
    actor: &str,
    action: &str,
    subject_mac: Option<&str>,
    details: &Value,
) -> Result<i64> {
    let (last, prev) = head(conn)?;
    let seq = last + 1;
    let at = time::now_rfc3339();
    let details = details.to_string();
    let hash = entry_hash(&prev, seq, &at, actor, action, subject_mac, &details);
    conn.execute(
        "INSERT INTO audit (seq, at, actor, action, subject_mac, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![seq, at, actor, action, subject_mac, details, prev, hash],
    )?;
    if seq % CHECKPOINT_EVERY == 0 {
        seal(conn, keys, seq, &hash)?;
    }
    seal_head(conn, keys)?;
    Ok(seq)
}
