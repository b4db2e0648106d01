//! Art. 17 erasure, step by step: revoke the user's tokens first (a
//! not-before cutoff through meshguard-state) and give the auth plugins
//! `--revocation-grace-ms` to apply it, then erase every indexed
//! Redis entry, every connector's records and the local consent history.
//! Each step is recorded before the next starts, so a rerun after a crash
//! resumes at the first step not done; every step is safe to repeat.

mod execute;
mod plan;
mod proof;
mod revoke;
mod steps;
mod sweep;

use crate::core::Core;
use crate::error::{Error, Result};
use crate::requests::{self, Kind, Request};
use execute::run_pending;
use plan::{plan, reconcile};
use proof::finalize;
pub use proof::proofs_for;
use revoke::await_propagation;
use serde::Serialize;
use serde_json::json;
use steps::add_step;
pub use steps::{steps, Step};
pub use sweep::sweep;

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
