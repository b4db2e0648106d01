//! Sessions: register (operator), activity and batched reports (plugin),
//! list and end (operator). Ending a session, by eviction or by hand,
//! revokes its tokens via the feed.
//!
//! A proxy learns sessions from the `sid` of the tokens it verifies and
//! reports them in batches (`POST /v1/sessions/reports`): a new one is
//! registered (the per-user maximum enforced), a known one touched, and
//! each goes through the travel check. Every report of a batch stands on
//! its own: a malformed one is skipped, a malformed field dropped.

use super::{actor, check_id, now_ms};
use crate::app_state::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::geo;
use crate::routes::revocations::record;
use crate::store::{LastLocation, Learned, NewAuditEvent, SeenSession, Touched};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use meshguard_api::revocation::Revocation;
use meshguard_api::session::{
    ActivityResponse, Geo, ReportProblem, SessionActivity, SessionEnded, SessionInfo, SessionList,
    SessionRegistered, SessionRegistration, SessionReport, SessionReports, SessionReportsAnswer,
    SuspiciousActivity, MAX_USER_AGENT_BYTES,
};
use serde_json::json;

fn check_opt(field: &str, value: Option<&str>) -> ApiResult<()> {
    match value {
        Some(v) => check_id(field, v),
        None => Ok(()),
    }
}

fn check_geo(geo: Option<Geo>) -> ApiResult<()> {
    match geo {
        Some(g) if !g.is_valid() => Err(ApiError::bad_request(
            "geo.lat must be within -90..=90 and geo.lon within -180..=180",
        )),
        _ => Ok(()),
    }
}

async fn audit(
    state: &AppState,
    actor: &str,
    action: &str,
    subject: &str,
    details: serde_json::Value,
) {
    let event = NewAuditEvent {
        actor: actor.to_string(),
        action: action.to_string(),
        subject: subject.to_string(),
        details,
    };
    if let Err(e) = state.store.audit(&event).await {
        tracing::error!("audit of {action} not written: {e}");
    }
}

/// Ends a session and revokes its tokens; returns whether it was live.
async fn end_and_revoke(
    state: &AppState,
    user: &str,
    session_id: &str,
    actor: &str,
    why: &str,
) -> ApiResult<bool> {
    let ended = state.store.end_session(user, session_id).await?;
    revoke_session(state, user, session_id, actor, why).await?;
    if ended {
        audit(
            state,
            actor,
            "session.ended",
            user,
            json!({ "session_id": session_id, "why": why }),
        )
        .await;
    }
    Ok(ended)
}

async fn revoke_session(
    state: &AppState,
    user: &str,
    session_id: &str,
    actor: &str,
    why: &str,
) -> ApiResult<()> {
    let until = now_ms() / 1_000 + state.settings.session_revocation_ttl_s;
    // Before the feed entry: a late report of the session must not bring it back.
    state
        .store
        .mark_sessions_ended(user, &[session_id], until)
        .await?;
    record(
        state,
        Revocation::Session {
            sub: user.to_string(),
            session_id: session_id.to_string(),
            until,
        },
        actor,
        Some(why),
    )
    .await?;
    Ok(())
}

/// Checks the move from the user's last location; on impossible travel
/// records the event and, when configured, ends the session.
async fn travel_check(
    state: &AppState,
    user: &str,
    session_id: &str,
    previous: Option<LastLocation>,
    geo: Option<Geo>,
    at_ms: u64,
) -> ApiResult<Option<SuspiciousActivity>> {
    let (Some(prev), Some(geo)) = (previous, geo) else {
        return Ok(None);
    };
    let threshold = state.settings.travel_max_kmh;
    let Some(travel) = geo::impossible(prev.geo, prev.at_ms, geo, at_ms, threshold) else {
        return Ok(None);
    };
    state.metrics.suspicious.inc();
    let session_ended = state.settings.travel_end_session
        && end_and_revoke(state, user, session_id, "system", "impossible_travel").await?;
    let event = SuspiciousActivity {
        kind: "impossible_travel".into(),
        session_id: session_id.to_string(),
        previous_session_id: prev.session_id,
        distance_km: travel.distance_km,
        elapsed_s: travel.elapsed_s,
        speed_kmh: travel.speed_kmh,
        threshold_kmh: threshold,
        session_ended,
    };
    tracing::warn!(
        user,
        session_id,
        speed_kmh = travel.speed_kmh,
        "impossible travel"
    );
    audit(
        state,
        "system",
        "suspicious.impossible_travel",
        user,
        json!({ "event": event, "from": prev.geo, "to": geo }),
    )
    .await;
    Ok(Some(event))
}

pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SessionRegistration>,
) -> ApiResult<Json<SessionRegistered>> {
    check_id("user", &req.user)?;
    check_id("session_id", &req.session_id)?;
    check_opt("device_id", req.device_id.as_deref())?;
    check_opt("ip", req.ip.as_deref())?;
    if req.user_agent.as_ref().is_some_and(|ua| ua.len() > 512) {
        return Err(ApiError::bad_request("user_agent is longer than 512 bytes"));
    }
    check_geo(req.geo)?;
    let actor = actor(&headers, "admin");
    let now = now_ms();
    let session = SessionInfo {
        user: req.user.clone(),
        session_id: req.session_id.clone(),
        device_id: req.device_id,
        user_agent: req.user_agent,
        ip: req.ip,
        geo: req.geo,
        created_ms: now,
        last_seen_ms: now,
    };
    let registered = state
        .store
        .register_session(&session, state.settings.max_sessions)
        .await?;
    audit(
        &state,
        &actor,
        "session.created",
        &req.user,
        json!({ "session_id": req.session_id, "device_id": session.device_id, "ip": session.ip }),
    )
    .await;
    let mut evicted = Vec::with_capacity(registered.evicted.len());
    for old in &registered.evicted {
        revoke_session(&state, &req.user, &old.session_id, &actor, "max_sessions").await?;
        audit(
            &state,
            &actor,
            "session.evicted",
            &req.user,
            json!({ "session_id": old.session_id, "for": req.session_id }),
        )
        .await;
        evicted.push(old.session_id.clone());
    }
    let suspicious = travel_check(
        &state,
        &req.user,
        &req.session_id,
        registered.previous,
        req.geo,
        now,
    )
    .await?;
    Ok(Json(SessionRegistered {
        session,
        evicted,
        suspicious,
    }))
}

pub async fn activity(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SessionActivity>,
) -> ApiResult<Json<ActivityResponse>> {
    check_id("user", &req.user)?;
    check_id("session_id", &req.session_id)?;
    check_opt("ip", req.ip.as_deref())?;
    check_geo(req.geo)?;
    let now = now_ms();
    let touched = state
        .store
        .touch_session(&req.user, &req.session_id, now, req.ip.as_deref(), req.geo)
        .await?;
    let Touched::Live { previous } = touched else {
        return Ok(Json(ActivityResponse {
            active: false,
            suspicious: None,
        }));
    };
    let suspicious =
        travel_check(&state, &req.user, &req.session_id, previous, req.geo, now).await?;
    let active = !suspicious.as_ref().is_some_and(|s| s.session_ended);
    Ok(Json(ActivityResponse { active, suspicious }))
}

