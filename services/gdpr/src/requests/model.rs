//! What a request is: its kind, its statuses, its stored row and the form
//! of its id.

use crate::error::{Error, Result};
use chrono::{NaiveDate, Utc};
use rusqlite::Row;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Art. 15 right of access.
    Access,
    /// Art. 20 data portability.
    Portability,
    /// Art. 17 right to erasure.
    Erasure,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Portability => "portability",
            Kind::Erasure => "erasure",
        }
    }

    pub fn parse(s: &str) -> Result<Kind> {
        match s {
            "access" => Ok(Kind::Access),
            "portability" => Ok(Kind::Portability),
            "erasure" => Ok(Kind::Erasure),
            _ => Err(Error::Invalid(format!(
                "kind: {s:?} is not one of access, portability, erasure"
            ))),
        }
    }
}

pub const RECEIVED: &str = "received";
pub const UNVERIFIED: &str = "identity_unverified";
pub const VERIFIED: &str = "verified";
pub const IN_PROGRESS: &str = "in_progress";
pub const COMPLETED: &str = "completed";
pub const REJECTED: &str = "rejected";
pub const FAILED: &str = "failed";
pub const STATUSES: &[&str] = &[
    RECEIVED,
    UNVERIFIED,
    VERIFIED,
    IN_PROGRESS,
    COMPLETED,
    REJECTED,
    FAILED,
];

#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub id: String,
    pub kind: String,
    pub subject: Option<String>,
    pub email: Option<String>,
    pub subject_mac: String,
    pub status: String,
    pub received_at: String,
    pub due_date: String,
    pub extended_months: i64,
    pub extension_reason: Option<String>,
    pub rejection_reason: Option<String>,
    pub failure: Option<String>,
    pub completed_at: Option<String>,
    pub proof: Option<Value>,
    pub overdue: bool,
}

impl Request {
    pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<Request> {
        let proof: Option<String> = r.get(13)?;
        let status: String = r.get(5)?;
        let due_date: String = r.get(7)?;
        let overdue = !matches!(status.as_str(), COMPLETED | REJECTED)
            && NaiveDate::parse_from_str(&due_date, "%Y-%m-%d")
                .is_ok_and(|d| Utc::now().date_naive() > d);
        Ok(Request {
            id: r.get(0)?,
            kind: r.get(1)?,
            subject: r.get(2)?,
            email: r.get(3)?,
            subject_mac: r.get(4)?,
            status,
            received_at: r.get(6)?,
            due_date,
            extended_months: r.get(8)?,
            extension_reason: r.get(9)?,
            rejection_reason: r.get(10)?,
            failure: r.get(11)?,
            completed_at: r.get(12)?,
            proof: proof.and_then(|p| serde_json::from_str(&p).ok()),
            overdue,
        })
    }

    pub fn user(&self) -> Result<&str> {
        self.subject.as_deref().ok_or_else(|| {
            Error::Conflict(format!(
                "request {} no longer holds the identifier (erased)",
                self.id
            ))
        })
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.status.as_str(), COMPLETED | REJECTED)
    }
}

pub(super) const COLUMNS: &str = "id, kind, subject, email, subject_mac, status, received_at, due_date, extended_months, extension_reason, rejection_reason, failure, completed_at, proof";

pub fn check_id(id: &str) -> Result<()> {
    let ok = id.len() == 28
        && id.starts_with("dsr-")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "request id: {id:?} is malformed (expected dsr- and 24 hex digits)"
        )))
    }
}
