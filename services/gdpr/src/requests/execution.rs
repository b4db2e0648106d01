//! Carrying a request out: moving it into progress, recording a failure
//! (resumable).

use super::model::{Kind, Request, FAILED, IN_PROGRESS, RECEIVED, UNVERIFIED, VERIFIED};
use crate::core::Core;
use crate::error::{Error, Result};
use rusqlite::params;
use serde_json::json;

/// Moves a verified (or failed) request into progress; anything else is refused.
pub fn start(core: &Core, request: &Request, kinds: &[Kind]) -> Result<()> {
    if !kinds.iter().any(|k| k.as_str() == request.kind) {
        return Err(Error::Invalid(format!(
            "request {} is a {} request",
            request.id, request.kind
        )));
    }
    match request.status.as_str() {
        VERIFIED | IN_PROGRESS | FAILED => {}
        RECEIVED | UNVERIFIED => {
            return Err(Error::Conflict(format!(
                "request {}: the subject's identity is not verified",
                request.id
            )))
        }
        other => {
            return Err(Error::Conflict(format!(
                "request {} is {other}",
                request.id
            )))
        }
    }
    core.conn.execute(
        "UPDATE requests SET status = ?2, failure = NULL WHERE id = ?1",
        params![request.id, IN_PROGRESS],
    )?;
    Ok(())
}

pub fn fail(core: &Core, id: &str, subject_mac: &str, failure: &str) -> Result<()> {
    core.conn.execute(
        "UPDATE requests SET status = ?2, failure = ?3 WHERE id = ?1",
        params![id, FAILED, failure],
    )?;
    core.audit(
        "request.failed",
        Some(subject_mac),
        json!({"request": id, "failure_kind": failure.split(':').next().unwrap_or("")}),
    )?;
    Ok(())
}