pub async fn list(
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> ApiResult<Json<SessionList>> {
    check_id("user", &user)?;
    let sessions = state.store.list_sessions(&user).await?;
    Ok(Json(SessionList {
        user,
        max_sessions: state.settings.max_sessions,
        sessions,
    }))
}

pub async fn end(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((user, session_id)): Path<(String, String)>,
) -> ApiResult<Json<SessionEnded>> {
    check_id("user", &user)?;
    check_id("session_id", &session_id)?;
    let ended = end_and_revoke(
        &state,
        &user,
        &session_id,
        &actor(&headers, "admin"),
        "ended",
    )
    .await?;
    Ok(Json(SessionEnded {
        user,
        session_id,
        ended,
    }))
}

/// Reports one batch may carry (a proxy sends at most a few hundred).
const MAX_REPORTS: usize = 1_000;

/// Reports a proxy may hold back while meshguard-state is away: first-seen
/// times older than this are clamped to it (they still order the batch).
const MAX_REPORT_AGE_MS: u64 = 3_600_000;

/// One report of a batch, with its malformed fields dropped, or why it
/// cannot be applied at all.
fn read_report(
    raw: serde_json::Value,
    now: u64,
    problems: &mut Vec<String>,
) -> Result<SessionReport, String> {
    let serde_json::Value::Object(mut fields) = raw else {
        return Err("not an object".into());
    };
    // Optional fields that do not parse are dropped one by one, so a bad
    // location (say, from a header) costs the location, not the session.
    for field in ["geo", "ip", "user_agent"] {
        let Some(value) = fields.get(field) else {
            continue;
        };
        let ok = match field {
            "geo" => serde_json::from_value::<Geo>(value.clone()).is_ok_and(|g| g.is_valid()),
            "ip" => value
                .as_str()
                .is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_ok()),
            _ => value.as_str().is_some_and(|ua| {
                ua.len() <= MAX_USER_AGENT_BYTES && !ua.chars().any(char::is_control)
            }),
        };
        if !ok && !value.is_null() {
            problems.push(format!("{field} dropped: not a valid value"));
            fields.remove(field);
        }
    }
    let mut report: SessionReport =
        serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| e.to_string())?;
    if !crate::store::keys::valid_id(&report.user) {
        return Err("user must be 1-256 characters without braces or control characters".into());
    }
    if !crate::store::keys::valid_id(&report.session_id) {
        return Err(
            "session_id must be 1-256 characters without braces or control characters".into(),
        );
    }
    let oldest = now.saturating_sub(MAX_REPORT_AGE_MS);
    report.first_seen_ms = report.first_seen_ms.clamp(oldest, now);
    report.last_seen_ms = report.last_seen_ms.clamp(report.first_seen_ms, now);
    Ok(report)
}

pub async fn reports(
    State(state): State<AppState>,
    ApiJson(batch): ApiJson<SessionReports>,
) -> ApiResult<Json<SessionReportsAnswer>> {
    if batch.reports.len() > MAX_REPORTS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_REPORTS} reports per batch"
        )));
    }
    let now = now_ms();
    let mut answer = SessionReportsAnswer {
        applied: 0,
        registered: Vec::new(),
        evicted: Vec::new(),
        suspicious: Vec::new(),
        problems: Vec::new(),
    };
    let mut reports = Vec::with_capacity(batch.reports.len());
    for (index, raw) in batch.reports.into_iter().enumerate() {
        let mut dropped = Vec::new();
        match read_report(raw, now, &mut dropped) {
            Ok(report) => reports.push(report),
            Err(message) => answer.problems.push(ReportProblem {
                index,
                outcome: "skipped".into(),
                message,
            }),
        }
        answer
            .problems
            .extend(dropped.into_iter().map(|message| ReportProblem {
                index,
                outcome: "field_dropped".into(),
                message,
            }));
    }
    // Oldest first: the order sessions were seen decides which is evicted.
    reports.sort_by_key(|r| r.first_seen_ms);
    for report in &reports {
        let seen = SeenSession {
            user: &report.user,
            session_id: &report.session_id,
            first_seen_ms: report.first_seen_ms,
            last_seen_ms: report.last_seen_ms,
            user_agent: report.user_agent.as_deref(),
            ip: report.ip.as_deref(),
            geo: report.geo,
        };
        let learned = state
            .store
            .learn_session(&seen, state.settings.max_sessions)
            .await?;
        answer.applied += 1;
        let Learned::Live {
            new,
            evicted,
            previous,
        } = learned
        else {
            continue;
        };
        if new {
            answer.registered.push(report.session_id.clone());
            audit(
                &state,
                "proxy",
                "session.created",
                &report.user,
                json!({ "session_id": report.session_id, "ip": report.ip, "user_agent": report.user_agent }),
            )
            .await;
        }
        for old in evicted {
            revoke_session(&state, &report.user, &old, "proxy", "max_sessions").await?;
            audit(
                &state,
                "proxy",
                "session.evicted",
                &report.user,
                json!({ "session_id": old, "for": report.session_id }),
            )
            .await;
            answer.evicted.push(old);
        }
        if let Some(event) = travel_check(
            &state,
            &report.user,
            &report.session_id,
            previous,
            report.geo,
            report.last_seen_ms,
        )
        .await?
        {
            answer.suspicious.push(event);
        }
    }
    Ok(Json(answer))
}
