//! Running the pending steps in order, each checked against the holds
//! just before it runs.

use super::revoke::revoke;
use super::steps::{hold_step, mark_done, steps, Step};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::requests::Request;
use crate::{connectors, consent, holds, userdata};
use serde_json::{json, Value};

pub(super) fn execute(
    core: &mut Core,
    request: &Request,
    user: &str,
    step: &Step,
) -> Result<Value> {
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

pub(super) fn run_pending(core: &mut Core, request: &Request, user: &str) -> Result<()> {
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
