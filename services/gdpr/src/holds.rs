//! Legal holds (Art. 17(3)): a category of one subject's data that erasure
//! must keep, with the reason.

use crate::core::{check_user, Core};
use crate::error::{Error, Result};
use crate::time;
use rusqlite::params;
use serde::Serialize;
use serde_json::json;

use crate::categories::BUILTIN_CATEGORIES;

pub fn known_categories(core: &Core) -> Result<Vec<String>> {
    let mut all: Vec<String> = BUILTIN_CATEGORIES.iter().map(|s| s.to_string()).collect();
    all.extend(core.settings.connectors()?.iter().map(|c| c.category()));
    Ok(all)
}

#[derive(Debug, Serialize)]
pub struct Hold {
    pub id: i64,
    pub subject_mac: String,
    pub category: String,
    pub reason: String,
    pub created_at: String,
    pub released_at: Option<String>,
}

pub fn add(core: &mut Core, user: &str, category: &str, reason: &str) -> Result<Hold> {
    check_user(user)?;
    let known = known_categories(core)?;
    if !known.iter().any(|k| k == category) {
        return Err(Error::Invalid(format!(
            "category: {category:?} is not one of {}",
            known.join(", ")
        )));
    }
    if reason.trim().is_empty() || reason.len() > 2_000 {
        return Err(Error::Invalid(
            "reason: required (the Art. 17(3) ground), at most 2000 characters".into(),
        ));
    }
    let mac = core.keys.subject(user);
    let tx = core.conn.transaction()?;
    tx.execute(
        "INSERT INTO holds (subject_mac, category, reason, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![mac, category, reason, time::now_rfc3339()],
    )?;
    let id = tx.last_insert_rowid();
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "hold.added",
        Some(&mac),
        &json!({"hold": id, "category": category}),
    )?;
    tx.commit()?;
    get(core, id)
}

pub fn release(core: &mut Core, id: i64) -> Result<Hold> {
    let hold = get(core, id)?;
    if hold.released_at.is_some() {
        return Err(Error::Conflict(format!("hold {id} is released already")));
    }
    let tx = core.conn.transaction()?;
    tx.execute(
        "UPDATE holds SET released_at = ?2 WHERE id = ?1",
        params![id, time::now_rfc3339()],
    )?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "hold.released",
        Some(&hold.subject_mac),
        &json!({"hold": id, "category": hold.category}),
    )?;
    tx.commit()?;
    get(core, id)
}

fn get(core: &Core, id: i64) -> Result<Hold> {
    core.conn
        .query_row(
            "SELECT id, subject_mac, category, reason, created_at, released_at FROM holds WHERE id = ?1",
            [id],
            |r| {
                Ok(Hold {
                    id: r.get(0)?,
                    subject_mac: r.get(1)?,
                    category: r.get(2)?,
                    reason: r.get(3)?,
                    created_at: r.get(4)?,
                    released_at: r.get(5)?,
                })
            },
        )
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NotFound(format!("no hold {id}")),
            other => other.into(),
        })
}

pub fn list(core: &Core, user: Option<&str>) -> Result<Vec<Hold>> {
    let ids: Vec<i64> = match user {
        Some(u) => {
            check_user(u)?;
            let mut stmt = core
                .conn
                .prepare("SELECT id FROM holds WHERE subject_mac = ?1 ORDER BY id")?;
            let ids = stmt
                .query_map([core.keys.subject(u)], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            ids
        }
        None => {
            let mut stmt = core.conn.prepare("SELECT id FROM holds ORDER BY id")?;
            let ids = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            ids
        }
    };
    ids.into_iter().map(|id| get(core, id)).collect()
}

/// Categories under an active hold for this subject, with the reasons.
pub fn active(core: &Core, subject_mac: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = core.conn.prepare(
        "SELECT category, reason FROM holds WHERE subject_mac = ?1 AND released_at IS NULL ORDER BY id",
    )?;
    let rows = stmt
        .query_map([subject_mac], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}
