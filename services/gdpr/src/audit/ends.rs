//! Where the log stands: its last entry, the pruning anchor it starts
//! from, and the ordinal of its newest checkpoint.

use crate::error::Result;
use rusqlite::{Connection, OptionalExtension};

pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub(super) fn head(conn: &Connection) -> Result<(i64, String)> {
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

pub(super) struct Anchor {
    pub(super) seq: i64,
    pub(super) hash: String,
    pub(super) n: i64,
    pub(super) mac: String,
}

pub(super) fn anchor(conn: &Connection) -> Result<Option<Anchor>> {
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
pub(super) fn checkpoint_count(conn: &Connection) -> Result<i64> {
    let newest: Option<i64> = conn.query_row("SELECT MAX(n) FROM checkpoints", [], |r| r.get(0))?;
    match newest {
        Some(n) => Ok(n),
        None => Ok(anchor(conn)?.map_or(0, |a| a.n)),
    }
}
