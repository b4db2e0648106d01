//! The append-only, hash-chained audit log. Each entry's hash covers the
//! previous entry's hash and its own fields, so an edit, a deletion or a
//! reorder breaks the chain at that entry. Three records carry an HMAC under
//! the key kept apart from the database, so whoever can write the database
//! cannot rebuild them:
//! - each checkpoint, over (seq, hash, time, its ordinal `n`): deleting a
//!   checkpoint leaves a gap in the ordinals;
//! - the pruning anchor the chain starts from, over (seq, hash, `n`):
//!   cutting the head of the log needs a new anchor;
//! - the head seal, rewritten with every entry, over (last seq, last hash,
//!   checkpoint count): cutting the tail leaves the log short of it.
//!
//! Entries never hold personal data in clear: subjects are HMACs
//! (`Keys::subject`).

use crate::error::Result;
use crate::keys::{sha256_hex, Keys};
use crate::time;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// A checkpoint is sealed automatically after this many entries.
pub const CHECKPOINT_EVERY: i64 = 32;
/// Art. 5(2) accountability records: 7 years.
pub const RETENTION_DAYS: i64 = 2_555;

fn entry_hash(
    prev: &str,
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    details: &str,
) -> String {
    // A JSON array is an unambiguous encoding of the fields.
    let fields = serde_json::json!([seq, at, actor, action, subject, details]);
    sha256_hex(format!("{prev}{fields}").as_bytes())
}

fn checkpoint_mac(keys: &Keys, seq: i64, hash: &str, at: &str, n: i64) -> String {
    keys.mac(
        "audit-checkpoint",
        &[
            seq.to_string().as_bytes(),
            hash.as_bytes(),
            at.as_bytes(),
            n.to_string().as_bytes(),
        ],
    )
}

fn anchor_mac(keys: &Keys, seq: i64, hash: &str, n: i64) -> String {
    keys.mac(
        "audit-anchor",
        &[
            seq.to_string().as_bytes(),
            hash.as_bytes(),
            n.to_string().as_bytes(),
        ],
    )
}

fn head_mac(keys: &Keys, seq: i64, hash: &str, checkpoints: i64) -> String {
    keys.mac(
        "audit-head",
        &[
            seq.to_string().as_bytes(),
            hash.as_bytes(),
            checkpoints.to_string().as_bytes(),
        ],
    )
}

fn head(conn: &Connection) -> Result<(i64, String)> {
    if let Some(last) = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
    {
        return Ok(last);
    }
    Ok(anchor(conn)?.map_or((0, GENESIS.to_string()), |a| (a.seq, a.hash)))
}

struct Anchor {
    seq: i64,
    hash: String,
    n: i64,
    mac: String,
}

