//! Where a data subject is reached. A verification code proves the
//! requester controls the subject's address only if that address is the
//! subject's own: it is taken from the subject's records (the operator
//! copies it from the account system with `contact set`, naming the
//! record), never from the request. Deleted when an erasure completes.

use crate::core::{check_user, Core};
use crate::error::{Error, Result};
use crate::time;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Serialize)]
pub struct Contact {
    pub subject_hmac: String,
    pub email: String,
    pub source: String,
    pub updated_at: String,
}

pub fn check_email(email: &str) -> Result<()> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "email: {email:?} is not an address"
        )))
    }
}

/// Records the subject's address and the record it was taken from.
pub fn set(core: &mut Core, user: &str, email: &str, source: &str) -> Result<Contact> {
    check_user(user)?;
    check_email(email)?;
    if source.trim().is_empty() || source.len() > 500 {
        return Err(Error::Invalid(
            "source: required (the subject's record the address comes from), at most 500 characters"
                .into(),
        ));
    }
    let mac = core.keys.subject(user);
    let now = time::now_rfc3339();
    let tx = core.conn.transaction()?;
    tx.execute(
        "INSERT INTO contacts (subject_mac, email, source, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (subject_mac) DO UPDATE SET email = excluded.email,
           source = excluded.source, updated_at = excluded.updated_at",
        params![mac, email, source, now],
    )?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "contact.set",
        Some(&mac),
        &json!({"source_sha256": crate::keys::sha256_hex(source.as_bytes())}),
    )?;
    tx.commit()?;
    Ok(Contact {
        subject_hmac: mac,
        email: email.to_string(),
        source: source.to_string(),
        updated_at: now,
    })
}

/// The subject's address on record, if any.
pub fn email_of(conn: &Connection, subject_mac: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT email FROM contacts WHERE subject_mac = ?1",
            [subject_mac],
            |r| r.get(0),
        )
        .optional()?)
}

pub fn erase(conn: &Connection, subject_mac: &str) -> Result<usize> {
    Ok(conn.execute("DELETE FROM contacts WHERE subject_mac = ?1", [subject_mac])?)
}
