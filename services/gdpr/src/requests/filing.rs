//! Filing a request, by the operator (a code goes to the subject) or by the
//! subject through the proxy (already verified).

use super::model::{Kind, Request, RECEIVED, VERIFIED};
use super::store::get;
use super::verification::send_code;
use crate::core::{check_user, Core};
use crate::error::{Error, Result};
use crate::keys::random_bytes;
use crate::notify::Notifier;
use crate::time;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde_json::json;

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
