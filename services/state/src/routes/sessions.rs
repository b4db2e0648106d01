//! Sessions: register (operator), activity (plugin), list and end (operator).
//! Ending a session, by eviction or by hand, revokes its tokens via the feed.

use super::{actor, check_id, now_ms};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::geo;
use crate::routes::revocations::record;
use crate::store::{LastLocation, NewAuditEvent, Touched};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use meshguard_api::revocation::Revocation;
use meshguard_api::session::{
    ActivityResponse, Geo, SessionActivity, SessionEnded, SessionInfo, SessionList,
    SessionRegistered, SessionRegistration, SuspiciousActivity,
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
