//! Reading requests back: one by id, the operator's list, and the
//! subject's own (self-service) view.

use super::model::{check_id, Request, COLUMNS, STATUSES};
use crate::core::Core;
use crate::error::{Error, Result};
use rusqlite::OptionalExtension;

pub fn get(core: &Core, id: &str) -> Result<Request> {
    check_id(id)?;
    core.conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM requests WHERE id = ?1"),
            [id],
            Request::from_row,
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no request {id}")))
}

pub fn list(core: &Core, overdue: bool, status: Option<&str>) -> Result<Vec<Request>> {
    if let Some(s) = status {
        if !STATUSES.contains(&s) {
            return Err(Error::Invalid(format!(
                "status: {s:?} is not one of {}",
                STATUSES.join(", ")
            )));
        }
    }
    let mut stmt = core.conn.prepare(&format!(
        "SELECT {COLUMNS} FROM requests ORDER BY due_date, received_at"
    ))?;
    let all = stmt
        .query_map([], Request::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(all
        .into_iter()
        .filter(|r| !overdue || r.overdue)
        .filter(|r| status.is_none_or(|s| r.status == s))
        .collect())
}

/// The subject's own requests, newest first (the self-service view).
pub fn list_for_subject(core: &Core, user: &str) -> Result<Vec<Request>> {
    let mut stmt = core.conn.prepare(&format!(
        "SELECT {COLUMNS} FROM requests WHERE subject_mac = ?1 ORDER BY received_at DESC"
    ))?;
    let rows = stmt
        .query_map([core.keys.subject(user)], Request::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// A request, only if it is this subject's (anything else is "not found").
pub fn get_for_subject(core: &Core, id: &str, user: &str) -> Result<Request> {
    let request = get(core, id)?;
    if request.subject_mac != core.keys.subject(user) {
        return Err(Error::NotFound(format!("no request {id}")));
    }
    Ok(request)
}