fn anchor(conn: &Connection) -> Result<Option<Anchor>> {
    Ok(conn
        .query_row(
            "SELECT seq, hash, COALESCE(n, 0), COALESCE(mac, '') FROM anchor WHERE one = 1",
            [],
            |r| {
                Ok(Anchor {
                    seq: r.get(0)?,
                    hash: r.get(1)?,
                    n: r.get(2)?,
                    mac: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// The ordinal of the newest checkpoint (the anchor's when none is left).
fn checkpoint_count(conn: &Connection) -> Result<i64> {
    let newest: Option<i64> = conn.query_row("SELECT MAX(n) FROM checkpoints", [], |r| r.get(0))?;
    match newest {
        Some(n) => Ok(n),
        None => Ok(anchor(conn)?.map_or(0, |a| a.n)),
    }
}

/// Rewrites the head seal to the current last entry and checkpoint count.
fn seal_head(conn: &Connection, keys: &Keys) -> Result<()> {
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

fn seal(conn: &Connection, keys: &Keys, seq: i64, hash: &str) -> Result<()> {
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

#[derive(Debug, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub entries: u64,
    pub checkpoints: u64,
    pub anchor_seq: i64,
    pub head_seq: i64,
    pub head_hash: String,
    /// Every break found, first first; each names the entry.
    pub problems: Vec<String>,
}

struct Row {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    subject: Option<String>,
    details: String,
    prev: String,
    hash: String,
}

pub fn verify(conn: &Connection, keys: &Keys) -> Result<Verification> {
    let mut problems = Vec::new();
    let anchored = anchor(conn)?;
    if let Some(a) = &anchored {
        if !keys.verify_mac(
            "audit-anchor",
            &[
                a.seq.to_string().as_bytes(),
                a.hash.as_bytes(),
                a.n.to_string().as_bytes(),
            ],
            &a.mac,
        ) {
            problems.push(format!(
                "the anchor at entry {} has a bad MAC (forged or edited): the head of the log may have been cut",
                a.seq
            ));
        }
    }
    let (anchor_seq, anchor_hash, anchor_n) =
        anchored.as_ref().map_or((0, GENESIS.to_string(), 0), |a| {
            (a.seq, a.hash.clone(), a.n)
        });
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, action, subject_mac, details, prev_hash, hash FROM audit ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Row {
            seq: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            subject: r.get(4)?,
            details: r.get(5)?,
            prev: r.get(6)?,
            hash: r.get(7)?,
        })
    })?;
    let mut hashes = std::collections::HashMap::new();
    hashes.insert(anchor_seq, anchor_hash.clone());
    let (mut last_seq, mut last_hash) = (anchor_seq, anchor_hash);
    let mut entries = 0u64;
    for row in rows {
        let row = row?;
        entries += 1;
        if row.seq <= anchor_seq {
            problems.push(format!(
                "entry {} ({}) lies before the pruning anchor at {anchor_seq}",
                row.seq, row.action
            ));
            continue;
        }
        if row.seq != last_seq + 1 {
            problems.push(format!(
                "entries {}..={} are missing (deleted): entry {} follows entry {last_seq}",
                last_seq + 1,
                row.seq - 1,
                row.seq
            ));
        } else if row.prev != last_hash {
            problems.push(format!(
                "entry {} ({}) does not chain to entry {last_seq}: one of them was edited, or entries were reordered",
                row.seq, row.action
            ));
        }
        let recomputed = entry_hash(
            &row.prev,
            row.seq,
            &row.at,
            &row.actor,
            &row.action,
            row.subject.as_deref(),
            &row.details,
        );
        if recomputed != row.hash {
            problems.push(format!(
                "entry {} ({}) was edited: its content does not match its hash",
                row.seq, row.action
            ));
        }
        hashes.insert(row.seq, row.hash.clone());
        last_seq = row.seq;
        // Chain on to what the next entry should have seen.
        last_hash = row.hash;
    }
    drop(stmt);

    let mut stmt =
        conn.prepare("SELECT seq, hash, at, mac, COALESCE(n, 0) FROM checkpoints ORDER BY seq")?;
    let checkpoints: Vec<(i64, String, String, String, i64)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    // Ordinals run on without a gap from the anchor's (or from 1).
    let mut next_n = if anchored.is_some() { anchor_n } else { 1 };
    for (seq, hash, at, mac, n) in &checkpoints {
        if !keys.verify_mac(
            "audit-checkpoint",
            &[
                seq.to_string().as_bytes(),
                hash.as_bytes(),
                at.as_bytes(),
                n.to_string().as_bytes(),
            ],
            mac,
        ) {
            problems.push(format!(
                "checkpoint at entry {seq} has a bad MAC (forged or edited)"
            ));
            continue;
        }
        if *n != next_n {
            problems.push(format!(
                "checkpoints {next_n}..{n} before the one at entry {seq} were deleted"
            ));
        }
        next_n = n + 1;
        match hashes.get(seq) {
            Some(h) if h == hash => {}
            Some(_) => problems.push(format!(
                "entry {seq} does not match its sealed checkpoint: the chain up to it was rewritten"
            )),
            None if *seq > last_seq => problems.push(format!(
                "entries {}..={seq} were deleted: a checkpoint sealed entry {seq}, the log ends at {last_seq}",
                last_seq + 1
            )),
            None => {}
        }
    }
    drop(stmt);
    let sealed: Option<(i64, String, i64, String)> = conn
        .query_row(
            "SELECT seq, hash, checkpoints, mac FROM head WHERE one = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    match sealed {
        None if entries > 0 || anchored.is_some() => problems.push(
            "the head seal is missing: the end of the log cannot be confirmed (was the tail cut?)"
                .into(),
        ),
        None => {}
        Some((seq, hash, count, mac)) => {
            if !keys.verify_mac(
                "audit-head",
                &[
                    seq.to_string().as_bytes(),
                    hash.as_bytes(),
                    count.to_string().as_bytes(),
                ],
                &mac,
            ) {
                problems.push("the head seal has a bad MAC (forged or edited)".into());
            } else if seq > last_seq {
                problems.push(format!(
                    "entries {}..={seq} were deleted: the log was sealed at entry {seq} and ends at {last_seq}",
                    last_seq + 1
                ));
            } else if seq < last_seq {
                problems.push(format!(
                    "entries {}..={last_seq} were added without the key: the log was sealed at entry {seq}",
                    seq + 1
                ));
            } else if hash != last_hash {
                problems.push(format!(
                    "entry {seq} does not match the head seal: the end of the log was rewritten"
                ));
            }
            let newest_n = next_n - 1;
            if count != newest_n {
                problems.push(format!(
                    "the head seal counts {count} checkpoints, the newest left is number {newest_n}: checkpoints were deleted"
                ));
            }
        }
    }
    Ok(Verification {
        ok: problems.is_empty(),
        entries,
        checkpoints: checkpoints.len() as u64,
        anchor_seq,
        head_seq: last_seq,
        head_hash: last_hash,
        problems,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Connection, Keys) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("g.db")).unwrap();
        (dir, conn, Keys::from_bytes(vec![9u8; 32]).unwrap())
    }

    fn fill(conn: &Connection, keys: &Keys, n: usize) {
        for i in 0..n {
            append(
                conn,
                keys,
                "t",
                &format!("a{i}"),
                None,
                &serde_json::json!({"i": i}),
            )
            .unwrap();
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 40);
        let v = verify(&conn, &keys).unwrap();
        assert!(v.ok, "{:?}", v.problems);
        assert_eq!((v.entries, v.checkpoints, v.head_seq), (40, 1, 40));
    }

    #[test]
    fn edits_deletions_and_reorders_are_named() {
        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 10);
        conn.execute("UPDATE audit SET details = '{\"i\":99}' WHERE seq = 4", [])
            .unwrap();
        let v = verify(&conn, &keys).unwrap();
        assert!(
            v.problems[0].starts_with("entry 4 (a3) was edited"),
            "{:?}",
            v.problems
        );

        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 10);
        conn.execute("DELETE FROM audit WHERE seq = 6", []).unwrap();
        let v = verify(&conn, &keys).unwrap();
        assert!(
            v.problems[0].contains("entries 6..=5") || v.problems[0].contains("6..=6"),
            "{:?}",
            v.problems
        );

        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 10);
        // Swap the contents of entries 3 and 4 (hashes and all).
        conn.execute_batch(
            "UPDATE audit SET seq = -3 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4;
             UPDATE audit SET seq = 4 WHERE seq = -3;",
        )
        .unwrap();
        let v = verify(&conn, &keys).unwrap();
        assert!(!v.ok);
        assert!(v.problems[0].contains("entry 3"), "{:?}", v.problems);
    }

    #[test]
    fn truncating_the_tail_past_a_checkpoint_is_detected() {
        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 5);
        checkpoint(&conn, &keys).unwrap();
        conn.execute("DELETE FROM audit WHERE seq >= 4", [])
            .unwrap();
        let v = verify(&conn, &keys).unwrap();
        assert!(
            v.problems[0].contains("entries 4..=5 were deleted"),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn a_forged_checkpoint_fails() {
        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 5);
        checkpoint(&conn, &keys).unwrap();
        let other = Keys::from_bytes(vec![1u8; 32]).unwrap();
        assert!(!verify(&conn, &other).unwrap().ok);
    }

    #[test]
    fn a_log_written_before_the_macs_is_resealed() {
        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 40);
        // As schema version 1 left it: no ordinals, no head seal.
        conn.execute_batch("UPDATE checkpoints SET n = NULL; DELETE FROM head;")
            .unwrap();
        assert!(!verify(&conn, &keys).unwrap().ok);
        reseal(&conn, &keys).unwrap();
        let v = verify(&conn, &keys).unwrap();
        assert!(v.ok, "{:?}", v.problems);
        // And a cut tail is caught afterwards.
        conn.execute("DELETE FROM audit WHERE seq = 40", [])
            .unwrap();
        assert!(!verify(&conn, &keys).unwrap().ok);
    }

    #[test]
    fn pruning_keeps_a_checkpoint_as_the_anchor() {
        let (_d, mut conn, keys) = setup();
        fill(&conn, &keys, 40);
        let pruned = prune(&mut conn, &keys, -1).unwrap();
        assert_eq!(pruned.anchor_seq, Some(32));
        assert_eq!(pruned.removed_entries, 32);
        let v = verify(&conn, &keys).unwrap();
        assert!(v.ok, "{:?}", v.problems);
        assert_eq!((v.anchor_seq, v.entries, v.head_seq), (32, 9, 41));
        // An edit after pruning is still caught.
        conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 35", [])
            .unwrap();
        assert!(verify(&conn, &keys).unwrap().problems[0].starts_with("entry 35"));
    }
}
