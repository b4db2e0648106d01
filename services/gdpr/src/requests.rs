//! The request lifecycle: received → identity_unverified → verified →
//! in_progress → completed, or rejected (with a reason), or failed
//! (resumable). Deadlines per Art. 12(3).

use crate::core::{check_user, Core};
use crate::error::{Error, Result};
use crate::keys::random_bytes;
use crate::notify::{Mail, Notifier};
use crate::time;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use serde_json::{json, Value};

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

/// Codes a request may be sent before it must be re-filed: caps guessing at
/// `MAX_CODES × attempts` tries out of a million.
const MAX_CODES: i64 = 3;

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
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Request> {
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

const COLUMNS: &str = "id, kind, subject, email, subject_mac, status, received_at, due_date, extended_months, extension_reason, rejection_reason, failure, completed_at, proof";

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

/// Who filed a request, and so how the subject's identity is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filed {
    /// The operator, on the subject's behalf: a code goes to the address
    /// on the subject's record (`contacts`).
    ByOperator,
    /// The subject, through the proxy with their own token: the verified
    /// `x-auth-sub` is the identity, the request starts verified.
    BySubject,
}

/// Files an operator request and sends the identity-verification code to
/// the subject's address on record.
pub fn create(
    core: &mut Core,
    notifier: &Notifier,
    kind: Kind,
    user: &str,
    received_at: Option<&str>,
) -> Result<Request> {
    check_user(user)?;
    if let Some(t) = received_at {
        time::parse_received(t)?;
    }
    let email = crate::contacts::email_of(&core.conn, &core.keys.subject(user))?.ok_or_else(|| {
        Error::Conflict(
            "no contact address on record for this subject: add the one from the subject's own records (`contact set`), or have the subject file the request through the self-service path with their token"
                .into(),
        )
    })?;
    let id = insert(
        core,
        kind,
        user,
        Some(&email),
        received_at,
        Filed::ByOperator,
    )?;
    send_code(core, notifier, &id)?;
    get(core, &id)
}

/// Files a request the subject made with their own token through the
/// proxy: the identity is the one the auth plugin verified.
pub fn create_by_subject(core: &mut Core, kind: Kind, user: &str) -> Result<Request> {
    check_user(user)?;
    let email = crate::contacts::email_of(&core.conn, &core.keys.subject(user))?;
    let id = insert(core, kind, user, email.as_deref(), None, Filed::BySubject)?;
    get(core, &id)
}

