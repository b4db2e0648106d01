//! Sealing: checkpoints (automatic and on demand), the head seal rewritten
//! with every entry, and the one-time reseal of a log written before the
//! seals carried MACs.

use super::ends::{anchor, checkpoint_count, head};
use super::macs::{anchor_mac, checkpoint_mac, head_mac};
use crate::error::Result;
use crate::keys::Keys;
use crate::time;
use rusqlite::{params, Connection, OptionalExtension};

/// Rewrites the head seal to the current last entry and checkpoint count.
pub(super) fn seal_head(conn: &Connection, keys: &Keys) -> Result<()> {
    let (seq, hash) = head(conn)?;
    let count = checkpoint_count(conn)?;
    conn.execute(
        "INSERT INTO head (one, seq, hash, checkpoints, mac) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
           checkpoints = excluded.checkpoints, mac = excluded.mac",
        params![seq, hash, count, head_mac(keys, seq, &hash, count)],
    )?;
    Ok(())
}

/// Seals a database written before checkpoints, anchor and head carried
/// their MACs (schema version 1), trusting its state at the upgrade: the
/// ordinals follow the checkpoints' order.
pub fn reseal(conn: &Connection, keys: &Keys) -> Result<()> {
    let mut stmt = conn.prepare("SELECT seq, hash, at FROM checkpoints ORDER BY seq")?;
    let rows: Vec<(i64, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    drop(stmt);
    let first = anchor(conn)?.map_or(1, |a| a.n.max(1));
    for (i, (seq, hash, at)) in rows.iter().enumerate() {
        let n = first + i as i64;
        conn.execute(
            "UPDATE checkpoints SET n = ?2, mac = ?3 WHERE seq = ?1",
            params![seq, n, checkpoint_mac(keys, *seq, hash, at, n)],
        )?;
    }
    if let Some(a) = anchor(conn)? {
        let n: i64 = conn
            .query_row("SELECT n FROM checkpoints WHERE seq = ?1", [a.seq], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(first);
        conn.execute(
            "UPDATE anchor SET n = ?1, mac = ?2 WHERE one = 1",
            params![n, anchor_mac(keys, a.seq, &a.hash, n)],
        )?;
    }
    seal_head(conn, keys)
}

pub(super) fn seal(conn: &Connection, keys: &Keys, seq: i64, hash: &str) -> Result<()> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM checkpoints WHERE seq = ?1)",
        [seq],
        |r| r.get(0),
    )?;
    if exists {
        return Ok(());
    }
    let at = time::now_rfc3339();
    let n = checkpoint_count(conn)? + 1;
    let mac = checkpoint_mac(keys, seq, hash, &at, n);
    conn.execute(
        "INSERT INTO checkpoints (seq, hash, at, mac, n) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![seq, hash, at, mac, n],
    )?;
    seal_head(conn, keys)
}

/// Seals a checkpoint at the current head.
pub fn checkpoint(conn: &Connection, keys: &Keys) -> Result<Option<i64>> {
    let (seq, hash) = head(conn)?;
    if seq == 0 {
        return Ok(None);
    }
    seal(conn, keys, seq, &hash)?;
    Ok(Some(seq))
}
