//! The erasure's record of its steps: listing them, adding one, marking
//! one done or held (each in the audit log with the change it records).

use crate::core::Core;
use crate::error::Result;
use crate::requests::Request;
use crate::time;
use rusqlite::params;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub seq: i64,
    pub step: String,
    pub category: String,
    pub status: String,
    pub detail: Option<Value>,
    pub done_at: Option<String>,
}

pub fn steps(core: &Core, id: &str) -> Result<Vec<Step>> {
    let mut stmt = core.conn.prepare(
        "SELECT seq, step, category, status, detail, done_at FROM erasure_steps WHERE request_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([id], |r| {
            let detail: Option<String> = r.get(4)?;
            Ok(Step {
                seq: r.get(0)?,
                step: r.get(1)?,
                category: r.get(2)?,
                status: r.get(3)?,
                detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                done_at: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub(super) fn add_step(
    core: &Core,
    id: &str,
    step: &str,
    category: &str,
    status: &str,
    detail: Option<Value>,
) -> Result<()> {
    core.conn.execute(
        "INSERT INTO erasure_steps (request_id, seq, step, category, status, detail)
         VALUES (?1, (SELECT COALESCE(MAX(seq), -1) + 1 FROM erasure_steps WHERE request_id = ?1), ?2, ?3, ?4, ?5)",
        params![id, step, category, status, detail.map(|d| d.to_string())],
    )?;
    Ok(())
}

pub(super) fn mark_done(
    core: &mut Core,
    request: &Request,
    step: &Step,
    detail: Value,
) -> Result<()> {
    let tx = core.conn.transaction()?;
    tx.execute(
        "UPDATE erasure_steps SET status = 'done', detail = ?3, done_at = ?4 WHERE request_id = ?1 AND seq = ?2",
        params![request.id, step.seq, detail.to_string(), time::now_rfc3339()],
    )?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "erasure.step",
        Some(&request.subject_mac),
        &json!({"request": request.id, "seq": step.seq, "category": step.category,
                "kind": step.step.split(':').next().unwrap_or("")}),
    )?;
    tx.commit()?;
    Ok(())
}

/// A hold placed after the plan was made (while the erasure was pending,
/// failed or running) turns the step into a held one before it runs.
pub(super) fn hold_step(
    core: &mut Core,
    request: &Request,
    step: &Step,
    reason: &str,
) -> Result<()> {
    let tx = core.conn.transaction()?;
    tx.execute(
        "UPDATE erasure_steps SET status = 'held', detail = ?3 WHERE request_id = ?1 AND seq = ?2 AND status = 'pending'",
        params![request.id, step.seq, json!({"reason": reason}).to_string()],
    )?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "erasure.step_held",
        Some(&request.subject_mac),
        &json!({"request": request.id, "seq": step.seq, "category": step.category}),
    )?;
    tx.commit()?;
    Ok(())
}
