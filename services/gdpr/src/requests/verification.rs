//! Verifying the subject's identity by a six-digit code sent to their
//! address on record: sending codes, checking them, the lockout.

use super::model::{Request, RECEIVED, UNVERIFIED, VERIFIED};
use super::store::get;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::keys::random_bytes;
use crate::notify::{Mail, Notifier};
use crate::time;
use rusqlite::{params, OptionalExtension};
use serde_json::json;

/// Codes a request may be sent before it must be re-filed: caps guessing at
/// `MAX_CODES × attempts` tries out of a million.
const MAX_CODES: i64 = 3;

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
