//! Revocations (operator) and the feed (plugins).

use super::{actor, check_id, now_ms};
use crate::app_state::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::store::{keys, NewAuditEvent};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meshguard_api::revocation::{
    Revocation, RevocationFeed, RevokeResponse, RevokeTokenRequest, RevokeUserRequest,
};
use serde::Deserialize;
use serde_json::json;

/// Records a revocation, then its audit event and index entry. The feed entry
/// is what plugins act on, so it is written first and alone decides success.
pub async fn record(
    state: &AppState,
    revocation: Revocation,
    actor: &str,
    reason: Option<&str>,
) -> ApiResult<RevokeResponse> {
    let recorded = state.store.revoke(&revocation).await?;
    let (action, subject, index) = match &recorded.revocation {
        Revocation::Token { iss, jti, .. } => ("revocation.token", format!("{iss} {jti}"), None),
        Revocation::User { sub, .. } => (
            "revocation.user",
            sub.clone(),
            Some((sub.clone(), format!("{}#{sub}", keys::REV_USERS))),
        ),
        Revocation::Session {
            sub, session_id, ..
        } => (
            "revocation.session",
            sub.clone(),
            Some((
                sub.clone(),
                format!("{}#{sub}\n{session_id}", keys::REV_SESSIONS),
            )),
        ),
    };
    let event = NewAuditEvent {
        actor: actor.to_string(),
        action: action.to_string(),
        subject,
        details: json!({ "revocation": recorded.revocation, "cursor": recorded.cursor, "reason": reason }),
    };
    // The revocation is in force already; a failed audit or index write is
    // logged and counted (redis_errors_total) rather than failing the call.
    if let Err(e) = state.store.audit(&event).await {
        tracing::error!("audit of {action} not written: {e}");
    }
    if let Some((user, entry)) = index {
        if let Err(e) = state.store.index_user(&user, &[entry]).await {
            tracing::error!("index entry for {action} not written: {e}");
        }
    }
    Ok(RevokeResponse {
        cursor: recorded.cursor,
        revocation: recorded.revocation,
    })
}

pub async fn revoke_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RevokeTokenRequest>,
) -> ApiResult<Json<RevokeResponse>> {
    check_id("iss", &req.iss)?;
    check_id("jti", &req.jti)?;
    let revocation = Revocation::Token {
        iss: req.iss,
        jti: req.jti,
        exp: req.exp,
    };
    let out = record(
        &state,
        revocation,
        &actor(&headers, "admin"),
        req.reason.as_deref(),
    )
    .await?;
    Ok(Json(out))
}

pub async fn revoke_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RevokeUserRequest>,
) -> ApiResult<Json<RevokeResponse>> {
    check_id("sub", &req.sub)?;
    let revocation = Revocation::User {
        sub: req.sub,
        not_before: now_ms() / 1_000,
    };
    let out = record(
        &state,
        revocation,
        &actor(&headers, "admin"),
        req.reason.as_deref(),
    )
    .await?;
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

pub async fn feed(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> ApiResult<Response> {
    let since = q.since.unwrap_or_else(|| "0".to_string());
    if !super::is_stream_id(&since) {
        return Err(ApiError::bad_request(
            "since must be a cursor from this feed (or 0 for a snapshot)",
        ));
    }
    let limit = q
        .limit
        .unwrap_or(state.settings.feed_page_max)
        .clamp(1, state.settings.feed_page_max);
    let feed = state.store.revocation_feed(&since, limit).await?;
    let cursor = match &feed {
        RevocationFeed::Changes { cursor, .. } => cursor,
        RevocationFeed::Snapshot(s) => &s.cursor,
    };
    let version = HeaderValue::from_str(cursor).ok();
    let mut response = Json(&feed).into_response();
    if let Some(v) = version {
        response
            .headers_mut()
            .insert(meshguard_api::VERSION_HEADER, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::super::is_stream_id;

    #[test]
    fn cursors() {
        for ok in [
            "0",
            "0-0",
            "1732600000000-3",
            "17",
            "18446744073709551615-0",
        ] {
            assert!(is_stream_id(ok), "{ok}");
        }
        // The last two were 500s (found by the API fuzz): Redis refuses
        // parts beyond u64.
        for bad in [
            "",
            "-",
            "1-",
            "a-1",
            "1-2-3",
            "+",
            "(1",
            "1-83000895652785701414",
            "18446744073709551616",
        ] {
            assert!(!is_stream_id(bad), "{bad}");
        }
    }
}
