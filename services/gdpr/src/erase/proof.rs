//! The proof of erasure: written when the erasure completes (the
//! identifier replaced, the summary under the key's MAC), checked later.

use super::steps::steps;
use crate::core::Core;
use crate::error::Result;
use crate::requests::{self, Request};
use crate::time;
use rusqlite::params;
use serde_json::{json, Value};

pub(super) fn finalize(core: &mut Core, request: &Request, user: &str) -> Result<()> {
    // Step names carry keys with the identifier: replace it before they
    // become the lasting record.
    // Keys carry the rate limiter's form of the id (encoded): replace
    // that first, then the id in clear (shared-key members).
    let limited = meshguard_api::keys::subject_key(user);
    let pseudo = |s: &str| {
        s.replace(&limited, "sub:<subject>")
            .replace(user, "<subject>")
    };
    let all = steps(core, &request.id)?;
    let completed_at = time::now_rfc3339();
    let summary: Vec<Value> = all
        .iter()
        .map(|s| json!({"step": pseudo(&s.step), "category": s.category, "status": s.status}))
        .collect();
    let summary_text = Value::Array(summary.clone()).to_string();
    let mac = core.keys.mac(
        "erasure-proof",
        &[
            request.id.as_bytes(),
            request.subject_mac.as_bytes(),
            completed_at.as_bytes(),
            summary_text.as_bytes(),
        ],
    );
    let count = |st: &str| all.iter().filter(|s| s.status == st).count();
    let proof = json!({
        "request": request.id,
        "subject_hmac": request.subject_mac,
        "completed_at": completed_at,
        "steps": summary,
        "held": all.iter().filter(|s| s.status == "held").map(|s| json!({"category": s.category, "reason": s.detail.as_ref().map(|d| d["reason"].clone())})).collect::<Vec<_>>(),
        "proof_hmac": mac,
    });
    let tx = core.conn.transaction()?;
    for s in &all {
        tx.execute(
            "UPDATE erasure_steps SET step = ?3 WHERE request_id = ?1 AND seq = ?2",
            params![request.id, s.seq, pseudo(&s.step)],
        )?;
    }
    tx.execute(
        "UPDATE requests SET status = ?2, subject = NULL, email = NULL, proof = ?3, completed_at = ?4, failure = NULL WHERE id = ?1",
        params![request.id, requests::COMPLETED, proof.to_string(), completed_at],
    )?;
    tx.execute("DELETE FROM codes WHERE request_id = ?1", [&request.id])?;
    crate::contacts::erase(&tx, &request.subject_mac)?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "erasure.completed",
        Some(&request.subject_mac),
        &json!({"request": request.id, "proof_hmac": mac, "done": count("done"), "held": count("held"), "retained": count("retained")}),
    )?;
    tx.commit()?;
    Ok(())
}

/// Checks a stored proof against the key and, given the identifier, that it
/// is this person's.
pub fn check_proof(core: &Core, proof: &Value, user: Option<&str>) -> bool {
    let field = |k: &str| proof[k].as_str().unwrap_or("");
    let summary = proof["steps"].to_string();
    let mac_ok = core.keys.verify_mac(
        "erasure-proof",
        &[
            field("request").as_bytes(),
            field("subject_hmac").as_bytes(),
            field("completed_at").as_bytes(),
            summary.as_bytes(),
        ],
        field("proof_hmac"),
    );
    mac_ok && user.is_none_or(|u| core.keys.subject(u) == field("subject_hmac"))
}

/// Completed erasures of this identifier, with their proofs checked.
pub fn proofs_for(core: &Core, user: &str) -> Result<Vec<Value>> {
    let mac = core.keys.subject(user);
    let mut stmt = core.conn.prepare(
        "SELECT proof FROM requests WHERE subject_mac = ?1 AND kind = 'erasure' AND proof IS NOT NULL ORDER BY completed_at",
    )?;
    let proofs: Vec<String> = stmt
        .query_map([&mac], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(proofs
        .into_iter()
        .filter_map(|p| serde_json::from_str::<Value>(&p).ok())
        .map(|p| {
            let valid = check_proof(core, &p, Some(user));
            json!({"proof": p, "valid": valid})
        })
        .collect())
}
