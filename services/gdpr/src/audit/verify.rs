//! Verifying the log: the chain, the checkpoints, the anchor and the head
//! seal, every break named.

use super::ends::{anchor, GENESIS};
use super::macs::entry_hash;
use crate::error::Result;
use crate::keys::Keys;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

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