fn insert(
    core: &mut Core,
    kind: Kind,
    user: &str,
    email: Option<&str>,
    received_at: Option<&str>,
    filed: Filed,
) -> Result<String> {
    let received: DateTime<Utc> = match received_at {
        Some(t) => time::parse_received(t)?,
        None => Utc::now(),
    };
    if received > Utc::now() + chrono::Duration::minutes(5) {
        return Err(Error::Invalid("received_at lies in the future".into()));
    }
    let due = time::due_date(received.date_naive(), 1)?;
    let subject_mac = core.keys.subject(user);
    let id = format!("dsr-{}", hex::encode(random_bytes(12)?));
    let tx = core.conn.transaction()?;
    let duplicate: Option<(String, String)> = tx
        .query_row(
            "SELECT id, status FROM requests WHERE subject_mac = ?1 AND kind = ?2
             AND status NOT IN ('completed', 'rejected') LIMIT 1",
            params![subject_mac, kind.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((other, status)) = duplicate {
        return Err(Error::Conflict(format!(
            "duplicate: request {other} ({} for this subject) is still {status}",
            kind.as_str()
        )));
    }
    let status = match filed {
        Filed::ByOperator => RECEIVED,
        Filed::BySubject => VERIFIED,
    };
    tx.execute(
        "INSERT INTO requests (id, kind, subject, email, subject_mac, status, received_at, due_date)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            kind.as_str(),
            user,
            email,
            subject_mac,
            status,
            time::rfc3339(received),
            due.to_string()
        ],
    )?;
    let by = match filed {
        Filed::ByOperator => "operator",
        Filed::BySubject => "subject",
    };
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "request.received",
        Some(&subject_mac),
        &json!({"request": id, "kind": kind.as_str(), "due_date": due.to_string(), "filed_by": by}),
    )?;
    if filed == Filed::BySubject {
        crate::audit::append(
            &tx,
            &core.keys,
            "data-subject",
            "verification.passed",
            Some(&subject_mac),
            &json!({"request": id, "method": "token verified at the proxy"}),
        )?;
    }
    tx.commit()?;
    Ok(id)
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

fn random_code() -> Result<String> {
    // Rejection sampling keeps the six digits uniform.
    loop {
        let b = random_bytes(4)?;
        let n = b
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| Error::Internal("random: short read".into()))?;
        if n < 4_294_000_000 {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

/// Sends a (new) code; the previous one stops working.
pub fn send_code(core: &mut Core, notifier: &Notifier, id: &str) -> Result<()> {
    let request = get(core, id)?;
    if !matches!(request.status.as_str(), RECEIVED | UNVERIFIED) {
        return Err(Error::Conflict(format!(
            "request {id} is {}: only an unverified request gets a code",
            request.status
        )));
    }
    let email = request
        .email
        .clone()
        .ok_or_else(|| Error::Conflict(format!("request {id} has no contact address")))?;
    let issued: i64 = core
        .conn
        .query_row(
            "SELECT COALESCE((SELECT issued FROM code_counts WHERE request_id = ?1), 0)",
            [id],
            |r| r.get(0),
        )
        .or_else(|_| Ok::<i64, rusqlite::Error>(0))?;
    if issued >= MAX_CODES {
        return Err(Error::Conflict(format!(
            "request {id} has been sent {MAX_CODES} codes; reject it and have the subject file a new one"
        )));
    }
    let code = random_code()?;
    let code_mac = core.keys.mac("code", &[id.as_bytes(), code.as_bytes()]);
    let expires = time::now_s() + core.settings.code_ttl_s;
    let tx = core.conn.transaction()?;
    tx.execute(
        "INSERT INTO codes (request_id, code_mac, expires_at, attempts, used) VALUES (?1, ?2, ?3, 0, 0)
         ON CONFLICT (request_id) DO UPDATE SET code_mac = excluded.code_mac,
           expires_at = excluded.expires_at, attempts = 0, used = 0",
        params![id, code_mac, expires],
    )?;
    tx.execute(
        "INSERT INTO code_counts (request_id, issued) VALUES (?1, 1)
         ON CONFLICT (request_id) DO UPDATE SET issued = issued + 1",
        [id],
    )?;
    tx.execute(
        "UPDATE requests SET status = ?2 WHERE id = ?1",
        params![id, UNVERIFIED],
    )?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "verification.sent",
        Some(&request.subject_mac),
        &json!({"request": id, "expires_in_s": core.settings.code_ttl_s}),
    )?;
    // Send before committing: a code nobody received must not count.
    notifier.send(
        &Mail {
            to: &email,
            subject: "Confirm your data protection request",
            body: format!(
                "Your verification code for request {id} is {code}.\r\nIt expires in {} minutes. If you did not make this request, ignore this message.",
                core.settings.code_ttl_s / 60
            ),
            request_id: id,
        },
        &core.settings.mail_from,
    )?;
    tx.commit()?;
    Ok(())
}

/// Checks a code; wrong codes count towards the lockout.
pub fn verify(core: &mut Core, id: &str, code: &str) -> Result<Request> {
    let request = get(core, id)?;
    if request.status != UNVERIFIED {
        return Err(Error::Conflict(format!(
            "request {id} is {}, not awaiting verification",
            request.status
        )));
    }
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Invalid("code: six digits expected".into()));
    }
    // The write lock first, then the read: concurrent guesses (other
    // connections, other processes) queue here, so each one sees the count
    // the previous one left and the lockout holds at exactly `limit`.
    let tx = core
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (code_mac, expires, attempts): (String, i64, i64) = tx
        .query_row(
            "SELECT code_mac, expires_at, attempts FROM codes WHERE request_id = ?1 AND used = 0",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .ok_or_else(|| Error::Conflict(format!("request {id} has no live code; send one")))?;
    let limit = core.settings.code_attempts;
    if attempts >= limit {
        return Err(Error::Conflict(format!(
            "request {id}: the code is locked after {limit} wrong attempts; send a new code"
        )));
    }
    if time::now_s() > expires {
        return Err(Error::Conflict(format!(
            "request {id}: the code has expired; send a new code"
        )));
    }
    if !core
        .keys
        .verify_mac("code", &[id.as_bytes(), code.as_bytes()], &code_mac)
    {
        let attempts = attempts + 1;
        tx.execute(
            "UPDATE codes SET attempts = ?2 WHERE request_id = ?1",
            params![id, attempts],
        )?;
        crate::audit::append(
            &tx,
            &core.keys,
            &core.settings.actor,
            if attempts >= limit {
                "verification.locked"
            } else {
                "verification.failed"
            },
            Some(&request.subject_mac),
            &json!({"request": id, "attempts": attempts}),
        )?;
        tx.commit()?;
        return Err(if attempts >= limit {
            Error::Conflict(format!(
                "request {id}: wrong code; locked after {limit} wrong attempts; send a new code"
            ))
        } else {
            Error::Invalid(format!(
                "request {id}: wrong code ({} attempts left)",
                limit - attempts
            ))
        });
    }
    tx.execute("UPDATE codes SET used = 1 WHERE request_id = ?1", [id])?;
    tx.execute(
        "UPDATE requests SET status = ?2 WHERE id = ?1",
        params![id, VERIFIED],
    )?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "verification.passed",
        Some(&request.subject_mac),
        &json!({"request": id}),
    )?;
    tx.commit()?;
    get(core, id)
}

fn non_empty_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() || reason.len() > 2_000 {
        return Err(Error::Invalid(
            "reason: required, at most 2000 characters".into(),
        ));
    }
    Ok(())
}

/// Extends the deadline by up to two further months in total (Art. 12(3)),
/// only while the first month runs, with the reason recorded.
pub fn extend(core: &mut Core, id: &str, months: i64, reason: &str) -> Result<Request> {
    non_empty_reason(reason)?;
    let request = get(core, id)?;
    if !request.is_open() {
        return Err(Error::Conflict(format!(
            "request {id} is {}",
            request.status
        )));
    }
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
    let request = get(core, id)?;
    if !request.is_open() {
        return Err(Error::Conflict(format!(
            "request {id} is {}",
            request.status
        )));
    }
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
