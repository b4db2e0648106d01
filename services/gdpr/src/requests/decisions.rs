//! The operator's decisions on an open request, each with its reason
//! recorded: extending the deadline, rejecting the request.

use super::model::{Request, REJECTED};
use super::store::get;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::time;
use chrono::Utc;
use rusqlite::params;
use serde_json::json;

fn non_empty_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() || reason.len() > 2_000 {
        return Err(Error::Invalid(
            "reason: required, at most 2000 characters".into(),
        ));
    }
    Ok(())
}

/// The request, while a decision can still be taken on it.
fn open_request(core: &Core, id: &str) -> Result<Request> {
    let request = get(core, id)?;
    if !request.is_open() {
        return Err(Error::Conflict(format!(
            "request {id} is {}",
            request.status
        )));
    }
    Ok(request)
}

/// Extends the deadline by up to two further months in total (Art. 12(3)),
/// only while the first month runs, with the reason recorded.
pub fn extend(core: &mut Core, id: &str, months: i64, reason: &str) -> Result<Request> {
    non_empty_reason(reason)?;
    let request = open_request(core, id)?;
    if !(1..=2).contains(&months) || request.extended_months + months > 2 {
        return Err(Error::Invalid(format!(
            "months: the deadline can be extended by at most 2 months in total (already {})",
            request.extended_months
        )));
    }
    let received = time::parse_received(&request.received_at)?.date_naive();
    let first_due = time::due_date(received, 1)?;
    if Utc::now().date_naive() > first_due {
        return Err(Error::Conflict(format!(
            "request {id}: an extension must be given within the first month (ended {first_due})"
        )));
    }
    let total = request.extended_months + months;
    let due = time::due_date(received, 1 + total as u32)?;
    let reasons = match &request.extension_reason {
        Some(old) => format!("{old}\n{reason}"),
        None => reason.to_string(),
    };
    let tx = core.conn.transaction()?;
    tx.execute(
        "UPDATE requests SET extended_months = ?2, extension_reason = ?3, due_date = ?4 WHERE id = ?1",
        params![id, total, reasons, due.to_string()],
    )?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "request.extended",
        Some(&request.subject_mac),
        &json!({"request": id, "months": months, "due_date": due.to_string(), "reason_sha256": crate::keys::sha256_hex(reason.as_bytes())}),
    )?;
    tx.commit()?;
    get(core, id)
}

pub fn reject(core: &mut Core, id: &str, reason: &str) -> Result<Request> {
    non_empty_reason(reason)?;
    let request = open_request(core, id)?;
    let tx = core.conn.transaction()?;
    tx.execute(
        "UPDATE requests SET status = ?2, rejection_reason = ?3, completed_at = ?4 WHERE id = ?1",
        params![id, REJECTED, reason, time::now_rfc3339()],
    )?;
    tx.execute("DELETE FROM codes WHERE request_id = ?1", [id])?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "request.rejected",
        Some(&request.subject_mac),
        &json!({"request": id, "reason_sha256": crate::keys::sha256_hex(reason.as_bytes())}),
    )?;
    tx.commit()?;
    get(core, id)
}
