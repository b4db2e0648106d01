//! Ingests meshguard-state's audit stream (`GET /v1/audit?since=`) into the
//! hash chain, subjects as HMACs and without the details (which may hold
//! IP addresses); the state event id keeps the link to the original.

use crate::core::Core;
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::time::Duration;

const CURSOR: &str = "state_audit_cursor";

pub fn run(core: &mut Core) -> Result<u64> {
    let token = core.settings.state_token()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let base = core.settings.state_url.trim_end_matches('/').to_string();
    let mut ingested = 0;
    let bar = crate::progress::counter("ingested state audit events");
    loop {
        let since = crate::db::kv_get(&core.conn, CURSOR)?.unwrap_or_else(|| "0".into());
        let mut response = agent
            .get(&format!("{base}/v1/audit?since={since}&limit=1000"))
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .map_err(|e| Error::Unavailable(format!("meshguard-state audit stream: {e}")))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        if status != 200 {
            return Err(Error::Unavailable(format!(
                "meshguard-state audit stream answered {status}: {body}"
            )));
        }
        let page: Value = serde_json::from_str(&body)
            .map_err(|e| Error::Unavailable(format!("meshguard-state audit stream: {e}")))?;
        let events = page
            .get("events")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if events.is_empty() {
            bar.finish_and_clear();
            return Ok(ingested);
        }
        let tx = core.conn.transaction()?;
        for e in &events {
            let subject = e["subject"].as_str().unwrap_or("");
            let mac = core.keys.subject(subject);
            crate::audit::append(
                &tx,
                &core.keys,
                "meshguard-state",
                &format!("state.{}", e["action"].as_str().unwrap_or("unknown")),
                Some(&mac),
                &json!({"state_id": e["id"], "at_ms": e["at_ms"], "state_actor": e["actor"]}),
            )?;
            ingested += 1;
        }
        bar.inc(events.len() as u64);
        let cursor = page
            .get("cursor")
            .and_then(Value::as_str)
            .unwrap_or(&since)
            .to_string();
        crate::db::kv_set(&tx, CURSOR, &cursor)?;
        tx.commit()?;
    }
}
