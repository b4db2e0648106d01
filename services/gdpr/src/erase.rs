//! Art. 17 erasure, step by step: revoke the user's tokens first (a
//! not-before cutoff through meshguard-state) and give the auth plugins
//! `--revocation-grace-ms` to apply it, then erase every indexed
//! Redis entry, every connector's records and the local consent history.
//! Each step is recorded before the next starts, so a rerun after a crash
//! resumes at the first step not done; every step is safe to repeat.

use crate::core::Core;
use crate::error::{Error, Result};
use crate::requests::{self, Kind, Request};
use crate::{connectors, consent, holds, time, userdata};
use rusqlite::params;
use serde::Serialize;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub seq: i64,
    pub step: String,
    pub category: String,
    pub status: String,
    pub detail: Option<Value>,
    pub done_at: Option<String>,
}

pub fn steps(core: &Core, id: &str) -> Result<Vec<Step>> {
    let mut stmt = core.conn.prepare(
        "SELECT seq, step, category, status, detail, done_at FROM erasure_steps WHERE request_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([id], |r| {
            let detail: Option<String> = r.get(4)?;
            Ok(Step {
                seq: r.get(0)?,
                step: r.get(1)?,
                category: r.get(2)?,
                status: r.get(3)?,
                detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                done_at: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

fn add_step(
    core: &Core,
    id: &str,
    step: &str,
    category: &str,
    status: &str,
    detail: Option<Value>,
) -> Result<()> {
    core.conn.execute(
        "INSERT INTO erasure_steps (request_id, seq, step, category, status, detail)
         VALUES (?1, (SELECT COALESCE(MAX(seq), -1) + 1 FROM erasure_steps WHERE request_id = ?1), ?2, ?3, ?4, ?5)",
        params![id, step, category, status, detail.map(|d| d.to_string())],
    )?;
    Ok(())
}

fn mark_done(core: &mut Core, request: &Request, step: &Step, detail: Value) -> Result<()> {
    let tx = core.conn.transaction()?;
    tx.execute(
        "UPDATE erasure_steps SET status = 'done', detail = ?3, done_at = ?4 WHERE request_id = ?1 AND seq = ?2",
        params![request.id, step.seq, detail.to_string(), time::now_rfc3339()],
    )?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "erasure.step",
        Some(&request.subject_mac),
        &json!({"request": request.id, "seq": step.seq, "category": step.category,
                "kind": step.step.split(':').next().unwrap_or("")}),
    )?;
    tx.commit()?;
    Ok(())
}

fn revoke(core: &Core, user: &str, id: &str) -> Result<Value> {
    let token = core.settings.state_token()?;
    let url = format!(
        "{}/v1/revocations/user",
        core.settings.state_url.trim_end_matches('/')
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&url)
        .header("authorization", &format!("Bearer {token}"))
        .header("x-meshguard-actor", "meshguard-gdpr")
        .send_json(json!({"sub": user, "reason": format!("GDPR erasure {id}")}))
        .map_err(|e| {
            Error::Unavailable(format!("meshguard-state: revoking the user's tokens: {e}"))
        })?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    if status != 200 {
        return Err(Error::Unavailable(format!(
            "meshguard-state: revoking the user's tokens answered {status}: {body}"
        )));
    }
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let field = |path: &str| v.pointer(path).cloned().unwrap_or(Value::Null);
    Ok(json!({"not_before": field("/revocation/not_before"), "cursor": field("/cursor")}))
}

/// The entry holding the cutoff this erasure relies on: kept until every
/// token issued before it has expired, then removed by `sweep`.
fn cutoff_entry(user: &str) -> String {
    format!("{}#{user}", userdata::REV_USERS)
}

fn plan_entry(
    core: &Core,
    id: &str,
    user: &str,
    entry: &str,
    held: &[(String, String)],
) -> Result<()> {
    let category = userdata::category(entry);
    let step = format!("redis:{entry}");
    if let Some((_, reason)) = held.iter().find(|(c, _)| c == category) {
        add_step(
            core,
            id,
            &step,
            category,
            "held",
            Some(json!({"reason": reason})),
        )
    } else if entry == cutoff_entry(user) {
        let until = time::now_s() + core.settings.token_max_lifetime_s;
        add_step(
            core,
            id,
            &step,
            category,
            "retained",
            Some(
                json!({"until": until, "why": "keeps the user's tokens unusable until the longest token lifetime has passed; removed by `meshguard-gdpr sweep`"}),
            ),
        )
    } else {
        add_step(core, id, &step, category, "pending", None)
    }
}

fn plan(core: &Core, request: &Request, user: &str) -> Result<()> {
    let held = holds::active(core, &request.subject_mac)?;
    let mut con = core.redis()?;
    for entry in userdata::find(&mut con, user)? {
        plan_entry(core, &request.id, user, &entry, &held)?;
    }
    for c in core.settings.connectors()? {
        let category = c.category();
        match held.iter().find(|(h, _)| *h == category) {
            Some((_, reason)) => add_step(
                core,
                &request.id,
                &format!("connector:{}", c.name),
                &category,
                "held",
                Some(json!({"reason": reason})),
            )?,
            None => add_step(
                core,
                &request.id,
                &format!("connector:{}", c.name),
                &category,
                "pending",
                None,
            )?,
        }
    }
    // The streams last: the revoke step itself wrote a feed entry and an
    // audit event naming the user.
    for (step, category) in [
        ("local:consents", "consents"),
        ("stream:feed", "revocations"),
        ("stream:audit", "audit"),
    ] {
        match held.iter().find(|(h, _)| h == category) {
            Some((_, reason)) => add_step(
                core,
                &request.id,
                step,
                category,
                "held",
                Some(json!({"reason": reason})),
            )?,
            None => add_step(core, &request.id, step, category, "pending", None)?,
        }
    }
    Ok(())
}

fn execute(core: &mut Core, request: &Request, user: &str, step: &Step) -> Result<Value> {
    if step.step == "revoke" {
        return revoke(core, user, &request.id);
    }
    if let Some(entry) = step.step.strip_prefix("redis:") {
        let mut con = core.redis()?;
        userdata::erase(&mut con, user, entry)?;
        return Ok(json!({}));
    }
    if let Some(name) = step.step.strip_prefix("connector:") {
        let connectors = core.settings.connectors()?;
        let c = connectors.iter().find(|c| c.name == name).ok_or_else(|| {
            Error::Config(format!(
                "connector {name} is in this erasure's plan but not in the connectors file"
            ))
        })?;
        let answer = connectors::erase(c, user)?;
        // Keep counts only: the answer may name the user.
        return Ok(match answer.get("erased") {
            Some(n) if n.is_number() => json!({"erased": n}),
            _ => json!({}),
        });
    }
    if step.step == "local:consents" {
        return Ok(json!({"deleted": consent::erase(core, user)?}));
    }
    if step.step == "stream:feed" {
        let mut con = core.redis()?;
        return Ok(json!({"deleted": userdata::scrub_feed(&mut con, user)?}));
    }
    if step.step == "stream:audit" {
        // Into the hash chain first, where only the subject's HMAC remains.
        crate::ingest::run(core)?;
        let mut con = core.redis()?;
        return Ok(json!({"deleted": userdata::scrub_audit(&mut con, user)?}));
    }
    Err(Error::Internal(format!(
        "unknown erasure step {}",
        step.step
    )))
}

/// A hold placed after the plan was made (while the erasure was pending,
/// failed or running) turns the step into a held one before it runs.
fn hold_step(core: &mut Core, request: &Request, step: &Step, reason: &str) -> Result<()> {
    let tx = core.conn.transaction()?;
    tx.execute(
        "UPDATE erasure_steps SET status = 'held', detail = ?3 WHERE request_id = ?1 AND seq = ?2 AND status = 'pending'",
        params![request.id, step.seq, json!({"reason": reason}).to_string()],
    )?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "erasure.step_held",
        Some(&request.subject_mac),
        &json!({"request": request.id, "seq": step.seq, "category": step.category}),
    )?;
    tx.commit()?;
    Ok(())
}

fn run_pending(core: &mut Core, request: &Request, user: &str) -> Result<()> {
    let all = steps(core, &request.id)?;
    let bar = crate::progress::bar("erasing", all.len() as u64);
    for step in all {
        bar.inc(1);
        if step.status != "pending" {
            continue;
        }
        bar.set_message(step.step.clone());
        // Read per step: a hold may be added from another process meanwhile.
        let held = holds::active(core, &request.subject_mac)?;
        if let Some((_, reason)) = held.iter().find(|(c, _)| *c == step.category) {
            hold_step(core, request, &step, reason)?;
            continue;
        }
        let detail = execute(core, request, user, &step)?;
        mark_done(core, request, &step, detail)?;
    }
    bar.finish_and_clear();
    Ok(())
}

/// Index entries written after the plan (a login racing the erasure) get
/// steps too; the retained cutoff leaves the index.
fn reconcile(core: &Core, request: &Request, user: &str) -> Result<bool> {
    let known: Vec<String> = steps(core, &request.id)?
        .into_iter()
        .map(|s| s.step)
        .collect();
    let held = holds::active(core, &request.subject_mac)?;
    let mut con = core.redis()?;
    let mut added = false;
    for entry in userdata::find(&mut con, user)? {
        let step = format!("redis:{entry}");
        if entry == cutoff_entry(user) && known.contains(&step) {
            userdata::unindex(&mut con, user, &entry)?;
        } else if !known.contains(&step) {
            plan_entry(core, &request.id, user, &entry, &held)?;
            added = true;
        }
    }
    Ok(added)
}

#[derive(Debug, Serialize)]
pub struct Erased {
    pub request: Request,
    pub steps: Vec<Step>,
    /// True when the request had completed before this call.
    pub already_completed: bool,
}

pub fn run(core: &mut Core, id: &str) -> Result<Erased> {
    let request = requests::get(core, id)?;
    if request.kind != Kind::Erasure.as_str() {
        return Err(Error::Invalid(format!(
            "request {id} is a {} request",
            request.kind
        )));
    }
    if request.status == requests::COMPLETED {
        return Ok(Erased {
            steps: steps(core, id)?,
            request,
            already_completed: true,
        });
    }
    requests::start(core, &request, &[Kind::Erasure])?;
    let user = request.user()?.to_string();
    if request.status == requests::VERIFIED {
        core.audit(
            "erasure.started",
            Some(&request.subject_mac),
            json!({"request": id}),
        )?;
    }
    match perform(core, &request, &user) {
        Ok(()) => {}
        Err(e) => {
            requests::fail(core, id, &request.subject_mac, &e.to_string())?;
            return Err(e);
        }
    }
    finalize(core, &request, &user)?;
    Ok(Erased {
        request: requests::get(core, id)?,
        steps: steps(core, id)?,
        already_completed: false,
    })
}

fn perform(core: &mut Core, request: &Request, user: &str) -> Result<()> {
    let existing = steps(core, &request.id)?;
    if existing.is_empty() {
        // Tokens first; data only once the cutoff has reached the proxies
        // (await_propagation): then nothing the user holds opens a door.
        add_step(core, &request.id, "revoke", "tokens", "pending", None)?;
    }
    run_pending(core, request, user)?;
    await_propagation(core, request)?;
    if steps(core, &request.id)?.len() <= 1 {
        plan(core, request, user)?;
    }
    run_pending(core, request, user)?;
    for _ in 0..3 {
        if !reconcile(core, request, user)? {
            return Ok(());
        }
        run_pending(core, request, user)?;
    }
    Err(Error::Unavailable(
        "the user's index keeps growing during erasure (is the user still active?)".into(),
    ))
}

/// The auth plugins apply the cutoff at their next feed poll: until then a
/// request with an old token is still admitted and may write new records.
/// Waits out `--revocation-grace-ms` from the revoke step's completion.
fn await_propagation(core: &Core, request: &Request) -> Result<()> {
    let revoked_at = steps(core, &request.id)?
        .into_iter()
        .find(|s| s.step == "revoke")
        .and_then(|s| s.done_at)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
    let Some(revoked_at) = revoked_at else {
        return Err(Error::Internal(format!(
            "erasure {}: the revoke step has no completion time",
            request.id
        )));
    };
    let grace = chrono::Duration::milliseconds(
        i64::try_from(core.settings.revocation_grace_ms).unwrap_or(i64::MAX),
    );
    let elapsed = chrono::Utc::now().signed_duration_since(revoked_at);
    if let Ok(left) = (grace - elapsed).to_std() {
        std::thread::sleep(left);
    }
    Ok(())
}

fn finalize(core: &mut Core, request: &Request, user: &str) -> Result<()> {
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

#[derive(Debug, Serialize)]
pub struct Swept {
    pub removed_cutoffs: u64,
    pub waiting: u64,
}

/// Removes not-before cutoffs kept after erasures once every token they
/// guard has expired. The cutoff's owner is found by HMAC: no identifier
/// is kept for this.
pub fn sweep(core: &mut Core) -> Result<Swept> {
    let mut stmt = core.conn.prepare(
        "SELECT s.request_id, s.seq, s.detail, r.subject_mac FROM erasure_steps s
         JOIN requests r ON r.id = s.request_id WHERE s.status = 'retained'",
    )?;
    let retained: Vec<(String, i64, Option<String>, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    drop(stmt);
    let now = time::now_s();
    let (due, waiting): (Vec<_>, Vec<_>) = retained.into_iter().partition(|(_, _, detail, _)| {
        detail
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
            .and_then(|d| d.get("until").and_then(Value::as_i64))
            .is_none_or(|until| until <= now)
    });
    if due.is_empty() {
        return Ok(Swept {
            removed_cutoffs: 0,
            waiting: waiting.len() as u64,
        });
    }
    let mut con = core.redis()?;
    let cutoffs: Vec<String> = redis::cmd("HKEYS")
        .arg(userdata::REV_USERS)
        .query(&mut con)?;
    let mut removed = 0;
    for (request_id, seq, _, mac) in &due {
        for sub in cutoffs.iter().filter(|s| core.keys.subject(s) == *mac) {
            redis::cmd("HDEL")
                .arg(userdata::REV_USERS)
                .arg(sub)
                .query::<()>(&mut con)?;
            removed += 1;
        }
        let tx = core.conn.transaction()?;
        tx.execute(
            "UPDATE erasure_steps SET status = 'done', detail = ?3, done_at = ?4 WHERE request_id = ?1 AND seq = ?2",
            params![request_id, seq, json!({"cutoff_removed": true}).to_string(), time::now_rfc3339()],
        )?;
        crate::audit::append(
            &tx,
            &core.keys,
            &core.settings.actor,
            "erasure.cutoff_removed",
            Some(mac),
            &json!({"request": request_id}),
        )?;
        tx.commit()?;
    }
    Ok(Swept {
        removed_cutoffs: removed,
        waiting: waiting.len() as u64,
    })
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
