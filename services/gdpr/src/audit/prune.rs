//! Pruning past the retention: the newest checkpoint older than it becomes
//! the anchor the chain starts from.

use super::append::append;
use super::ends::anchor;
use super::macs::anchor_mac;
use crate::error::Result;
use crate::keys::Keys;
use crate::time;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Pruned {
    pub removed_entries: u64,
    pub anchor_seq: Option<i64>,
}

/// Deletes entries older than the retention, up to the newest checkpoint
/// older than it; that checkpoint becomes the anchor the chain starts from.
pub fn prune(conn: &mut Connection, keys: &Keys, retention_days: i64) -> Result<Pruned> {
    let cutoff = time::rfc3339(chrono::Utc::now() - chrono::Duration::days(retention_days));
    let tx = conn.transaction()?;
    let cp: Option<(i64, String, i64)> = tx
        .query_row(
            "SELECT c.seq, c.hash, c.n FROM checkpoints c JOIN audit a ON a.seq = c.seq
             WHERE a.at < ?1 ORDER BY c.seq DESC LIMIT 1",
            [&cutoff],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((seq, hash, n)) = cp else {
        return Ok(Pruned {
            removed_entries: 0,
            anchor_seq: anchor(&tx)?.map(|a| a.seq),
        });
    };
    let removed = tx.execute("DELETE FROM audit WHERE seq <= ?1", [seq])? as u64;
    tx.execute("DELETE FROM checkpoints WHERE seq < ?1", [seq])?;
    tx.execute(
        "INSERT INTO anchor (one, seq, hash, n, mac) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
           n = excluded.n, mac = excluded.mac",
        params![seq, hash, n, anchor_mac(keys, seq, &hash, n)],
    )?;
    append(
        &tx,
        keys,
        "meshguard-gdpr",
        "audit.pruned",
        None,
        &serde_json::json!({"removed_entries": removed, "anchor_seq": seq, "retention_days": retention_days}),
    )?;
    tx.commit()?;
    Ok(Pruned {
        removed_entries: removed,
        anchor_seq: Some(seq),
    })
}
