//! The plan: a step for every indexed Redis entry, every connector, the
//! local consents and the streams, held or retained where it must be; and
//! steps for entries indexed while the erasure runs.

use super::steps::{add_step, steps};
use crate::core::Core;
use crate::error::Result;
use crate::requests::Request;
use crate::{holds, time, userdata};
use serde_json::json;

/// The entry holding the cutoff this erasure relies on: kept until every
/// token issued before it has expired, then removed by `sweep`.
pub(super) fn cutoff_entry(user: &str) -> String {
    format!("{}#{user}", userdata::REV_USERS)
}

pub(super) fn plan_entry(
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

pub(super) fn plan(core: &Core, request: &Request, user: &str) -> Result<()> {
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

/// Index entries written after the plan (a login racing the erasure) get
/// steps too; the retained cutoff leaves the index.
pub(super) fn reconcile(core: &Core, request: &Request, user: &str) -> Result<bool> {
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
