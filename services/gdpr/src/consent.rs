//! Consent records (Art. 7): every grant and withdrawal with time, notice
//! version and method, history kept; the current choices are mirrored into
//! the user's Redis data (`mg:{u:<id>}:consents`, in the per-user index)
//! where the policy layer reads user data.

use crate::core::{check_user, Core};
use crate::error::{Error, Result};
use crate::{time, userdata};
use rusqlite::params;
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Marketing,
    Analytics,
    Personalization,
    ThirdParty,
    Essential,
}

impl Purpose {
    pub const ALL: [Purpose; 5] = [
        Purpose::Marketing,
        Purpose::Analytics,
        Purpose::Personalization,
        Purpose::ThirdParty,
        Purpose::Essential,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Analytics => "analytics",
            Purpose::Personalization => "personalization",
            Purpose::ThirdParty => "third_party",
            Purpose::Essential => "essential",
        }
    }

    pub fn parse(s: &str) -> Result<Purpose> {
        Purpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "purpose: {s:?} is not one of marketing, analytics, personalization, third_party, essential"
                ))
            })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsentRecord {
    pub purpose: String,
    pub granted: bool,
    pub at: String,
    pub notice_version: String,
    pub method: String,
}

fn check_label(field: &str, v: &str) -> Result<()> {
    if v.is_empty() || v.len() > 64 || v.chars().any(|c| c.is_control()) {
        return Err(Error::Invalid(format!(
            "{field}: 1..=64 printable characters required"
        )));
    }
    Ok(())
}

/// Records a grant or a withdrawal: the same call, one flag apart.
pub fn record(
    core: &mut Core,
    user: &str,
    purpose: Purpose,
    granted: bool,
    notice_version: &str,
    method: &str,
) -> Result<ConsentRecord> {
    check_user(user)?;
    check_label("notice_version", notice_version)?;
    check_label("method", method)?;
    let rec = ConsentRecord {
        purpose: purpose.as_str().into(),
        granted,
        at: time::now_rfc3339(),
        notice_version: notice_version.into(),
        method: method.into(),
    };
    let mac = core.keys.subject(user);
    let mut con = core.redis()?;
    let tx = core.conn.transaction()?;
    tx.execute(
        "INSERT INTO consents (subject, purpose, granted, at, notice_version, method) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![user, rec.purpose, granted, rec.at, notice_version, method],
    )?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        if granted {
            "consent.granted"
        } else {
            "consent.withdrawn"
        },
        Some(&mac),
        &json!({"purpose": rec.purpose, "notice_version": notice_version, "method": method}),
    )?;
    // Mirror before committing: a choice the policy layer cannot see is not recorded.
    userdata::write_consent(
        &mut con,
        user,
        &rec.purpose,
        &json!({"granted": granted, "at": rec.at, "notice_version": notice_version, "method": method}),
    )?;
    tx.commit()?;
    Ok(rec)
}

pub fn history(core: &Core, user: &str) -> Result<Vec<ConsentRecord>> {
    check_user(user)?;
    let mut stmt = core.conn.prepare(
        "SELECT purpose, granted, at, notice_version, method FROM consents WHERE subject = ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([user], |r| {
            Ok(ConsentRecord {
                purpose: r.get(0)?,
                granted: r.get(1)?,
                at: r.get(2)?,
                notice_version: r.get(3)?,
                method: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// The latest choice per purpose; purposes never asked are absent (no consent).
pub fn current(core: &Core, user: &str) -> Result<Vec<ConsentRecord>> {
    let mut latest: Vec<ConsentRecord> = Vec::new();
    for rec in history(core, user)? {
        latest.retain(|r| r.purpose != rec.purpose);
        latest.push(rec);
    }
    latest.sort_by(|a, b| a.purpose.cmp(&b.purpose));
    Ok(latest)
}

/// Deletes the subject's consent history (erasure).
pub fn erase(core: &Core, user: &str) -> Result<usize> {
    Ok(core
        .conn
        .execute("DELETE FROM consents WHERE subject = ?1", [user])?)
}
