//! Tokens first: the not-before cutoff through meshguard-state, then the
//! wait until the auth plugins apply it.

use super::steps::steps;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::requests::Request;
use serde_json::{json, Value};
use std::time::Duration;

pub(super) fn revoke(core: &Core, user: &str, id: &str) -> Result<Value> {
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

/// The auth plugins apply the cutoff at their next feed poll: until then a
/// request with an old token is still admitted and may write new records.
/// Waits out `--revocation-grace-ms` from the revoke step's completion.
pub(super) fn await_propagation(core: &Core, request: &Request) -> Result<()> {
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
